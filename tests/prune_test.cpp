// Structured pruning: the narrow network against the wide one with its pruned channels silenced,
// the ranking, every architecture rebuilt and exported, and a pruned run fine-tuned, resumed, exported.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "artifact.h"
#include "artifact_bench.h"
#include "checkpoint.h"
#include "config.h"
#include "cpu_info.h"
#include "exporter.h"
#include "prune.h"
#include "test_util.h"
#include "torchscript_builder.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::TempDir;

const ModelSpec kSpec{3, 32, 32, 10};

ModelOptions named(const std::string& name) {
  ModelOptions o;
  o.name = name;
  return o;
}

// llm.c-style golden test: the seed CNN's stages are conv1, conv2, conv3 (ReLU after max-pooling)
// and fc1 (ReLU). A channel whose filter and bias are zero outputs zeros, which the next layer
// ignores exactly as if the channel were gone; so the narrow network must compute the wide one
// with its dropped channels zeroed.
TEST(Prune, TheNarrowSeedCnnComputesTheWideOneWithItsPrunedChannelsSilenced) {
  torch::manual_seed(7);
  auto wide = make_model("cnn", kSpec);
  wide->eval();
  const auto rng_before = torch::rand({4});
  torch::manual_seed(7);
  make_model("cnn", kSpec);
  const PrunedNetwork pruned = prune_channels(*wide, named("cnn"), kSpec, 0.5, PruneCriterion::kL1);
  EXPECT_TRUE(torch::equal(torch::rand({4}), rng_before)) << "pruning moved torch's RNG";

  const auto widths = resolved_widths(named("cnn"));
  ASSERT_EQ(pruned.options.widths.size(), widths.size());
  ASSERT_EQ(pruned.kept.size(), widths.size());
  for (size_t k = 0; k < widths.size(); ++k) {
    EXPECT_LT(pruned.options.widths[k], widths[k]);
    EXPECT_EQ(static_cast<int64_t>(pruned.kept[k].size()), pruned.options.widths[k]);
    EXPECT_TRUE(std::is_sorted(pruned.kept[k].begin(), pruned.kept[k].end()));
  }
  EXPECT_LE(pruned.macs_after, pruned.macs_before / 2);
  EXPECT_GT(pruned.macs_after, pruned.macs_before * 2 / 5);  // the widest narrowing within budget, not any
  EXPECT_EQ(pruned.macs_after, macs_per_image(*make_model(pruned.options, kSpec), kSpec));

  torch::NoGradGuard no_grad;
  const char* stage_layers[] = {"conv1", "conv2", "conv3", "fc1"};
  auto parameters = wide->named_parameters();
  for (size_t k = 0; k < widths.size(); ++k) {
    auto keep = torch::zeros({widths[k]}, torch::kBool);
    for (const int64_t c : pruned.kept[k]) keep[c] = true;
    const auto drop = keep.logical_not();
    parameters[std::string(stage_layers[k]) + ".weight"].index_put_({drop}, 0);
    parameters[std::string(stage_layers[k]) + ".bias"].index_put_({drop}, 0);
  }
  pruned.model->eval();
  const auto images = torch::randn({8, 3, 32, 32});
  const auto expected = wide->forward(images), got = pruned.model->forward(images);
  EXPECT_LE((expected - got).abs().max().item<double>(), 1e-5);
  EXPECT_GT(expected.abs().max().item<double>(), 1e-3);
}

TEST(Prune, KeepsTheChannelsTheCriterionRanksHighest) {
  torch::NoGradGuard no_grad;
  auto cnn = make_model("cnn", kSpec);
  auto parameters = cnn->named_parameters();
  parameters["conv1.weight"][3].mul_(100);
  parameters["conv1.weight"][7].mul_(100);
  const auto l1 = prune_channels(*cnn, named("cnn"), kSpec, 0.5, PruneCriterion::kL1);
  EXPECT_NE(std::find(l1.kept[0].begin(), l1.kept[0].end(), 3), l1.kept[0].end());
  EXPECT_NE(std::find(l1.kept[0].begin(), l1.kept[0].end(), 7), l1.kept[0].end());

  // BatchNorm scales: untrained (all 1) they rank nothing; a large scale keeps its channel. The
  // seed CNN has no BatchNorm at all.
  auto resnet = make_model("resnet9", kSpec);
  const std::string all_equal = testing::error_of([&] { prune_channels(*resnet, named("resnet9"), kSpec, 0.5, PruneCriterion::kBnScale); });
  EXPECT_NE(all_equal.find("all equal"), std::string::npos) << all_equal;
  std::vector<torch::Tensor> bn_scales;  // 1-D weights: BatchNorm scales, in registration order
  for (auto& p : resnet->named_parameters())
    if (p.value().dim() == 1 && p.key().size() > 7 && p.key().substr(p.key().size() - 7) == ".weight")
      bn_scales.push_back(p.value().uniform_(0.5, 1.0));
  ASSERT_FALSE(bn_scales.empty());
  bn_scales.front()[0].fill_(50);  // channel 0 of the first BatchNorm: the first stage
  const auto bn = prune_channels(*resnet, named("resnet9"), kSpec, 0.5, PruneCriterion::kBnScale);
  EXPECT_EQ(bn.kept[0].front(), 0);
  EXPECT_NE(testing::error_of([&] { prune_channels(*cnn, named("cnn"), kSpec, 0.5, PruneCriterion::kBnScale); })
                .find("no BatchNorm"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { prune_channels(*cnn, named("cnn"), kSpec, 1e-9, PruneCriterion::kL1); })
                .find("cannot be pruned to"),
            std::string::npos);
}

// Every registered architecture: the registry rebuilds the narrow network from its widths alone,
// it takes the pruned weights, runs, and traces into an artifact module.
class PruneEveryArchitecture : public ::testing::TestWithParam<std::string> {};

TEST_P(PruneEveryArchitecture, RebuildsFromItsWidthsAndExports) {
  auto wide = make_model(GetParam(), kSpec);
  const PrunedNetwork pruned = prune_channels(*wide, named(GetParam()), kSpec, 0.5, PruneCriterion::kL1);
  EXPECT_LE(pruned.macs_after, pruned.macs_before / 2);
  auto rebuilt = make_model(pruned.options, kSpec);
  copy_pruned_weights(pruned, *rebuilt);
  rebuilt->eval();
  pruned.model->eval();
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({4, 3, 32, 32});
  const auto logits = rebuilt->forward(images);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_TRUE(torch::equal(logits, pruned.model->forward(images)));
  auto module = build_torchscript(*rebuilt, GetParam(), kSpec, {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}},
                                  testing::kCifar10Classes);
  const auto pixels = torch::randint(0, 256, {2, 3, 32, 32}, torch::kUInt8);
  EXPECT_EQ(module.forward({pixels}).toTensor().sizes(), (std::vector<int64_t>{2, 10}));
}

INSTANTIATE_TEST_SUITE_P(Registry, PruneEveryArchitecture, ::testing::ValuesIn(architecture_names()),
                         [](const auto& info) { return info.param; });

// prune.from in a run: the narrowed network fine-tunes, its checkpoint records the new widths,
// it resumes, and maas-export rebuilds it. Bad combinations are refused before training.
TEST(Prune, APrunedRunFineTunesResumesAndExports) {
  TempDir data, source, pruned_run;
  testing::write_tiny_cifar(data.path(), 20, 20);
  const RunConfig config = testing::tiny_run_config(data.path());
  train(config, source.path(), false, {});

  RunConfig fine = config;
  fine.prune.from = source.path();
  fine.prune.macs = 0.3;
  fine.train.epochs = 2;
  const auto expected = prune_run(source.path(), kSpec, testing::kCifar10Classes, 0.3, PruneCriterion::kL1);
  TrainHooks stop_mid_epoch;
  int64_t batches = 0;
  stop_mid_epoch.should_stop = [&] { return ++batches == 3; };  // mid-epoch: 7 batches of 16 an epoch
  train(fine, pruned_run.path(), false, stop_mid_epoch);
  const TrainResult done = train(fine, pruned_run.path(), true, {});
  EXPECT_EQ(done.history.size(), 2u);
  const CheckpointReader last(last_checkpoint_path(pruned_run.path()));
  EXPECT_EQ(last.meta().model.widths, expected.options.widths);
  EXPECT_LE(macs_per_image(*last.load_model(), kSpec), macs_per_image(*make_model("cnn", kSpec), kSpec) * 3 / 10);

  ExportOptions e;
  e.run_dir = pruned_run.path();
  e.out = pruned_run.file("model.pt");
  const ExportReport report = export_run(e, nullptr);
  EXPECT_LE(report.max_abs_diff, 1e-4);

  auto refused = [&](const std::function<void(RunConfig&)>& change) {
    TempDir out;
    RunConfig c = fine;
    change(c);
    return testing::error_of([&] { train(c, out.path(), false, {}); });
  };
  EXPECT_NE(refused([](RunConfig& c) { c.model.init = "x.pt"; }).find("set only one"), std::string::npos);
  EXPECT_NE(refused([](RunConfig& c) { c.model.widths = {8, 8, 8, 8}; }).find("leave model.widths"), std::string::npos);
  EXPECT_NE(refused([](RunConfig& c) { c.model.name = "resnet9"; }).find("but model.name is 'resnet9'"), std::string::npos);
  EXPECT_NE(refused([&](RunConfig& c) { c.prune.from = data.file("nothing"); }).find("prune.from="), std::string::npos);
  EXPECT_NE(refused([](RunConfig& c) { c.prune.criterion = "bn_scale"; }).find("no BatchNorm"), std::string::npos);
  EXPECT_THROW(load_run_config("", {"prune.macs=0"}), ConfigError);
  EXPECT_THROW(load_run_config("", {"prune.macs=1.5"}), ConfigError);
  EXPECT_THROW(load_run_config("", {"prune.criterion=l2"}), ConfigError);
}

// maas-bench artifacts: one row per artifact and thread count, with what the metadata says (the
// table of pruned and int8 models in docs/benchmarks.md comes from it).
TEST(ArtifactBench, ReportsEachArtifactsMetadataAndSpeed) {
  TempDir dir;
  testing::write_bytes(dir.file("a.pt"), testing::random_cnn_artifact(1, testing::kCifar10Classes,
                                                                    R"({"model": {"macs_per_image": 1234, "weights": "float32"},
                                                                        "verification": {"artifact_test_acc": 0.5}})"));
  testing::write_bytes(dir.file("b.pt"), testing::random_cnn_artifact(2, testing::kCifar10Classes));
  ArtifactBenchOptions options;
  options.artifacts = {dir.file("a.pt"), dir.file("b.pt")};
  options.threads = {1};
  options.seconds_per_case = 0.05;
  options.rounds = 1;
  std::ostringstream out;
  const auto rows = run_artifact_bench(options, out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].macs, 1234);
  EXPECT_DOUBLE_EQ(rows[0].test_acc, 0.5);
  EXPECT_EQ(rows[1].macs, 0);
  EXPECT_LT(rows[1].test_acc, 0);
  for (const auto& r : rows) {
    EXPECT_EQ(r.weights, "float32");
    EXPECT_EQ(r.file_bytes, static_cast<int64_t>(std::filesystem::file_size(r.artifact)));
    EXPECT_GT(r.batch1_p50_ms, 0);
    EXPECT_GT(r.batch32_images_per_s, 0);
  }
  // The report starts with the CPU it ran on, so a table copied into the docs carries it.
  EXPECT_EQ(out.str().rfind(cpu_line(this_cpu()) + "\n", 0), 0u) << out.str();
  EXPECT_NE(out.str().find("| 1234 | 50.00% | 1 |"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("| 0 | - | 1 |"), std::string::npos) << out.str();
  EXPECT_THROW(run_artifact_bench({{dir.file("missing.pt")}}, out), ArtifactError);
}

}  // namespace
}  // namespace maas
