// Repository scanning, path confinement and atomic swaps.
#include "repository.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <regex>

#include "files.h"

namespace maas {
namespace fs = std::filesystem;
namespace {

// Whether `path` (absolute, symlink-free) is `root` or below it, compared by whole components.
bool inside(const fs::path& root, const fs::path& path) {
  auto r = root.begin(), p = path.begin();
  for (; r != root.end(); ++r, ++p)
    if (p == path.end() || *p != *r) return false;
  return true;
}

// The bytes of `file`, which must resolve to a regular file inside `root` (canonical). The path
// is resolved first (a clear error for a symlink leading out), then the opened descriptor's own
// path is checked (/proc/self/fd), so replacing a folder by a symlink after the first check
// still cannot make this read outside `root`.
std::string read_inside(const fs::path& root, const fs::path& file, uint64_t max_bytes) {
  std::error_code ec;
  const fs::path resolved = fs::canonical(file, ec);
  if (ec) throw ArtifactError(file.string() + ": cannot resolve (" + ec.message() + ")");
  if (!inside(root, resolved))
    throw ArtifactError(file.string() + ": refused: resolves to " + resolved.string() +
                        ", outside the model repository " + root.string() + " (a symlink leading out?)");
  try {
    // Never blocks: a FIFO named model.pt is refused before any open() could wait for a writer.
    RegularFile opened_file(resolved.string(), /*follow_symlinks=*/false);
    char opened[4096];
    const ssize_t n =
        ::readlink(("/proc/self/fd/" + std::to_string(opened_file.fd())).c_str(), opened, sizeof opened - 1);
    if (n <= 0 || !inside(root, fs::path(std::string(opened, static_cast<size_t>(n)))))
      throw ArtifactError(file.string() + ": refused: the opened file is outside the model repository " +
                          root.string());
    if (opened_file.size() > max_bytes)
      throw ArtifactError(file.string() + ": refused: " + std::to_string(opened_file.size()) +
                          " bytes, more than the limit of " + std::to_string(max_bytes));
    return opened_file.read(opened_file.size());  // at most the size checked, even if the file grows
  } catch (const FileError& e) {
    throw ArtifactError(e.what());  // names the resolved path and the problem
  }
}

}  // namespace

ModelRepository::ModelRepository(std::string dir, BatchingOptions batching, TorchScriptLoadOptions loading)
    : dir_(std::move(dir)), batching_(batching), loading_(loading) {}

bool ModelRepository::valid_name(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9_.-]+");
  return name != "." && name != ".." && std::regex_match(name, pattern);
}

std::shared_ptr<ModelRunner> ModelRepository::make_runner(const std::string& name, int64_t version, std::string bytes,
                                                          const std::string& origin) const {
  // The warm-up in ModelRunner's constructor runs the model, so it is under the deadline too.
  // The worker owns copies of all it uses: it may outlive this call.
  try {
    return run_with_deadline<std::shared_ptr<ModelRunner>>(
        [name, version, bytes = std::move(bytes), origin, batching = batching_, loading = loading_] {
          return std::make_shared<ModelRunner>(name, version, load_artifact_from_bytes(bytes, origin, loading),
                                               batching);
        },
        loading_.deadline, origin + ": loading and warm-up");
  } catch (const DeadlineExceeded& e) {
    throw ArtifactError(e.what());
  }
}

ModelRepository::Versions ModelRepository::load_versions(const std::string& name) const {
  if (!valid_name(name)) throw std::invalid_argument("invalid model name '" + name + "' (allowed: [A-Za-z0-9_.-]+)");
  if (dir_.empty()) throw NotFound("no model repository configured (start maas-serve with --models DIR)");
  const fs::path model_dir = fs::path(dir_) / name;
  if (!fs::is_directory(model_dir)) throw NotFound("model '" + name + "' is not in the repository " + dir_);
  std::error_code ec;
  const fs::path root = fs::canonical(dir_, ec);
  if (ec) throw std::runtime_error("model repository '" + dir_ + "': cannot resolve (" + ec.message() + ")");
  const fs::path resolved_model_dir = fs::canonical(model_dir, ec);
  if (ec || !inside(root, resolved_model_dir))
    throw ArtifactError(model_dir.string() + ": refused: resolves outside the model repository " + root.string() +
                        " (a symlink leading out?)");
  Versions versions;
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    const std::string v = entry.path().filename().string();
    if (!entry.is_directory() || v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit) ||
        std::stoll(v) < 1)
      continue;  // versions are positive integers; anything else is ignored
    const auto file = entry.path() / "model.pt";
    if (!fs::exists(file)) continue;
    versions[std::stoll(v)] = make_runner(name, std::stoll(v), read_inside(root, file, loading_.max_file_bytes), file.string());
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
  std::string bytes;
  try {
    bytes = read_torchscript_file(path, loading_);  // follows symlinks: the user named this file
  } catch (const TorchScriptLoadError& e) {
    throw ArtifactError(e.what());
  }
  auto runner = make_runner(name, 1, std::move(bytes), path);
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
