// Repository scanning and atomic swaps.
#include "repository.h"

#include <filesystem>
#include <regex>

namespace maas {
namespace fs = std::filesystem;

ModelRepository::ModelRepository(std::string dir, BatchingOptions batching)
    : dir_(std::move(dir)), batching_(batching) {}

bool ModelRepository::valid_name(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9_.-]+");
  return name != "." && name != ".." && std::regex_match(name, pattern);
}

ModelRepository::Versions ModelRepository::load_versions(const std::string& name) const {
  if (!valid_name(name)) throw std::invalid_argument("invalid model name '" + name + "' (allowed: [A-Za-z0-9_.-]+)");
  if (dir_.empty()) throw NotFound("no model repository configured (start maas-serve with --models DIR)");
  const fs::path model_dir = fs::path(dir_) / name;
  if (!fs::is_directory(model_dir)) throw NotFound("model '" + name + "' is not in the repository " + dir_);
  Versions versions;
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    const std::string v = entry.path().filename().string();
    if (!entry.is_directory() || v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit) ||
        std::stoll(v) < 1)
      continue;  // versions are positive integers; anything else is ignored
    const auto file = entry.path() / "model.pt";
    if (!fs::exists(file)) continue;
    versions[std::stoll(v)] = std::make_shared<ModelRunner>(name, std::stoll(v), load_artifact(file.string()), batching_);
  }
  if (versions.empty()) throw NotFound("model '" + name + "' has no version folder with a model.pt in " + dir_);
  return versions;
}

void ModelRepository::load_all() {
  if (dir_.empty()) return;
  if (!fs::is_directory(dir_)) throw std::runtime_error("model repository '" + dir_ + "' is not a directory");
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    if (!valid_name(name)) continue;
    auto versions = load_versions(name);
    std::lock_guard<std::mutex> lock(mutex_);
    models_[name] = std::move(versions);
  }
}

void ModelRepository::add_file(const std::string& name, const std::string& path) {
  if (!valid_name(name)) throw std::invalid_argument("invalid model name '" + name + "' (allowed: [A-Za-z0-9_.-]+)");
  auto runner = std::make_shared<ModelRunner>(name, 1, load_artifact(path), batching_);
  std::lock_guard<std::mutex> lock(mutex_);
  models_[name] = {{1, runner}};
}

std::shared_ptr<ModelRunner> ModelRepository::get(const std::string& name, int64_t version) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) throw NotFound("unknown model '" + name + "'");
  if (version == 0) return it->second.rbegin()->second;
  auto v = it->second.find(version);
  if (v == it->second.end())
    throw NotFound("model '" + name + "' has no version " + std::to_string(version));
  return v->second;
}

std::vector<ModelStatus> ModelRepository::index() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<ModelStatus> out;
  for (const auto& [name, versions] : models_)
    for (const auto& [version, runner] : versions) out.push_back({name, version});
  return out;
}

void ModelRepository::load(const std::string& name) {
  auto versions = load_versions(name);  // slow part outside the lock; throws before any swap
  Versions old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::move(models_[name]);
    models_[name] = std::move(versions);
  }
  // `old` runners drain and stop here unless requests still hold them.
}

void ModelRepository::unload(const std::string& name) {
  Versions old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) throw NotFound("unknown model '" + name + "'");
    old = std::move(it->second);
    models_.erase(it);
  }
}

void ModelRepository::stop_accepting() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [name, versions] : models_)
    for (auto& [version, runner] : versions) runner->stop_accepting();
}

}  // namespace maas
