// Model hyperparameters as configured (the model.* keys): which architecture, and how wide.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace maas {

// Kept free of LibTorch so that configs can be parsed without it. models.h checks these against
// the chosen architecture (check_model_options) and builds the network from them.
struct ModelOptions {
  std::string name = "cnn";     // an architecture of the registry (models.h; `maas-train --help` lists them)
  std::vector<int64_t> widths;  // channels per stage; empty = the architecture's own widths
  double width = 1.0;           // multiplies every width (rounded, at least 1): scales a network quickly
  // The nonlinearity, for architectures that offer a choice (models.h Architecture::activations);
  // "" = the architecture's own. airbench: gelu (its own) or relu, the int8-friendly form.
  std::string activation;
  // Fine-tuning: start from this checkpoint's or float32 artifact's weights ("" = fresh). Not part
  // of the network: two options that differ only here build the same model.
  std::string init;

  bool operator==(const ModelOptions& o) const {
    return name == o.name && widths == o.widths && width == o.width && activation == o.activation;
  }
  bool operator!=(const ModelOptions& o) const { return !(*this == o); }
};

}  // namespace maas
