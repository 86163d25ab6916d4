// Tracing a classifier into the artifact's module, and the int8 weight rewrite of the traced graph.
#include "torchscript_builder.h"

#include <torch/csrc/jit/ir/ir.h>


#include "artifact.h"
#include "tracing.h"

namespace maas {
namespace {

// The batch size the forward is traced at: unusual, so that a forward that bakes its batch size
// into the graph fails the export verification (other batch sizes) instead of passing by luck.
constexpr int64_t kTraceBatch = 3;

// Per-output-channel symmetric quantization: weight ~= weight_int8 * weight_scale.
std::pair<torch::Tensor, torch::Tensor> quantize_int8(const torch::Tensor& weight) {
  std::vector<int64_t> scale_shape(weight.dim(), 1);
  scale_shape[0] = weight.size(0);
  auto scale = weight.abs().flatten(1).amax(1).clamp_min(1e-12).div(127.0).view(scale_shape);
  auto q = weight.div(scale).round().clamp(-127, 127).to(torch::kInt8);
  return {q, scale.to(torch::kFloat32)};
}

// Gives every parameter and buffer of the tree its own copy, so the module no longer shares
// tensors with the C++ model it was traced from.
void copy_tensors(torch::jit::Module& module) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    module.register_parameter(p.name, p.value.detach().clone(), /*is_buffer=*/false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) module.register_buffer(b.name, b.value.clone());
  for (auto child : module.children()) copy_tensors(child);
}

// Replaces each read of a conv/linear `weight` (a parameter of 2+ dimensions) in `method` by
// weight_int8 * weight_scale, stores those two buffers and drops the float weight.
void store_weights_as_int8(torch::jit::Module& top, const std::string& method) {
  auto graph = top.get_method(method).graph();
  const auto attributes = attribute_values(*graph, top);
  std::vector<torch::jit::Module> converted;
  for (auto it = graph->nodes().begin(); it != graph->nodes().end();) {
    torch::jit::Node* node = *it++;
    if (node->kind() != c10::prim::GetAttr) continue;
    const auto owner = attributes.find(node->input(0)), value = attributes.find(node->output());
    if (owner == attributes.end() || value == attributes.end() || !owner->second.isModule()) continue;
    torch::jit::Module module(owner->second.toObject());
    const std::string name = node->s(c10::attr::name);
    if (name != "weight" || !value->second.isTensor() || value->second.toTensor().dim() < 2) continue;
    if (!module.hasattr("weight_int8")) {
      auto [q, scale] = quantize_int8(value->second.toTensor().detach());
      module.register_buffer("weight_int8", q);
      module.register_buffer("weight_scale", scale);
      converted.push_back(module);
    }
    torch::jit::WithInsertPoint here(node);
    auto* q = graph->insertGetAttr(node->input(0), "weight_int8");
    auto* scale = graph->insertGetAttr(node->input(0), "weight_scale");
    // int8 * float32 promotes to float32: exactly q.float() * scale
    node->output()->replaceAllUsesWith(graph->insert(c10::aten::mul, {q, scale}));
    node->destroy();
  }
  for (auto& module : converted) {
    module._ivalue()->unsafeRemoveAttr("weight");
    module.type()->unsafeRemoveAttribute("weight");
  }
}

}  // namespace

torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     WeightFormat format, TtaMode tta) {
  if (static_cast<int64_t>(classes.size()) != spec.classes)
    throw ArtifactError("model has " + std::to_string(spec.classes) + " outputs but " +
                        std::to_string(classes.size()) + " class names");
  torch::NoGradGuard no_grad;
  auto top = mirror_module(model, std::make_shared<torch::jit::CompilationUnit>());
  const bool was_training = model.is_training();
  model.eval();
  try {
    auto classify = [&](const torch::Tensor& x) { return model.forward(x); };
    add_traced_method(top, "classify", [&](const torch::Tensor& x) { return tta_logits(classify, x, tta); },
                      torch::randn({kTraceBatch, spec.channels, spec.height, spec.width}));
  } catch (const std::exception& e) {
    model.train(was_training);
    throw ArtifactError("model '" + model_name + "': " + e.what());
  }
  model.train(was_training);
  copy_tensors(top);
  if (format == WeightFormat::kInt8) store_weights_as_int8(top, "classify");

  top.register_buffer("pixel_scale", normalization.scale());
  top.register_buffer("pixel_shift", normalization.shift());
  c10::List<std::string> names;
  for (const auto& c : classes) names.push_back(c);
  top.register_attribute("classes", c10::ListType::ofStrings(), names);
  const std::string c = std::to_string(spec.channels), h = std::to_string(spec.height),
                    w = std::to_string(spec.width);
  top.define(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    assert images.dim() == 4 and images.size(1) == " + c + " and images.size(2) == " + h +
      " and images.size(3) == " + w + ", 'expected images of shape [N, " + c + ", " + h + ", " + w + "]'\n"
      "    x = torch.addcmul(self.pixel_shift, images.float(), self.pixel_scale)\n"
      "    return self.classify(x)\n");
  top.eval();
  return top;
}

}  // namespace maas
