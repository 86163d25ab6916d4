// Fine-tuning: start a run from the weights of another run's checkpoint or a maas artifact (model.init).
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "models.h"

namespace maas {

// A module's parameters and buffers by name (one namespace in a torch::nn::Module), sharing storage:
// what model.init and pruning copy tensor by tensor.
std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& module);

// Copies the weights of `path` into `model`, tensor by tensor by name (parameters and BatchNorm
// statistics). `path` is a maas-train checkpoint (.pt of a run) or a float32 maas artifact. The
// classifier head (the layer of the model's last parameter) stays freshly initialized unless the
// source was trained on exactly `classes` (same names, same order): another class count, or as
// many classes with other names, gets a fresh head. Any other missing or differently shaped
// tensor throws ConfigError naming model.init, the tensor and both shapes (another architecture
// or other widths). The source's input normalization is not copied: the run normalizes its own
// data. Returns a one-line summary of what was copied.
std::string init_from_file(const std::string& path, ClassifierImpl& model, const std::vector<std::string>& classes);

}  // namespace maas
