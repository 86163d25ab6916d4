// Tracing a classifier into the artifact's module.
#include "torchscript_builder.h"

#include "artifact.h"
#include "tracing.h"

namespace maas {
namespace {

// The batch size the forward is traced at: unusual, so that a forward that bakes its batch size
// into the graph fails the export verification (other batch sizes) instead of passing by luck.
constexpr int64_t kTraceBatch = 3;

// Gives every parameter and buffer of the tree its own copy, so the module no longer shares
// tensors with the C++ model it was traced from.
void copy_tensors(torch::jit::Module& module) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    module.register_parameter(p.name, p.value.detach().clone(), /*is_buffer=*/false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) module.register_buffer(b.name, b.value.clone());
  for (auto child : module.children()) copy_tensors(child);
}

}  // namespace

torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     TtaMode tta, torch::Dtype dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16)
    throw ArtifactError("artifacts are float32 or bfloat16, not " + std::string(c10::toString(dtype)));
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
  // Before the pixel buffers exist, so that normalization stays float32 (one rounding, at the cast).
  if (dtype == torch::kBFloat16) top.to(torch::kBFloat16);

  top.register_buffer("pixel_scale", normalization.scale());
  top.register_buffer("pixel_shift", normalization.shift());
  c10::List<std::string> names;
  for (const auto& c : classes) names.push_back(c);
  top.register_attribute("classes", c10::ListType::ofStrings(), names);
  // TorchScript defined from C++ cannot name torch.bfloat16: a dtype is its ScalarType number there.
  const std::string bfloat16 = std::to_string(static_cast<int>(torch::kBFloat16));
  const std::string c = std::to_string(spec.channels), h = std::to_string(spec.height),
                    w = std::to_string(spec.width);
  top.define(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    assert images.dim() == 4 and images.size(1) == " + c + " and images.size(2) == " + h +
      " and images.size(3) == " + w + ", 'expected images of shape [N, " + c + ", " + h + ", " + w + "]'\n"
      "    x = torch.addcmul(self.pixel_shift, images.float(), self.pixel_scale)\n" +
      (dtype == torch::kBFloat16 ? "    return self.classify(x.to(" + bfloat16 + ")).float()\n"
                                 : "    return self.classify(x)\n"));
  top.eval();
  return top;
}

}  // namespace maas
