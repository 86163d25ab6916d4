// Model registry: shapes, parameter and MAC counts, options; the golden test of every architecture's
// traced artifact against its C++ forward (in C++, frozen + optimized, and in Debian's Python torch).
#include <gtest/gtest.h>

#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>

#include <cstdlib>
#include <fstream>

#include "artifact.h"
#include "config.h"
#include "models.h"
#include "quantize.h"
#include "test_util.h"
#include "torchscript_loader.h"
#include "torchscript_builder.h"

namespace maas {
namespace {

using testing::error_of;
using testing::TempDir;

TEST(Models, SeedCnnHasTheSeedShapeParameterAndMacCount) {
  auto model = make_model("cnn", {3, 32, 32, 10});
  EXPECT_EQ(parameter_count(*model), 122570);
  // conv1 30*30*32*27 + conv2 13*13*64*288 + conv3 4*4*64*576 + fc1 1024*64 + fc2 64*10
  EXPECT_EQ(macs_per_image(*model, {3, 32, 32, 10}), 777600 + 3115008 + 589824 + 65536 + 640);
  EXPECT_EQ(model->forward(torch::randn({5, 3, 32, 32})).sizes(), torch::IntArrayRef({5, 10}));
  // Same weights, channels-last input: same logits.
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(model->forward(x), model->forward(x.contiguous(torch::MemoryFormat::ChannelsLast)),
                              1e-5, 1e-5));
  const std::string summary = model_summary(*model, {3, 32, 32, 10});
  EXPECT_NE(summary.find("122570"), std::string::npos) << summary;
  EXPECT_NE(summary.find("4548608"), std::string::npos) << summary;
}

TEST(Models, ResNet9IsPagesNetwork) {
  auto model = make_model("resnet9", {3, 32, 32, 10});
  // convs 3*64*9 + 64*128*9 + 2*128*128*9 + 128*256*9 + 256*512*9 + 2*512*512*9, fc 512*10, BN 2*2240
  EXPECT_EQ(parameter_count(*model), 6573120);
  // The same convolutions' MACs at their resolutions: 32x32 (prep, layer1), 16x16, 16x16, 8x8, 4x4.
  const int64_t expected = 1024 * 64 * 27 + 1024 * 128 * 576 + 2 * 256 * 128 * 1152 + 256 * 256 * 1152 +
                           64 * 512 * 2304 + 2 * 16 * 512 * 4608 + 5120;
  EXPECT_EQ(macs_per_image(*model, {3, 32, 32, 10}), expected);
  EXPECT_TRUE(model->is_training());  // counting MACs leaves the mode alone
}

TEST(Models, WidthsAndTheWidthMultiplierBuildThatNetwork) {
  ModelOptions options;
  options.name = "airbench";
  options.widths = {8, 16, 16};
  options.width = 0.5;
  EXPECT_EQ(resolved_widths(options), (std::vector<int64_t>{4, 8, 8}));
  auto model = make_model(options, {3, 32, 32, 10});
  EXPECT_EQ(model->forward(torch::randn({2, 3, 32, 32})).sizes(), torch::IntArrayRef({2, 10}));
  ModelOptions defaults;
  defaults.name = "airbench";
  EXPECT_LT(parameter_count(*model), parameter_count(*make_model(defaults, {3, 32, 32, 10})));
}

TEST(Models, BadOptionsAndSpecsAreErrorsNamingTheKey) {
  EXPECT_THROW(make_model("cnn", {3, 16, 16, 10}), std::invalid_argument);
  EXPECT_THROW(make_model("resnet9", {3, 7, 7, 10}), std::invalid_argument);
  EXPECT_THROW(make_model("airbench", {3, 8, 8, 10}), std::invalid_argument);
  EXPECT_NE(error_of([] { make_model("nope", {3, 32, 32, 10}); }).find("key 'model.name'"), std::string::npos);
  ModelOptions options;
  options.name = "resnet9";
  options.widths = {64, 128};
  const std::string wrong_count = error_of([&] { make_model(options, {3, 32, 32, 10}); });
  EXPECT_NE(wrong_count.find("key 'model.widths'"), std::string::npos) << wrong_count;
  EXPECT_NE(wrong_count.find("takes 4 widths"), std::string::npos) << wrong_count;
  options.widths = {};
  options.width = 0;
  EXPECT_NE(error_of([&] { make_model(options, {3, 32, 32, 10}); }).find("key 'model.width'"), std::string::npos);
}

// Random, non-default BatchNorm state (running statistics, scale, shift): an export that ignored
// or mis-named a buffer would then give other logits.
void randomize_batch_norms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& module : model.modules()) {
    auto* bn = module->as<torch::nn::BatchNorm2d>();
    if (!bn) continue;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.normal_(0, 0.2);
    bn->running_mean.normal_(0, 0.2);
    bn->running_var.uniform_(0.5, 2.0);
  }
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

void write_tensor(const std::string& path, const torch::Tensor& t) {
  const auto c = t.contiguous();
  testing::write_bytes(path, std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
}

// Each registered architecture with random weights and BatchNorm state, in eval mode.
class EveryArchitecture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    model_ = make_model(GetParam(), spec_);
    randomize_batch_norms(*model_);
    model_->eval();
  }
  const ModelSpec spec_{3, 32, 32, 10};
  const Normalization norm_{{0.49, 0.48, 0.45}, {0.25, 0.24, 0.26}};
  const std::vector<std::string> classes_ = std::vector<std::string>(10, "c");
  std::shared_ptr<ClassifierImpl> model_;
};

// llm.c-style golden test: the traced artifact against the C++ forward it came from.
TEST_P(EveryArchitecture, TracedArtifactComputesTheCppForward) {
  torch::NoGradGuard no_grad;
  auto& model = model_;
  // Built from a model in training mode: traced in eval mode all the same, and left training.
  model->train();
  auto module = build_torchscript(*model, GetParam(), spec_, norm_, classes_);
  EXPECT_TRUE(model->is_training());
  model->eval();
  auto frozen = torch::jit::freeze(module.clone());
  frozen = torch::jit::optimize_for_inference(frozen);
  TempDir dir;
  for (int64_t batch : {1, 7, 64}) {
    const auto pixels = torch::randint(0, 256, {batch, 3, 32, 32}, torch::kUInt8);
    const auto expected = model->forward(norm_.apply(pixels));
    EXPECT_LE(max_diff(module.forward({pixels}).toTensor(), expected), 1e-5) << "batch " << batch;
    EXPECT_LE(max_diff(frozen.forward({pixels}).toTensor(), expected), 1e-4) << "frozen, batch " << batch;
    write_tensor(dir.file("pixels" + std::to_string(batch) + ".bin"), pixels);
    write_tensor(dir.file("logits" + std::to_string(batch) + ".bin"), expected);
  }
  // The module holds copies: changing the C++ model's weights and statistics leaves it alone.
  EXPECT_FALSE(module.attr("training").toBool());
  const auto probe = torch::randint(0, 256, {2, 3, 32, 32}, torch::kUInt8);
  const auto before = module.forward({probe}).toTensor();
  for (auto& t : model->parameters()) t.add_(0.5);
  for (auto& t : model->buffers()) t.add_(1);
  EXPECT_TRUE(torch::equal(module.forward({probe}).toTensor(), before));
  std::ofstream(dir.file("names.txt")) << [&] {
    std::string names;
    for (const auto& p : model->named_parameters()) names += p.key() + "\n";
    for (const auto& b : model->named_buffers()) names += b.key() + "\n";
    return names;
  }();
  save_artifact(module, "{}", dir.file("model.pt"));
  // maas-serve's careful loader accepts it: every traced operator is on its allowlist.
  torch::jit::ExtraFilesMap extra;
  EXPECT_NO_THROW(load_torchscript(read_torchscript_file(dir.file("model.pt")), "model.pt", extra));

  const char* python = "/usr/bin/python3";
  if (std::system((std::string(python) + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  testing::write_bytes(dir.file("check.py"), R"(import sys, torch
d = sys.argv[1]
m = torch.jit.load(d + "/model.pt")
# the state dict is the C++ module's (plus the normalization buffers of the wrapper)
names = set(open(d + "/names.txt").read().split())
got = set(m.state_dict().keys()) - {"pixel_scale", "pixel_shift"}
assert got == names, (sorted(got ^ names))
for batch in (1, 7, 64):
    pixels = torch.frombuffer(bytearray(open(d + "/pixels%d.bin" % batch, "rb").read()), dtype=torch.uint8)
    want = torch.frombuffer(bytearray(open(d + "/logits%d.bin" % batch, "rb").read()), dtype=torch.float32)
    with torch.no_grad():
        out = m(pixels.reshape(batch, 3, 32, 32))
    diff = (out - want.reshape(batch, 10)).abs().max().item()
    assert diff <= 1e-5, (batch, diff)
print("python ok")
)");
  EXPECT_EQ(std::system((std::string(python) + " " + dir.file("check.py") + " " + dir.path()).c_str()), 0);
}

// Static int8 (export/quantize.h): every architecture gets int8 convolutions, only operators the
// careful loader accepts, and logits near its float32 ones.
TEST_P(EveryArchitecture, StaticInt8RunsInt8ConvolutionsTheLoaderAccepts) {
  torch::NoGradGuard no_grad;
  auto& model = model_;
  auto module = build_torchscript(*model, GetParam(), spec_, norm_, classes_);
  torch::manual_seed(6);
  const auto calibration = torch::randint(0, 256, {64, 3, 32, 32}, torch::kUInt8);
  QuantizedModule int8 = quantize_static(module, calibration);
  EXPECT_GE(int8.quantized_convolutions, 3);
  EXPECT_EQ(count_nodes(int8.module, "aten::conv2d") + count_nodes(int8.module, "aten::_convolution"), 0);
  // Saved and loaded: the file holds only what the module uses (not the observers' classes).
  EXPECT_NO_THROW(load_artifact_from_bytes(artifact_bytes(int8.module, testing::minimal_metadata(classes_, GetParam())),
                                           GetParam()));
  const auto pixels = torch::randint(0, 256, {16, 3, 32, 32}, torch::kUInt8);
  const auto expected = model->forward(norm_.apply(pixels));
  const auto got = int8.module.forward({pixels}).toTensor();
  EXPECT_LE(max_diff(got, expected), 0.15 * expected.abs().max().item<double>() + 1e-2);
  EXPECT_NO_THROW(module.forward({pixels})) << "quantize_static changed its input module";
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryArchitecture, ::testing::ValuesIn(architecture_names()));

}  // namespace
}  // namespace maas
