// Shared test helpers: temporary folders and small generated data sets.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "config.h"

namespace maas::testing {

// CIFAR-10's class names in label order.
extern const std::vector<std::string> kCifar10Classes;

// The message of the exception `fn` throws, or "" when it throws none.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Runs `fn` on its own thread and returns the message of what it throws ("" when nothing). When
// `fn` has not returned within 30 s, fails the test, then unblocks readers of `fifo` until it
// returns: a read that blocks on a FIFO (what these tests guard against) cannot hang the suite.
std::string error_within_deadline(const std::string& fifo, const std::function<void()>& fn);

// Opens and closes the write end of `fifo` while readers wait on it, so a blocked open() returns
// and its read() sees the end of the file. Returns once no reader is left (at most ~10 s).
void unblock_fifo_readers(const std::string& fifo);

// Creates a FIFO at `path` (mkfifo); throws std::runtime_error when it cannot.
void make_fifo(const std::string& path);

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes a learnable CIFAR-10-layout data set into `dir`: each class has its own colour and
// stripe pattern plus noise. `per_file` records in each of the five train files, `test` in the test file.
void write_tiny_cifar(const std::string& dir, int64_t per_file, int64_t test, uint64_t seed = 1);

// A seconds-long run of the seed CNN on the data in `data_dir` (write_tiny_cifar): `epochs` epochs,
// batches of 16, one thread; everything else at its default.
RunConfig tiny_run_config(const std::string& data_dir, int64_t epochs = 1);

// The least metadata.json an artifact may have (format, model name, 3x32x32 input, classes).
std::string minimal_metadata(const std::vector<std::string>& classes, const std::string& model = "cnn");

// A maas artifact (file bytes) of a randomly initialized seed CNN for 3x32x32 images and
// `classes`: same seed, same weights. Its metadata.json holds only the required keys, with
// `metadata_patch` (a JSON object, RFC 7386 merge patch) applied when given.
std::string random_cnn_artifact(uint64_t seed, const std::vector<std::string>& classes,
                                const std::string& metadata_patch = "");

// Runs a shell command; returns its exit status (-1 if it did not exit) and leaves its
// stdout+stderr in the file `log`.
int run_command(const std::string& command, const std::string& log);

// Why the headless-Chromium tests (tests/web, driven by playwright-core) cannot run here, or ""
// when /usr/bin/chromium, node and tests/web/node_modules/playwright-core are all present.
std::string missing_browser_tools();

// A loopback TCP port that was free a moment ago (another process may take it before it is
// used: tests that bind it report that plainly), or 0 when none could be found.
int free_loopback_port();

// Writes raw bytes to a file.
void write_bytes(const std::string& path, const std::string& bytes);

// The shared CIFAR-10 folder if the tests can use it ($MAAS_CIFAR10_DIR, else
// data/cifar-10-batches-bin in the source tree), or "" when absent.
std::string shared_cifar_dir();

}  // namespace maas::testing
