// Training loop: learns, checkpoints round-trip, and an interrupted run resumes to identical weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint.h"
#include "files.h"
#include "test_util.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::TempDir;

RunConfig tiny_config(const std::string& data_dir, int64_t epochs) {
  RunConfig c;
  c.data.root = data_dir;
  c.train.epochs = epochs;
  c.train.batch_size = 16;
  c.train.threads = 1;
  c.train.seed = 7;
  return c;
}

std::vector<torch::Tensor> weights_of(const std::string& checkpoint) {
  std::vector<torch::Tensor> out;
  for (const auto& p : CheckpointReader(checkpoint).load_model()->parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(Train, LossFallsOnALearnableTinyDataSet) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 40, 50);
  const TrainResult result = train(tiny_config(data.path(), 3), run.path(), false, {});
  ASSERT_EQ(result.history.size(), 3u);
  EXPECT_LT(result.history.back().train_loss, 0.5 * result.history.front().train_loss);
  EXPECT_GT(result.history.back().test_acc, 0.5);  // chance is 0.1
  EXPECT_GT(result.history.back().images_per_s, 0);

  // The run directory has everything maas-export will need.
  for (const auto& f : {run_config_path(run.path()), last_checkpoint_path(run.path()),
                        best_checkpoint_path(run.path()), metrics_path(run.path())})
    EXPECT_TRUE(std::filesystem::exists(f)) << f;
  const std::string csv = read_text(metrics_path(run.path()));
  EXPECT_EQ(csv.rfind("epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_s,seconds\n", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_EQ(parse_run_config(read_text(run_config_path(run.path())), "config.yaml").train.epochs, 3);
}

TEST(Checkpoint, RoundTripsWeightsAndMetadata) {
  TempDir dir;
  torch::manual_seed(3);
  auto model = make_model("cnn", {3, 32, 32, 10});
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  CheckpointMeta meta;
  meta.model_name = "cnn";
  meta.classes = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  meta.normalization = {{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}};
  meta.epoch = 4;
  meta.step = 17;
  meta.best_test_acc = 0.625;
  save_checkpoint(dir.file("c.pt"), meta, *model, &optimizer);

  CheckpointReader reader(dir.file("c.pt"));
  EXPECT_EQ(reader.meta().classes, meta.classes);
  EXPECT_EQ(reader.meta().normalization.std, meta.normalization.std);
  EXPECT_EQ(reader.meta().epoch, 4);
  EXPECT_EQ(reader.meta().step, 17);
  EXPECT_DOUBLE_EQ(reader.meta().best_test_acc, 0.625);
  auto loaded = reader.load_model();
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(model->forward(x), loaded->forward(x)));
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.pt.tmp." + std::to_string(getpid()))));
}

TEST(Checkpoint, MissingCorruptAndMismatchedFilesAreClearErrors) {
  TempDir dir;
  auto model = make_model("cnn", {3, 32, 32, 10});
  CheckpointMeta meta;
  meta.model_name = "cnn";
  save_checkpoint(dir.file("good.pt"), meta, *model, nullptr);
  const std::string bytes = read_text(dir.file("good.pt"));
  testing::write_bytes(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  testing::write_bytes(dir.file("junk.pt"), "not a checkpoint");

  for (const auto* name : {"missing.pt", "cut.pt", "junk.pt"}) {
    try {
      CheckpointReader reader(dir.file(name));
      FAIL() << name << " was accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  auto other = make_model("cnn", {1, 28, 28, 10});
  EXPECT_THROW(CheckpointReader(dir.file("good.pt")).restore_model(*other), CheckpointError);
}

TEST(Train, ResumeAfterInterruptionMatchesAnUninterruptedRun) {
  TempDir data, straight, interrupted;
  testing::write_tiny_cifar(data.path(), 20, 20);  // 100 images: 7 batches of 16 per epoch
  const RunConfig config = tiny_config(data.path(), 2);
  train(config, straight.path(), false, {});

  // Stop twice: mid-epoch 1 and mid-epoch 2, resuming each time.
  int batches = 0;
  TrainHooks stop_after_3;
  stop_after_3.should_stop = [&] { return ++batches % 3 == 0 && batches < 10; };
  TrainResult first = train(config, interrupted.path(), false, stop_after_3);
  ASSERT_TRUE(first.interrupted);
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(interrupted.path())).meta().step, 3);
  TrainResult second = train(config, interrupted.path(), true, stop_after_3);
  ASSERT_TRUE(second.interrupted);
  TrainResult last = train(config, interrupted.path(), true, {});
  ASSERT_FALSE(last.interrupted);
  ASSERT_EQ(last.history.size(), 2u);

  const auto a = weights_of(last_checkpoint_path(straight.path()));
  const auto b = weights_of(last_checkpoint_path(interrupted.path()));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_EQ(read_text(metrics_path(straight.path())).substr(0, 40), read_text(metrics_path(interrupted.path())).substr(0, 40));
}

TEST(Train, OneEpochOnA2000ImageSubsetOfCifar10) {
  const std::string root = testing::shared_cifar_dir();
  if (root.empty()) GTEST_SKIP() << "CIFAR-10 not found: run data/fetch-cifar10 or set MAAS_CIFAR10_DIR";
  TempDir run;
  RunConfig config;
  config.data.root = root;
  config.data.train_limit = 2000;
  config.data.test_limit = 1000;
  config.train.epochs = 1;
  config.train.threads = 1;
  const TrainResult result = train(config, run.path(), false, {});
  ASSERT_EQ(result.history.size(), 1u);
  EXPECT_GT(result.history[0].test_acc, 0.2);  // chance is 0.1
  EXPECT_EQ(CheckpointReader(best_checkpoint_path(run.path())).meta().classes.at(0), "airplane");
}

}  // namespace
}  // namespace maas
