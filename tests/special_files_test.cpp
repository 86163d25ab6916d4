// Special files (FIFO, directory, device, socket) wherever maas reads a path: refused at once as
// "not a regular file", never waited on. Each test would block forever on the old code: the
// reads run under error_within_deadline, which fails and unblocks them after 30 s.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include "artifact.h"
#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "files.h"
#include "serve_options.h"
#include "test_util.h"
#include "torchscript_loader.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::error_within_deadline;
using testing::TempDir;

bool mentions(const std::string& message, const std::string& what) { return message.find(what) != std::string::npos; }

// A bound Unix socket at `path`; closed (the file stays) on destruction.
struct UnixSocket {
  explicit UnixSocket(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~UnixSocket() { ::close(fd); }
  int fd = -1;
  bool bound = false;
};

TEST(SpecialFiles, AConfigFileThatIsAFifoDirectoryDeviceOrSocketIsRefusedAtOnce) {
  TempDir dir;
  testing::make_fifo(dir.file("fifo.yaml"));
  std::filesystem::create_directories(dir.file("dir.yaml"));
  const UnixSocket socket(dir.file("socket.yaml"));
  ASSERT_TRUE(socket.bound);
  for (const std::string& path : {dir.file("fifo.yaml"), dir.file("dir.yaml"), std::string("/dev/zero"),
                                 dir.file("socket.yaml")}) {
    const std::string e = error_within_deadline(dir.file("fifo.yaml"), [&] { load_run_config(path, {}); });
    EXPECT_TRUE(mentions(e, path) && mentions(e, "not a regular file")) << path << ": " << e;
  }
  // maas-serve's --config goes through the same reader.
  const std::string e = error_within_deadline(dir.file("fifo.yaml"), [&] { load_serve_options(dir.file("fifo.yaml"), {}); });
  EXPECT_TRUE(mentions(e, "fifo.yaml: not a regular file (a FIFO)")) << e;
}

TEST(SpecialFiles, ADataFileThatIsAFifoIsRefusedAtOnce) {
  TempDir dir;
  testing::make_fifo(dir.file("data_batch_1.bin"));
  const std::string e =
      error_within_deadline(dir.file("data_batch_1.bin"), [&] { read_cifar10_file(dir.file("data_batch_1.bin")); });
  EXPECT_TRUE(mentions(e, "data_batch_1.bin: not a regular file (a FIFO)")) << e;
}

TEST(SpecialFiles, WeightFilesThatAreFifosAreRefusedAtOnce) {
  TempDir dir;
  const std::string fifo = dir.file("weights.pt");
  testing::make_fifo(fifo);
  // CheckpointReader reads model.init, prune.from, maas-export's checkpoint; load_artifact reads
  // model.init and distill.teacher; read_torchscript_file reads maas-serve --model files.
  for (const auto& read : std::vector<std::function<void()>>{
           [&] { CheckpointReader reader(fifo); }, [&] { load_artifact(fifo); },
           [&] { read_torchscript_file(fifo, TorchScriptLoadOptions{}); }}) {
    const std::string e = error_within_deadline(fifo, read);
    EXPECT_TRUE(mentions(e, "weights.pt: not a regular file (a FIFO)")) << e;
  }
}

TEST(SpecialFiles, MaasTrainRefusesFifosForItsConfigDataAndStartingWeights) {
  TempDir data, runs;
  testing::write_tiny_cifar(data.path(), 4, 10);
  testing::make_fifo(runs.file("weights.pt"));
  const std::string fifo = runs.file("weights.pt");
  for (const std::string key : {"model.init", "prune.from", "distill.teacher"}) {
    RunConfig config = testing::tiny_run_config(data.path());
    if (key == "model.init") config.model.init = fifo;
    if (key == "prune.from") config.prune.from = fifo;
    if (key == "distill.teacher") config.distill.teacher = fifo;
    const std::string e = error_within_deadline(fifo, [&] { train(config, runs.file("run-" + key), false, {}); });
    EXPECT_TRUE(mentions(e, key) && mentions(e, "not a regular file (a FIFO)")) << key << ": " << e;
  }
  // The command line: --config a FIFO exits with the file named (bounded by timeout(1)).
  const std::string log = runs.file("log");
  const int status = testing::run_command("timeout 60 " + std::string(MAAS_BINARY_DIR) + "/maas-train --config " +
                                              fifo + " --out " + runs.file("cli"), log);
  EXPECT_EQ(status, 2) << read_text(log);
  EXPECT_TRUE(mentions(read_text(log), "weights.pt: not a regular file (a FIFO)"))
      << read_text(log);
  // A data file as a FIFO, through the command line too.
  const std::filesystem::path fifo_data = runs.file("fifo-data");
  std::filesystem::copy(data.path(), fifo_data);
  std::filesystem::remove(fifo_data / "data_batch_3.bin");
  testing::make_fifo((fifo_data / "data_batch_3.bin").string());
  testing::write_bytes(runs.file("cfg.yaml"), to_yaml(testing::tiny_run_config(fifo_data.string())));
  const int data_status = testing::run_command("timeout 60 " + std::string(MAAS_BINARY_DIR) + "/maas-train --config " +
                                                   runs.file("cfg.yaml") + " --out " + runs.file("cli2"), log);
  EXPECT_EQ(data_status, 1) << read_text(log);
  EXPECT_TRUE(mentions(read_text(log), "data_batch_3.bin: not a regular file (a FIFO)"))
      << read_text(log);
}

TEST(SpecialFiles, MaasServeExitsNamingAFifoModelFileAtStartUp) {
  TempDir repo;
  std::filesystem::create_directories(repo.file("fifo/1"));
  testing::make_fifo(repo.file("fifo/1/model.pt"));
  const std::string log = repo.file("log");
  const int status = testing::run_command("timeout 60 " + std::string(MAAS_BINARY_DIR) + "/maas-serve --models " +
                                              repo.path() + " --port 0", log);
  EXPECT_EQ(status, 1) << read_text(log);  // timeout(1) exits 124: it hung
  EXPECT_TRUE(mentions(read_text(log), "fifo/1/model.pt: not a regular file (a FIFO)"))
      << read_text(log);
}

}  // namespace
}  // namespace maas
