// The training toolbox: augmentation pixels, schedules, label smoothing, EMA, parameter groups, resume.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "artifact.h"
#include "batch_source.h"
#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "files.h"
#include "fine_tune.h"
#include "optimizer.h"
#include "test_util.h"
#include "trainer.h"
#include "weight_average.h"

namespace maas {
namespace {

using testing::TempDir;

// One 1-channel 3x4 image with pixels 1..12, row by row.
torch::Tensor tiny_image() { return torch::arange(1, 13, torch::kUInt8).reshape({1, 1, 3, 4}); }

std::vector<int64_t> pixels(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
}

std::vector<int64_t> augmented(const ImageAugmentation& a, const AugmentOptions& options = {}) {
  return pixels(augment_images(tiny_image(), {0}, {a}, options, {99}));
}

TEST(Augment, NothingAskedCopiesTheImage) {
  EXPECT_EQ(augmented({}), pixels(tiny_image()));
}

TEST(Augment, FlipMirrorsEachRow) {
  ImageAugmentation a;
  a.flip = true;
  EXPECT_EQ(augmented(a), (std::vector<int64_t>{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}));
}

TEST(Augment, ShiftRightReflectsTheLeftBorderWithoutRepeatingTheEdge) {
  ImageAugmentation a;
  a.shift_x = 1;  // content moves right: column 0 shows source column -1, reflected to 1
  EXPECT_EQ(augmented(a), (std::vector<int64_t>{2, 1, 2, 3, 6, 5, 6, 7, 10, 9, 10, 11}));
}

TEST(Augment, ShiftUpWithZeroPaddingBlanksTheBottomRow) {
  ImageAugmentation a;
  a.shift_y = -1;
  AugmentOptions zeros;
  zeros.padding = "zeros";
  EXPECT_EQ(augmented(a, zeros), (std::vector<int64_t>{5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0}));
}

TEST(Augment, FlipHappensBeforeTheShift) {
  ImageAugmentation a;
  a.flip = true;
  a.shift_x = -1;  // mirrored row 4 3 2 1, moved left: 3 2 1 and the reflection of column 4 -> 2
  AugmentOptions reflect;
  EXPECT_EQ(augmented(a, reflect), (std::vector<int64_t>{3, 2, 1, 2, 7, 6, 5, 6, 11, 10, 9, 10}));
}

TEST(Augment, CutoutFillsItsSquareClippedAtTheEdge) {
  ImageAugmentation a;
  a.cutout = true;
  a.cutout_x = 2;
  a.cutout_y = -1;  // a 2x2 square from row -1: only row 0, columns 2 and 3, lie in the image
  AugmentOptions options;
  options.cutout = 2;
  EXPECT_EQ(augmented(a, options), (std::vector<int64_t>{1, 2, 99, 99, 5, 6, 7, 8, 9, 10, 11, 12}));
}

TEST(Augment, ACutoutOutsideTheImageChangesNothing) {
  AugmentOptions options;
  options.cutout = 2;
  for (auto [x, y] : std::vector<std::pair<int64_t, int64_t>>{{4, 0}, {-2, 0}, {9, 0}, {-5, 1}, {0, 3}, {0, -5}, {9, 9}}) {
    ImageAugmentation a;
    a.cutout = true;
    a.cutout_x = x;
    a.cutout_y = y;
    EXPECT_EQ(augmented(a, options), pixels(tiny_image())) << x << "," << y;
  }
}

ImageSet numbered_set(int64_t n) {
  ImageSet set;
  set.images = torch::arange(n, torch::kInt64).to(torch::kUInt8).reshape({n, 1, 1, 1}).expand({n, 1, 4, 4}).contiguous();
  set.labels = torch::arange(n, torch::kInt64) % 2;
  set.classes = {"even", "odd"};
  return set;
}

TEST(BatchSource, AlternatingFlipFlipsEachImageEveryOtherEpoch) {
  AugmentOptions options;
  options.flip = "alternating";
  const BatchSource source(numbered_set(64), options, {{0.5}, {0.25}}, 64, 3, false);
  std::map<int64_t, bool> first;
  int flipped = 0;
  for (int64_t epoch = 1; epoch <= 4; ++epoch) {
    const auto index = source.indices(epoch, 0);
    const auto chosen = source.augmentations(epoch, 0, index);
    for (size_t i = 0; i < index.size(); ++i) {
      if (epoch == 1) {
        first[index[i]] = chosen[i].flip;
        flipped += chosen[i].flip;
      } else {
        EXPECT_EQ(chosen[i].flip, first[index[i]] != (epoch % 2 == 0)) << "image " << index[i] << " epoch " << epoch;
      }
    }
  }
  EXPECT_GT(flipped, 16);  // about half of 64 in epoch 1
  EXPECT_LT(flipped, 48);
}

TEST(BatchSource, BatchesDependOnlyOnSeedEpochAndStep) {
  AugmentOptions options;
  options.translate = 1;
  options.flip = "random";
  options.cutout = 2;
  const BatchSource a(numbered_set(50), options, {{0.5}, {0.25}}, 16, 5, false);
  const BatchSource b(numbered_set(50), options, {{0.5}, {0.25}}, 16, 5, false);
  const BatchSource other_seed(numbered_set(50), options, {{0.5}, {0.25}}, 16, 6, false);
  EXPECT_TRUE(torch::equal(a.batch(2, 1).images, b.batch(2, 1).images));
  EXPECT_FALSE(torch::equal(a.batch(2, 1).images, a.batch(2, 2).images));
  EXPECT_FALSE(torch::equal(a.batch(2, 1).images, other_seed.batch(2, 1).images));
  EXPECT_EQ(a.steps_per_epoch(), 4);
  EXPECT_EQ(a.batch(1, 3).labels.size(0), 2);  // 50 = 3 * 16 + 2
}

TEST(Schedule, FactorsAtChosenSteps) {
  TrainOptions o;
  EXPECT_EQ(lr_factor(o, 57, 100, 10), 1.0);  // constant
  o.schedule = "step";
  o.step_epochs = 2;
  o.step_gamma = 0.5;
  EXPECT_DOUBLE_EQ(lr_factor(o, 19, 100, 10), 1.0);   // epoch 2 of the first pair
  EXPECT_DOUBLE_EQ(lr_factor(o, 20, 100, 10), 0.5);   // epoch 3
  EXPECT_DOUBLE_EQ(lr_factor(o, 45, 100, 10), 0.25);  // epoch 5
  o.schedule = "onecycle";
  o.warmup = 0.2;  // 20 of 101 steps
  o.lr_start_factor = 0.2;
  o.lr_end_factor = 0.1;
  EXPECT_DOUBLE_EQ(lr_factor(o, 0, 101, 10), 0.2);
  EXPECT_DOUBLE_EQ(lr_factor(o, 10, 101, 10), 0.6);
  EXPECT_DOUBLE_EQ(lr_factor(o, 20, 101, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 60, 101, 10), 0.55);  // half way down from 1 to 0.1
  EXPECT_DOUBLE_EQ(lr_factor(o, 100, 101, 10), 0.1);
  o.schedule = "cosine";
  EXPECT_DOUBLE_EQ(lr_factor(o, 60, 101, 10), 0.55);  // cosine's half way is the mean too
  EXPECT_NEAR(lr_factor(o, 40, 101, 10), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ(lr_factor(o, 100, 101, 10), 0.1);
}

TEST(Loss, LabelSmoothingMatchesAHandComputation) {
  // logits (0, ln 3) for label 1: p = (1/4, 3/4); smoothing 0.2 over 2 classes targets (0.1, 0.9).
  // A second row, logits (0, 0) for label 0, costs ln 2 whatever the smoothing; the loss is the mean.
  const auto logits = torch::tensor({{0.0, std::log(3.0)}, {0.0, 0.0}}, torch::kDouble);
  Batch batch;
  batch.labels = torch::tensor({1, 0}, torch::kInt64);
  const double expected = 0.5 * (-(0.1 * std::log(0.25) + 0.9 * std::log(0.75)) + std::log(2.0));
  EXPECT_NEAR(label_smoothed_cross_entropy(0.2)(logits, batch).item<double>(), expected, 1e-12);
  EXPECT_NEAR(label_smoothed_cross_entropy(0)(logits, batch).item<double>(),
              0.5 * (-std::log(0.75) + std::log(2.0)), 1e-12);
}

TEST(WeightAverage, OneUpdateByHand) {
  torch::manual_seed(1);
  auto trained = make_model("cnn", {1, 18, 18, 2});
  auto average = make_model("cnn", {1, 18, 18, 2});
  WeightAverage ema(trained, average, /*start_from_trained=*/true);
  const auto before = trained->parameters()[0].detach().clone();
  {
    torch::NoGradGuard no_grad;
    trained->parameters()[0].add_(1.0);
  }
  ema.update(0.75, /*lookahead=*/false);
  EXPECT_TRUE(torch::allclose(average->parameters()[0], before + 0.25));
  EXPECT_TRUE(torch::allclose(trained->parameters()[0], before + 1.0));  // untouched without lookahead
  ema.update(0.5, /*lookahead=*/true);  // average = 0.5 (before + 0.25) + 0.5 (before + 1)
  EXPECT_TRUE(torch::allclose(average->parameters()[0], before + 0.625));
  EXPECT_TRUE(torch::allclose(trained->parameters()[0], before + 0.625));
  EXPECT_DOUBLE_EQ(average_decay(0.8, 3, 5, 10), 0.8 * 0.125);
  EXPECT_DOUBLE_EQ(average_decay(0.8, 0, 5, 10), 0.8);
}

TEST(Optimizer, GroupsGetTheirMultipliersAndDecay) {
  torch::manual_seed(1);
  auto model = make_model("airbench", {3, 32, 32, 10});
  TrainOptions o;
  o.optimizer = "sgd";
  o.lr = 0.5;
  o.weight_decay = 0.01;
  o.norm_lr_multiplier = 64;
  o.bias_lr_multiplier = 2;
  {
    // Without any group option all parameters form one group (the pre-group checkpoint layout).
    TrainOptions plain;
    plain.optimizer = "sgd";
    EXPECT_EQ(TrainingOptimizer(*model, plain).optimizer().param_groups().size(), 1u);
  }
  freeze_norm_weights(*model);
  TrainingOptimizer optimizer(*model, o);
  const auto& groups = optimizer.optimizer().param_groups();
  ASSERT_EQ(groups.size(), 3u);  // weights, norm (shifts only), bias (the stem's)
  auto options = [&](size_t i) { return static_cast<const torch::optim::SGDOptions&>(groups[i].options()); };
  EXPECT_EQ(groups[1].params().size(), 6u);  // six BatchNorm shifts; their scales are frozen
  EXPECT_EQ(groups[2].params().size(), 1u);  // the stem's bias
  // The multiplier scales the step, not the decay per step: lr * decay is the base group's.
  EXPECT_DOUBLE_EQ(options(0).weight_decay(), 0.01);
  EXPECT_DOUBLE_EQ(options(1).weight_decay(), 0.01 / 64);
  EXPECT_DOUBLE_EQ(options(2).weight_decay(), 0.01 / 2);
  TrainOptions no_decay = o;
  no_decay.decay_norm_and_bias = false;
  TrainingOptimizer undecayed(*model, no_decay);
  EXPECT_DOUBLE_EQ(
      static_cast<const torch::optim::SGDOptions&>(undecayed.optimizer().param_groups()[1].options()).weight_decay(), 0.0);
  optimizer.set_lr_factor(0.5);
  EXPECT_DOUBLE_EQ(options(0).lr(), 0.25);
  EXPECT_DOUBLE_EQ(options(1).lr(), 16.0);
  EXPECT_DOUBLE_EQ(options(2).lr(), 0.5);
  EXPECT_DOUBLE_EQ(optimizer.current_lr(), 0.25);
}

TEST(Optimizer, FreezingTheFirstLayerStopsItsUpdates) {
  torch::manual_seed(1);
  auto model = make_model("cnn", {1, 18, 18, 2});
  TrainOptions o;
  o.optimizer = "sgd";
  o.lr = 0.1;
  o.weight_decay = 0.1;
  TrainingOptimizer optimizer(*model, o);
  auto step = [&] {
    optimizer.zero_grad();
    model->forward(torch::randn({4, 1, 18, 18})).sum().backward();
    optimizer.step();
  };
  step();
  const std::string layer = freeze_first_layer(*model);
  const auto frozen = model->named_parameters()[layer + ".weight"].detach().clone();
  step();
  EXPECT_TRUE(torch::equal(model->named_parameters()[layer + ".weight"], frozen)) << layer;
}

RunConfig toolbox_config(const std::string& data_dir) {
  RunConfig c;
  c.data.root = data_dir;
  c.model.name = "airbench";
  c.model.widths = {8, 8, 8};
  c.augment.translate = 2;
  c.augment.flip = "alternating";
  c.augment.cutout = 4;
  c.train.epochs = 2;
  c.train.batch_size = 16;
  c.train.threads = 1;
  c.train.seed = 3;
  c.train.optimizer = "sgd";
  c.train.lr = 0.05;
  c.train.momentum = 0.85;
  c.train.nesterov = true;
  c.train.weight_decay = 5e-4;
  c.train.norm_lr_multiplier = 4;
  c.train.train_norm_weights = false;
  c.train.data_init = true;
  c.train.stem_epochs = 1;
  c.train.schedule = "onecycle";
  c.train.warmup = 0.3;
  c.train.lr_start_factor = 0.2;
  c.train.lr_end_factor = 0.1;
  c.train.label_smoothing = 0.2;
  c.train.clip_grad_norm = 5;
  c.train.ema_decay = 0.8;
  c.train.ema_every = 2;
  c.train.ema_warmup_power = 3;
  c.train.lookahead = true;
  c.eval.tta = "flip_translate";
  return c;
}

TEST(Toolbox, EveryToolOnResumesBitIdentically) {
  TempDir data, straight, interrupted;
  testing::write_tiny_cifar(data.path(), 20, 20);  // 100 images: 7 batches of 16 per epoch
  const RunConfig config = toolbox_config(data.path());
  const TrainResult uninterrupted = train(config, straight.path(), false, {});
  ASSERT_EQ(uninterrupted.history.size(), 2u);

  // Stop after batch 3 of epoch 1 (mid-warmup, before the stem freezes), then after batch 2 of
  // epoch 2 (the stem frozen after epoch 1: polls 1-4 are batches 4-7, 5 the epoch's end), then
  // resume to the end.
  auto stop_at = [](int poll) {
    TrainHooks stop;
    stop.should_stop = [polls = 0, poll]() mutable { return ++polls == poll; };
    return stop;
  };
  ASSERT_TRUE(train(config, interrupted.path(), false, stop_at(3)).interrupted);
  ASSERT_TRUE(train(config, interrupted.path(), true, stop_at(7)).interrupted);
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(interrupted.path())).meta().step, 2);
  const TrainResult resumed = train(config, interrupted.path(), true, {});
  ASSERT_EQ(resumed.history.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(resumed.history[i].train_loss, uninterrupted.history[i].train_loss) << "epoch " << i + 1;
    EXPECT_EQ(resumed.history[i].test_acc, uninterrupted.history[i].test_acc) << "epoch " << i + 1;
    EXPECT_EQ(resumed.history[i].lr, uninterrupted.history[i].lr) << "epoch " << i + 1;
  }
  // Both the average (what best.pt and export use) and the trained weights are identical.
  for (const char* which : {"model", "trained_model"}) {
    auto a = CheckpointReader(last_checkpoint_path(straight.path())).load_model();
    auto b = CheckpointReader(last_checkpoint_path(interrupted.path())).load_model();
    if (std::string(which) == "trained_model") {
      CheckpointReader(last_checkpoint_path(straight.path())).restore_trained_model(*a);
      CheckpointReader(last_checkpoint_path(interrupted.path())).restore_trained_model(*b);
    }
    const auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << which << " parameter " << i;
    const auto ba = a->buffers(), bb = b->buffers();
    for (size_t i = 0; i < ba.size(); ++i) EXPECT_TRUE(torch::equal(ba[i], bb[i])) << which << " buffer " << i;
  }
  // The schedule's last step ends at lr_end_factor, and metrics.csv reports it.
  EXPECT_NEAR(uninterrupted.history.back().lr, 0.05 * 0.1, 1e-12);
}

TEST(Toolbox, EvaluationEveryNEpochsLeavesTheOthersUnmeasured) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 10, 20);
  RunConfig config = toolbox_config(data.path());
  config.train.epochs = 3;
  config.eval.every = 2;
  const TrainResult result = train(config, run.path(), false, {});
  ASSERT_EQ(result.history.size(), 3u);
  EXPECT_TRUE(std::isnan(result.history[0].test_acc));
  EXPECT_FALSE(std::isnan(result.history[1].test_acc));
  EXPECT_FALSE(std::isnan(result.history[2].test_acc));  // the last epoch always
  const CheckpointReader best(best_checkpoint_path(run.path()));
  const int64_t best_epoch = result.history[2].test_acc > result.history[1].test_acc ? 3 : 2;
  EXPECT_EQ(best.meta().best_epoch, best_epoch);
  EXPECT_EQ(best.meta().best_confusion.size(), 100u);  // 10 classes squared
}

// Both were silently ignored before: data_init on a network without one trained from random
// weights, and an average updated less often than once a run was evaluated as initialized.
TEST(Toolbox, KeysThatCouldNotTakeEffectAreRefusedBeforeTraining) {
  TempDir data, run, once;
  testing::write_tiny_cifar(data.path(), 20, 20);  // 100 images: 7 batches of 16, 14 steps in 2 epochs
  RunConfig no_data_init = toolbox_config(data.path());
  no_data_init.model.name = "cnn";
  no_data_init.model.widths.clear();
  no_data_init.train.stem_epochs = 0;
  std::string error = testing::error_of([&] { train(no_data_init, run.path(), false, {}); });
  EXPECT_NE(error.find("train.data_init"), std::string::npos) << error;
  EXPECT_NE(error.find("'cnn'"), std::string::npos) << error;

  RunConfig rare_average = toolbox_config(data.path());
  rare_average.train.ema_every = 15;
  error = testing::error_of([&] { train(rare_average, run.path(), false, {}); });
  EXPECT_NE(error.find("train.ema_every=15"), std::string::npos) << error;
  EXPECT_NE(error.find("14 steps"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(last_checkpoint_path(run.path())));
  rare_average.train.ema_every = 14;  // once, at the last step
  EXPECT_EQ(train(rare_average, once.path(), false, {}).history.size(), 2u);
}

TEST(ToolboxConfig, CombinationsAreRefusedNamingTheKeys) {
  auto error = [](const std::vector<std::string>& overrides) {
    return testing::error_of([&] { parse_run_config("", "test", overrides); });
  };
  EXPECT_NE(error({"train.lookahead=true"}).find("train.ema_decay"), std::string::npos);
  EXPECT_NE(error({"train.schedule=step"}).find("train.step_epochs"), std::string::npos);
  EXPECT_NE(error({"train.nesterov=true"}).find("train.optimizer=sgd"), std::string::npos);
  EXPECT_NE(error({"augment.flip=sometimes"}).find("none, random, alternating"), std::string::npos);
  EXPECT_NE(error({"eval.tta=rotate"}).find("flip_translate"), std::string::npos);
  EXPECT_NE(error({"train.warmup=1"}).find("train.warmup"), std::string::npos);
  EXPECT_EQ(error({"train.optimizer=sgd", "train.nesterov=true", "train.schedule=onecycle"}), "");
}

TEST(ToolboxConfig, MoreEpochsOnResumeIsRefusedWhenTheScheduleSpansTheRun) {
  RunConfig saved, longer;
  saved.train.schedule = longer.train.schedule = "onecycle";
  longer.train.epochs = saved.train.epochs + 2;
  const auto conflicts = resume_conflicts(saved, longer);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_NE(conflicts[0].find("train.epochs"), std::string::npos);
  saved.train.schedule = longer.train.schedule = "constant";
  EXPECT_TRUE(resume_conflicts(saved, longer).empty());
}

}  // namespace
}  // namespace maas

namespace maas {
namespace {

// The record of a seed-CNN run on CIFAR-10's ten classes, for checkpoints made in tests.
CheckpointMeta cnn_checkpoint_meta() {
  CheckpointMeta meta;
  meta.model.name = "cnn";
  meta.spec = {3, 32, 32, 10};
  meta.classes = testing::kCifar10Classes;
  meta.normalization = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  return meta;
}

TEST(FineTune, CopiesEveryTensorButAHeadForAnotherClassCount) {
  TempDir dir;
  const CheckpointMeta meta = cnn_checkpoint_meta();
  torch::manual_seed(1);
  auto source = make_model("cnn", meta.spec);
  save_checkpoint(dir.file("run.pt"), meta, *source, nullptr);

  torch::manual_seed(2);
  auto five = make_model("cnn", {3, 32, 32, 5});
  const auto head_before = five->named_parameters()["fc2.weight"].clone();
  const std::string summary = init_from_file(dir.file("run.pt"), *five, {"a", "b", "c", "d", "e"});
  EXPECT_NE(summary.find("fresh"), std::string::npos) << summary;
  for (const auto& p : five->named_parameters()) {
    if (p.key().rfind("fc2.", 0) == 0) continue;
    EXPECT_TRUE(torch::equal(p.value(), source->named_parameters()[p.key()])) << p.key();
  }
  EXPECT_TRUE(torch::equal(five->named_parameters()["fc2.weight"], head_before));

  // Other widths are another network: refused, naming the key and the tensor.
  ModelOptions wide;
  wide.name = "cnn";
  wide.width = 2;
  auto other = make_model(wide, {3, 32, 32, 10});
  const std::string error = testing::error_of([&] { init_from_file(dir.file("run.pt"), *other, meta.classes); });
  EXPECT_NE(error.find("model.init="), std::string::npos) << error;
  EXPECT_NE(error.find("conv1.weight"), std::string::npos) << error;
  EXPECT_NE(testing::error_of([&] { init_from_file(dir.file("missing.pt"), *five, meta.classes); }).find("neither"),
            std::string::npos);
}

// Ten classes with other names (someone's own data set) are other outputs: copying the head
// would start the run believing "airplane" logits mean their first class.
TEST(FineTune, KeepsTheHeadOnlyForTheSameClassNames) {
  TempDir dir;
  const CheckpointMeta meta = cnn_checkpoint_meta();
  torch::manual_seed(1);
  auto source = make_model("cnn", meta.spec);
  save_checkpoint(dir.file("run.pt"), meta, *source, nullptr);

  std::vector<std::string> renamed = meta.classes;
  std::swap(renamed[0], renamed[1]);
  torch::manual_seed(2);
  auto other_names = make_model("cnn", {3, 32, 32, 10});
  const auto head_before = other_names->named_parameters()["fc2.weight"].clone();
  const std::string summary = init_from_file(dir.file("run.pt"), *other_names, renamed);
  EXPECT_NE(summary.find("other names"), std::string::npos) << summary;
  EXPECT_TRUE(torch::equal(other_names->named_parameters()["fc2.weight"], head_before));
  EXPECT_TRUE(torch::equal(other_names->named_parameters()["conv1.weight"], source->named_parameters()["conv1.weight"]));

  auto same = make_model("cnn", {3, 32, 32, 10});
  EXPECT_EQ(init_from_file(dir.file("run.pt"), *same, meta.classes).find("fresh"), std::string::npos);
  EXPECT_TRUE(torch::equal(same->named_parameters()["fc2.weight"], source->named_parameters()["fc2.weight"]));
}

TEST(FineTune, CopiesTheWeightsOfAnArtifact) {
  TempDir dir;
  testing::write_bytes(dir.file("a.pt"), testing::random_cnn_artifact(5, testing::kCifar10Classes));
  const Artifact artifact = load_artifact(dir.file("a.pt"));
  torch::manual_seed(9);
  auto model = make_model("cnn", {3, 32, 32, 10});
  init_from_file(dir.file("a.pt"), *model, testing::kCifar10Classes);
  std::map<std::string, torch::Tensor> expected;
  for (const auto& a : artifact.module.named_attributes(true))
    if (a.value.isTensor()) expected[a.name] = a.value.toTensor();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(expected.count(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), expected[p.key()])) << p.key();
  }
}

}  // namespace
}  // namespace maas

namespace maas {
namespace {

// Runs from before parameter groups saved one Adam group over model->parameters(); resuming one
// with the default (group-free) options must load that state. Three groups broke it.
TEST(Optimizer, ARunWithTheOneGroupOptimizerOfOlderCheckpointsResumes) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 10, 20);
  RunConfig config;
  config.data.root = data.path();
  config.train.epochs = 2;
  config.train.batch_size = 16;
  config.train.threads = 1;
  const ImageSet images = load_dataset("cifar10", data.path(), Split::kTrain);
  torch::manual_seed(0);
  auto model = make_model("cnn", {3, 32, 32, 10});
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  torch::cross_entropy_loss(model->forward(torch::randn({4, 3, 32, 32})), torch::tensor({0, 1, 2, 3})).backward();
  adam.step();  // Adam state for every parameter, as after a trained epoch
  CheckpointMeta meta;
  meta.model.name = "cnn";
  meta.spec = {3, 32, 32, 10};
  meta.classes = images.classes;
  meta.normalization = Normalization::of(images.images);
  meta.epoch = 1;
  meta.history = {{1, 2.0, 0.1, 2.0, 0.1, 1e-3, 100, 1}};
  save_checkpoint(last_checkpoint_path(run.path()), meta, *model, &adam);
  write_text_atomically(run_config_path(run.path()), to_yaml(config));
  const TrainResult resumed = train(config, run.path(), true, {});
  EXPECT_EQ(resumed.history.size(), 2u);
}

}  // namespace
}  // namespace maas
