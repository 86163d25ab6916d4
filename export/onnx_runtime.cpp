// ONNX Runtime through a Node.js subprocess: files in a private temp folder, a bounded wait.
#include "onnx_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "cli.h"
#include "files.h"

extern char** environ;

namespace maas {
namespace {

namespace fs = std::filesystem;

// A private folder (mode 0700) under the system temp dir, removed with its files on destruction.
class PrivateTempDir {
 public:
  PrivateTempDir() {
    std::string pattern = (fs::temp_directory_path() / "maas-onnxrt-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary folder for ONNX Runtime");
    path_ = pattern;
  }
  ~PrivateTempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  PrivateTempDir(const PrivateTempDir&) = delete;
  PrivateTempDir& operator=(const PrivateTempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// `program` as given when it has a '/', else the first executable of that name on PATH; "" if none.
std::string find_executable(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    const std::string candidate = (end > begin ? dirs.substr(begin, end - begin) : ".") + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return "";
}

// The runtime's error message: the last line of its stderr.
std::string runtime_message(const std::string& stderr_text) {
  const std::string line = last_line(stderr_text, 400);
  return line.empty() ? "(no message)" : line;
}

// Runs `argv` with stdout and stderr into files; returns the exit status. Kills it after `timeout_seconds`.
int run_process(const std::vector<std::string>& argv, const std::string& out, const std::string& err,
                int timeout_seconds) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(spawned));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  // Polling: waitpid has no timeout, and a runtime that hangs must not hang the export.
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw std::runtime_error("ONNX Runtime did not finish within " + std::to_string(timeout_seconds) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

std::string default_onnx_runtime_dir() { return MAAS_ONNXRT_DIR; }

std::string onnx_runtime_unavailable(const OnnxRuntimeOptions& options) {
  if (find_executable(options.node).empty())
    return "Node.js ('" + options.node + "') is not installed; ONNX Runtime comes from npm's onnxruntime-node";
  if (!fs::exists(options.package_dir + "/run.mjs"))
    return options.package_dir + "/run.mjs is missing (the maas source tree's export/onnxrt)";
  if (!fs::exists(options.package_dir + "/node_modules/onnxruntime-node/package.json"))
    return "onnxruntime-node is not installed in " + options.package_dir +
           " (run: npm ci --ignore-scripts --prefix " + options.package_dir + ")";
  return "";
}

OnnxRuntimeResult run_onnx_runtime(const std::string& model_bytes, const torch::Tensor& images,
                                   const std::vector<int64_t>& batches, const OnnxRuntimeOptions& options) {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("run_onnx_runtime: images must be uint8 [M, C, H, W]");
  int64_t total = 0;
  for (const int64_t b : batches) total += b;
  if (batches.empty() || total != images.size(0))
    throw std::invalid_argument("run_onnx_runtime: the batches must add up to the images");
  const std::string node = find_executable(options.node);
  if (node.empty()) throw std::runtime_error(onnx_runtime_unavailable(options));

  PrivateTempDir dir;
  write_text_atomically(dir.file("model.onnx"), model_bytes);
  const auto pixels = images.contiguous();
  write_text_atomically(dir.file("images.u8"),
                        std::string(static_cast<const char*>(pixels.data_ptr()), static_cast<size_t>(pixels.nbytes())));
  std::vector<std::string> argv{node, options.package_dir + "/run.mjs", dir.file("model.onnx"), dir.file("images.u8"),
                                dir.file("logits.f32"), std::to_string(images.size(1)), std::to_string(images.size(2)),
                                std::to_string(images.size(3))};
  for (const int64_t b : batches) argv.push_back(std::to_string(b));
  const int status = run_process(argv, dir.file("stdout"), dir.file("stderr"), options.timeout_seconds);
  if (status != 0)
    throw std::runtime_error("ONNX Runtime failed (exit " + std::to_string(status) +
                             "): " + runtime_message(read_text(dir.file("stderr"))));

  OnnxRuntimeResult result;
  int64_t classes = 0;
  try {
    const auto report = nlohmann::json::parse(read_text(dir.file("stdout")));
    result.version = report.at("onnxruntime").get<std::string>();
    classes = report.at("classes").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("ONNX Runtime's report is not the expected JSON: ") + e.what());
  }
  const std::string logits = read_text(dir.file("logits.f32"));
  if (classes < 1 || static_cast<int64_t>(logits.size()) != total * classes * 4)
    throw std::runtime_error("ONNX Runtime returned " + std::to_string(logits.size()) + " bytes of logits for " +
                             std::to_string(total) + " images of " + std::to_string(classes) + " classes");
  result.logits = torch::empty({total, classes}, torch::kFloat32);
  std::memcpy(result.logits.data_ptr(), logits.data(), logits.size());
  return result;
}

}  // namespace maas
