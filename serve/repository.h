// The set of served models: name -> versions -> ModelRunner, with atomic reloads.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "model_runner.h"
#include "torchscript_loader.h"

namespace maas {

// No such model or version (404).
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelStatus {
  std::string name;
  int64_t version = 0;
};

// Thread-safe. Runners are shared_ptrs: a request keeps its runner alive across a swap.
//
// Every file is read through load_artifact_from_bytes (torchscript_loader.h: vetted records,
// operator allowlist), and loading plus warm-up of each version must finish within
// `loading.deadline`, else ArtifactError; the abandoned load runs on in a detached thread (see
// run_with_deadline), so neither start-up nor shutdown waits for it.
// Repository paths are resolved: a model folder, version folder or model.pt that is, or passes
// through, a symlink leading outside DIR is refused (a symlink within DIR is fine), and the file
// is checked again after opening, so swapping a path meanwhile does not help. An explicit
// --model NAME=FILE is the user's own choice of file: symlinks there are followed.
class ModelRepository {
 public:
  // `dir` may be "" (only add_file models). Nothing is loaded until load_all()/add_file().
  ModelRepository(std::string dir, BatchingOptions batching, TorchScriptLoadOptions loading = {});

  // Loads every DIR/<name>/<version>/model.pt. Throws ArtifactError/std::runtime_error naming the
  // file when one fails (start-up must not go on half-loaded).
  void load_all();
  // Serves `path` as version 1 of `name` (--model NAME=path). Throws ArtifactError naming the file.
  void add_file(const std::string& name, const std::string& path);

  // The runner for `name` at `version`, or its newest version when version == 0.
  std::shared_ptr<ModelRunner> get(const std::string& name, int64_t version = 0) const;
  std::vector<ModelStatus> index() const;

  // (Re)loads all versions of `name` from the repository and swaps them in at once; if any
  // fails, the old versions keep serving and the error is thrown. Names must match
  // [A-Za-z0-9_.-]+ and not be "." or ".." (std::invalid_argument), so nothing outside DIR opens.
  void load(const std::string& name);
  // Stops serving `name` (in-flight requests finish). Throws NotFound.
  void unload(const std::string& name);

  // Refuses new requests on every model (shutdown).
  void stop_accepting();

  static bool valid_name(const std::string& name);

 private:
  using Versions = std::map<int64_t, std::shared_ptr<ModelRunner>>;
  Versions load_versions(const std::string& name) const;

  // Loads `bytes` (read from `origin`) and builds its runner within loading_.deadline.
  std::shared_ptr<ModelRunner> make_runner(const std::string& name, int64_t version, std::string bytes,
                                           const std::string& origin) const;

  const std::string dir_;
  const BatchingOptions batching_;
  const TorchScriptLoadOptions loading_;
  mutable std::mutex mutex_;
  std::map<std::string, Versions> models_;
};

}  // namespace maas
