// Explanations in-process: integrated gradients against a hand computation, completeness on the
// seed CNN, the runner's queue, the heatmap and the query parsing (HTTP tests are in http_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "artifact.h"
#include "explainer.h"
#include "files.h"
#include "image.h"
#include "model_runner.h"
#include "protocol.h"
#include "serve_options.h"
#include "test_util.h"

namespace maas {
namespace {

// logits = weight . pixels + bias on the raw pixels (flattened): integrated gradients is exact
// for it at any number of steps, attribution = (input - baseline) * weight[target].
torch::jit::Module linear_module(const torch::Tensor& weight, const torch::Tensor& bias) {
  torch::jit::Module m("TinyLinear");
  m.register_parameter("weight", weight, /*is_buffer=*/false);
  m.register_parameter("bias", bias, /*is_buffer=*/false);
  m.define(R"(
def forward(self, images: Tensor) -> Tensor:
    return torch.linear(images.float().flatten(1), self.weight, self.bias)
)");
  return m;
}

ArtifactInfo tiny_info() {
  ArtifactInfo info;
  info.model_name = "linear";
  info.channels = 2, info.height = 3, info.width = 4;
  info.classes = {"zero", "one", "two"};
  return info;
}

struct TinyLinear {
  TinyLinear() {
    torch::manual_seed(2);
    weight = torch::randn({3, 24}) / 50;
    bias = torch::randn({3});
    image = torch::randint(0, 256, {1, 2, 3, 4}, torch::kUInt8);
  }
  // The logits in double precision, by hand.
  torch::Tensor logits(const torch::Tensor& pixels) const {
    return torch::mv(weight.to(torch::kFloat64), pixels.to(torch::kFloat64).flatten()) + bias.to(torch::kFloat64);
  }
  torch::Tensor weight, bias, image;
};

void expect_close(const torch::Tensor& got, const torch::Tensor& expected, double tolerance) {
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_LE((got.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>(), tolerance)
      << "got\n" << got << "\nexpected\n" << expected;
}

TEST(Explainer, IntegratedGradientsOfALinearModelIsTheHandComputation) {
  const TinyLinear model;
  const Explainer explainer(linear_module(model.weight, model.bias), tiny_info());
  for (const double baseline : {0.0, 37.5}) {
    for (const int64_t steps : {int64_t{1}, int64_t{16}}) {
      for (const int64_t target : {0, 2}) {
        ExplainRequest request{model.image, target, ExplainMethod::kIntegratedGradients, steps, baseline};
        const Explanation e = explainer.explain(request);
        const auto difference = model.image.to(torch::kFloat64) - baseline;
        const auto expected = (difference[0] * model.weight[target].to(torch::kFloat64).view({2, 3, 4}));
        expect_close(e.attribution, expected, 1e-4);
        EXPECT_EQ(e.target, target);
        EXPECT_EQ(e.label, tiny_info().classes[target]);
        const auto logits = model.logits(model.image);
        EXPECT_NEAR(e.probability, torch::softmax(logits, 0)[target].item<double>(), 1e-5);
        ASSERT_TRUE(e.completeness);
        EXPECT_NEAR(e.completeness->logit_input, logits[target].item<double>(), 1e-3);
        EXPECT_NEAR(e.completeness->logit_baseline,
                    model.logits(torch::full_like(model.image, baseline, torch::kFloat64))[target].item<double>(), 1e-3);
        EXPECT_NEAR(e.completeness->attribution_sum, expected.sum().item<double>(), 1e-3);
        EXPECT_NEAR(e.completeness->delta(), 0, 1e-3);  // completeness is exact for a linear model
      }
    }
  }
}

TEST(Explainer, GradientTimesInputAndTheDefaultTargetIsThePrediction) {
  const TinyLinear model;
  const Explainer explainer(linear_module(model.weight, model.bias), tiny_info());
  const int64_t predicted = model.logits(model.image).argmax().item<int64_t>();
  const Explanation e = explainer.explain({model.image, std::nullopt, ExplainMethod::kGradientTimesInput});
  EXPECT_EQ(e.target, predicted);
  expect_close(e.attribution, model.image[0].to(torch::kFloat64) * model.weight[predicted].to(torch::kFloat64).view({2, 3, 4}),
               1e-4);
  EXPECT_FALSE(e.completeness);
  EXPECT_EQ(explainer.explain({model.image}).target, predicted);  // integrated gradients too
}

TEST(Explainer, ChecksTheRequest) {
  const TinyLinear model;
  const Explainer explainer(linear_module(model.weight, model.bias), tiny_info());
  const auto error = [&](ExplainRequest r) { return testing::error_of([&] { explainer.explain(r); }); };
  EXPECT_NE(error({torch::zeros({1, 2, 3, 5}, torch::kUInt8)}).find("[1, 2, 3, 4]"), std::string::npos);
  EXPECT_NE(error({torch::zeros({2, 2, 3, 4}, torch::kUInt8)}).find("one image"), std::string::npos);
  EXPECT_NE(error({torch::zeros({1, 2, 3, 4}, torch::kInt32)}).find("uint8 or float32"), std::string::npos);
  EXPECT_NE(error({torch::full({1, 2, 3, 4}, 256.0f)}).find("0..255"), std::string::npos);
  EXPECT_NE(error({model.image, 3}).find("0..2"), std::string::npos);
  EXPECT_NE(error({model.image, -1}).find("0..2"), std::string::npos);
  EXPECT_NE(error({model.image, 0, ExplainMethod::kIntegratedGradients, 0}).find("steps"), std::string::npos);
  EXPECT_NE(error({model.image, 0, ExplainMethod::kIntegratedGradients, 4, 300}).find("baseline"), std::string::npos);
  EXPECT_EQ(error({torch::full({1, 2, 3, 4}, 255.0f)}), "");
}

std::vector<std::string> sample_images() {
  const std::string dir = std::string(MAAS_SOURCE_DIR) + "/../shared/datasets/cifar10-samples";
  std::vector<std::string> files;
  if (std::filesystem::is_directory(dir))
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      if (entry.path().extension() == ".jpg") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

Artifact seed_artifact() {
  return load_artifact_from_bytes(testing::random_cnn_artifact(5, testing::kCifar10Classes), "seed CNN");
}

// The seed CNN through the runner (the serving path): the attributions sum to logit(image) -
// logit(black) within 5% on every sample image, for the predicted class and for another one, at
// 64 steps (where the logit moves by 0.01 at least). At the default 16 they do not always (docs/benchmarks.md: up to 37% on the trained seed run, and
// on this randomly initialized CNN, whose logits hardly move, up to 280%); the error shrinks with steps.
TEST(Explainer, CompletenessWithinFivePercentOnTheSeedCnn) {
  const auto files = sample_images();
  if (files.empty()) GTEST_SKIP() << "no shared samples in ../shared/datasets/cifar10-samples";
  ModelRunner runner("cnn", 1, seed_artifact(), BatchingOptions{});
  int checked = 0;
  for (const auto& file : files) {
    const auto image = decode_image(read_text(file), 3, 32, 32);
    for (const std::optional<int64_t> target : {std::optional<int64_t>(), std::optional<int64_t>(3)}) {
      InferTiming timing;
      const Explanation e = runner.explain({image, target, ExplainMethod::kIntegratedGradients, 64}, &timing);
      EXPECT_EQ(timing.batch_images, 64 + 2);
      ASSERT_TRUE(e.completeness);
      const auto& c = *e.completeness;
      // Where the logit hardly moves (random weights), float32 rounding of the sum is of that size.
      if (std::abs(c.logit_input - c.logit_baseline) < 0.01) continue;
      ++checked;
      ASSERT_TRUE(c.relative_error()) << file;
      EXPECT_LT(*c.relative_error(), 0.05) << file << ": sum " << c.attribution_sum << " vs logit difference "
                                           << c.logit_input - c.logit_baseline;
      EXPECT_GT(e.attribution.abs().sum().item<double>(), 0) << file;
    }
  }
  EXPECT_GE(checked, static_cast<int>(files.size()));  // most of the 2 x 20 explanations
}

TEST(ModelRunner, ExplanationsCountTheirImagesInTheQueueAndStopWithTheRunner) {
  BatchingOptions options;
  options.max_batch_size = 4;
  options.max_queue_images = 8;
  ModelRunner runner("cnn", 1, seed_artifact(), options);
  const auto image = torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8);
  // steps + 2 images: 6 + 2 fit in the queue (more than a batch: explanations run alone), 7 + 2 never do.
  InferTiming timing;
  EXPECT_EQ(runner.explain({image, 1, ExplainMethod::kIntegratedGradients, 6}, &timing).target, 1);
  EXPECT_EQ(timing.batch_images, 8);
  EXPECT_NE(testing::error_of([&] { runner.explain({image, 1, ExplainMethod::kIntegratedGradients, 7}); })
                .find("max_queue_images"),
            std::string::npos);
  EXPECT_THROW(runner.explain({image, 10}), std::invalid_argument);
  // The same answer as an explainer of the artifact itself.
  const Artifact artifact = seed_artifact();
  const Explainer reference(artifact.module, artifact.info);
  const Explanation expected = reference.explain({image, std::nullopt, ExplainMethod::kIntegratedGradients, 6});
  const Explanation got = runner.explain({image, std::nullopt, ExplainMethod::kIntegratedGradients, 6});
  EXPECT_EQ(got.target, expected.target);
  EXPECT_LE((got.attribution - expected.attribution).abs().max().item<double>(),
            1e-3 * expected.attribution.abs().max().item<double>());
  runner.stop_accepting();
  EXPECT_THROW(runner.explain({image, std::nullopt, ExplainMethod::kIntegratedGradients, 6}), Unavailable);
}

// A forward autograd refuses (in place on its input): the model still predicts; explain() says why.
TEST(ModelRunner, AModelThatCannotBeDifferentiatedStillPredicts) {
  torch::jit::Module m("InPlace");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define(R"(
def forward(self, images: Tensor) -> Tensor:
    x = images.float()
    x.mul_(2.0)
    return x.flatten(1)
)");
  ArtifactInfo info;
  info.channels = 1, info.height = 1, info.width = 3;
  info.classes = {"a", "b", "c"};
  ModelRunner runner("inplace", 1, Artifact{m, info}, BatchingOptions{});
  const auto image = torch::tensor({1, 2, 3}, torch::kUInt8).view({1, 1, 1, 3});
  EXPECT_TRUE(torch::equal(runner.infer(image), torch::tensor({2.f, 4.f, 6.f}).view({1, 3})));
  EXPECT_NE(testing::error_of([&] { runner.explain({image}); }).find("model 'inplace' cannot be explained"),
            std::string::npos);
}

TEST(Heatmap, EnlargesTheImageAndColoursOnlyWhereAttributionIs) {
  const auto image = torch::full({3, 32, 32}, 100, torch::kUInt8);
  auto attribution = torch::zeros({3, 32, 32});
  attribution.index_put_({0, 5, 7}, -4.0);  // sign does not matter: |attribution|
  const auto heat = heatmap_overlay(image, attribution);
  ASSERT_EQ(heat.sizes(), torch::IntArrayRef({3, 256, 256}));
  ASSERT_EQ(heat.scalar_type(), torch::kUInt8);
  // Far from the attributed pixel the image shows unchanged; on it, mostly white-hot.
  EXPECT_TRUE(torch::equal(heat.index({torch::indexing::Slice(), torch::indexing::Slice(128, 256)}),
                           torch::full({3, 128, 256}, 100, torch::kUInt8)));
  const auto centre = heat.index({torch::indexing::Slice(), 5 * 8 + 4, 7 * 8 + 4});
  EXPECT_GT(centre[0].item<int>(), 180) << centre;
  EXPECT_GT(centre[1].item<int>(), 180) << centre;
  // Grey images come back as RGB; sizes that do not match are refused.
  EXPECT_EQ(heatmap_overlay(torch::zeros({1, 20, 10}, torch::kUInt8), torch::ones({1, 20, 10})).sizes(),
            torch::IntArrayRef({3, 260, 130}));
  EXPECT_THROW(heatmap_overlay(image, torch::zeros({3, 32, 31})), std::invalid_argument);
}

TEST(Protocol, ExplainQueryParametersAreParsedAndBounded) {
  const auto& classes = testing::kCifar10Classes;
  using Params = std::multimap<std::string, std::string>;
  const ExplainQuery defaults = parse_explain_query({}, classes, 64);
  EXPECT_FALSE(defaults.request.target);
  EXPECT_EQ(defaults.request.method, ExplainMethod::kIntegratedGradients);
  EXPECT_EQ(defaults.request.steps, kDefaultExplainSteps);
  EXPECT_EQ(defaults.request.baseline, 0);
  EXPECT_FALSE(defaults.png);
  const ExplainQuery q =
      parse_explain_query(Params{{"target", "cat"}, {"steps", "64"}, {"baseline", "127.5"}, {"format", "png"}}, classes, 64);
  EXPECT_EQ(q.request.target, 3);
  EXPECT_EQ(q.request.steps, 64);
  EXPECT_EQ(q.request.baseline, 127.5);
  EXPECT_TRUE(q.png);
  EXPECT_EQ(parse_explain_query(Params{{"target", "9"}}, classes, 64).request.target, 9);
  EXPECT_EQ(parse_explain_query(Params{{"method", "gradient"}}, classes, 64).request.method,
            ExplainMethod::kGradientTimesInput);

  const auto error = [&](const Params& params) {
    return testing::error_of([&] { parse_explain_query(params, classes, 64); });
  };
  EXPECT_NE(error({{"target", "10"}}).find("class index in 0..9"), std::string::npos);
  EXPECT_NE(error({{"target", "-1"}}).find("class index in 0..9"), std::string::npos);
  EXPECT_NE(error({{"target", "unicorn"}}).find("'unicorn'"), std::string::npos);
  EXPECT_NE(error({{"target", std::string(5000, 'x')}}).find(std::string(64, 'x') + "...'"), std::string::npos);
  EXPECT_EQ(error({{"target", std::string(5000, 'x')}}).find(std::string(65, 'x')), std::string::npos);
  EXPECT_NE(error({{"steps", "65"}}).find("steps must be an integer in 1..64"), std::string::npos);
  EXPECT_NE(error({{"steps", "0"}}).find("steps"), std::string::npos);
  EXPECT_NE(error({{"steps", "1e3"}}).find("steps"), std::string::npos);
  EXPECT_NE(error({{"baseline", "256"}}).find("baseline"), std::string::npos);
  EXPECT_NE(error({{"baseline", "nan"}}).find("baseline"), std::string::npos);
  EXPECT_NE(error({{"baseline", "12abc"}}).find("baseline"), std::string::npos);
  EXPECT_NE(error({{"method", "lime"}}).find("method 'lime' unknown"), std::string::npos);
  EXPECT_NE(error({{"method", "gradient"}, {"steps", "4"}}).find("integrated_gradients"), std::string::npos);
  EXPECT_NE(error({{"format", "jpeg"}}).find("format"), std::string::npos);
  EXPECT_NE(error({{"stpes", "4"}}).find("unknown query parameter 'stpes'"), std::string::npos);
  EXPECT_NE(error({{"steps", "4"}, {"steps", "8"}}).find("more than once"), std::string::npos);
}

TEST(ServeOptions, ExplainMaxStepsMustFitTheQueue) {
  EXPECT_EQ(load_serve_options("", {"explain.max_steps=30", "batching.max_queue_images=32"}).explain.max_steps, 30);
  EXPECT_THROW(load_serve_options("", {"explain.max_steps=31", "batching.max_queue_images=32"}), ConfigError);
  EXPECT_THROW(load_serve_options("", {"explain.max_steps=0"}), ConfigError);
}

}  // namespace
}  // namespace maas
