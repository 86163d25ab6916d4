// maas artifacts: self-describing TorchScript files of trained classifiers (format, reading, writing).
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
#include "torchscript_loader.h"

namespace maas {

// Thrown when an artifact cannot be built, read or does not follow the contract; names the file.
class ArtifactError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// 2: the forward's model is traced from the C++ module (export/torchscript_builder.h), metadata
// model.options/macs. Version 1 artifacts (scripted layer by layer) follow the same contract and
// are still read.
constexpr int64_t kArtifactFormatVersion = 2;
constexpr const char* kMetadataFile = "metadata.json";

// What serving and benchmarking need from metadata.json, parsed and checked.
struct ArtifactInfo {
  std::string model_name;
  int64_t channels = 0, height = 0, width = 0;
  std::vector<std::string> classes;
  std::string tta = "none";   // the test-time augmentation forward averages over (tta.h names);
                              // artifacts written before the "tta" key existed have none
  std::string quantization_engine;  // int8 artifacts (metadata "quantization"): the quantized engine
                                    // their kernels were packed for (kInt8Engine); "" for float32
  std::string metadata_json;  // the whole file, for clients that want more
};

// The quantized engine int8 artifacts are built and run with. Debian's LibTorch has onednn and
// qnnpack, no fbgemm; qnnpack ran slower than float32 on this x86 machine, onednn ~3x faster.
constexpr const char* kInt8Engine = "onednn";

// Makes kInt8Engine LibTorch's quantized engine, for the whole process (it is one global
// setting): an int8 artifact's packed weights are rebuilt for the current engine when it loads,
// and its kernels run on the current engine. Called before every artifact load and int8 export.
// Idempotent; thread-safe. Throws ArtifactError when this LibTorch build lacks the engine.
void use_int8_engine();

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
// lacks valid metadata, or is int8 for another quantized engine than kInt8Engine. Nothing in the
// file runs before it is accepted. Calls use_int8_engine() first.
Artifact load_artifact(const std::string& path, const TorchScriptLoadOptions& options = {});

// Reads an artifact from memory (e.g. a just-saved one) the same way; `origin` names it in errors.
Artifact load_artifact_from_bytes(const std::string& bytes, const std::string& origin,
                                  const TorchScriptLoadOptions& options = {});

}  // namespace maas
