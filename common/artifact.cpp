// Building, saving and loading TorchScript artifacts.
#include "artifact.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "files.h"
#include "torchscript_loader.h"

namespace maas {
namespace {

// A jit module of its own class, with the `training` attribute eval() and freeze() expect.
torch::jit::Module new_module(const std::string& class_name, const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  torch::jit::Module m(c10::QualifiedName("__torch__.maas." + class_name), cu, /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), false);
  return m;
}

// Per-output-channel symmetric quantization: weight ~= weight_int8 * weight_scale.
std::pair<torch::Tensor, torch::Tensor> quantize_int8(const torch::Tensor& weight) {
  std::vector<int64_t> scale_shape(weight.dim(), 1);
  scale_shape[0] = weight.size(0);
  auto scale = weight.abs().flatten(1).amax(1).clamp_min(1e-12).div(127.0).view(scale_shape);
  auto q = weight.div(scale).round().clamp(-127, 127).to(torch::kInt8);
  return {q, scale.to(torch::kFloat32)};
}

torch::jit::Module layer_module(const std::string& name, torch::nn::Module& layer, WeightFormat format,
                                const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  auto m = new_module("layer_" + name, cu);
  auto params = layer.named_parameters(/*recurse=*/false);
  if (!params.contains("weight") || !params.contains("bias"))
    throw ArtifactError("layer '" + name + "' has no weight and bias; build_torchscript cannot convert it");
  auto weight = params["weight"].detach().contiguous().clone();
  m.register_parameter("bias", params["bias"].detach().clone(), /*is_buffer=*/false);
  if (format == WeightFormat::kInt8) {
    auto [q, scale] = quantize_int8(weight);
    m.register_buffer("weight_int8", q);
    m.register_buffer("weight_scale", scale);
    m.define("def w(self) -> Tensor:\n    return self.weight_int8.float() * self.weight_scale\n");
  } else {
    m.register_parameter("weight", weight, /*is_buffer=*/false);
    m.define("def w(self) -> Tensor:\n    return self.weight\n");
  }
  return m;
}

ArtifactInfo parse_info(const std::string& json_text, const std::string& origin) {
  ArtifactInfo info;
  info.metadata_json = json_text;
  try {
    const auto j = nlohmann::json::parse(json_text);
    const int version = j.at("format_version").get<int>();
    if (version != kArtifactFormatVersion)
      throw ArtifactError(origin + ": artifact format " + std::to_string(version) + ", this build reads " +
                          std::to_string(kArtifactFormatVersion));
    info.model_name = j.at("model").at("name").get<std::string>();
    const auto shape = j.at("input").at("shape").get<std::vector<int64_t>>();
    if (shape.size() != 4) throw ArtifactError(origin + ": metadata input.shape must be [-1, C, H, W]");
    info.channels = shape[1];
    info.height = shape[2];
    info.width = shape[3];
    info.classes = j.at("classes").get<std::vector<std::string>>();
    if (info.classes.empty() || info.channels < 1 || info.height < 1 || info.width < 1)
      throw ArtifactError(origin + ": metadata has no classes or a bad input shape");
  } catch (const nlohmann::json::exception& e) {
    throw ArtifactError(origin + ": invalid metadata.json (" + std::string(e.what()) + ")");
  }
  return info;
}

// Every artifact read goes through load_torchscript (vetted records, deadline, operator allowlist).
Artifact load_from_bytes(const std::string& bytes, const std::string& origin, const TorchScriptLoadOptions& options) {
  torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
  Artifact artifact;
  try {
    artifact.module = load_torchscript(bytes, origin, extra, options);
  } catch (const TorchScriptLoadError& e) {
    throw ArtifactError(e.what());
  }
  if (extra[kMetadataFile].empty())
    throw ArtifactError(origin + ": no metadata.json inside; export it with maas-export");
  artifact.info = parse_info(extra[kMetadataFile], origin);
  artifact.module.eval();
  return artifact;
}

}  // namespace

torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     WeightFormat format) {
  if (static_cast<int64_t>(classes.size()) != spec.classes)
    throw ArtifactError("model has " + std::to_string(spec.classes) + " outputs but " +
                        std::to_string(classes.size()) + " class names");
  torch::NoGradGuard no_grad;
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  auto top = new_module(model_name, cu);
  for (const auto& child : model.named_children())
    top.register_module(child.key(), layer_module(child.key(), *child.value(), format, cu));
  top.register_buffer("pixel_scale", normalization.scale());
  top.register_buffer("pixel_shift", normalization.shift());
  c10::List<std::string> names;
  for (const auto& c : classes) names.push_back(c);
  top.register_attribute("classes", c10::ListType::ofStrings(), names);

  const std::string c = std::to_string(spec.channels), h = std::to_string(spec.height),
                    w = std::to_string(spec.width);
  top.define(model.torchscript_classify());
  top.define(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    assert images.dim() == 4 and images.size(1) == " + c + " and images.size(2) == " + h +
      " and images.size(3) == " + w + ", 'expected images of shape [N, " + c + ", " + h + ", " + w + "]'\n"
      "    x = torch.addcmul(self.pixel_shift, images.float(), self.pixel_scale)\n"
      "    return self.classify(x)\n");
  top.eval();
  return top;
}

std::string artifact_bytes(const torch::jit::Module& module, const std::string& metadata_json) {
  std::ostringstream bytes;
  module.save(bytes, {{kMetadataFile, metadata_json}});
  return bytes.str();
}

void save_artifact(const torch::jit::Module& module, const std::string& metadata_json, const std::string& path) {
  write_text_atomically(path, artifact_bytes(module, metadata_json));
}

Artifact load_artifact(const std::string& path, const TorchScriptLoadOptions& options) {
  if (!std::filesystem::is_regular_file(path)) throw ArtifactError(path + ": artifact file not found");
  std::string bytes;
  try {
    bytes = read_torchscript_file(path, options);
  } catch (const TorchScriptLoadError& e) {
    throw ArtifactError(e.what());
  }
  return load_from_bytes(bytes, path, options);
}

Artifact load_artifact_from_bytes(const std::string& bytes, const std::string& origin,
                                  const TorchScriptLoadOptions& options) {
  return load_from_bytes(bytes, origin, options);
}

}  // namespace maas
