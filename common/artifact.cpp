// Saving, loading and checking TorchScript artifacts.
#include "artifact.h"

#include <nlohmann/json.hpp>

#include <ATen/Context.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "files.h"
#include "torchscript_loader.h"

namespace maas {
namespace {

ArtifactInfo parse_info(const std::string& json_text, const std::string& origin) {
  ArtifactInfo info;
  info.metadata_json = json_text;
  try {
    const auto j = nlohmann::json::parse(json_text);
    const int version = j.at("format_version").get<int>();
    if (version != kArtifactFormatVersion && version != 1)
      throw ArtifactError(origin + ": artifact format " + std::to_string(version) + ", this build reads 1 to " +
                          std::to_string(kArtifactFormatVersion) + " (a newer maas wrote it?)");
    info.model_name = j.at("model").at("name").get<std::string>();
    const auto shape = j.at("input").at("shape").get<std::vector<int64_t>>();
    if (shape.size() != 4) throw ArtifactError(origin + ": metadata input.shape must be [-1, C, H, W]");
    info.channels = shape[1];
    info.height = shape[2];
    info.width = shape[3];
    info.classes = j.at("classes").get<std::vector<std::string>>();
    info.tta = j.value("tta", std::string("none"));  // optional: older artifacts have no "tta"
    if (j.contains("quantization")) {
      info.quantization_engine = j.at("quantization").at("engine").get<std::string>();
      if (info.quantization_engine != kInt8Engine)
        throw ArtifactError(origin + ": int8 artifact for the quantized engine '" + info.quantization_engine +
                            "', but maas runs int8 on '" + kInt8Engine + "' only; export it again");
    }
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
  use_int8_engine();  // before loading: int8 weights are packed for the engine current now
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

void use_int8_engine() {
  static std::once_flag selected;
  std::call_once(selected, [] {
    auto& context = at::globalContext();
    const auto& engines = context.supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end())
      throw ArtifactError(std::string("this LibTorch build has no '") + kInt8Engine +
                          "' quantized engine, which int8 artifacts need");
    context.setQEngine(at::QEngine::ONEDNN);
  });
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
  if (const std::string kind = special_file_kind(path); !kind.empty())
    throw ArtifactError(path + ": not a regular file (" + kind + ")");
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
