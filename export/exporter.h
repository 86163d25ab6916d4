// maas-export: turns a maas-train run into a verified TorchScript artifact (see artifact.h) or ONNX file.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "artifact.h"
#include "cpu_info.h"
#include "onnx_runtime.h"
#include "quantize.h"
#include "torchscript_builder.h"

namespace maas {

enum class WeightFormat {
  kFloat32,
  kInt8,      // post-training static quantization: int8 kernels for conv/linear layers (quantize.h)
  kBFloat16,  // the model's weights and arithmetic in bfloat16 (torchscript_builder.h); input and output float32
};
// "float32", "int8", "bf16": metadata model.weights.
const char* to_string(WeightFormat format);

enum class ArtifactFormat {
  kTorchScript,  // the maas artifact (artifact.h): LibTorch and PyTorch run it, maas-serve serves it
  kOnnx,         // ONNX (opset kOnnxOpset, onnx_builder.h) converted from the same traced graph, frozen
};

struct ExportOptions {
  std::string run_dir;                         // a maas-train run directory (config.yaml + checkpoints)
  std::string out;                             // where the artifact is written
  std::string checkpoint = "best";             // "best", "last", or a checkpoint file path
  bool optimize = false;                       // freeze: fold parameters into constants
  WeightFormat weights = WeightFormat::kFloat32;  // kInt8 for --quantize int8
  std::optional<TtaMode> tta;                  // test-time augmentation baked into forward (--tta), verified
                                               // against the same TTA around the trained model; unset
                                               // (default): the run's eval.tta
  int64_t verify_images = 512;                 // FP32: test images compared logit by logit (>= 256)
  double max_abs_diff = 1e-4;                  // FP32: largest allowed logit difference
  double max_accuracy_drop = 0.01;             // int8, bf16: largest allowed test-accuracy loss (fraction)
  // bf16: largest allowed max |logit diff| over the verified images, as a fraction of the float32
  // logits' range there (max - min). bf16 keeps 8 significant bits: each weight and activation is
  // rounded by up to 2^-9 = 0.2% (oneDNN accumulates in float32); the roundings of a few layers add
  // up to ~1% of the range on real runs (docs: issue 22), so 1/32 = 3.1% leaves room, while a wrong
  // graph (a missing cast, a layer in the wrong dtype) is off by a multiple of the range.
  double bf16_max_relative_diff = 1.0 / 32;
  // bf16: least fraction of verified images with float32's top class. A flip needs a float32 top-2
  // margin below twice the difference, so flips are near-ties; a weakly trained network has many
  // (a 2-epoch airbench: 6 of 512 images, 98.8%); a broken graph flips most images.
  double bf16_min_top1_agreement = 0.98;
  bool force_bf16 = false;                     // bf16: export even where the CPU lacks native bf16 (--force-bf16)
  const CpuInfo* cpu = nullptr;                // the CPU the bf16 check reads; null = this_cpu() (tests pretend)
  int64_t calibration_images = 1024;           // int8: first training images run through the observers;
                                               // ~1000 is where min/max ranges stop moving for CIFAR-10
  std::string samples_dir;                     // if set: one test image per class as <class>.png here
  ArtifactFormat format = ArtifactFormat::kTorchScript;
  OnnxRuntimeOptions onnx_runtime;             // ONNX: the runtime that verifies the file (skipped, and
                                               // said so, when it is not installed)
};

// With TTA, "trained model" below means tta_logits around the trained model's forward.
struct ExportReport {
  int64_t verified_images = 0;
  double max_abs_diff = 0;        // trained model vs. artifact, over the verified images
  int64_t argmax_mismatches = 0;  // images whose top class differs
  double trained_test_acc = 0;    // trained model on the whole test set
  double artifact_test_acc = 0;   // artifact on the whole test set
  int64_t file_bytes = 0;
  int64_t calibration_images = 0;  // int8: images the observers saw
  std::string onnx_runtime;          // ONNX: the ONNX Runtime version that verified the file, "" when skipped
  std::string onnx_runtime_skipped;  // ONNX: why ONNX Runtime did not run ("" when it did)
  int64_t onnx_nodes = 0;            // ONNX: nodes in the graph
  double logit_range = 0;          // max - min of the trained model's logits over the verified images
};

// Exports, verifies (before anything is written) and saves. ONNX: converted from the traced
// graph, checked by onnx::checker, and its logits from ONNX Runtime compared with the trained
// model's on the whole test set (batches of eval_batch_size, 1 and 7). Throws
// std::invalid_argument for options the format cannot honour and OnnxConversionError for an
// operator without a conversion. Progress goes to `log` (may be null).
// Throws ConfigError/CheckpointError/DataError/ArtifactError with a message naming the problem;
// on a failed verification the output file is not created. bf16 on a CPU without native bf16
// (CpuInfo::has_bf16) is refused with std::invalid_argument before anything is read, unless
// options.force_bf16.
ExportReport export_run(const ExportOptions& options, std::ostream* log);

}  // namespace maas
