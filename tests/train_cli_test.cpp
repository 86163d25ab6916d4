// maas-train's command line: a run is continued by rerunning its command with --resume appended.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "checkpoint.h"
#include "files.h"
#include "test_util.h"

namespace maas {
namespace {

using testing::TempDir;

using testing::run_command;

TEST(TrainCli, TheSameCommandPlusResumeContinuesAndRefusesChangedKeys) {
  TempDir data, dir;
  testing::write_tiny_cifar(data.path(), 20, 100);
  testing::write_bytes(dir.file("cfg.yaml"), "data:\n  root: " + data.path() +
                                                 "\nmodel:\n  name: cnn\ntrain:\n  epochs: 1\n  batch_size: 16\n"
                                                 "  threads: 1\n  eval_batch_size: 50\n");
  const std::string command =
      std::string(MAAS_BINARY_DIR) + "/maas-train --config " + dir.file("cfg.yaml") + " --out " + dir.file("run");
  const std::string log = dir.file("log.txt");
  ASSERT_EQ(run_command(command, log), 0) << read_text(log);
  // Starting it again without --resume would overwrite it: refused with the hint.
  EXPECT_EQ(run_command(command, log), 1);
  EXPECT_NE(read_text(log).find("add --resume"), std::string::npos) << read_text(log);

  // More epochs is safe: the run continues from epoch 1.
  ASSERT_EQ(run_command(command + " --set train.epochs=2 --resume", log), 0) << read_text(log);
  EXPECT_NE(read_text(log).find("resuming after epoch 1"), std::string::npos) << read_text(log);
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(dir.file("run"))).meta().epoch, 2);

  // A changed batch size would make another run: refused, naming the key and both values.
  EXPECT_EQ(run_command(command + " --set train.epochs=3 --set train.batch_size=8 --set train.lr=0.01 --resume", log), 2);
  const std::string refused = read_text(log);
  EXPECT_NE(refused.find("train.batch_size: 16 in the run, 8 now"), std::string::npos) << refused;
  EXPECT_NE(refused.find("train.lr: 0.001 in the run, 0.01 now"), std::string::npos) << refused;
  EXPECT_EQ(refused.find("train.epochs"), std::string::npos) << refused;
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(dir.file("run"))).meta().epoch, 2);  // untouched

  // Fewer epochs than the run already has: refused, not "done".
  EXPECT_EQ(run_command(command + " --set train.epochs=1 --resume", log), 2);
  EXPECT_NE(read_text(log).find("already holds 2 epochs"), std::string::npos) << read_text(log);
  // Widths written out as the architecture's defaults build the same network: accepted.
  EXPECT_EQ(run_command(command + " --set train.epochs=2 --set 'model.widths=[32, 64, 64, 64]' --resume", log), 0)
      << read_text(log);

  // --resume on a folder with no run says what to do instead.
  EXPECT_NE(run_command(std::string(MAAS_BINARY_DIR) + "/maas-train --config " + dir.file("cfg.yaml") + " --out " +
                    dir.file("empty") + " --resume",
                log),
            0);
  EXPECT_NE(read_text(log).find("no config.yaml"), std::string::npos) << read_text(log);
}

}  // namespace
}  // namespace maas
