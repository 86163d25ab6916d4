// Export: the artifact computes what the trained model computes, in C++ and in Python.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "artifact.h"
#include "torchscript_builder.h"
#include "checkpoint.h"
#include "cpu_info.h"
#include "exporter.h"
#include "files.h"
#include "image.h"
#include "model_runner.h"
#include "quantize.h"
#include "test_util.h"
#include "tiny_run.h"
#include "trainer.h"
#include "tta.h"

namespace maas {
namespace {

using testing::TempDir;
using testing::run_command;

// A tiny trained run in a temp dir.
class ExportTest : public ::testing::Test {
 protected:
  std::string run_dir() const { return tiny_.run_dir(); }
  ExportOptions options(const std::string& out_name) const {
    ExportOptions o = tiny_.export_options(out_name);
    o.verify_images = 256;
    return o;
  }
  testing::TinyTrainedRun tiny_{300};
  TempDir &data_ = tiny_.data, &run_ = tiny_.run, &out_ = tiny_.out;
};

TEST(ArtifactGolden, TorchScriptDefinitionMatchesTheCppModel) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  const ModelSpec spec{3, 32, 32, 10};
  auto model = make_model("cnn", spec);
  model->eval();
  const Normalization norm{{0.49, 0.48, 0.45}, {0.25, 0.24, 0.26}};
  const std::vector<std::string> classes(10, "c");
  auto module = build_torchscript(*model, "cnn", spec, norm, classes);
  const auto pixels = torch::randint(0, 256, {64, 3, 32, 32}, torch::kUInt8);
  const auto expected = model->forward(norm.apply(pixels));
  const auto from_uint8 = module.forward({pixels}).toTensor();
  const auto from_float = module.forward({pixels.to(torch::kFloat32)}).toTensor();
  EXPECT_LE((expected - from_uint8).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(expected.argmax(1), from_uint8.argmax(1)));
  EXPECT_TRUE(torch::equal(from_uint8, from_float));
  // The module checks its input shape with a readable message.
  try {
    module.forward({torch::zeros({1, 3, 28, 28})});
    FAIL() << "wrong shape accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("expected images of shape [N, 3, 32, 32]"), std::string::npos);
  }
}

TEST_F(ExportTest, RefusesToWriteOverTheRunsOwnFiles) {
  // --out RUN/last.pt used to replace the checkpoint with the artifact; --resume then failed.
  for (const auto& own : {last_checkpoint_path(run_dir()), run_config_path(run_dir()), best_checkpoint_path(run_dir()),
                          metrics_path(run_dir()), run_dir() + "/./last.pt"}) {
    const std::string before = read_text(std::filesystem::exists(own) ? own : last_checkpoint_path(run_dir()));
    ExportOptions o = options("unused.pt");
    o.out = own;
    try {
      export_run(o, nullptr);
      FAIL() << own << " was overwritten";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("would overwrite the run's own"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_text(std::filesystem::exists(own) ? own : last_checkpoint_path(run_dir())), before) << own;
  }
  EXPECT_NO_THROW(CheckpointReader(last_checkpoint_path(run_dir())).load_model());
  EXPECT_NO_THROW(load_run_dir_config(run_dir(), {}));
}

TEST_F(ExportTest, AnAliasBombInTheRunsConfigIsRefusedBeforeExpansion) {
  // Appended to config.yaml, nested aliases made maas-export take 37 s and 5.7 GB.
  {
    std::ofstream config(run_config_path(run_dir()), std::ios::app);
    config << "bomb:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
  }
  try {
    export_run(options("model.pt"), nullptr);
    FAIL() << "a config with anchors was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("config.yaml:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("anchors (&a) are not allowed"), std::string::npos) << e.what();
  }
}

TEST_F(ExportTest, ExportedFileLoadsWithMetadataAndSameLogits) {
  auto o = options("model.pt");
  o.samples_dir = out_.file("samples");
  const ExportReport report = export_run(o, nullptr);
  EXPECT_EQ(report.verified_images, 256);
  // One PNG per class from the test set, decodable back to the model's input.
  const auto sample = decode_image(read_text(out_.file("samples/airplane.png")), 3, 32, 32);
  EXPECT_EQ(sample.sizes(), torch::IntArrayRef({1, 3, 32, 32}));
  EXPECT_TRUE(std::filesystem::exists(out_.file("samples/truck.png")));
  EXPECT_LE(report.max_abs_diff, 1e-4);
  EXPECT_EQ(report.argmax_mismatches, 0);
  EXPECT_DOUBLE_EQ(report.artifact_test_acc, report.trained_test_acc);

  const Artifact artifact = load_artifact(out_.file("model.pt"));
  EXPECT_EQ(artifact.info.model_name, "cnn");
  EXPECT_EQ(artifact.info.classes.size(), 10u);
  EXPECT_EQ(artifact.info.classes[0], "airplane");
  EXPECT_EQ(artifact.info.channels, 3);
  EXPECT_EQ(artifact.info.height, 32);
  const auto j = nlohmann::json::parse(artifact.info.metadata_json);
  EXPECT_EQ(j["input"]["shape"], nlohmann::json({-1, 3, 32, 32}));
  EXPECT_EQ(j["output"]["shape"], nlohmann::json({-1, 10}));
  EXPECT_EQ(j["training"]["config"]["train"]["batch_size"], 16);
  EXPECT_EQ(j["model"]["parameters"], 122570);
  EXPECT_EQ(j["normalization"]["mean"].size(), 3u);
  EXPECT_EQ(j["tta"], "none");
  EXPECT_EQ(artifact.info.tta, "none");
  EXPECT_EQ(artifact.module.attr("classes").toListRef().size(), 10u);

  // Same logits as the checkpoint's model on fresh images.
  torch::NoGradGuard no_grad;
  const CheckpointReader checkpoint(run_dir() + "/best.pt");
  auto trained = checkpoint.load_model();
  trained->eval();
  const auto pixels = torch::randint(0, 256, {8, 3, 32, 32}, torch::kUInt8);
  const auto expected = trained->forward(checkpoint.meta().normalization.apply(pixels));
  const auto got = artifact.module.get_method("forward")({pixels}).toTensor();
  EXPECT_LE((expected - got).abs().max().item<double>(), 1e-4);
}

TEST_F(ExportTest, FrozenVariantVerifies) {
  auto frozen = options("frozen.pt");
  frozen.optimize = true;
  const ExportReport f = export_run(frozen, nullptr);
  EXPECT_LE(f.max_abs_diff, 1e-4);
}

// A ModelRunner of one single-threaded instance, batches of up to 8 images.
BatchingOptions one_small_instance() {
  BatchingOptions batching;
  batching.instances = 1;
  batching.threads_per_instance = 1;
  batching.max_batch_size = 8;
  batching.max_queue_images = 8;
  return batching;
}

// The loss of a tiny model on 300 tiny test images is noisy; int8 tests allow this much
// (maas-export's default is 1 point, measured on real runs in docs/benchmarks.md).
constexpr double kTinyRunAccuracyDrop = 0.05;

// --quantize int8: static quantization; the file runs int8 kernels, loads through the careful
// loader, stays close to float32 and describes itself.
TEST_F(ExportTest, Int8ArtifactRunsInt8KernelsAndDescribesItself) {
  auto o = options("int8.pt");
  o.weights = WeightFormat::kInt8;
  o.max_accuracy_drop = kTinyRunAccuracyDrop;
  const ExportReport q = export_run(o, nullptr);
  EXPECT_GE(q.artifact_test_acc, q.trained_test_acc - kTinyRunAccuracyDrop);
  EXPECT_EQ(q.calibration_images, 100);  // the tiny set has 100 training images, fewer than the default 1024
  const ExportReport plain = export_run(options("plain.pt"), nullptr);
  EXPECT_LT(q.file_bytes, plain.file_bytes * 0.4);

  const Artifact loaded = load_artifact(o.out);
  EXPECT_EQ(loaded.info.quantization_engine, "onednn");
  // The seed CNN's three convolutions and two linear layers run int8 kernels; no float conv or
  // linear is left (so no weight is dequantized to run one), and the graph leaves int8 once, for
  // the logits.
  const auto& m = loaded.module;
  EXPECT_EQ(count_nodes(m, "quantized::conv2d") + count_nodes(m, "quantized::conv2d_relu"), 3);
  EXPECT_EQ(count_nodes(m, "quantized::linear") + count_nodes(m, "quantized::linear_relu"), 2);
  // Every ReLU fused: the seed CNN pools before its ReLUs, quantize_static moves them before the
  // pooling (same values) so that they fuse into the convolutions.
  EXPECT_EQ(count_nodes(m, "quantized::conv2d_relu"), 3);
  EXPECT_EQ(count_nodes(m, "quantized::linear_relu"), 1);
  for (const char* unfused : {"aten::relu", "aten::relu_"}) EXPECT_EQ(count_nodes(m, unfused), 0) << unfused;
  // The input is the pixels themselves (the seed CNN is small and its first convolution unpadded):
  // no normalization, no quantize_per_tensor.
  EXPECT_EQ(count_nodes(m, "aten::quantize_per_tensor"), 0);
  EXPECT_EQ(count_nodes(m, "aten::addcmul"), 0);
  EXPECT_EQ(count_nodes(m, "aten::_make_per_tensor_quantized_tensor"), 1);
  for (const char* float_op : {"aten::conv2d", "aten::_convolution", "aten::linear", "aten::addmm", "aten::matmul"})
    EXPECT_EQ(count_nodes(m, float_op), 0) << float_op;
  EXPECT_EQ(count_nodes(m, "aten::dequantize"), 1);

  const auto j = nlohmann::json::parse(loaded.info.metadata_json);
  EXPECT_EQ(j["model"]["weights"], "int8");
  EXPECT_EQ(j["model"]["frozen"], true);
  EXPECT_EQ(j["quantization"]["engine"], "onednn");
  EXPECT_EQ(j["quantization"]["calibration_images"], 100);
  EXPECT_NE(j["quantization"]["input"].get<std::string>().find("pixels at scale 1"), std::string::npos);
  EXPECT_NE(j["quantization"]["scheme"].get<std::string>().find("per-channel symmetric qint8"), std::string::npos);
  EXPECT_DOUBLE_EQ(j["quantization"]["float_test_acc"].get<double>(), q.trained_test_acc);
  EXPECT_DOUBLE_EQ(j["quantization"]["int8_test_acc"].get<double>(), q.artifact_test_acc);

  // Logits close to the trained float32 model's on test images.
  torch::NoGradGuard no_grad;
  const CheckpointReader checkpoint(best_checkpoint_path(run_dir()));
  auto trained = checkpoint.load_model();
  trained->eval();
  const auto pixels = load_cifar10(data_.path(), Split::kTest).images.slice(0, 0, 64);
  const auto expected = trained->forward(checkpoint.meta().normalization.apply(pixels));
  const auto got = m.get_method("forward")({pixels}).toTensor();
  EXPECT_LE((expected - got).abs().max().item<double>(), 0.1 * expected.abs().max().item<double>());

  // maas-serve's ModelRunner runs it as loaded (no pass that undoes the quantization).
  ModelRunner runner("int8", 1, loaded, one_small_instance());
  EXPECT_GE(count_nodes(serving_module(loaded), "quantized::conv2d_relu"), 1);
  const auto eight = pixels.slice(0, 0, 8);
  EXPECT_TRUE(runner.infer(eight).allclose(m.get_method("forward")({eight}).toTensor(), 1e-5, 1e-5));
  // Explanations need gradients, which int8 kernels lack: one 4xx-mapped error that says what to do.
  try {
    runner.explain({eight.slice(0, 0, 1)});
    ADD_FAILURE() << "an int8 model explained an image";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("int8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("float32 export"), std::string::npos) << e.what();
  }
}

// Whether a node of one of `kinds` is reachable from `value` along its uses.
bool reaches(const torch::jit::Value* value, const std::vector<std::string>& kinds) {
  std::vector<const torch::jit::Value*> todo{value};
  std::set<const torch::jit::Node*> seen;
  while (!todo.empty()) {
    const torch::jit::Value* v = todo.back();
    todo.pop_back();
    for (const auto& use : v->uses()) {
      if (!seen.insert(use.user).second) continue;
      if (std::find(kinds.begin(), kinds.end(), use.user->kind().toQualString()) != kinds.end()) return true;
      for (const torch::jit::Value* out : use.user->outputs()) todo.push_back(out);
    }
  }
  return false;
}

// The dequantize nodes of `module`'s forward that a convolution follows: where the trunk leaves int8.
int64_t dequantizes_before_a_convolution(const torch::jit::Module& module) {
  int64_t count = 0;
  for (const torch::jit::Node* node : module.get_method("forward").graph()->nodes())
    count += node->kind() == c10::Symbol::fromQualString("aten::dequantize") &&
             reaches(node->output(), {"quantized::conv2d", "quantized::conv2d_relu", "aten::conv2d", "aten::_convolution"});
  return count;
}

// What build_torchscript needs besides a network, for fresh (untrained) networks on CIFAR-10's shape.
struct FreshCifar {
  ModelSpec spec{3, 32, 32, 10};
  Normalization norm{{0.49, 0.48, 0.45}, {0.25, 0.24, 0.26}};
  std::vector<std::string> classes = std::vector<std::string>(10, "c");
};
const FreshCifar kFreshCifar;

// The bf16 form of every architecture runs and stays near its float32 form: a layer that casts
// its input to float32 itself (as airbench's stem, kept float32 under training autocast, once did)
// must not meet bfloat16 weights.
TEST(Bf16Form, EveryArchitectureRunsInBf16) {
  torch::NoGradGuard no_grad;
  const auto& [spec, norm, classes] = kFreshCifar;
  const auto pixels = torch::randint(0, 256, {4, 3, 32, 32}, torch::kUInt8);
  for (const std::string& name : architecture_names()) {
    torch::manual_seed(5);
    ModelOptions options;
    options.name = name;
    auto model = make_model(options, spec);
    model->eval();
    const auto f32 = build_torchscript(*model, name, spec, norm, classes).forward({pixels}).toTensor();
    const auto bf16 =
        build_torchscript(*model, name, spec, norm, classes, TtaMode::kNone, torch::kBFloat16).forward({pixels}).toTensor();
    ASSERT_EQ(bf16.scalar_type(), torch::kFloat32) << name;
    EXPECT_LE((bf16 - f32).abs().max().item<double>(), 0.05 * (f32.max() - f32.min()).item<double>() + 1e-3) << name;
  }
}

// airbench with model.activation relu (conv, BN, ReLU, pool) quantizes into an int8 trunk: all
// seven convolutions int8, BN folded, ReLU fused, and no dequantize between them; airbench's own
// GELU order leaves int8 in every group. Read from the quantized graph, on a tiny airbench.
TEST(AirbenchInt8, ReluFormKeepsTheWholeTrunkInt8) {
  torch::NoGradGuard no_grad;
  const auto& [spec, norm, classes] = kFreshCifar;
  const auto calibration = torch::randint(0, 256, {16, 3, 32, 32}, torch::kUInt8);
  auto quantized = [&](const std::string& activation) {
    torch::manual_seed(5);
    ModelOptions options;
    options.name = "airbench";
    options.widths = {8, 16, 16};
    options.activation = activation;
    auto model = make_model(options, spec);
    model->eval();
    return quantize_static(build_torchscript(*model, "airbench", spec, norm, classes), calibration);
  };
  const QuantizedModule relu = quantized("relu");
  EXPECT_EQ(relu.quantized_convolutions, 7);  // the stem and two per group
  EXPECT_EQ(count_nodes(relu.module, "quantized::conv2d_relu"), 7);
  EXPECT_EQ(count_nodes(relu.module, "aten::batch_norm"), 0);  // folded into the convolutions
  EXPECT_EQ(dequantizes_before_a_convolution(relu.module), 0);
  EXPECT_GE(count_nodes(relu.module, "aten::dequantize"), 1);  // the logits leave int8, after the trunk
  const QuantizedModule gelu = quantized("gelu");
  EXPECT_GE(dequantizes_before_a_convolution(gelu.module), 3);
}

// Where the first convolution has no padding (the seed CNN, airbench) and the model is small enough,
// the normalization folds into it and int8 reads the pixels themselves: no addcmul or rounding pass
// is left, the quantized input is the uint8 batch at scale 1 (so uint8 and float32 pixels give the
// same logits), the pixel convolution's weights stay within 7 bits (no int16 saturation without
// VNNI), and the logits stay near float32's. ResNet-9's padded stem, and any model at or above
// fold_input_below_macs_per_value MACs per input value, keep the normalization and quantize it.
TEST(Int8Input, NormalizationFoldsIntoAnUnpaddedStemOfASmallModelAndPixelsQuantizeExactly) {
  torch::NoGradGuard no_grad;
  const auto& [spec, norm, classes] = kFreshCifar;
  torch::manual_seed(3);
  const auto calibration = torch::randint(0, 256, {32, 3, 32, 32}, torch::kUInt8);
  const auto pixels = torch::randint(0, 256, {8, 3, 32, 32}, torch::kUInt8);
  for (const std::string& name : architecture_names()) {
    torch::manual_seed(5);
    ModelOptions model_options;
    model_options.name = name;
    if (name == "airbench") model_options.activation = "relu";
    auto model = make_model(model_options, spec);
    model->eval();
    auto float_module = build_torchscript(*model, name, spec, norm, classes);
    const int64_t macs = macs_per_image(*model, spec);
    QuantizeOptions above_the_bound;
    above_the_bound.macs_per_image = macs;
    above_the_bound.fold_input_below_macs_per_value = macs / (3 * 32 * 32);  // macs is not below it
    const QuantizedModule unfolded = quantize_static(float_module, calibration, above_the_bound);
    EXPECT_FALSE(unfolded.pixels_input) << name;
    EXPECT_EQ(count_nodes(unfolded.module, "aten::addcmul"), 1) << name;

    QuantizeOptions below_the_bound;
    below_the_bound.macs_per_image = macs;
    below_the_bound.fold_input_below_macs_per_value = macs;  // always below it
    QuantizedModule q = quantize_static(float_module, calibration, below_the_bound);
    const bool padded_stem = name == "resnet9";
    EXPECT_EQ(q.pixels_input, !padded_stem) << name;
    EXPECT_EQ(count_nodes(q.module, "aten::addcmul"), padded_stem ? 1 : 0) << name;
    EXPECT_EQ(count_nodes(q.module, "aten::_make_per_tensor_quantized_tensor"), 1) << name;
    const auto from_uint8 = q.module.forward({pixels}).toTensor();
    EXPECT_TRUE(torch::equal(from_uint8, q.module.forward({pixels.to(torch::kFloat32)}).toTensor())) << name;
    const auto expected = float_module.forward({pixels}).toTensor();
    EXPECT_LE((from_uint8 - expected).abs().max().item<double>(), 0.1 * (expected.max() - expected.min()).item<double>())
        << name;
    if (padded_stem) continue;
    // The first quantized convolution: its input is the pixels at scale 1, its weights 7 bits.
    for (const torch::jit::Node* node : q.module.get_method("forward").graph()->nodes()) {
      if (node->kind() != c10::Symbol::fromQualString("quantized::conv2d_relu") &&
          node->kind() != c10::Symbol::fromQualString("quantized::conv2d"))
        continue;
      const torch::jit::Node* make = node->input(0)->node();
      ASSERT_EQ(make->kind(), c10::Symbol::fromQualString("aten::_make_per_tensor_quantized_tensor")) << name;
      EXPECT_EQ(torch::jit::toIValue(make->input(1))->toDouble(), 1.0) << name;
      EXPECT_EQ(torch::jit::toIValue(make->input(2))->toInt(), 0) << name;
      const auto packed = q.module.attr(node->input(1)->node()->s(c10::attr::name));
      torch::jit::Stack stack{packed};
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_unpack", "").callBoxed(&stack);
      EXPECT_LE(stack.at(0).toTensor().int_repr().abs().max().item<int64_t>(), 63) << name;
      break;
    }
  }
}

// More than max_accuracy_drop lost: ArtifactError, and nothing written.
TEST_F(ExportTest, Int8ThatLosesTooMuchAccuracyIsNotWritten) {
  auto o = options("int8.pt");
  o.weights = WeightFormat::kInt8;
  o.max_accuracy_drop = -1;  // any result fails
  const std::string error = testing::error_of([&] { export_run(o, nullptr); });
  EXPECT_NE(error.find("verification failed: int8 loses"), std::string::npos) << error;
  EXPECT_NE(error.find("nothing written"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

// CPUs to pretend the bf16 export runs on (ExportOptions::cpu).
const CpuInfo kBf16Cpu = parse_cpu_info("model name : pretend bf16 CPU\nflags : avx2 avx512f avx512bw avx512vl "
                                        "avx512dq avx512_bf16 avx512_vnni\n");
const CpuInfo kAvx2Cpu = parse_cpu_info("model name : pretend AVX2 CPU\nflags : avx2 fma\n");

// --precision bf16: bfloat16 weights, float32 in and out, verified against float32 within a
// fraction of the logits' range, described in the metadata, loaded by the careful loader and served.
TEST_F(ExportTest, Bf16ArtifactHoldsBf16WeightsVerifiesAndIsServed) {
  auto o = options("bf16.pt");
  o.weights = WeightFormat::kBFloat16;
  o.cpu = &kBf16Cpu;
  o.max_accuracy_drop = kTinyRunAccuracyDrop;
  const ExportReport r = export_run(o, nullptr);
  EXPECT_GT(r.logit_range, 0);
  EXPECT_LE(r.max_abs_diff, o.bf16_max_relative_diff * r.logit_range);
  EXPECT_GT(r.max_abs_diff, 0);  // it does compute in bf16: not the float32 logits
  const ExportReport plain = export_run(options("plain.pt"), nullptr);
  EXPECT_LT(r.file_bytes, plain.file_bytes * 0.7);  // weights take half the bytes

  const Artifact loaded = load_artifact(o.out);
  int64_t bf16_tensors = 0;
  for (const auto& p : loaded.module.named_parameters()) {
    EXPECT_EQ(p.value.scalar_type(), torch::kBFloat16) << p.name;
    ++bf16_tensors;
  }
  EXPECT_GT(bf16_tensors, 0);
  EXPECT_EQ(loaded.module.attr("pixel_scale").toTensor().scalar_type(), torch::kFloat32);  // normalized in float32
  const auto j = nlohmann::json::parse(loaded.info.metadata_json);
  EXPECT_EQ(j["model"]["weights"], "bf16");
  EXPECT_EQ(j["precision"]["weights"], "bf16");
  EXPECT_EQ(j["precision"]["output"], "float32");
  EXPECT_DOUBLE_EQ(j["precision"]["bf16_test_acc"].get<double>(), r.artifact_test_acc);
  EXPECT_DOUBLE_EQ(j["verification"]["artifact_test_acc"].get<double>(), r.artifact_test_acc);
  EXPECT_NE(j["precision"]["exported_on"].get<std::string>().find("pretend bf16 CPU"), std::string::npos);

  // float32 logits for uint8 and float32 pixels, close to the float32 artifact's.
  torch::NoGradGuard no_grad;
  const auto pixels = load_cifar10(data_.path(), Split::kTest).images.slice(0, 0, 16);
  const auto got = loaded.module.get_method("forward")({pixels}).toTensor();
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(got, loaded.module.get_method("forward")({pixels.to(torch::kFloat32)}).toTensor()));
  const auto expected = load_artifact(options("plain.pt").out).module.get_method("forward")({pixels}).toTensor();
  EXPECT_LE((expected - got).abs().max().item<double>(), o.bf16_max_relative_diff * r.logit_range);

  // maas-serve's ModelRunner optimizes and runs it like a float32 artifact.
  ModelRunner runner("bf16", 1, loaded, one_small_instance());
  const auto served = runner.infer(pixels.slice(0, 0, 8));
  EXPECT_EQ(served.scalar_type(), torch::kFloat32);
  EXPECT_LE((served - expected.slice(0, 0, 8)).abs().max().item<double>(), o.bf16_max_relative_diff * r.logit_range);
}

// On a CPU without native bf16 the export is refused (a usage error: exit 2) before anything is
// read or written, saying why and what to do; --force-bf16 writes it anyway.
TEST_F(ExportTest, Bf16IsRefusedOnACpuWithoutBf16UnlessForced) {
  auto o = options("bf16.pt");
  o.weights = WeightFormat::kBFloat16;
  o.cpu = &kAvx2Cpu;
  o.run_dir = run_.file("missing");  // refused before the run is even looked at
  try {
    export_run(o, nullptr);
    FAIL() << "bf16 exported on a CPU without avx512_bf16";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("no native bfloat16"), std::string::npos) << message;
    EXPECT_NE(message.find("pretend AVX2 CPU"), std::string::npos) << message;
    EXPECT_NE(message.find("--force-bf16"), std::string::npos) << message;
  }
  EXPECT_FALSE(std::filesystem::exists(o.out));
  o.run_dir = run_dir();
  o.force_bf16 = true;
  o.max_accuracy_drop = kTinyRunAccuracyDrop;
  export_run(o, nullptr);
  EXPECT_EQ(nlohmann::json::parse(load_artifact(o.out).info.metadata_json)["model"]["weights"], "bf16");
  // float32 and int8 do not care about bf16.
  auto f = options("float.pt");
  f.cpu = &kAvx2Cpu;
  EXPECT_NO_THROW(export_run(f, nullptr));
}

// A bf16 artifact further from float32 than allowed is not written.
TEST_F(ExportTest, Bf16BeyondItsToleranceIsNotWritten) {
  auto o = options("bf16.pt");
  o.weights = WeightFormat::kBFloat16;
  o.cpu = &kBf16Cpu;
  o.bf16_max_relative_diff = 0;  // any bf16 rounding fails
  const std::string error = testing::error_of([&] { export_run(o, nullptr); });
  EXPECT_NE(error.find("verification failed: max |logit diff|"), std::string::npos) << error;
  EXPECT_NE(error.find("of the float32 logits' range"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

using testing::error_of;

TEST_F(ExportTest, BadRunsAreClearErrorsAndWriteNothing) {
  auto o = options("model.pt");
  o.run_dir = run_.file("missing");
  EXPECT_NE(error_of([&] { export_run(o, nullptr); }).find("run directory not found"), std::string::npos);

  // Truncated checkpoint.
  const std::string best = read_text(run_dir() + "/best.pt");
  testing::write_bytes(run_dir() + "/best.pt", best.substr(0, best.size() / 3));
  EXPECT_NE(error_of([&] { export_run(options("model.pt"), nullptr); }).find("best.pt: not a readable checkpoint"),
            std::string::npos);
  testing::write_bytes(run_dir() + "/best.pt", best);

  // A config whose data set has other shapes than the checkpoint's 3x32x32: four 1x28x28
  // Fashion-MNIST test images (IDX files; the export reads only the test split).
  TempDir fashion;
  auto big_endian = [](std::initializer_list<uint32_t> words) {
    std::string bytes;
    for (const uint32_t w : words)
      for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((w >> shift) & 0xff);
    return bytes;
  };
  testing::write_bytes(fashion.file("t10k-images-idx3-ubyte"),
                       big_endian({0x803, 4, 28, 28}) + std::string(4 * 28 * 28, 'x'));
  testing::write_bytes(fashion.file("t10k-labels-idx1-ubyte"), big_endian({0x801, 4}) + std::string{0, 1, 2, 3});
  const std::string config = read_text(run_dir() + "/config.yaml");
  std::string other = config;
  other.replace(other.find("dataset: cifar10"), 16, "dataset: fashion-mnist");
  ASSERT_NE(other.find(data_.path()), std::string::npos) << other;
  other.replace(other.find(data_.path()), data_.path().size(), fashion.path());
  testing::write_bytes(run_dir() + "/config.yaml", other);
  const std::string shapes = error_of([&] { export_run(options("model.pt"), nullptr); });
  EXPECT_NE(shapes.find("best.pt: trained on 3x32x32 images, but the config's data set has other shapes"),
            std::string::npos) << shapes;
  testing::write_bytes(run_dir() + "/config.yaml", config);

  auto wrong_checkpoint = options("model.pt");
  wrong_checkpoint.checkpoint = run_.file("nope.pt");
  EXPECT_NE(error_of([&] { export_run(wrong_checkpoint, nullptr); }).find("nope.pt: checkpoint file not found"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out_.file("model.pt")));

  // Failing verification writes nothing.
  auto strict = options("model.pt");
  strict.max_abs_diff = -1;
  EXPECT_NE(error_of([&] { export_run(strict, nullptr); }).find("verification failed"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out_.file("model.pt")));
}

// The files in `dir`, by name (temporary files included).
std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

TEST_F(ExportTest, SpecialFilesAsOutputsOrRunFilesAreRefusedAtOnce) {
  // --out a FIFO: refused before any work; the old code replaced it with the artifact at the end.
  testing::make_fifo(out_.file("fifo.pt"));
  std::string e = testing::error_within_deadline(out_.file("fifo.pt"), [&] { export_run(options("fifo.pt"), nullptr); });
  EXPECT_NE(e.find("fifo.pt: not a regular file (a FIFO)"), std::string::npos) << e;
  struct stat st {};
  EXPECT_TRUE(::lstat(out_.file("fifo.pt").c_str(), &st) == 0 && S_ISFIFO(st.st_mode));
  std::filesystem::create_directories(out_.file("dir.pt"));
  e = error_of([&] { export_run(options("dir.pt"), nullptr); });
  EXPECT_NE(e.find("dir.pt: not a regular file (a directory)"), std::string::npos) << e;
  // The run's config.yaml a FIFO: the old code waited for a writer forever.
  const std::string fifo_run = run_.file("fifo-run");
  std::filesystem::copy(run_dir(), fifo_run, std::filesystem::copy_options::recursive);
  std::filesystem::remove(run_config_path(fifo_run));
  testing::make_fifo(run_config_path(fifo_run));
  ExportOptions o = options("m.pt");
  o.run_dir = fifo_run;
  e = testing::error_within_deadline(run_config_path(fifo_run), [&] { export_run(o, nullptr); });
  EXPECT_NE(e.find("config.yaml: not a regular file (a FIFO)"), std::string::npos) << e;
  // --run a FIFO or a file: named as what it is (the old code said "run directory not found").
  o.run_dir = out_.file("fifo.pt");
  e = testing::error_within_deadline(o.run_dir, [&] { export_run(o, nullptr); });
  EXPECT_NE(e.find("fifo.pt: not a run directory (a FIFO)"), std::string::npos) << e;
  o.run_dir = run_config_path(run_dir());
  e = error_of([&] { export_run(o, nullptr); });
  EXPECT_NE(e.find("config.yaml: not a run directory (a file)"), std::string::npos) << e;
  EXPECT_EQ(files_in(out_.path()), (std::set<std::string>{"fifo.pt", "dir.pt"}));
}

TEST_F(ExportTest, AFailedExportLeavesNoOutputBehind) {
  testing::write_bytes(out_.file("file"), "x");
  testing::write_bytes(out_.file("old.pt"), "old");
  // --samples an existing file: the old code wrote the artifact, then failed on the samples.
  ExportOptions o = options("m.pt");
  o.samples_dir = out_.file("file");
  std::string e = error_of([&] { export_run(o, nullptr); });
  EXPECT_NE(e.find("--samples"), std::string::npos) << e;
  // A --samples folder that cannot be created (under a file) fails only at the end: an existing
  // --out stays as it was.
  o = options("old.pt");
  o.samples_dir = out_.file("file/sub");
  e = error_of([&] { export_run(o, nullptr); });
  EXPECT_NE(e.find("file/sub"), std::string::npos) << e;
  EXPECT_TRUE(read_text(out_.file("old.pt")) == "old") << "--out was replaced";
  EXPECT_EQ(read_text(out_.file("file")), "x");
  EXPECT_EQ(files_in(out_.path()), (std::set<std::string>{"file", "old.pt"}));  // no m.pt, no temporary files
  // When everything can be written, everything is.
  o = options("m.pt");
  o.samples_dir = out_.file("samples/new");
  export_run(o, nullptr);
  EXPECT_TRUE(std::filesystem::is_regular_file(out_.file("m.pt")));
  EXPECT_EQ(files_in(out_.file("samples/new")).size(), testing::kCifar10Classes.size());
}

TEST(ArtifactLoad, RejectsMissingCorruptAndForeignFiles) {
  TempDir dir;
  EXPECT_THROW(load_artifact(dir.file("none.pt")), ArtifactError);
  testing::write_bytes(dir.file("junk.pt"), "PK junk");
  EXPECT_NE(error_of([&] { load_artifact(dir.file("junk.pt")); }).find("not a readable TorchScript"), std::string::npos);
  torch::jit::Module bare("__torch__.Bare");
  bare.define("def forward(self, x: Tensor) -> Tensor:\n    return x\n");
  bare.save(dir.file("bare.pt"));
  EXPECT_NE(error_of([&] { load_artifact(dir.file("bare.pt")); }).find("no metadata.json"), std::string::npos);
}

bool have_python_torch() {
  return std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

// Runs `dir`/`file` in Debian's Python torch with no maas code on 4 seeded random images and
// expects the logits of the C++ careful loader, and metadata "tta" == `tta`.
void expect_python_runs_artifact(const std::string& dir, const std::string& file, const std::string& tta,
                                 double tolerance = 1e-5) {
  const Artifact artifact = load_artifact(dir + "/" + file);
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  const auto pixels = torch::randint(0, 256, {4, 3, 32, 32}, torch::kUInt8);
  const auto logits = artifact.module.get_method("forward")({pixels}).toTensor();
  testing::write_bytes(dir + "/pixels.bin", std::string(static_cast<const char*>(pixels.data_ptr()), pixels.numel()));
  testing::write_bytes(dir + "/logits.bin",
                       std::string(static_cast<const char*>(logits.data_ptr()), logits.numel() * sizeof(float)));
  const std::string script = dir + "/check.py";
  testing::write_bytes(script, R"(import json, sys, torch
d, file, tta, tolerance = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
torch.backends.quantized.engine = 'onednn'  # int8 artifacts: their packed weights are built at load
extra = {"metadata.json": ""}
m = torch.jit.load(d + "/" + file, _extra_files=extra)
meta = json.loads(extra["metadata.json"])
assert meta["classes"] == list(m.classes), (meta["classes"], m.classes)
assert meta["input"]["shape"] == [-1, 3, 32, 32]
assert meta["tta"] == tta, (meta["tta"], tta)
pixels = torch.frombuffer(bytearray(open(d + "/pixels.bin", "rb").read()), dtype=torch.uint8).reshape(4, 3, 32, 32)
want = torch.frombuffer(bytearray(open(d + "/logits.bin", "rb").read()), dtype=torch.float32).reshape(4, 10)
with torch.no_grad():
    got = m(pixels)
    got_float = m(pixels.float())
    got_one = m(pixels[:1])
diff = (got - want).abs().max().item()
assert diff <= tolerance, diff
assert (got_float - want).abs().max().item() <= tolerance
assert (got_one - want[:1]).abs().max().item() <= tolerance
if "quantization" in meta:
    assert "quantized::conv2d" in str(m.graph), "no int8 convolution in Python's graph"
if meta["model"]["weights"] == "bf16":
    assert all(p.dtype == torch.bfloat16 for p in m.parameters()), "bf16 artifact with other weights"
    assert got.dtype == torch.float32, got.dtype
print("python ok", file, diff)
)");
  EXPECT_EQ(std::system(("/usr/bin/python3 " + script + " " + dir + " " + file + " " + tta + " " +
                         std::to_string(tolerance)).c_str()),
            0);
}

// Python's torch.jit.load runs the artifact with no maas code and gets the C++ logits.
TEST_F(ExportTest, PythonPyTorchLoadsTheArtifact) {
  if (!have_python_torch()) GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  export_run(options("model.pt"), nullptr);
  expect_python_runs_artifact(out_.path(), "model.pt", "none");
}

// And for an int8 artifact: Debian's Python torch rebuilds the packed weights and runs the same
// int8 kernels (same numbers up to float rounding in requantization).
TEST_F(ExportTest, PythonPyTorchRunsTheInt8Artifact) {
  if (!have_python_torch()) GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  auto o = options("int8.pt");
  o.weights = WeightFormat::kInt8;
  o.max_accuracy_drop = kTinyRunAccuracyDrop;
  export_run(o, nullptr);
  expect_python_runs_artifact(out_.path(), "int8.pt", "none", 1e-4);
}

// And for a bf16 artifact: Python runs the same bf16 kernels on bf16 weights (the script checks them).
TEST_F(ExportTest, PythonPyTorchRunsTheBf16Artifact) {
  if (!have_python_torch()) GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  auto o = options("bf16.pt");
  o.weights = WeightFormat::kBFloat16;
  o.force_bf16 = true;  // whatever CPU runs the test
  o.max_accuracy_drop = kTinyRunAccuracyDrop;
  export_run(o, nullptr);
  expect_python_runs_artifact(out_.path(), "bf16.pt", "none", 1e-4);
}

// The same for an artifact with TTA baked in: its views are plain TorchScript operators.
TEST_F(ExportTest, PythonPyTorchRunsTheTtaArtifact) {
  if (!have_python_torch()) GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  auto o = options("tta.pt");
  o.tta = TtaMode::kFlipTranslate;
  export_run(o, nullptr);
  expect_python_runs_artifact(out_.path(), "tta.pt", "flip_translate");
}

// --tta flip_translate: forward returns tta_logits of the trained model, at any batch size, and
// the metadata says so.
TEST_F(ExportTest, TtaArtifactComputesTheTrainedModelsTtaLogits) {
  auto o = options("tta.pt");
  o.tta = TtaMode::kFlipTranslate;
  const ExportReport report = export_run(o, nullptr);  // verified at batches 1, 7 and eval_batch_size
  EXPECT_LE(report.max_abs_diff, 1e-4);
  EXPECT_EQ(report.argmax_mismatches, 0);
  EXPECT_DOUBLE_EQ(report.artifact_test_acc, report.trained_test_acc);

  const Artifact artifact = load_artifact(o.out);  // the careful loader accepts the views' operators
  EXPECT_EQ(artifact.info.tta, "flip_translate");
  EXPECT_EQ(nlohmann::json::parse(artifact.info.metadata_json)["tta"], "flip_translate");

  torch::NoGradGuard no_grad;
  const CheckpointReader checkpoint(best_checkpoint_path(run_dir()));
  auto trained = checkpoint.load_model();
  trained->eval();
  auto classify = [&](const torch::Tensor& x) { return trained->forward(x); };
  torch::manual_seed(3);
  for (int64_t batch : {1, 5}) {
    const auto pixels = torch::randint(0, 256, {batch, 3, 32, 32}, torch::kUInt8);
    const auto images = checkpoint.meta().normalization.apply(pixels);
    const auto expected = tta_logits(classify, images, TtaMode::kFlipTranslate);
    const auto got = artifact.module.get_method("forward")({pixels}).toTensor();
    EXPECT_LE((expected - got).abs().max().item<double>(), 1e-4) << "batch " << batch;
    // The views are in the graph: the plain model's logits are other numbers.
    EXPECT_GT((classify(images) - got).abs().max().item<double>(), 1e-3) << "batch " << batch;
  }
}

// Without --tta the artifact gets the run's own eval.tta, so it scores what the run reported.
TEST_F(ExportTest, TtaDefaultsToTheRunsEvalTta) {
  TempDir copy;
  const std::string run = copy.file("run");
  std::filesystem::copy(run_dir(), run);
  RunConfig config = load_run_dir_config(run, {"eval.tta=flip"});
  write_text_atomically(run_config_path(run), to_yaml(config));
  auto o = options("from_run.pt");
  o.run_dir = run;
  export_run(o, nullptr);
  EXPECT_EQ(load_artifact(o.out).info.tta, "flip");
}

// TTA composes with --quantize int8 (the views are quantized like the image) and --optimize.
TEST_F(ExportTest, TtaWithInt8AndFreezingVerifies) {
  auto int8 = options("int8.pt");
  int8.tta = TtaMode::kFlip;
  int8.weights = WeightFormat::kInt8;
  int8.max_accuracy_drop = kTinyRunAccuracyDrop;
  export_run(int8, nullptr);
  const Artifact loaded = load_artifact(int8.out);
  EXPECT_EQ(loaded.info.tta, "flip");
  EXPECT_GE(count_nodes(loaded.module, "aten::flip"), 1);
  EXPECT_GE(count_nodes(loaded.module, "quantized::conv2d") + count_nodes(loaded.module, "quantized::conv2d_relu"), 3);
  // Close to the float TTA logits of the trained model.
  torch::NoGradGuard no_grad;
  const CheckpointReader checkpoint(best_checkpoint_path(run_dir()));
  auto trained = checkpoint.load_model();
  trained->eval();
  const auto pixels = load_cifar10(data_.path(), Split::kTest).images.slice(0, 0, 16);
  const auto images = checkpoint.meta().normalization.apply(pixels);
  const auto expected = tta_logits([&](const torch::Tensor& x) { return trained->forward(x); }, images, TtaMode::kFlip);
  const auto got = loaded.module.get_method("forward")({pixels}).toTensor();
  EXPECT_LE((expected - got).abs().max().item<double>(), 0.1 * expected.abs().max().item<double>());

  auto frozen = options("frozen.pt");
  frozen.tta = TtaMode::kFlipTranslate;
  frozen.optimize = true;
  EXPECT_LE(export_run(frozen, nullptr).max_abs_diff, 1e-4);
}

TEST(ExportCli, AnUnknownTtaIsAUsageErrorNamingTheChoices) {
  TempDir dir;
  const std::string export_command = std::string(MAAS_BINARY_DIR) + "/maas-export --run " + dir.file("no-run") +
                                     " --out " + dir.file("model.pt") + " --tta ";
  const std::string log = dir.file("log.txt");
  EXPECT_EQ(run_command(export_command + "flip-translate", log), 2);
  EXPECT_NE(read_text(log).find("--tta takes none, flip, flip_translate, got 'flip-translate'"), std::string::npos)
      << read_text(log);
  // A known name passes the flag check and gets as far as the (missing) run.
  EXPECT_EQ(run_command(export_command + "flip_translate", log), 1);
  EXPECT_NE(read_text(log).find("run directory not found"), std::string::npos) << read_text(log);
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.pt")));
}

TEST(ExportCli, MaxAccuracyDropIsInPointsAndOnlyForInt8) {
  TempDir dir;
  const std::string export_command = std::string(MAAS_BINARY_DIR) + "/maas-export --run " + dir.file("no-run") +
                                     " --out " + dir.file("model.pt") + " ";
  const std::string log = dir.file("log.txt");
  EXPECT_EQ(run_command(export_command + "--max-accuracy-drop 2", log), 2);
  EXPECT_NE(read_text(log).find("applies to --quantize int8 and --precision bf16 only"), std::string::npos) << read_text(log);
  EXPECT_EQ(run_command(export_command + "--quantize int8 --max-accuracy-drop 101", log), 2);
  EXPECT_NE(read_text(log).find("0..100 points"), std::string::npos) << read_text(log);
  EXPECT_EQ(run_command(export_command + "--quantize int8 --max-accuracy-drop 2.5", log), 1);
  EXPECT_NE(read_text(log).find("run directory not found"), std::string::npos) << read_text(log);
}

}  // namespace
}  // namespace maas

namespace maas {
namespace {

// Train -> checkpoint (format 2: widths) -> export -> careful loader, for every registered
// architecture, narrowed (model.width) so it runs in seconds: the whole path, not only cnn.
class ExportEveryArchitecture : public ::testing::TestWithParam<std::string> {};

TEST_P(ExportEveryArchitecture, TrainsExportsAndLoadsWithItsWidths) {
  TempDir data, run;
  testing::write_tiny_cifar(data.path(), 20, 100);
  RunConfig config;
  config.data.root = data.path();
  config.model.name = GetParam();
  config.model.width = 0.125;
  config.train.epochs = 1;
  config.train.batch_size = 16;
  config.train.threads = 1;
  train(config, run.file("run"), false, {});

  const CheckpointReader checkpoint(best_checkpoint_path(run.file("run")));
  EXPECT_EQ(checkpoint.meta().model, config.model);
  auto restored = checkpoint.load_model();
  bool trained_statistics = true;  // BatchNorm running means left their initial zeros and were saved
  for (const auto& b : restored->named_buffers())
    if (b.key().find("running_mean") != std::string::npos) trained_statistics &= b.value().abs().sum().item<double>() > 0;
  EXPECT_TRUE(trained_statistics);

  for (const auto weights : {WeightFormat::kFloat32, WeightFormat::kInt8}) {
    SCOPED_TRACE(to_string(weights));
    ExportOptions o;
    o.run_dir = run.file("run");
    o.out = run.file(std::string(to_string(weights)) + ".pt");
    o.weights = weights;
    o.optimize = weights == WeightFormat::kFloat32;
    o.max_accuracy_drop = 1.0;  // the path is under test here, not int8's accuracy on 100 images
    const ExportReport report = export_run(o, nullptr);
    if (weights == WeightFormat::kFloat32) EXPECT_LE(report.max_abs_diff, 1e-4);
    const Artifact artifact = load_artifact(o.out);
    const auto metadata = nlohmann::json::parse(artifact.info.metadata_json);
    EXPECT_EQ(metadata["format_version"], kArtifactFormatVersion);
    EXPECT_EQ(metadata["model"]["widths"].get<std::vector<int64_t>>(), resolved_widths(config.model));
    EXPECT_EQ(metadata["model"]["options"]["width"].get<double>(), 0.125);
    EXPECT_GT(metadata["model"]["macs_per_image"].get<int64_t>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, ExportEveryArchitecture, ::testing::ValuesIn(architecture_names()));

}  // namespace
}  // namespace maas
