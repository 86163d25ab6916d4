// maas artifacts: self-describing TorchScript files built from a trained classifier.
//
// Contract of an artifact (what maas-export writes and maas-serve loads):
//   forward(images) takes raw pixels 0..255, uint8 or float32, [N, C, H, W], normalizes them
//   inside, and returns float32 logits [N, classes]. A "metadata.json" extra file describes the
//   model; the module attribute `classes` lists the class names in output order.
#pragma once

#include <torch/script.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dataset.h"
#include "models.h"
#include "torchscript_loader.h"

namespace maas {

// Thrown when an artifact cannot be built, read or does not follow the contract; names the file.
class ArtifactError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class WeightFormat {
  kFloat32,
  kInt8,  // per-output-channel symmetric int8 weights, dequantized in w(); biases stay float32
};
inline const char* to_string(WeightFormat format) { return format == WeightFormat::kInt8 ? "int8" : "float32"; }

constexpr int64_t kArtifactFormatVersion = 1;
constexpr const char* kMetadataFile = "metadata.json";

// Builds the TorchScript module of `model` (eval semantics): one submodule per layer holding
// copies of its weights, normalization buffers, the `classes` attribute and `training`
// attributes so eval(), freeze() and optimize_for_inference() work. The model is not changed.
torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     WeightFormat format);

// What serving and benchmarking need from metadata.json, parsed and checked.
struct ArtifactInfo {
  std::string model_name;
  int64_t channels = 0, height = 0, width = 0;
  std::vector<std::string> classes;
  std::string metadata_json;  // the whole file, for clients that want more
};

struct Artifact {
  torch::jit::Module module;  // in eval mode
  ArtifactInfo info;
};

// Writes `module` with `metadata_json` as its metadata.json extra file, atomically.
void save_artifact(const torch::jit::Module& module, const std::string& metadata_json, const std::string& path);
// The bytes save_artifact() would write (for checking an artifact before saving it).
std::string artifact_bytes(const torch::jit::Module& module, const std::string& metadata_json);

// Loads and checks an artifact through load_torchscript() (torchscript_loader.h: records vetted
// before loading, operators checked after, within options.deadline). Throws ArtifactError naming
// the file when it is missing, not TorchScript, refused by that policy, too slow to load, or
// lacks valid metadata. Nothing in the file runs before it is accepted.
Artifact load_artifact(const std::string& path, const TorchScriptLoadOptions& options = {});

// Reads an artifact from memory (e.g. a just-saved one) the same way; `origin` names it in errors.
Artifact load_artifact_from_bytes(const std::string& bytes, const std::string& origin,
                                  const TorchScriptLoadOptions& options = {});

}  // namespace maas
