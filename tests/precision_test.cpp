// train.precision: auto's choice by CPU flags, bfloat16 autocast training against float32, exact
// resume, and where the precision is recorded (config.yaml, checkpoint, artifact).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <cmath>
#include <sstream>

#include "artifact.h"
#include "checkpoint.h"
#include "config.h"
#include "cpu_info.h"
#include "exporter.h"
#include "files.h"
#include "precision.h"
#include "test_util.h"
#include "trainer.h"

namespace maas {
namespace {

using testing::TempDir;

CpuInfo cpu_with(const std::string& flags) {
  return parse_cpu_info("model name\t: Pretend CPU\nflags\t\t: " + flags + "\n");
}
const CpuInfo kBf16Cpu = cpu_with("sse2 avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_vnni");
const CpuInfo kAmxCpu = cpu_with("sse2 avx2 avx512f avx512bw avx512vl avx512dq amx_bf16 amx_int8 amx_tile");
const CpuInfo kAvx2Cpu = cpu_with("sse2 avx2 fma");

// A seconds-long run on tiny data in `precision` (seed CNN, batches of 16, one thread).
RunConfig tiny(const std::string& data_dir, int64_t epochs, const std::string& precision) {
  RunConfig c = testing::tiny_run_config(data_dir, epochs);
  c.train.seed = 5;
  c.train.precision = precision;
  return c;
}

// A CPU on which auto's measurement (if asked) finds bfloat16 `speedup` times as fast as float32.
TrainHooks on_cpu(const CpuInfo& cpu, double speedup = 2.0) {
  TrainHooks hooks;
  hooks.cpu = &cpu;
  hooks.bf16_speedup = [speedup] { return speedup; };
  return hooks;
}

Bf16Speedup measures(double speedup, int* calls = nullptr) {
  return [speedup, calls] {
    if (calls) ++*calls;
    return speedup;
  };
}

std::vector<torch::Tensor> trained_weights(const std::string& run_dir) {
  std::vector<torch::Tensor> out;
  for (const auto& p : CheckpointReader(last_checkpoint_path(run_dir)).load_model()->parameters())
    out.push_back(p.detach().clone());
  return out;
}

TEST(Precision, AutoChoosesBfloat16WhereTheCpuComputesItFasterThanFloat32) {
  int calls = 0;
  // A CPU with native bfloat16 where it measured twice as fast (an EPYC with avx512_bf16, AMX).
  const PrecisionChoice fast = resolve_precision("auto", kBf16Cpu, measures(2.0, &calls));
  EXPECT_EQ(fast.precision, Precision::kBFloat16);
  EXPECT_NE(fast.reason.find("avx512_bf16"), std::string::npos) << fast.reason;
  EXPECT_NE(fast.reason.find("2.00x"), std::string::npos) << fast.reason;
  EXPECT_EQ(resolve_precision("auto", kAmxCpu, measures(1.5)).precision, Precision::kBFloat16);
  // Native bfloat16 that measured no faster (a Xeon's AVX-512 BF16 without AMX): float32.
  const PrecisionChoice slow = resolve_precision("auto", kBf16Cpu, measures(0.55, &calls));
  EXPECT_EQ(slow.precision, Precision::kFloat32);
  EXPECT_NE(slow.reason.find("0.55x"), std::string::npos) << slow.reason;
  EXPECT_EQ(resolve_precision("auto", kBf16Cpu, measures(1.1)).precision, Precision::kFloat32);  // within noise
  EXPECT_EQ(calls, 2);
  // Without native bfloat16 nothing is measured.
  const PrecisionChoice avx2 = resolve_precision("auto", kAvx2Cpu, measures(9.0, &calls));
  EXPECT_EQ(avx2.precision, Precision::kFloat32);
  EXPECT_NE(avx2.reason.find("no avx512_bf16"), std::string::npos);
  EXPECT_EQ(calls, 2);
  // Explicit settings hold on any CPU, unmeasured.
  EXPECT_EQ(resolve_precision("float32", kBf16Cpu, measures(9.0, &calls)).precision, Precision::kFloat32);
  EXPECT_EQ(resolve_precision("bfloat16", kAvx2Cpu, measures(0.1, &calls)).precision, Precision::kBFloat16);
  EXPECT_EQ(calls, 2);
  EXPECT_THROW(resolve_precision("fp16", kBf16Cpu, measures(1.0)), std::invalid_argument);
  EXPECT_NE(testing::error_of([] { parse_run_config("train:\n  precision: fp16\n", "t.yaml"); }).find("train.precision"),
            std::string::npos);
}

TEST(Precision, TheMeasurementTimesBothPrecisionsAndLeavesTheRandomStreamAlone) {
  torch::manual_seed(3);
  const auto expected = torch::rand({4});
  torch::manual_seed(3);
  const double speedup = measure_bf16_speedup();
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));  // a run's initialization does not depend on it
  EXPECT_GT(speedup, 0.0);
  EXPECT_TRUE(std::isfinite(speedup));
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

TEST(Precision, AutoLogsItsMeasurementAndRecordsTheOutcome) {
  TempDir data, slow;
  testing::write_tiny_cifar(data.path(), 20, 20);
  std::ostringstream log;
  TrainHooks hooks = on_cpu(kBf16Cpu, 0.6);
  hooks.log = &log;
  train(tiny(data.path(), 1, "auto"), slow.path(), false, hooks);
  EXPECT_EQ(parse_run_config(read_text(run_config_path(slow.path())), "config.yaml").train.precision, "float32");
  EXPECT_NE(log.str().find("precision: float32 (train.precision=auto: the CPU has avx512_bf16 and a bfloat16 "
                           "convolution step measured 0.60x"),
            std::string::npos)
      << log.str();
}

TEST(Precision, AutocastScopeRunsConvolutionsInBfloat16AndRestoresTheState) {
  torch::manual_seed(1);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const auto x = torch::randn({2, 3, 8, 8});
  {
    const AutocastScope scope(Precision::kBFloat16);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(conv->weight.scalar_type(), torch::kFloat32);  // master weights stay float32
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  const AutocastScope none(Precision::kFloat32);
  EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
}

TEST(Precision, Bfloat16TrainingLearnsAndStaysCloseToFloat32OnTheSameBatches) {
  TempDir data, f32, bf16;
  testing::write_tiny_cifar(data.path(), 40, 50);
  const TrainResult a = train(tiny(data.path(), 3, "float32"), f32.path(), false, {});
  const TrainResult b = train(tiny(data.path(), 3, "bfloat16"), bf16.path(), false, {});
  ASSERT_EQ(b.history.size(), 3u);
  EXPECT_LT(b.history.back().train_loss, 0.5 * b.history.front().train_loss);
  EXPECT_GT(b.history.back().test_acc, 0.5);  // chance is 0.1
  for (size_t e = 0; e < 3; ++e) {
    // bfloat16 keeps 8 bits of mantissa: the same batches give nearly the same losses.
    EXPECT_NEAR(b.history[e].train_loss, a.history[e].train_loss, 0.1 * a.history[e].train_loss + 0.02) << e;
    EXPECT_NEAR(b.history[e].test_acc, a.history[e].test_acc, 0.1) << e;
  }
  // The checkpoint's weights are float32 either way.
  for (const auto& w : trained_weights(bf16.path())) EXPECT_EQ(w.scalar_type(), torch::kFloat32);
}

TEST(Precision, ResumeOfABfloat16RunIsBitIdentical) {
  TempDir data, straight, interrupted;
  testing::write_tiny_cifar(data.path(), 20, 20);  // 100 images: 7 batches of 16 per epoch
  const RunConfig config = tiny(data.path(), 2, "bfloat16");
  train(config, straight.path(), false, {});
  TrainHooks stop = {};
  stop.should_stop = [polls = 0]() mutable { return ++polls == 3; };
  ASSERT_TRUE(train(config, interrupted.path(), false, stop).interrupted);
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(interrupted.path())).meta().step, 3);
  ASSERT_FALSE(train(config, interrupted.path(), true, {}).interrupted);
  const auto expected = trained_weights(straight.path()), resumed = trained_weights(interrupted.path());
  ASSERT_EQ(expected.size(), resumed.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(torch::equal(expected[i], resumed[i])) << i;
}

TEST(Precision, IsRecordedInConfigCheckpointAndArtifact) {
  TempDir data, bf16, f32, out;
  testing::write_tiny_cifar(data.path(), 20, 20);
  train(tiny(data.path(), 1, "auto"), bf16.path(), false, on_cpu(kBf16Cpu));
  train(tiny(data.path(), 1, "auto"), f32.path(), false, on_cpu(kAvx2Cpu));
  EXPECT_EQ(parse_run_config(read_text(run_config_path(bf16.path())), "config.yaml").train.precision, "bfloat16");
  EXPECT_EQ(parse_run_config(read_text(run_config_path(f32.path())), "config.yaml").train.precision, "float32");
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(bf16.path())).meta().precision, "bfloat16");
  EXPECT_EQ(CheckpointReader(best_checkpoint_path(bf16.path())).meta().precision, "bfloat16");
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(f32.path())).meta().precision, "float32");

  ExportOptions options;
  options.run_dir = bf16.path();
  options.out = out.file("model.pt");
  options.verify_images = 256;
  export_run(options, nullptr);  // verification unchanged: the artifact is float32
  const auto metadata = nlohmann::json::parse(load_artifact(options.out).info.metadata_json);
  EXPECT_EQ(metadata["training"]["precision"], "bfloat16");
  EXPECT_EQ(metadata["training"]["config"]["train"]["precision"], "bfloat16");
}

TEST(Precision, AResumeKeepsTheRunsPrecisionAndRefusesAnother) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 20, 20);
  train(tiny(data.path(), 1, "bfloat16"), run.path(), false, {});
  // Another explicit precision is refused, by the trainer and by the resume check of maas-train.
  const std::string error =
      testing::error_of([&] { train(tiny(data.path(), 2, "float32"), run.path(), true, {}); });
  EXPECT_NE(error.find("bfloat16"), std::string::npos) << error;
  EXPECT_NE(error.find("train.precision"), std::string::npos) << error;
  const RunConfig saved = parse_run_config(read_text(run_config_path(run.path())), "config.yaml");
  const auto conflicts = resume_conflicts(saved, tiny(data.path(), 2, "float32"));
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].rfind("train.precision: bfloat16 in the run, float32 now", 0), 0u) << conflicts[0];
  // auto keeps the run's own, even on a CPU where a fresh run would choose float32.
  EXPECT_TRUE(resume_conflicts(saved, tiny(data.path(), 2, "auto")).empty());
  train(tiny(data.path(), 2, "auto"), run.path(), true, on_cpu(kAvx2Cpu));
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(run.path())).meta().precision, "bfloat16");
  EXPECT_EQ(CheckpointReader(last_checkpoint_path(run.path())).meta().epoch, 2);
}

}  // namespace
}  // namespace maas
