// Mirroring an nn::Module tree as a jit::Module and tracing a forward into it.
#include "tracing.h"

#include <torch/csrc/jit/frontend/tracer.h>

#include <cctype>
#include <stdexcept>

namespace maas {
namespace {

// "maas::ConvBnReluImpl" -> "ConvBnRelu": the TorchScript class name Python shows for the module.
std::string class_name_of(const torch::nn::Module& module) {
  std::string name = module.name();
  const auto colon = name.rfind(':');
  if (colon != std::string::npos) name = name.substr(colon + 1);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) name.resize(name.size() - 4);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name.empty() ? "Module" : name;
}

}  // namespace

torch::jit::Module mirror_module(torch::nn::Module& model, const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  torch::jit::Module mirror(c10::QualifiedName("__torch__.maas." + class_name_of(model)), cu, /*shouldMangle=*/true);
  mirror.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& p : model.named_parameters(/*recurse=*/false))
    mirror.register_parameter(p.key(), p.value(), /*is_buffer=*/false);
  for (const auto& b : model.named_buffers(/*recurse=*/false)) mirror.register_buffer(b.key(), b.value());
  for (const auto& child : model.named_children()) mirror.register_module(child.key(), mirror_module(*child.value(), cu));
  return mirror;
}

void add_traced_method(torch::jit::Module& mirror, const std::string& method_name,
                       const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                       const torch::Tensor& example) {
  auto traced = [&](torch::jit::Stack inputs) -> torch::jit::Stack { return {forward(inputs.at(0).toTensor())}; };
  auto no_names = [](const torch::autograd::Variable&) { return std::string(); };
  std::shared_ptr<torch::jit::tracer::TracingState> state;
  try {
    state = torch::jit::tracer::trace({example}, traced, no_names, /*strict=*/true, /*force_outplace=*/false, &mirror,
                                      {"x"})
                .first;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("tracing the model's forward failed: ") + e.what());
  }
  auto function = mirror._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*mirror.type()->name(), method_name), state->graph);
  mirror.type()->addMethod(function);
}

std::unordered_map<const torch::jit::Value*, c10::IValue> attribute_values(const torch::jit::Graph& graph,
                                                                          const torch::jit::Module& self) {
  std::unordered_map<const torch::jit::Value*, c10::IValue> values{{graph.inputs().at(0), self._ivalue()}};
  for (const torch::jit::Node* node : graph.nodes()) {
    if (node->kind() != c10::prim::GetAttr) continue;
    const auto owner = values.find(node->input(0));
    if (owner == values.end() || !owner->second.isObject()) continue;
    values.emplace(node->output(), owner->second.toObjectRef().getAttr(node->s(c10::attr::name)));
  }
  return values;
}

}  // namespace maas
