// Turning a C++ torch::nn module into TorchScript by tracing its forward (export, MAC counts).
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace maas {

// A jit::Module mirroring `model`'s tree: the same submodule names, and parameters and buffers
// that are the same tensors, not copies (so a trace through `model` reads them as attributes).
// Each module gets a TorchScript class in `cu` and a `training` attribute (false), as eval(),
// freeze() and Python's torch.jit.load expect.
torch::jit::Module mirror_module(torch::nn::Module& model, const std::shared_ptr<torch::jit::CompilationUnit>& cu);

// Runs `forward(example)` under LibTorch's tracer with `self` = `mirror` and adds the recorded
// graph to `mirror` as method `method_name(self, x: Tensor) -> Tensor`.
// Requires: `mirror` = mirror_module(m) of the module m whose tensors `forward` reads, in eval
// mode (training-mode BatchNorm would update its statistics while tracing). Tensors that are not
// m's attributes become constants of the graph. Tracing records the operations of this one
// input: a forward that branches on values, or bakes in the batch size, is recorded wrongly for
// other inputs (the export verification compares other batch sizes to catch it).
// Throws std::runtime_error when tracing fails.
void add_traced_method(torch::jit::Module& mirror, const std::string& method_name,
                       const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                       const torch::Tensor& example);

// What each prim::GetAttr node of `graph` (a method of `self`) reads, by its output value: a
// submodule, tensor or other attribute. Traced graphs type attribute reads without their shapes;
// this gives the tensors themselves.
std::unordered_map<const torch::jit::Value*, c10::IValue> attribute_values(const torch::jit::Graph& graph,
                                                                          const torch::jit::Module& self);

}  // namespace maas
