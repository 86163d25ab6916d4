// The model registry: every architecture maas can train, export and serve, created by name.
//
// Adding an architecture means writing one ordinary torch::nn module (XxxImpl + TORCH_MODULE) in a
// file of its own under common/models/ and one entry in the table in models.cpp. Export traces the
// module's forward (tracing.h), so the forward must compute the same operations for every input:
// no branches on the input's values, and no batch size baked in (use flatten(1), not
// view({N, -1})). The export verification runs other batch sizes than the traced one and refuses
// an artifact that differs.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model_options.h"

namespace maas {

// What a model is built for; comes from the data set, never hard-coded per architecture.
struct ModelSpec {
  int64_t channels = 3;
  int64_t height = 32;
  int64_t width = 32;
  int64_t classes = 10;
};

// A classifier: normalized float32 images [N, C, H, W] -> logits float32 [N, classes].
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor images) = 0;
  // Data-dependent initialization from normalized training images [N, C, H, W] (train.data_init);
  // may also freeze what it sets (requires_grad false). Deterministic. Returns false when the
  // architecture has none (the default), so train.data_init on it is refused, not ignored.
  virtual bool init_from_data(const torch::Tensor& images) {
    (void)images;
    return false;
  }
};

// One registered architecture.
struct Architecture {
  std::string name;
  std::string description;              // one line: what it is, where it comes from
  std::vector<int64_t> default_widths;  // channels per stage: model.widths when it is not set
  // Builds the network with fresh weights from torch's global RNG; `activation` is one of
  // `activations`. Throws std::invalid_argument when the spec cannot be taken (e.g. images too
  // small), naming the architecture.
  std::function<std::shared_ptr<ClassifierImpl>(const ModelSpec&, const std::vector<int64_t>& widths,
                                                const std::string& activation)>
      make;
  // model.activation values it takes, its own first; one entry = no choice.
  std::vector<std::string> activations;
};

// Every registered architecture, sorted by name, and just their names.
const std::vector<Architecture>& architectures();
std::vector<std::string> architecture_names();

// Bounds of model.widths entries and of the model.width multiplier (config.cpp checks them per key).
constexpr int64_t kMaxModelWidth = 4096;  // a 4096-channel 3x3 convolution alone holds 150M weights
constexpr double kMaxWidthMultiplier = 16;
// nullptr when no architecture has that name.
const Architecture* find_architecture(const std::string& name);

// Throws ConfigError naming the key (model.name, model.widths, model.width or model.activation)
// when `options` do not fit their architecture: unknown name, the wrong number of widths, widths
// out of range, an activation it does not offer.
void check_model_options(const ModelOptions& options);

// The widths the network is built with: model.widths (or the architecture's), times model.width.
// Requires check_model_options(options) to pass.
std::vector<int64_t> resolved_widths(const ModelOptions& options);

// The activation the network is built with: model.activation, or the architecture's own when "".
// Requires check_model_options(options) to pass.
std::string resolved_activation(const ModelOptions& options);

// True when both options build the same network: same architecture, resolved widths and
// activation (widths [] and the architecture's own widths written out are the same network).
bool same_network(const ModelOptions& a, const ModelOptions& b);

// Builds the configured network with freshly initialized weights (uses torch's global RNG).
// Throws ConfigError for bad options, std::invalid_argument for a spec the architecture cannot take.
std::shared_ptr<ClassifierImpl> make_model(const ModelOptions& options, const ModelSpec& spec);
// The named architecture with its default widths.
inline std::shared_ptr<ClassifierImpl> make_model(const std::string& name, const ModelSpec& spec) {
  ModelOptions options;
  options.name = name;
  return make_model(options, spec);
}

int64_t parameter_count(const torch::nn::Module& model);

// Multiply-accumulates of one forward pass per image: the convolutions and matrix products of the
// traced graph (tracing.h); elementwise ops, pooling and normalization are not counted.
int64_t macs_per_image(ClassifierImpl& model, const ModelSpec& spec);

// A table of the top-level layers (name, type, parameters), then the totals: parameters and
// multiply-accumulates per image.
std::string model_summary(ClassifierImpl& model, const ModelSpec& spec);

}  // namespace maas
