// ONNX export: every architecture converts from its traced graph, passes the checker (C++ and
// Python), and computes LibTorch's logits in ONNX Runtime; what cannot convert is refused by name.
#include <gtest/gtest.h>

#include <torch/csrc/jit/ir/irparser.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.h"
#include "dataset.h"
#include "exporter.h"
#include "files.h"
#include "onnx_builder.h"
#include "onnx_runtime.h"
#include "test_util.h"
#include "tiny_run.h"
#include "torchscript_builder.h"
#include "trainer.h"
#include "tta.h"

namespace maas {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::error_of;
using testing::run_command;

bool have_python_onnx() { return std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0; }

std::map<std::string, std::string> metadata_props(const onnx::ModelProto& model) {
  std::map<std::string, std::string> props;
  for (const auto& p : model.metadata_props()) props[p.key()] = p.value();
  return props;
}

onnx::ModelProto read_onnx(const std::string& path) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(read_text(path))) << path;
  return model;
}

// Eight test images: CIFAR-10's real ones when the data is there (tests/run fetches it), else the
// generated set's (said in the test's output).
torch::Tensor eight_real_images(const ImageSet& generated) {
  const std::string cifar = testing::shared_cifar_dir();
  if (cifar.empty()) {
    std::cout << "[ INFO     ] CIFAR-10 not found: using generated images as the real ones\n";
    return generated.images.slice(0, 0, 8);
  }
  return load_dataset("cifar10", cifar, Split::kTest).head(8).images;
}

// A trained one-epoch run of one architecture, narrowed to 1/8 of its widths: seconds to train.
class OnnxEveryArchitecture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string missing = onnx_runtime_unavailable({});
    if (!missing.empty()) GTEST_SKIP() << "ONNX Runtime unavailable: " << missing;
    testing::write_tiny_cifar(data_.path(), 20, 40);
    config_.data.root = data_.path();
    config_.model.name = GetParam();
    config_.model.width = 0.125;
    config_.train.epochs = 1;
    config_.train.batch_size = 16;
    config_.train.threads = 1;
    train(config_, run_dir(), false, {});
  }
  std::string run_dir() const { return run_.file("run"); }
  TempDir data_, run_;
  RunConfig config_;
};

TEST_P(OnnxEveryArchitecture, ConvertsChecksAndMatchesLibTorchInOnnxRuntime) {
  const CheckpointReader checkpoint(best_checkpoint_path(run_dir()));
  auto model = checkpoint.load_model();
  model->eval();
  const Normalization& norm = checkpoint.meta().normalization;
  const ImageSet test_set = load_dataset("cifar10", data_.path(), Split::kTest);

  for (const TtaMode tta : {TtaMode::kNone, TtaMode::kFlipTranslate}) {
    SCOPED_TRACE(tta_mode_name(tta));
    ExportOptions o;
    o.run_dir = run_dir();
    o.out = run_.file(tta_mode_name(tta) + ".onnx");
    o.format = ArtifactFormat::kOnnx;
    o.tta = tta;
    std::ostringstream log;
    const ExportReport report = export_run(o, &log);
    EXPECT_FALSE(report.onnx_runtime.empty()) << log.str();
    EXPECT_LE(report.max_abs_diff, 1e-4) << log.str();
    EXPECT_EQ(report.verified_images, test_set.size() + 8);
    EXPECT_NE(log.str().find("onnx::checker (full check)"), std::string::npos) << log.str();

    // The file on disk: IR 8 / opset 17, uint8 [N, 3, 32, 32] in, [N, 10] out, metadata round-trips.
    const onnx::ModelProto onnx_model = read_onnx(o.out);
    EXPECT_EQ(onnx_model.ir_version(), 8);
    EXPECT_EQ(onnx_model.opset_import(0).version(), 17);
    const auto& input = onnx_model.graph().input(0).type().tensor_type();
    EXPECT_EQ(input.elem_type(), onnx::TensorProto::UINT8);
    EXPECT_EQ(input.shape().dim(0).dim_param(), "N");
    EXPECT_EQ(input.shape().dim(1).dim_value(), 3);
    auto props = metadata_props(onnx_model);
    EXPECT_EQ(props["architecture"], GetParam());
    EXPECT_EQ(json::parse(props["widths"]).get<std::vector<int64_t>>(), resolved_widths(config_.model));
    EXPECT_EQ(json::parse(props["classes"]).get<std::vector<std::string>>(), testing::kCifar10Classes);
    EXPECT_EQ(json::parse(props["normalization"])["mean"].get<std::vector<double>>(), norm.mean);
    EXPECT_EQ(json::parse(props["normalization"])["std"].get<std::vector<double>>(), norm.std);
    EXPECT_EQ(props["maas_version"], MAAS_VERSION);
    EXPECT_EQ(props["tta"], tta_mode_name(tta));
    EXPECT_DOUBLE_EQ(json::parse(props["test_accuracy"]).get<double>(), report.trained_test_acc);
    EXPECT_EQ(json::parse(props["maas.metadata"])["verification"]["runtime"], "onnxruntime-node " + report.onnx_runtime);

    // BatchNorm folded into the convolution it follows: none reads a Conv's output.
    std::map<std::string, std::string> producer;
    for (const auto& node : onnx_model.graph().node()) producer[node.output(0)] = node.op_type();
    for (const auto& node : onnx_model.graph().node()) {
      if (node.op_type() == "BatchNormalization") EXPECT_NE(producer[node.input(0)], "Conv") << node.name();
    }

    // Python's checker, full check (strict shape inference), on the same file.
    if (have_python_onnx()) {
      const std::string check_log = run_.file("check.txt");
      EXPECT_EQ(run_command("/usr/bin/python3 -c \"import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), "
                            "full_check=True)\" " + o.out, check_log), 0) << read_text(check_log);
    } else if (std::getenv("MAAS_REQUIRE_ALL_TESTS")) {
      ADD_FAILURE() << "python3-onnx is missing (.ci/install-deps installs it)";
    }

    // ONNX Runtime vs LibTorch on random and real images, at batches 1 and 7.
    torch::manual_seed(3);
    const std::string bytes = read_text(o.out);
    for (const auto& [name, images] : {std::pair{"random", torch::randint(0, 256, {8, 3, 32, 32}, torch::kUInt8)},
                                       std::pair{"real", eight_real_images(test_set)}}) {
      SCOPED_TRACE(name);
      torch::NoGradGuard no_grad;
      const auto got = run_onnx_runtime(bytes, images, {1, 7}).logits;
      auto libtorch = [&](const torch::Tensor& pixels) {
        return tta_logits([&](const torch::Tensor& x) { return model->forward(x); }, norm.apply(pixels), tta);
      };
      const auto expected = torch::cat({libtorch(images.slice(0, 0, 1)), libtorch(images.slice(0, 1, 8))});
      EXPECT_LE((expected - got).abs().max().item<double>(), 1e-4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, OnnxEveryArchitecture, ::testing::ValuesIn(architecture_names()));

// A classifier with an operator maas has no conversion for.
class SigmoidNetImpl : public ClassifierImpl {
 public:
  SigmoidNetImpl() { fc_ = register_module("fc", torch::nn::Linear(3 * 32 * 32, 10)); }
  torch::Tensor forward(torch::Tensor x) override { return torch::sigmoid(fc_->forward(x.flatten(1))); }

 private:
  torch::nn::Linear fc_{nullptr};
};

TEST(OnnxConversion, AnOperatorWithoutAConversionIsRefusedByName) {
  const ModelSpec spec{3, 32, 32, 10};
  SigmoidNetImpl net;
  const auto module = build_torchscript(net, "sigmoid", spec, Normalization{{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}},
                                        std::vector<std::string>(10, "c"));
  const auto graph = onnx_ready_graph(module, spec);
  try {
    graph_to_onnx(*graph, spec);
    FAIL() << "aten::sigmoid was converted";
  } catch (const OnnxConversionError& e) {
    EXPECT_NE(std::string(e.what()).find("operator aten::sigmoid has no ONNX conversion"), std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
  }
  // An operator's unconvertible form is named too, not approximated.
  auto tanh_gelu = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(R"IR(
graph(%images : Tensor):
  %approximate : str = prim::Constant[value="tanh"]()
  %y : Tensor = aten::gelu(%images, %approximate)
  return (%y))IR", tanh_gelu.get());
  EXPECT_NE(error_of([&] { graph_to_onnx(*tanh_gelu, spec); }).find("aten::gelu with approximate='tanh'"),
            std::string::npos);
}

TEST(OnnxConversion, TheConvertedGraphPassesTheChecker) {
  // No runtime needed: the seed CNN's graph converts and the C++ checker (full) accepts it.
  torch::manual_seed(5);
  const ModelSpec spec{3, 32, 32, 10};
  auto model = make_model("cnn", spec);
  const auto module = build_torchscript(*model, "cnn", spec, Normalization{{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}},
                                        std::vector<std::string>(10, "c"), TtaMode::kFlip);
  const auto onnx_model = graph_to_onnx(*onnx_ready_graph(module, spec), spec, {{"k", "v"}});
  EXPECT_NO_THROW(check_onnx_model(onnx_model, spec));
  EXPECT_EQ(metadata_props(onnx_model)["k"], "v");
  // A model whose output is not [N, classes] is refused by the check.
  EXPECT_NE(error_of([&] { check_onnx_model(onnx_model, ModelSpec{3, 32, 32, 7}); }).find("[N, 7]"),
            std::string::npos);
}

// A tiny trained seed-CNN run for the CLI and failure cases.
class OnnxExportTest : public ::testing::Test {
 protected:
  std::string run_dir() const { return tiny_.run_dir(); }
  ExportOptions options(const std::string& out_name) const {
    ExportOptions o = tiny_.export_options(out_name);
    o.format = ArtifactFormat::kOnnx;
    return o;
  }
  testing::TinyTrainedRun tiny_{40};
  TempDir& out_ = tiny_.out;
};

TEST_F(OnnxExportTest, WithoutOnnxRuntimeTheCheckIsSkippedAndSaid) {
  TempDir empty;  // the script without the npm package, as before `npm ci` ran there
  testing::write_bytes(empty.file("run.mjs"), read_text(OnnxRuntimeOptions{}.package_dir + "/run.mjs"));
  auto o = options("model.onnx");
  o.onnx_runtime.package_dir = empty.path();
  std::ostringstream log;
  const ExportReport report = export_run(o, &log);
  EXPECT_TRUE(report.onnx_runtime.empty());
  EXPECT_NE(report.onnx_runtime_skipped.find("onnxruntime-node is not installed in " + empty.path()), std::string::npos);
  EXPECT_NE(log.str().find("ONNX Runtime check skipped: "), std::string::npos) << log.str();
  const auto props = metadata_props(read_onnx(o.out));
  EXPECT_EQ(json::parse(props.at("maas.metadata"))["verification"]["runtime"].get<std::string>().rfind("skipped: ", 0),
            0u);
  EXPECT_NE(onnx_runtime_unavailable({"no-such-node-binary-here", OnnxRuntimeOptions{}.package_dir, 10})
                .find("Node.js ('no-such-node-binary-here') is not installed"),
            std::string::npos);
}

TEST_F(OnnxExportTest, AFailedVerificationWritesNothing) {
  if (!onnx_runtime_unavailable({}).empty()) GTEST_SKIP() << onnx_runtime_unavailable({});
  auto o = options("model.onnx");
  testing::write_bytes(o.out, "the previous file");
  o.max_abs_diff = -1;  // nothing can pass
  EXPECT_NE(error_of([&] { export_run(o, nullptr); }).find("verification failed: ONNX Runtime's logits differ"),
            std::string::npos);
  EXPECT_EQ(read_text(o.out), "the previous file");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(out_.path()), {}), 1) << "a temp file was left";
}

TEST_F(OnnxExportTest, CliExportsAndRefusesWhatOnnxCannotDo) {
  const std::string exporter = std::string(MAAS_BINARY_DIR) + "/maas-export --run " + run_dir() + " --out ";
  const std::string log = out_.file("log.txt");
  auto one_line = [&](const std::string& expected) {
    const std::string text = read_text(log);
    EXPECT_NE(text.find(expected), std::string::npos) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  };
  EXPECT_EQ(run_command(exporter + out_.file("a.onnx") + " --format tflite", log), 2);
  one_line("--format takes torchscript or onnx, got 'tflite'");
  EXPECT_EQ(run_command(exporter + out_.file("a.onnx") + " --format onnx --quantize int8", log), 2);
  one_line("--quantize int8 with --format onnx is not available yet");
  EXPECT_EQ(run_command(exporter + out_.file("a.pt") + " --onnxruntime-dir /tmp", log), 2);
  one_line("--onnxruntime-dir applies to --format onnx only");
  EXPECT_FALSE(std::filesystem::exists(out_.file("a.onnx")));
  EXPECT_FALSE(std::filesystem::exists(out_.file("a.pt")));

  // The library refuses the same combination (one line, std::invalid_argument: exit 2 at the edge).
  auto int8 = options("b.onnx");
  int8.weights = WeightFormat::kInt8;
  EXPECT_THROW(export_run(int8, nullptr), std::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(out_.file("b.onnx")));

  EXPECT_EQ(run_command(exporter + out_.file("model.onnx") + " --format onnx --samples " + out_.file("samples"), log), 0)
      << read_text(log);
  EXPECT_TRUE(std::filesystem::exists(out_.file("model.onnx")));
  EXPECT_TRUE(std::filesystem::exists(out_.file("samples/cat.png")));
  if (onnx_runtime_unavailable({}).empty()) {
    EXPECT_NE(read_text(log).find("ONNX Runtime 1."), std::string::npos) << read_text(log);
  }
}

}  // namespace
}  // namespace maas
