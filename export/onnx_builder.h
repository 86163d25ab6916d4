// Converting an artifact's traced TorchScript module into an ONNX model, node by node.
#pragma once

#include <onnx/onnx_pb.h>
#include <torch/script.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models.h"

namespace maas {

// Opset 17 and IR version 8: the newest that Debian's onnx 1.12 (checker, shape inference,
// python3-onnx) knows, and well inside what current ONNX Runtime reads (opsets 7 and up, IR up
// to 10+). Opset 17 has no Gelu operator (opset 20), so GELU is written as its erf formula.
constexpr int64_t kOnnxOpset = 17;
constexpr int64_t kOnnxIrVersion = 8;

// An operator (or an operator's form) of the graph has no ONNX conversion; the message names it.
// A std::invalid_argument: the run's network is what the export cannot take (maas-export exits 2).
class OnnxConversionError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The graph of `artifact_module`'s forward (build_torchscript's module: pixels -> normalization ->
// traced classifier, TTA views included) made ready for conversion:
//   1. linear layers fused into aten::linear (tracing records t + addmm), then the module frozen:
//      parameters become constants, calls are inlined, and each BatchNorm that directly follows a
//      convolution is folded into its weights and bias (LibTorch's frozen-graph folding);
//   2. the input's channel, height and width (aten::dim, aten::size 1..3) replaced by the spec's,
//      as the ONNX input declares them: forward's shape assertion folds away (ONNX Runtime checks
//      the declared dimensions itself); the batch size stays unknown;
//   3. constant propagation and dead code elimination.
// `artifact_module` is not modified. Throws ArtifactError when freezing fails.
std::shared_ptr<torch::jit::Graph> onnx_ready_graph(const torch::jit::Module& artifact_module, const ModelSpec& spec);

// Converts `graph` (a forward as onnx_ready_graph returns it: (self, images) or (images) ->
// float32 logits [N, classes]) into an ONNX model: input "images" uint8 [N, C, H, W] (N dynamic),
// output "logits" float32 [N, classes], constant tensors as initializers, `metadata` as
// metadata_props. Every node is converted exactly (onnx_convertible_operators()); there is no
// fallback. Throws OnnxConversionError naming the first operator, or operator form (e.g. a
// non-constant argument), without a conversion.
onnx::ModelProto graph_to_onnx(const torch::jit::Graph& graph, const ModelSpec& spec,
                               const std::vector<std::pair<std::string, std::string>>& metadata = {});

// The TorchScript operators graph_to_onnx converts, sorted (for messages and documentation).
std::vector<std::string> onnx_convertible_operators();

// onnx::checker::check_model, then strict shape inference with type checks (what Python's
// check_model(full_check=True) does), then the inferred output must be [N, spec.classes].
// Throws ArtifactError with the checker's message.
void check_onnx_model(const onnx::ModelProto& model, const ModelSpec& spec);

}  // namespace maas
