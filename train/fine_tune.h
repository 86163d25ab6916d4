// Fine-tuning: start a run from the weights of another run's checkpoint or a maas artifact (model.init).
#pragma once

#include <iosfwd>
#include <string>

#include "models.h"

namespace maas {

// Copies the weights of `path` into `model`, tensor by tensor by name (parameters and BatchNorm
// statistics). `path` is a maas-train checkpoint (.pt of a run) or a float32 maas artifact. The
// classifier head (the layer of the model's last parameter) stays freshly initialized when its
// shapes differ, i.e. when the class count differs; any other missing or differently shaped
// tensor throws ConfigError naming model.init, the tensor and both shapes (another architecture
// or other widths). Returns a one-line summary of what was copied.
std::string init_from_file(const std::string& path, ClassifierImpl& model);

}  // namespace maas
