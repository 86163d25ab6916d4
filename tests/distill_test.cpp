// Knowledge distillation: the loss against a hand computation, the teacher's checks, a run with a teacher.
#include <gtest/gtest.h>

#include <cmath>

#include "artifact.h"
#include "distill.h"
#include "files.h"
#include "test_util.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::TempDir;

// log softmax of row `r` of `logits` / t, element `c`, in plain doubles.
double log_softmax_at(const std::vector<std::vector<double>>& logits, size_t r, size_t c, double t) {
  double sum = 0;
  for (double v : logits[r]) sum += std::exp(v / t);
  return logits[r][c] / t - std::log(sum);
}

TEST(Distill, LossMatchesAHandComputation) {
  const std::vector<std::vector<double>> student{{1.0, -0.5, 2.0}, {0.3, 0.1, -1.2}};
  const std::vector<std::vector<double>> teacher{{2.5, 0.0, 1.0}, {-0.4, 1.5, 0.2}};
  const std::vector<int64_t> labels{2, 0};
  const double t = 3, alpha = 0.7, smoothing = 0.1;
  double kl = 0, ce = 0;
  for (size_t r = 0; r < 2; ++r) {
    for (size_t c = 0; c < 3; ++c) {
      const double log_pt = log_softmax_at(teacher, r, c, t), log_ps = log_softmax_at(student, r, c, t);
      kl += std::exp(log_pt) * (log_pt - log_ps);
      const double target = (c == static_cast<size_t>(labels[r]) ? 1 - smoothing : 0) + smoothing / 3;
      ce -= target * log_softmax_at(student, r, c, 1);
    }
  }
  const double expected = alpha * t * t * kl / 2 + (1 - alpha) * ce / 2;
  auto tensor = [](const std::vector<std::vector<double>>& rows) {
    return torch::tensor({rows[0][0], rows[0][1], rows[0][2], rows[1][0], rows[1][1], rows[1][2]},
                         torch::kFloat64).reshape({2, 3});
  };
  const auto loss = distillation_loss(tensor(student), tensor(teacher), torch::tensor(labels), t, alpha, smoothing);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-12);
  // alpha 0 is plain (smoothed) cross-entropy; a student that equals its teacher has no soft loss.
  EXPECT_NEAR(distillation_loss(tensor(student), tensor(teacher), torch::tensor(labels), t, 0, smoothing).item<double>(),
              ce / 2, 1e-12);
  EXPECT_NEAR(distillation_loss(tensor(student), tensor(student), torch::tensor(labels), t, 1, 0).item<double>(), 0,
              1e-12);
}

// Options naming a random seed-CNN teacher for CIFAR-10's classes, written into `dir`.
DistillOptions random_teacher(const TempDir& dir) {
  testing::write_bytes(dir.file("teacher.pt"), testing::random_cnn_artifact(3, testing::kCifar10Classes));
  DistillOptions options;
  options.teacher = dir.file("teacher.pt");
  return options;
}

TEST(Distill, TheTeacherMustKnowTheSameClassesAndImages) {
  TempDir dir;
  DistillOptions options = random_teacher(dir);
  const ModelSpec spec{3, 32, 32, 10};
  const auto pixels = torch::randint(0, 256, {4, 3, 32, 32}, torch::kUInt8);
  const auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  EXPECT_EQ(testing::error_of([&] { make_distillation(options, 0, spec, testing::kCifar10Classes, pixels, labels); }), "");
  auto renamed = testing::kCifar10Classes;
  std::swap(renamed[2], renamed[3]);
  EXPECT_NE(testing::error_of([&] { make_distillation(options, 0, spec, renamed, pixels, labels); }).find("distill.teacher="),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { make_distillation(options, 0, {3, 28, 28, 10}, testing::kCifar10Classes, pixels, labels); })
                .find("takes 3x32x32 images"),
            std::string::npos);
  options.teacher = dir.file("missing.pt");
  EXPECT_NE(testing::error_of([&] { make_distillation(options, 0, spec, testing::kCifar10Classes, pixels, labels); })
                .find("distill.teacher="),
            std::string::npos);
}

// The run's log line measures the teacher on training images and flags nearly uniform soft targets.
TEST(Distill, TheSummaryGivesTheTeachersAccuracyAndSoftness) {
  TempDir dir;
  DistillOptions options = random_teacher(dir);
  const ModelSpec spec{3, 32, 32, 10};
  const auto pixels = torch::randint(0, 256, {8, 3, 32, 32}, torch::kUInt8);
  torch::Tensor predicted;
  {
    torch::NoGradGuard no_grad;
    predicted = load_artifact(options.teacher).module.forward({pixels}).toTensor().argmax(1);
  }
  options.temperature = 4;  // a random teacher's logits are close together: softened, nearly uniform
  const Distillation soft = make_distillation(options, 0, spec, testing::kCifar10Classes, pixels, predicted);
  EXPECT_NE(soft.summary.find("on 8 training images the teacher is 100.0% right"), std::string::npos) << soft.summary;
  EXPECT_NE(soft.summary.find("lower distill.temperature"), std::string::npos) << soft.summary;
  options.temperature = 0.001;  // sharpened until the top class takes nearly all the probability
  const Distillation sharp =
      make_distillation(options, 0, spec, testing::kCifar10Classes, pixels, (predicted + 1).remainder(10));
  EXPECT_NE(sharp.summary.find("temperature 0.001, alpha 0.5; on 8 training images the teacher is 0.0% right"),
            std::string::npos)
      << sharp.summary;
  EXPECT_EQ(sharp.summary.find("lower distill.temperature"), std::string::npos) << sharp.summary;
}

// The teacher sees the student's augmented pixels: its loss term is the one the step minimizes.
TEST(Distill, ARunWithATeacherUsesItsPredictions) {
  TempDir data, dir, with_teacher, without;
  testing::write_tiny_cifar(data.path(), 20, 20);
  RunConfig config = testing::tiny_run_config(data.path());
  config.augment.translate = 2;
  config.augment.flip = "random";
  const TrainResult plain = train(config, without.path(), false, {});
  config.distill.teacher = random_teacher(dir).teacher;
  config.distill.alpha = 1;  // only the teacher: a random teacher's soft targets, not the labels
  const TrainResult distilled = train(config, with_teacher.path(), false, {});
  ASSERT_EQ(distilled.history.size(), 1u);
  EXPECT_NE(distilled.history[0].train_loss, plain.history[0].train_loss);
  EXPECT_TRUE(std::isfinite(distilled.history[0].train_loss));
  // A random teacher is nearly uniform at T = 4: the soft loss is small next to cross-entropy's ~2.3.
  EXPECT_LT(distilled.history[0].train_loss, 1.0);
}

}  // namespace
}  // namespace maas
