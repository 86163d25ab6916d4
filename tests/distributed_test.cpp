// Data-parallel training: the launcher's environment, sharded batches, and real maas-train processes
// joined on loopback through c10d's TCPStore and Gloo (bitwise-identical replicas, the same result
// as one process, a lost rank, resume).
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "batch_source.h"
#include "checkpoint.h"
#include "distributed.h"
#include "files.h"
#include "test_util.h"

namespace maas {
namespace {

using testing::TempDir;

LaunchInfo launch_from(const std::map<std::string, std::string>& env) {
  return launch_info_from_environment([&env](const char* name) -> const char* {
    const auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  });
}

TEST(Launch, ReadsTorchrunsVariablesAndFallsBackToSlurms) {
  EXPECT_EQ(launch_from({}).world_size, 1);
  const LaunchInfo torchrun = launch_from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                           {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"},
                                           {"MASTER_PORT", "29500"}});
  EXPECT_EQ(torchrun.rank, 3);
  EXPECT_EQ(torchrun.world_size, 4);
  EXPECT_EQ(torchrun.local_rank, 1);
  EXPECT_EQ(torchrun.local_world_size, 2);
  EXPECT_EQ(torchrun.master_addr, "10.0.0.1");
  EXPECT_EQ(torchrun.master_port, 29500);
  const LaunchInfo slurm = launch_from({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"},
                                        {"SLURM_NTASKS_PER_NODE", "1"}, {"MASTER_ADDR", "node1"},
                                        {"MASTER_PORT", "1234"}});
  EXPECT_EQ(slurm.rank, 1);
  EXPECT_EQ(slurm.world_size, 2);
  EXPECT_EQ(slurm.local_world_size, 1);
  EXPECT_EQ(launch_from({{"WORLD_SIZE", "1"}}).world_size, 1);  // torchrun --nproc_per_node 1: alone
}

TEST(Launch, BadVariablesAreRefusedNamingThem) {
  auto error = [](const std::map<std::string, std::string>& env) {
    return testing::error_of([&] { launch_from(env); });
  };
  const std::map<std::string, std::string> good{
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto with = [&](const std::string& key, const std::string& value) {
    auto env = good;
    env[key] = value;
    return env;
  };
  EXPECT_EQ(error(good), "");
  EXPECT_NE(error(with("RANK", "2")).find("RANK='2'"), std::string::npos);
  EXPECT_NE(error(with("WORLD_SIZE", "two")).find("WORLD_SIZE='two'"), std::string::npos);
  EXPECT_NE(error(with("MASTER_PORT", "70000")).find("MASTER_PORT"), std::string::npos);
  auto no_addr = good;
  no_addr.erase("MASTER_ADDR");
  EXPECT_NE(error(no_addr).find("MASTER_ADDR"), std::string::npos);
  auto no_rank = good;
  no_rank.erase("RANK");
  EXPECT_NE(error(no_rank).find("RANK is not set"), std::string::npos);
}

TEST(Launch, TheDigestSeesEveryBit) {
  const auto a = torch::randn({3, 4});
  auto b = a.clone();
  EXPECT_EQ(bitwise_digest({a, a}), bitwise_digest({b, a}));
  b.view(torch::kInt32)[1][2].bitwise_xor_(1);  // one bit of one float
  EXPECT_NE(bitwise_digest({a, a}), bitwise_digest({b, a}));
  EXPECT_NE(bitwise_digest({a, b}), bitwise_digest({b, a}));  // order matters
}

TEST(Launch, TheShardsOfABatchAreTheBatch) {
  TempDir data;
  testing::write_tiny_cifar(data.path(), 20, 10);
  const ImageSet set = load_dataset("cifar10", data.path(), Split::kTrain);
  AugmentOptions augment;
  augment.translate = 2;
  augment.flip = "random";
  augment.cutout = 5;
  const BatchSource source(set, augment, Normalization::of(set.images), 33, 7, true);
  for (int64_t step : {0, 3}) {  // a full batch of 33 and the last one, of 1 image
    const Batch whole = source.batch(2, step);
    std::vector<torch::Tensor> images, labels;
    for (int64_t shard = 0; shard < 3; ++shard) {
      const Batch part = source.batch(2, step, shard, 3);
      images.push_back(part.images);
      labels.push_back(part.labels);
    }
    EXPECT_TRUE(torch::equal(torch::cat(images), whole.images)) << step;
    EXPECT_TRUE(torch::equal(torch::cat(labels), whole.labels)) << step;
  }
}

// A tiny data set, a config, and shell scripts that start maas-train as torchrun would. SGD, not
// Adam: Adam's g / sqrt(v) turns rounding-level gradient differences near zero into whole steps,
// so "equal within 1e-5 to one process" is only meaningful for an optimizer linear in the gradient.
// float32 for the same reason: bfloat16 rounds each half-batch's activations differently from the
// whole batch's (~1e-3 apart after one epoch), which says nothing about the data-parallel math.
class TwoProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_tiny_cifar(data_.path(), 20, 40);  // 100 training images: 7 batches of 16
    testing::write_bytes(dir_.file("cfg.yaml"), "data:\n  root: " + data_.path() +
                                                    "\nmodel:\n  name: cnn\ntrain:\n  epochs: 1\n  batch_size: 16\n"
                                                    "  threads: 1\n  eval_batch_size: 20\n  optimizer: sgd\n"
                                                    "  lr: 0.05\n  momentum: 0.9\n  precision: float32\n"
                                                    "distributed:\n  timeout_s: 60\n");
  }

  // maas-train with `args` as rank `rank` of 2 on loopback port `port`.
  std::string rank_command(int rank, int port, const std::string& args) const {
    return "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
           " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
           MAAS_BINARY_DIR + "/maas-train --config " + dir_.file("cfg.yaml") + " " + args;
  }

  // Runs both ranks to their end; returns "status0 status1" and leaves their stderr in r0.log, r1.log.
  std::string run_pair(const std::string& args) const {
    const int port = testing::free_loopback_port();
    testing::write_bytes(dir_.file("pair.sh"),
                         rank_command(1, port, args) + " 2> " + dir_.file("r1.log") + " & one=$!\n" +
                             rank_command(0, port, args) + " 2> " + dir_.file("r0.log") + "; zero=$?\n" +
                             "wait $one; echo \"$zero $?\"\n");
    const std::string log = dir_.file("pair.log");
    testing::run_command("bash " + dir_.file("pair.sh"), log);
    std::string status = read_text(log);
    while (!status.empty() && status.back() == '\n') status.pop_back();
    return status;
  }

  std::map<std::string, torch::Tensor> weights(const std::string& run) const {
    std::map<std::string, torch::Tensor> out;
    auto model = CheckpointReader(last_checkpoint_path(dir_.file(run))).load_model();
    for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
    return out;
  }

  std::string log_of(int rank) const { return read_text(dir_.file("r" + std::to_string(rank) + ".log")); }

  TempDir data_, dir_;
};

TEST_F(TwoProcesses, EndWithIdenticalWeightsEqualToOneProcessWithTheSameGlobalBatch) {
  ASSERT_EQ(run_pair("--out " + dir_.file("pair")), "0 0") << log_of(0) << log_of(1);
  EXPECT_NE(log_of(0).find("data-parallel: 2 processes, 1 threads each"), std::string::npos) << log_of(0);
  // Checked by the ranks themselves with bitwise_digest (the test above shows it sees every bit).
  EXPECT_NE(log_of(0).find("weights bitwise identical on 2 ranks"), std::string::npos) << log_of(0);
  EXPECT_EQ(log_of(1), "");  // only rank 0 logs
  const std::string single_log = dir_.file("single.log");
  ASSERT_EQ(testing::run_command(std::string(MAAS_BINARY_DIR) + "/maas-train --config " + dir_.file("cfg.yaml") +
                                     " --out " + dir_.file("single"),
                                 single_log),
            0)
      << read_text(single_log);
  const auto two = weights("pair"), one = weights("single");
  ASSERT_EQ(two.size(), one.size());
  for (const auto& [name, value] : one) EXPECT_LT((two.at(name) - value).abs().max().item<double>(), 1e-5) << name;
  // The record is the whole batch's: the same images seen, nearly the same loss.
  const auto pair_meta = CheckpointReader(last_checkpoint_path(dir_.file("pair"))).meta();
  const auto single_meta = CheckpointReader(last_checkpoint_path(dir_.file("single"))).meta();
  EXPECT_NEAR(pair_meta.history.at(0).train_loss, single_meta.history.at(0).train_loss, 1e-5);
  EXPECT_NEAR(pair_meta.history.at(0).test_acc, single_meta.history.at(0).test_acc, 1.0 / 40);
}

TEST_F(TwoProcesses, ResumeContinuesTheGroupExactly) {
  ASSERT_EQ(run_pair("--out " + dir_.file("straight") + " --set train.epochs=2"), "0 0") << log_of(0) << log_of(1);
  ASSERT_EQ(run_pair("--out " + dir_.file("resumed")), "0 0") << log_of(0) << log_of(1);
  ASSERT_EQ(run_pair("--out " + dir_.file("resumed") + " --set train.epochs=2 --resume"), "0 0")
      << log_of(0) << log_of(1);
  EXPECT_NE(log_of(0).find("resuming after epoch 1"), std::string::npos) << log_of(0);
  const auto straight = weights("straight"), resumed = weights("resumed");
  for (const auto& [name, value] : straight) EXPECT_TRUE(torch::equal(resumed.at(name), value)) << name;
}

TEST_F(TwoProcesses, ALostRankStopsTheOtherWithOneLine) {
  // Rank 1 is killed as soon as rank 0 reports the group formed; rank 0 must not hang in its next
  // collective. Many epochs, so training is still running when the kill lands.
  const int port = testing::free_loopback_port();
  const std::string args = "--out " + dir_.file("lost") + " --set train.epochs=1000 --set distributed.timeout_s=30";
  testing::write_bytes(dir_.file("kill.sh"),
                       rank_command(1, port, args) + " 2> " + dir_.file("r1.log") + " & one=$!\n" +
                           "( " + rank_command(0, port, args) + " 2>&1; echo \"exit $?\" ) | tee " +
                           dir_.file("r0.log") + " | { grep -q -m1 'data-parallel:' && kill -9 $one; cat > /dev/null; }\n" +
                           "wait $one; echo \"rank1 $?\"\n");
  const std::string log = dir_.file("kill.log");
  testing::run_command("bash " + dir_.file("kill.sh"), log);
  EXPECT_NE(read_text(log).find("rank1 137"), std::string::npos) << read_text(log);  // killed
  const std::string rank0 = log_of(0);
  EXPECT_NE(rank0.find("exit 1"), std::string::npos) << rank0;
  EXPECT_NE(rank0.find("maas-train: error: rank 0 of 2: "), std::string::npos) << rank0;
  EXPECT_NE(rank0.find("another rank stopped, crashed or is unreachable"), std::string::npos) << rank0;
}

}  // namespace
}  // namespace maas
