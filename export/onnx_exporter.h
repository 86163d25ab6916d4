// The ONNX steps of maas-export: convert, check, verify in ONNX Runtime, save (exporter.cpp calls them).
#pragma once

#include <torch/script.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint.h"
#include "export_steps.h"
#include "exporter.h"
#include "tta.h"

namespace maas {

// What export_run has loaded and built when the ONNX steps start.
struct OnnxExport {
  const ExportOptions& options;
  const torch::jit::Module& module;  // build_torchscript's float32 module (TTA views included)
  const CheckpointMeta& meta;
  const ImageSet& test_set;
  int64_t eval_batch = 256;          // the run's eval batch size: the verification's batches
  TtaMode tta = TtaMode::kNone;
  nlohmann::json metadata;           // the TorchScript artifact's metadata.json, completed here
  std::function<torch::Tensor(const torch::Tensor&)> trained_logits;  // uint8 pixels -> the trained model's logits
};

// The model's metadata_props: the whole metadata JSON as "maas.metadata", and its main entries as
// their own keys (architecture, widths, classes, normalization, tta, test_accuracy, maas_version, ...),
// JSON-encoded where they are not plain strings.
std::vector<std::pair<std::string, std::string>> onnx_metadata_props(const nlohmann::json& metadata);

// Converts (onnx_builder.h), checks, verifies with ONNX Runtime when it is installed (else says
// why not, in the log and the metadata), then stages options.out in `outputs` (the caller commits
// it with the other outputs). Nothing is staged when a step fails. Throws OnnxConversionError, ArtifactError.
ExportReport export_onnx(OnnxExport& work, StagedWrites& outputs, StepLog& step);

}  // namespace maas
