// Test-time augmentation (common/tta.h): the views' weighted mean against hand computations.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>

#include "artifact.h"
#include "models.h"
#include "test_util.h"
#include "tta.h"

namespace maas {
namespace {

// One 1x3x4 image with distinct pixels:
//    1  2  3  4
//    5  6  7  8
//    9 10 11 12
torch::Tensor counting_image() { return torch::arange(1, 13, torch::kFloat32).view({1, 1, 3, 4}); }

// Three logits a reader can follow by hand: the sum of column 0, the sum of row 0, pixel (0, 0).
torch::Tensor column_row_corner(const torch::Tensor& x) {
  return torch::stack({x.select(3, 0).sum({1, 2}), x.select(2, 0).sum({1, 2}), x.select(2, 0).select(2, 0).sum(1)},
                      1);
}

TEST(Tta, EachModeIsTheHandComputedMeanOfItsViews) {
  // Reflect-padded by one pixel, the image is (rows -1..3, columns -1..4)
  //    6  5  6  7  8  7
  //    2  1  2  3  4  3
  //    6  5  6  7  8  7
  //   10  9 10 11 12 11
  //    6  5  6  7  8  7
  // moved down-right = its top-left 3x4 (6 5 6 7 / 2 1 2 3 / 6 5 6 7), moved up-left = its
  // bottom-right 3x4 (6 7 8 7 / 10 11 12 11 / 6 7 8 7). Logits [column 0, row 0, corner]:
  //   image        [15, 10, 1]     mirrored          [24, 10, 4]   -> flip-mean [19.5, 10, 2.5]
  //   down-right   [14, 24, 6]     mirrored          [17, 24, 7]   -> flip-mean [15.5, 24, 6.5]
  //   up-left      [22, 28, 6]     mirrored          [25, 28, 7]   -> flip-mean [23.5, 28, 6.5]
  //   flip_translate = 1/2 [19.5, 10, 2.5] + 1/4 [15.5, 24, 6.5] + 1/4 [23.5, 28, 6.5] = [19.5, 18, 4.5]
  // A second image, twice the first, checks that images are not mixed: its logits are doubled.
  const auto images = torch::cat({counting_image(), 2 * counting_image()});
  const std::vector<std::pair<TtaMode, std::vector<float>>> expected = {
      {TtaMode::kNone, {15, 10, 1}}, {TtaMode::kFlip, {19.5, 10, 2.5}}, {TtaMode::kFlipTranslate, {19.5, 18, 4.5}}};
  const std::map<TtaMode, int> expected_calls = {{TtaMode::kNone, 1}, {TtaMode::kFlip, 2}, {TtaMode::kFlipTranslate, 6}};
  for (const auto& [mode, logits] : expected) {
    SCOPED_TRACE(tta_mode_name(mode));
    int calls = 0;
    const auto got = tta_logits(
        [&](const torch::Tensor& x) {
          ++calls;
          EXPECT_EQ(x.sizes(), images.sizes());
          return column_row_corner(x);
        },
        images, mode);
    const auto want = torch::tensor(logits);
    EXPECT_TRUE(torch::allclose(got[0], want)) << got;
    EXPECT_TRUE(torch::allclose(got[1], 2 * want)) << got;
    EXPECT_EQ(calls, expected_calls.at(mode));
  }
}

TEST(Tta, FlipOfAMirrorSymmetricImageIsThePlainLogits) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  auto model = make_model("cnn", {3, 32, 32, 10});
  model->eval();
  auto classify = [&](const torch::Tensor& x) { return model->forward(x); };
  const auto random = torch::randn({4, 3, 32, 32});
  const auto symmetric = random + random.flip({3});
  EXPECT_LE((tta_logits(classify, symmetric, TtaMode::kFlip) - classify(symmetric)).abs().max().item<double>(), 1e-5);
  // The same model on images that are not symmetric: flipping does change its logits.
  EXPECT_GT((tta_logits(classify, random, TtaMode::kFlip) - classify(random)).abs().max().item<double>(), 1e-3);
}

TEST(Tta, ModeNamesRoundTripAndUnknownNamesThrow) {
  EXPECT_EQ(tta_mode_names(), (std::vector<std::string>{"none", "flip", "flip_translate"}));
  for (const auto& name : tta_mode_names()) EXPECT_EQ(tta_mode_name(parse_tta_mode(name)), name);
  EXPECT_THROW(parse_tta_mode("flip-translate"), std::invalid_argument);
}

TEST(Tta, ArtifactsWithoutATtaKeyReadAsNone) {
  // test_util's artifact has the metadata of artifacts written before the "tta" key.
  const std::string bytes = testing::random_cnn_artifact(1, testing::kCifar10Classes);
  const Artifact old = load_artifact_from_bytes(bytes, "old.pt");
  EXPECT_EQ(old.info.tta, "none");
  // A "tta" that is not a string is invalid metadata, not silently "none".
  auto metadata = nlohmann::json::parse(old.info.metadata_json);
  metadata["tta"] = 6;
  const std::string error =
      testing::error_of([&] { load_artifact_from_bytes(artifact_bytes(old.module, metadata.dump()), "odd.pt"); });
  EXPECT_NE(error.find("odd.pt: invalid metadata.json"), std::string::npos) << error;
  metadata["tta"] = "flip";
  EXPECT_EQ(load_artifact_from_bytes(artifact_bytes(old.module, metadata.dump()), "new.pt").info.tta, "flip");
}

}  // namespace
}  // namespace maas
