// Post-training static int8 quantization of an artifact's module with LibTorch's graph-mode passes.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>

#include "config.h"

namespace maas {

// The first `count` training images (uint8 [N, C, H, W]) of the run's data set, for calibration
// (fewer when the set is smaller). Throws DataError when the data set cannot be read.
torch::Tensor calibration_images(const RunConfig& config, int64_t count);

struct QuantizeOptions {
  int64_t calibration_batch = 256;  // images per calibration forward pass (memory, not results)
  // 7-bit activations (0..127). Without AVX-512 VNNI, x86 int8 kernels multiply uint8 by int8 and
  // add pairs into int16 (vpmaddubsw), which saturates unless one side has 7 bits: this is why
  // PyTorch's fbgemm/x86 qconfigs reduce the activation range. The machine here has AVX2 only.
  bool reduce_range = true;
  // The model's MACs per image (0 = unknown) and the bound below which the first convolution reads
  // the int8 pixels themselves (normalization folded into it; see quantize_static): where a model
  // does fewer than this many MACs per input value, the input's normalizing pass is a sizable part
  // of its int8 forward (the seed CNN: 1481 per value, a tenth of its forward, 2.65x instead of
  // 2.25x float32), while above it the fold's 7-bit first-layer weights cost accuracy for no speed
  // (the fast airbench: 17651 per value, -0.32 points, no faster). 0 = never fold.
  int64_t macs_per_image = 0;
  int64_t fold_input_below_macs_per_value = 4096;
};

// How quantize_static quantizes, for the artifact's metadata.
std::string int8_scheme(const QuantizeOptions& options);

// What quantize_static produced: the quantized module and what it runs.
struct QuantizedModule {
  torch::jit::Module module;
  int64_t quantized_convolutions = 0;  // quantized::conv2d[_relu] nodes in forward
  int64_t quantized_linears = 0;       // quantized::linear[_relu] nodes in forward
  int64_t float_fallbacks = 0;         // aten::dequantize nodes: where the graph leaves int8 (at least the output)
  bool pixels_input = false;           // the first convolution reads the pixels (normalization folded into it)
};

// Statically quantizes `float_module` (an artifact module as build_torchscript makes it:
// forward(images) normalizes pixels and runs the traced model; attribute `classes`):
//   1. freeze (keeping `classes`): parameters become constants and LibTorch's frozen-graph
//      folding merges each BatchNorm that directly follows a convolution into it;
//   2. InsertObservers: per-tensor affine quint8 observers on activations (min/max; an
//      activation whose only consumer is ReLU, possibly through max-pooling, is observed from 0,
//      since the ReLU drops the negative half anyway), per-channel symmetric qint8 on weights;
//   3. calibration: forward over `calibration_pixels` (uint8 or float [N, C, H, W], 0..255);
//   4. InsertQuantDeQuant, Finalize (quantized::* kernels, weights prepacked for the engine),
//      constant propagation and dead code elimination, as torch.ao.quantization.quantize_jit;
//   5. quantized::conv2d / linear followed by ReLU become quantized::conv2d_relu / linear_relu.
// Where the first convolution reads the normalized pixels without padding (the seed CNN, airbench)
// and the model is small enough (QuantizeOptions::fold_input_below_macs_per_value), the
// normalization folds into its weights and bias and it reads the pixels as int8 levels
// themselves (exact; its weights bounded to 7 bits so that CPUs without VNNI cannot saturate);
// otherwise the normalized tensor is what gets quantized. Ops without int8
// kernels (GELU, amax, ...) run in float32 between a dequantize and a quantize.
// Sets the process's quantized engine to kInt8Engine (artifact.h) first.
// Requires N >= 1 and a module in eval mode; `float_module` is not modified.
// Throws ArtifactError when the passes fail or nothing was quantized.
QuantizedModule quantize_static(const torch::jit::Module& float_module, const torch::Tensor& calibration_pixels,
                                const QuantizeOptions& options = {});

// Counts the nodes of `kind` (e.g. "quantized::conv2d") in `module`'s forward graph, nested blocks included.
int64_t count_nodes(const torch::jit::Module& module, const std::string& kind);

}  // namespace maas
