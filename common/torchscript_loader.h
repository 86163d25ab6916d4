// The one way maas reads TorchScript archives (artifacts and checkpoints): vetted before and after loading.
//
// A TorchScript file is code: torch::jit::load runs a class's __setstate__ while unpickling, and
// a model's methods may call any registered operator (torch.from_file reads or creates files).
// So every archive maas opens goes through load_torchscript(), which:
//   1. before anything is parsed, checks the zip itself: bounded size, record count and
//      uncompressed size; only the record kinds torch.jit.save writes; no __setstate__ /
//      __getstate__ and no custom C++ classes (torch.classes) in the code/ sources and pickles,
//      except PyTorch's packed int8 weights (Conv2dPackedParamsBase, LinearPackedParamsBase),
//      which int8 artifacts hold and whose native __setstate__ only repacks tensors;
//   2. loads it on a worker thread under a deadline;
//   3. walks the graph of every function in the loaded compilation unit (all methods of all
//      modules and classes, nested blocks included) and refuses any node kind outside
//      kAllowedNodeKinds (files, printing, loops, calls to free functions, object creation, ...).
// Nothing of the archive has run when step 3 passes except unpickling of vetted data.
#pragma once

#include <torch/script.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace maas {

// Thrown when an archive cannot be read, is refused by the policy above, or does not load within
// the deadline. The message starts with the archive's origin (its path) and names the problem.
class TorchScriptLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The bytes are not a TorchScript archive at all (corrupt, truncated or another format).
class NotTorchScript : public TorchScriptLoadError {
 public:
  using TorchScriptLoadError::TorchScriptLoadError;
};

// A piece of work did not finish within its deadline (see run_with_deadline).
class DeadlineExceeded : public TorchScriptLoadError {
 public:
  using TorchScriptLoadError::TorchScriptLoadError;
};

struct TorchScriptLoadOptions {
  // Bounds on what is read (the seed CNN's artifact is 0.5 MB with ~40 records).
  uint64_t max_file_bytes = uint64_t{1} << 30;          // the archive as stored
  uint64_t max_uncompressed_bytes = uint64_t{1} << 31;  // sum of all records' uncompressed sizes
  uint64_t max_code_bytes = uint64_t{16} << 20;         // sum of code/ and *.pkl records (parsed text)
  uint64_t max_records = 20000;
  // Whether the archive may define methods at all: artifacts have forward() and helpers;
  // checkpoints (torch::serialize::OutputArchive) hold only data, so they get false.
  bool allow_methods = true;
  // jit::load plus the graph check must finish within this; 0 or less fails at once (for tests).
  std::chrono::milliseconds deadline{120000};
};

// The node kinds a loaded archive's graphs may contain (see torchscript_loader.cpp for the list
// and why). `kind` is a qualified symbol name such as "aten::conv2d".
bool is_allowed_node_kind(const std::string& kind);

// Checks the zip records of `bytes` without loading it (step 1 above). Throws
// TorchScriptLoadError "<origin>: ..." naming the offending record or problem.
void check_torchscript_archive(const std::string& bytes, const std::string& origin,
                               const TorchScriptLoadOptions& options = {});

// Checks every function of `module`'s compilation unit (step 3 above). Throws
// TorchScriptLoadError naming the disallowed node kinds and the function they are in.
void check_torchscript_graphs(const torch::jit::Module& module, const std::string& origin,
                              const TorchScriptLoadOptions& options = {});

// The cause in an error the TorchScript interpreter threw: its last line (e.g. "RuntimeError:
// Input type ... and weight type ... should be the same"), which follows the serialized code's
// traceback, at most 300 characters; for other messages their last line likewise.
std::string interpreter_error_cause(const std::string& what);

// The archive file's bytes: refuses a missing file, a non-regular file or one over
// options.max_file_bytes before reading it. Throws TorchScriptLoadError naming `path`.
std::string read_torchscript_file(const std::string& path, const TorchScriptLoadOptions& options = {});

// Loads vetted TorchScript from `bytes` (steps 1-3) on the CPU. `extra_files` works as in
// torch::jit::load: keys to read in, values filled. Throws TorchScriptLoadError naming `origin`.
// Thread-safe (no shared state).
torch::jit::Module load_torchscript(const std::string& bytes, const std::string& origin,
                                    torch::jit::ExtraFilesMap& extra_files, const TorchScriptLoadOptions& options = {});

// Runs work() on a new thread and waits up to `deadline` for it. Returns its result or rethrows
// its exception; throws DeadlineExceeded "<what> did not finish within N ms" when time is up.
// Then the thread is detached: C++ cannot stop a thread, so it runs on until work() returns
// (never, for a loop that does not end: it keeps a core busy until the process exits, but
// nothing waits for it, so shutdown does not hang). work() must therefore own everything it
// uses (capture by value or shared_ptr), since the caller may be gone when it finishes.
template <class T>
T run_with_deadline(std::function<T()> work, std::chrono::milliseconds deadline, const std::string& what) {
  if (deadline.count() <= 0) throw DeadlineExceeded(what + " did not finish within 0 ms (no time allowed)");
  auto task = std::make_shared<std::packaged_task<T()>>(std::move(work));
  std::future<T> result = task->get_future();
  std::thread worker([task] { (*task)(); });
  if (result.wait_for(deadline) != std::future_status::ready) {
    worker.detach();
    throw DeadlineExceeded(what + " did not finish within " + std::to_string(deadline.count()) + " ms");
  }
  worker.join();
  return result.get();
}

}  // namespace maas
