// Test helpers.
#include "test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "artifact.h"
#include "torchscript_builder.h"
#include "models.h"

namespace maas::testing {

const std::vector<std::string> kCifar10Classes = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                  "dog",      "frog",       "horse", "ship", "truck"};
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "maas-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string random_cnn_artifact(uint64_t seed, const std::vector<std::string>& classes,
                                const std::string& metadata_patch) {
  torch::manual_seed(seed);
  const ModelSpec spec{3, 32, 32, static_cast<int64_t>(classes.size())};
  auto model = make_model("cnn", spec);
  model->eval();
  auto module = build_torchscript(*model, "cnn", spec, {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}}, classes);
  nlohmann::json metadata = nlohmann::json::parse(minimal_metadata(classes));
  if (!metadata_patch.empty()) metadata.merge_patch(nlohmann::json::parse(metadata_patch));
  return artifact_bytes(module, metadata.dump());
}

std::string minimal_metadata(const std::vector<std::string>& classes, const std::string& model) {
  return nlohmann::json{{"format_version", kArtifactFormatVersion},
                        {"model", {{"name", model}}},
                        {"input", {{"shape", {-1, 3, 32, 32}}}},
                        {"classes", classes}}
      .dump();
}

std::string error_within_deadline(const std::string& fifo, const std::function<void()>& fn) {
  std::packaged_task<std::string()> task([&fn] { return error_of(fn); });
  std::future<std::string> result = task.get_future();
  std::thread worker(std::move(task));
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "still blocked after 30 s (on the FIFO " << fifo << "?)";
    while (result.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) unblock_fifo_readers(fifo);
  }
  worker.join();
  return result.get();
}

void unblock_fifo_readers(const std::string& fifo) {
  for (int i = 0; i < 1000; ++i) {
    // Succeeds only while a reader has the FIFO open (or waits in open()); ENXIO: none left.
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a cleanup path, not synchronization
  }
}

void make_fifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0600) != 0)
    throw std::runtime_error("mkfifo " + path + ": " + std::strerror(errno));
}

int run_command(const std::string& command, const std::string& log) {
  const int status = std::system((command + " > " + log + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string missing_browser_tools() {
  if (!std::filesystem::exists("/usr/bin/chromium")) return "chromium not installed (apt-get install chromium)";
  if (std::system("command -v node >/dev/null 2>&1") != 0) return "node not installed";
  if (!std::filesystem::exists(std::string(MAAS_SOURCE_DIR) + "/tests/web/node_modules/playwright-core"))
    return "playwright-core missing: npm ci --prefix tests/web";
  return "";
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  return bound ? ntohs(address.sin_port) : 0;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

namespace {

std::string tiny_cifar_records(int64_t count, std::mt19937_64& rng) {
  std::string bytes;
  std::uniform_int_distribution<int> noise(-40, 40);
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(i % 10);
    bytes.push_back(static_cast<char>(label));
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 32; ++y) {
        for (int x = 0; x < 32; ++x) {
          const int base = ((label >> c) & 1) ? 180 : 60;
          const int stripe = ((label >= 8 ? x : y) / (1 + label % 4)) % 2 ? 30 : -30;
          bytes.push_back(static_cast<char>(std::clamp(base + stripe + noise(rng), 0, 255)));
        }
      }
    }
  }
  return bytes;
}

}  // namespace

RunConfig tiny_run_config(const std::string& data_dir, int64_t epochs) {
  RunConfig c;
  c.data.root = data_dir;
  c.train.epochs = epochs;
  c.train.batch_size = 16;
  c.train.threads = 1;
  return c;
}

void write_tiny_cifar(const std::string& dir, int64_t per_file, int64_t test, uint64_t seed) {
  fs::create_directories(dir);
  std::mt19937_64 rng(seed);
  for (int i = 1; i <= 5; ++i)
    write_bytes(dir + "/data_batch_" + std::to_string(i) + ".bin", tiny_cifar_records(per_file, rng));
  write_bytes(dir + "/test_batch.bin", tiny_cifar_records(test, rng));
}

std::string shared_cifar_dir() {
  std::string dir = std::getenv("MAAS_CIFAR10_DIR") ? std::getenv("MAAS_CIFAR10_DIR")
                                                    : std::string(MAAS_SOURCE_DIR) + "/data/cifar-10-batches-bin";
  return fs::exists(dir + "/data_batch_1.bin") ? dir : "";
}

}  // namespace maas::testing
