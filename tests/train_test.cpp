// Training loop: learns, checkpoints round-trip, and an interrupted run resumes to identical weights.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "checkpoint.h"
#include "dataset.h"
#include "files.h"
#include "test_util.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::TempDir;

RunConfig tiny_config(const std::string& data_dir, int64_t epochs) {
  RunConfig c = testing::tiny_run_config(data_dir, epochs);
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
                        best_checkpoint_path(run.path()), metrics_path(run.path()), run.file("report.html")})
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
  meta.model.name = "cnn";
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

TEST(Checkpoint, WidthsRoundTripAndFormatOneLoadsWithDefaultWidths) {
  TempDir dir;
  torch::manual_seed(4);
  CheckpointMeta meta;
  meta.model.name = "resnet9";
  meta.model.widths = {8, 16, 16, 32};
  meta.model.width = 0.5;
  meta.classes = std::vector<std::string>(10, "c");
  meta.normalization = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  auto model = make_model(meta.model, meta.spec);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : model->buffers())
      if (b.is_floating_point()) b.uniform_(0.5, 1.5);  // BatchNorm statistics that are not the defaults
  }
  save_checkpoint(dir.file("v2.pt"), meta, *model, nullptr);
  const CheckpointReader v2(dir.file("v2.pt"));
  EXPECT_EQ(v2.meta().model, meta.model);
  auto loaded = v2.load_model();
  model->eval();
  loaded->eval();
  const auto x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(model->forward(x), loaded->forward(x)));  // eval: the running statistics count

  // A format-1 checkpoint (maas before model hyperparameters): the same archive without the
  // widths, read as the architecture's defaults, which is what it was trained with.
  auto seed = make_model("cnn", meta.spec);
  torch::serialize::OutputArchive v1;
  v1.write("meta/format_version", c10::IValue(int64_t{1}));
  v1.write("meta/model_name", c10::IValue(std::string("cnn")));
  v1.write("meta/spec", c10::IValue(c10::List<int64_t>({3, 32, 32, 10})));
  c10::List<std::string> classes;
  for (int i = 0; i < 10; ++i) classes.push_back("c");
  v1.write("meta/classes", c10::IValue(classes));
  v1.write("meta/norm_mean", c10::IValue(c10::List<double>({0.5, 0.5, 0.5})));
  v1.write("meta/norm_std", c10::IValue(c10::List<double>({0.25, 0.25, 0.25})));
  for (const char* key : {"meta/epoch", "meta/step", "meta/partial_correct", "meta/partial_seen"})
    v1.write(key, c10::IValue(int64_t{0}));
  for (const char* key : {"meta/partial_loss_sum", "meta/partial_seconds", "meta/best_test_acc", "meta/last_test_acc"})
    v1.write(key, c10::IValue(0.0));
  v1.write("meta/rng_state", torch::empty({0}, torch::kUInt8));
  torch::serialize::OutputArchive weights;
  seed->save(weights);
  v1.write("model", weights);
  v1.save_to(dir.file("v1.pt"));
  const CheckpointReader old(dir.file("v1.pt"));
  EXPECT_EQ(old.meta().model, ModelOptions{});
  EXPECT_TRUE(torch::equal(old.load_model()->forward(x), seed->forward(x)));
}

TEST(Checkpoint, AnImplausibleSpecIsRefusedBeforeBuildingTheModel) {
  // A checkpoint is input: its spec sizes the model's layers, so a spec that disagrees with its own
  // class names, or asks for absurd shapes, is refused before anything is allocated.
  TempDir dir;
  auto model = make_model("cnn", {3, 32, 32, 10});
  CheckpointMeta meta;
  meta.classes = {"a", "b", "c"};  // but meta.spec says 10 classes
  save_checkpoint(dir.file("c.pt"), meta, *model, nullptr);
  EXPECT_NE(testing::error_of([&] { CheckpointReader{dir.file("c.pt")}; }).find("implausible meta/spec"), std::string::npos);
}

TEST(Checkpoint, MissingCorruptAndMismatchedFilesAreClearErrors) {
  TempDir dir;
  auto model = make_model("cnn", {3, 32, 32, 10});
  CheckpointMeta meta;
  meta.model.name = "cnn";
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

// One row of metrics.csv.
struct MetricsRow {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, lr = 0;
  double images_per_s = 0, seconds = 0;  // timings: differ from run to run
};

// metrics.csv's rows, in file order (a header other than the documented one fails the test).
std::vector<MetricsRow> metrics_rows(const std::string& run_dir) {
  std::vector<MetricsRow> rows;
  std::istringstream csv(read_text(metrics_path(run_dir)));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_s,seconds");
  while (std::getline(csv, line)) {
    std::vector<double> v;
    std::istringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) v.push_back(std::stod(cell));
    EXPECT_EQ(v.size(), 8u) << line;
    v.resize(8);
    rows.push_back({static_cast<int64_t>(v[0]), v[1], v[2], v[3], v[4], v[5], v[6], v[7]});
  }
  return rows;
}

// Both runs' metrics.csv hold the same epochs with the same averages: every column but the timings.
// With train.threads=1 a resumed run is bit-identical, so the printed numbers must be equal.
void expect_same_averages(const std::string& expected_run, const std::string& actual_run) {
  const auto expected = metrics_rows(expected_run), actual = metrics_rows(actual_run);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const MetricsRow &e = expected[i], &a = actual[i];
    EXPECT_EQ(a.epoch, e.epoch) << "row " << i + 1;
    EXPECT_EQ(a.train_loss, e.train_loss) << "train_loss of epoch " << e.epoch;
    EXPECT_EQ(a.train_acc, e.train_acc) << "train_acc of epoch " << e.epoch;
    EXPECT_EQ(a.test_loss, e.test_loss) << "test_loss of epoch " << e.epoch;
    EXPECT_EQ(a.test_acc, e.test_acc) << "test_acc of epoch " << e.epoch;
    EXPECT_EQ(a.lr, e.lr) << "lr of epoch " << e.epoch;
  }
}

// Hooks that stop a run at the `stop_at`-th poll of should_stop (1-based), counting from this
// run's start. train() polls after every batch and once more after each epoch's checkpoint.
TrainHooks stop_at_poll(int stop_at) {
  TrainHooks hooks;
  hooks.should_stop = [polls = 0, stop_at]() mutable { return ++polls == stop_at; };
  return hooks;
}

TEST(Train, ResumeAfterInterruptionMatchesAnUninterruptedRun) {
  TempDir data, straight, interrupted;
  testing::write_tiny_cifar(data.path(), 20, 20);  // 100 images: 7 batches of 16 per epoch (the last of 4)
  const RunConfig config = tiny_config(data.path(), 2);
  const TrainResult uninterrupted = train(config, straight.path(), false, {});
  ASSERT_EQ(uninterrupted.history.size(), 2u);

  // Stop twice, resuming each time: after batch 3 of epoch 1, then after batch 2 of epoch 2.
  // The second run polls after batches 4..7 of epoch 1 (polls 1-4), after epoch 1 (5), then after
  // batches 1 and 2 of epoch 2 (6, 7). last.pt's epoch is the last completed one.
  TrainResult first = train(config, interrupted.path(), false, stop_at_poll(3));
  ASSERT_TRUE(first.interrupted);
  EXPECT_TRUE(first.history.empty());
  const CheckpointReader after_first(last_checkpoint_path(interrupted.path()));
  EXPECT_EQ(after_first.meta().epoch, 0);
  EXPECT_EQ(after_first.meta().step, 3);
  TrainResult second = train(config, interrupted.path(), true, stop_at_poll(7));
  ASSERT_TRUE(second.interrupted);
  ASSERT_EQ(second.history.size(), 1u);
  const CheckpointReader after_second(last_checkpoint_path(interrupted.path()));
  EXPECT_EQ(after_second.meta().epoch, 1);
  EXPECT_EQ(after_second.meta().step, 2);
  TrainResult last = train(config, interrupted.path(), true, {});
  ASSERT_FALSE(last.interrupted);
  ASSERT_EQ(last.history.size(), 2u);

  const auto a = weights_of(last_checkpoint_path(straight.path()));
  const auto b = weights_of(last_checkpoint_path(interrupted.path()));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;

  // Each epoch's averages, both over batches split across processes, are those of the
  // uninterrupted run: in metrics.csv and, at full precision, in the returned history.
  expect_same_averages(straight.path(), interrupted.path());
  for (size_t i = 0; i < 2; ++i) {
    const EpochMetrics &e = uninterrupted.history[i], &r = last.history[i];
    EXPECT_EQ(r.epoch, e.epoch);
    EXPECT_EQ(r.train_loss, e.train_loss) << "epoch " << e.epoch;
    EXPECT_EQ(r.train_acc, e.train_acc) << "epoch " << e.epoch;
    EXPECT_EQ(r.test_loss, e.test_loss) << "epoch " << e.epoch;
    EXPECT_EQ(r.test_acc, e.test_acc) << "epoch " << e.epoch;
  }
}

// Thrown from TrainHooks::after_write to end a run at that exact moment, as kill -9 would.
struct Crash {};

TEST(Train, ACrashAfterAnyFileIsWrittenResumesToTheSameRecord) {
  // A kill right after last.pt's rename used to lose that epoch's metrics row for good, and after
  // a best epoch best.pt kept the previous epoch while the run reported the new best.
  TempDir data;
  testing::write_tiny_cifar(data.path(), 20, 20);
  const RunConfig config = tiny_config(data.path(), 2);
  TempDir straight;
  int writes = 0;
  TrainHooks count;
  count.after_write = [&](const std::string&) { ++writes; };
  train(config, straight.path(), false, count);
  const auto expected = metrics_rows(straight.path());
  ASSERT_EQ(expected.size(), 2u);
  ASSERT_GT(expected[1].test_acc, expected[0].test_acc);  // epoch 2 writes best.pt too: every kind of write is covered
  ASSERT_EQ(writes, 9);  // config.yaml, then last.pt, best.pt, metrics.csv, report.html per epoch

  for (int crash_at = 0; crash_at < writes; ++crash_at) {
    SCOPED_TRACE("crash after write " + std::to_string(crash_at));
    TempDir run;
    int n = 0;
    TrainHooks crash;
    crash.after_write = [&](const std::string&) {
      if (n++ == crash_at) throw Crash{};
    };
    EXPECT_THROW(train(config, run.path(), false, crash), Crash);
    // What a user does next: resume, or start over when no epoch was committed yet.
    const bool committed = std::filesystem::exists(last_checkpoint_path(run.path()));
    const TrainResult resumed = train(config, run.path(), committed, {});

    expect_same_averages(straight.path(), run.path());  // every epoch's row exactly once, same numbers
    EXPECT_EQ(resumed.history.size(), 2u);
    const auto best_row = *std::max_element(expected.begin(), expected.end(), [](const auto& a, const auto& b) {
      return a.test_acc < b.test_acc;  // the first of equal accuracies is the best, as in train()
    });
    const CheckpointReader best(best_checkpoint_path(run.path()));
    EXPECT_EQ(best.meta().epoch, best_row.epoch);
    EXPECT_DOUBLE_EQ(best.meta().last_test_acc, best_row.test_acc);
    EXPECT_DOUBLE_EQ(resumed.best_test_acc, best_row.test_acc);
    const auto a = weights_of(last_checkpoint_path(straight.path()));
    const auto b = weights_of(last_checkpoint_path(run.path()));
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  }
}

TEST(Train, StaleTempFilesOfAKilledRunAreRemovedAtStart) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 20, 20);
  const RunConfig config = tiny_config(data.path(), 1);
  train(config, run.path(), false, {});
  // A pid that surely ran and ended: a child that exited at once.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  const std::string stale = best_checkpoint_path(run.path()) + ".tmp." + std::to_string(child);
  testing::write_bytes(stale, "half a checkpoint");
  RunConfig more = config;
  more.train.epochs = 2;
  train(more, run.path(), true, {});
  EXPECT_FALSE(std::filesystem::exists(stale));
  for (const auto& entry : std::filesystem::directory_iterator(run.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
}

TEST(Train, AFullDiskIsAnErrorNamingTheFileAndKeepsThePreviousCheckpoint) {
  // On a 2 MiB file system the second checkpoint does not fit. LibTorch's zip writer used to throw
  // from its destructor (std::terminate, exit 134) and leave a 0.6-1.2 MB temp file.
  TempDir data, mount_point;
  testing::write_tiny_cifar(data.path(), 20, 20);
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "mounting a 2 MiB tmpfs needs root: " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point.path()};
  const std::string run = mount_point.file("run");
  try {
    train(tiny_config(data.path(), 3), run, false, {});
    FAIL() << "three checkpoints fit into 2 MiB?";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("No space left on device"), std::string::npos) << message;
    EXPECT_EQ(message.find("cannot write '" + run + "/"), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  for (const auto& entry : std::filesystem::directory_iterator(run))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(run)).meta().epoch, 1);
  EXPECT_NO_THROW(CheckpointReader(last_checkpoint_path(run)).load_model());
}

TEST(Train, AHugeBatchSizeTrainsOneBatchPerEpoch) {
  // The step count (n + batch_size - 1) / batch_size overflowed for 2^63-1: zero steps, NaN metrics,
  // exit 0. The config refuses such sizes; train() itself must not compute nonsense either.
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 20, 20);
  RunConfig config = tiny_config(data.path(), 1);
  config.train.batch_size = std::numeric_limits<int64_t>::max();
  const TrainResult result = train(config, run.path(), false, {});
  ASSERT_EQ(result.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(result.history[0].train_loss));
  EXPECT_GT(result.history[0].train_loss, 0);
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
