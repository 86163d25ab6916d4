// The TorchScript loader: planted archives are refused before their code runs; real ones load.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <future>
#include <sstream>

#include "artifact.h"
#include "torchscript_builder.h"
#include "checkpoint.h"
#include "config.h"
#include "exporter.h"
#include "files.h"
#include "models.h"
#include "quantize.h"
#include "repository.h"
#include "test_util.h"
#include "trainer.h"
#include "torchscript_loader.h"

namespace maas {
namespace {
namespace fs = std::filesystem;

using testing::error_of;

std::string valid_metadata() { return testing::minimal_metadata({"a", "b"}); }

// A TorchScript file whose module defines `methods` (TorchScript source), saved with valid maas
// metadata so only the loader's policy stands between it and serving.
std::string planted_archive(const std::string& methods) {
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module m(c10::QualifiedName("__torch__.planted.Planted"), cu, /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define(methods);
  std::ostringstream out;
  m.save(out, {{kMetadataFile, valid_metadata()}});
  return out.str();
}

// __setstate__ runs inside torch::jit::load: here it grows `marker` (an empty file) to 32 bytes
// through torch.from_file(shared=True), which is how such a file writes to disk.
std::string setstate_archive(const std::string& marker) {
  return planted_archive(
      "def __getstate__(self) -> bool:\n"
      "    return self.training\n"
      "def __setstate__(self, state: bool) -> None:\n"
      "    x = torch.from_file('" + marker + "', True, 8)\n"
      "    self.training = state and x.numel() == 8\n"
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    return images.float()\n");
}

TEST(TorchScriptLoader, AnInterpreterErrorIsReducedToItsCause) {
  EXPECT_EQ(interpreter_error_cause("The following operation failed in the TorchScript interpreter.\n"
                                    "Traceback of TorchScript, serialized code (most recent call last):\n"
                                    "  File \"code/__torch__/maas.py\", line 155, in forward\n"
                                    "RuntimeError: Input type (CPUFloatType) and weight type (CPUBFloat16Type)\n"),
            "RuntimeError: Input type (CPUFloatType) and weight type (CPUBFloat16Type)");
  EXPECT_EQ(interpreter_error_cause("one line"), "one line");
  EXPECT_EQ(interpreter_error_cause(std::string(1000, 'x')).size(), 300u);
  EXPECT_EQ(interpreter_error_cause("\n \n"), "");
}

TEST(TorchScriptLoader, SetstateIsRefusedBeforeItRuns) {
  testing::TempDir dir;
  const std::string marker = dir.file("marker");
  testing::write_bytes(marker, "");
  const std::string bytes = setstate_archive(marker);
  const std::string error = error_of([&] { load_artifact_from_bytes(bytes, "planted.pt"); });
  EXPECT_NE(error.find("planted.pt: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("__setstate__"), std::string::npos) << error;
  EXPECT_EQ(fs::file_size(marker), 0u) << "the archive's __setstate__ ran";
  // The same through a file.
  testing::write_bytes(dir.file("planted.pt"), bytes);
  EXPECT_NE(error_of([&] { load_artifact(dir.file("planted.pt")); }).find("__setstate__"), std::string::npos);
  EXPECT_EQ(fs::file_size(marker), 0u) << "the archive's __setstate__ ran";
}

TEST(TorchScriptLoader, ForwardReadingAFileIsRefusedNamingTheOp) {
  const std::string bytes = planted_archive(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    leak = torch.from_file('/etc/passwd', False, 20, dtype=0)  # 0: uint8\n"
      "    return leak.float().view(10, 2)\n");
  const std::string error = error_of([&] { load_artifact_from_bytes(bytes, "leak.pt"); });
  EXPECT_NE(error.find("leak.pt: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("aten::from_file"), std::string::npos) << error;
  EXPECT_NE(error.find("forward"), std::string::npos) << error;
}

TEST(TorchScriptLoader, LoopsAreRefused) {
  const std::string bytes = planted_archive(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    x = images.float()\n"
      "    while True:\n"
      "        x = x + 1.0\n"
      "    return x\n");
  const std::string error = error_of([&] { load_artifact_from_bytes(bytes, "spin.pt"); });
  EXPECT_NE(error.find("spin.pt: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("prim::Loop"), std::string::npos) << error;
}

TEST(TorchScriptLoader, CodeInAHelperMethodIsRefusedToo) {
  const std::string bytes = planted_archive(
      "def helper(self) -> Tensor:\n"
      "    print('hello')\n"
      "    return torch.zeros(1)\n"
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    return images.float() + self.helper()\n");
  const std::string error = error_of([&] { load_artifact_from_bytes(bytes, "print.pt"); });
  EXPECT_NE(error.find("prim::Print"), std::string::npos) << error;
  EXPECT_NE(error.find("helper"), std::string::npos) << error;
}

TEST(TorchScriptLoader, UnexpectedRecordsAreRefused) {
  // Mobile bytecode is a record kind maas never writes.
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module m(c10::QualifiedName("__torch__.planted.Mobile"), cu, true);
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define("def forward(self, images: Tensor) -> Tensor:\n    return images.float()\n");
  std::ostringstream out;
  m.save(out, {{kMetadataFile, valid_metadata()}});
  const std::string plain = out.str();
  EXPECT_NO_THROW(load_artifact_from_bytes(plain, "plain.pt"));
  std::ostringstream mobile;
  m._save_for_mobile(mobile, {{kMetadataFile, valid_metadata()}});
  const std::string error = error_of([&] { load_artifact_from_bytes(mobile.str(), "mobile.pt"); });
  EXPECT_NE(error.find("mobile.pt: refused: unexpected record"), std::string::npos) << error;
}

TEST(TorchScriptLoader, SizeAndRecordLimits) {
  const std::string bytes = testing::random_cnn_artifact(1, {"a", "b"});
  TorchScriptLoadOptions small;
  small.max_file_bytes = bytes.size() - 1;
  EXPECT_NE(error_of([&] { load_artifact_from_bytes(bytes, "big.pt", small); }).find("big.pt: refused"),
            std::string::npos);
  TorchScriptLoadOptions few;
  few.max_records = 3;
  EXPECT_NE(error_of([&] { load_artifact_from_bytes(bytes, "many.pt", few); }).find("records"), std::string::npos);
  TorchScriptLoadOptions tight;
  tight.max_uncompressed_bytes = 1000;
  EXPECT_NE(error_of([&] { load_artifact_from_bytes(bytes, "wide.pt", tight); }).find("uncompressed"),
            std::string::npos);
  // Garbage and a truncated file are unreadable, not refused.
  EXPECT_NE(error_of([&] { load_artifact_from_bytes("junk", "junk.pt"); }).find("not a readable TorchScript"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_artifact_from_bytes(bytes.substr(0, bytes.size() / 2), "cut.pt"); })
                .find("not a readable TorchScript"),
            std::string::npos);
}

TEST(TorchScriptLoader, RealArtifactsLoadAsExportedFrozenAndInt8) {
  const std::vector<std::string> classes{"a", "b", "c"};
  Artifact plain = load_artifact_from_bytes(testing::random_cnn_artifact(2, classes), "plain.pt");
  const auto images = torch::randint(0, 256, {2, 3, 32, 32}, torch::kUInt8);
  const auto expected = plain.module.forward({images}).toTensor();
  // --optimize saves a frozen module.
  const std::string frozen = artifact_bytes(torch::jit::freeze(plain.module), valid_metadata());
  EXPECT_TRUE(load_artifact_from_bytes(frozen, "frozen.pt").module.forward({images}).toTensor().allclose(expected));
  // --quantize int8: packed int8 weights (a custom C++ class the policy allows) and quantized::* ops.
  const ModelSpec spec{3, 32, 32, 3};
  auto model = make_model("cnn", spec);
  model->eval();
  const auto float32 = build_torchscript(*model, "cnn", spec, {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}}, classes);
  auto int8 = quantize_static(float32, torch::randint(0, 256, {32, 3, 32, 32}, torch::kUInt8)).module;
  const std::string int8_bytes = artifact_bytes(int8, valid_metadata());
  EXPECT_NE(int8_bytes.find("Conv2dPackedParamsBase"), std::string::npos);
  Artifact loaded = load_artifact_from_bytes(int8_bytes, "int8.pt");
  EXPECT_TRUE(loaded.module.forward({images}).toTensor().allclose(int8.forward({images}).toTensor(), 1e-5, 1e-5));
  // optimize_for_inference and freeze (the server's passes) work on what the loader returns.
  EXPECT_TRUE(torch::jit::optimize_for_inference(plain.module).forward({images}).toTensor().allclose(expected, 1e-4, 1e-4));
}

// int8 artifacts made the policy allow PyTorch's packed int8 weights; every other custom C++
// class is still refused before loading, and data-only files (checkpoints) may name none.
TEST(TorchScriptLoader, OtherCustomClassesAreStillRefused) {
  auto naming = [](const std::string& name) {
    return planted_archive(
        "def forward(self, images: Tensor) -> Tensor:\n"
        "    assert images.dim() == 4, '" + name + "'\n"
        "    return images.float()\n");
  };
  for (const std::string name : {"torch.classes.evil.Thing", "torch.classes.quantized.Conv2dPackedParamsBaseX",
                                 "torch.classes.quantized.EmbeddingPackedParamsBase", "torch.classes.quantized"}) {
    const std::string error = error_of([&] { load_artifact_from_bytes(naming(name), "custom.pt"); });
    EXPECT_NE(error.find("custom.pt: refused"), std::string::npos) << name << ": " << error;
    EXPECT_NE(error.find("custom C++ class (" + name), std::string::npos) << name << ": " << error;
  }
  // The allowed names pass this check (the text alone runs nothing).
  EXPECT_NO_THROW(load_artifact_from_bytes(naming("torch.classes.quantized.LinearPackedParamsBase"), "ok.pt"));
  TorchScriptLoadOptions data_only;
  data_only.allow_methods = false;
  const std::string error = error_of([&] {
    check_torchscript_archive(naming("torch.classes.quantized.LinearPackedParamsBase"), "ckpt.pt", data_only);
  });
  EXPECT_NE(error.find("ckpt.pt: refused"), std::string::npos) << error;
}

TEST(TorchScriptLoader, TracedConvNetFromPythonLoads) {
  // Issue 9 exports traced modules; Python's tracer makes one here (same graph ops as C++ tracing).
  const char* python = "/usr/bin/python3";
  if (std::system((std::string(python) + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "Debian's python3-torch is not installed (apt-get install python3-torch)";
  testing::TempDir dir;
  const std::string script = dir.file("trace.py");
  testing::write_bytes(script, R"(
import sys, torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(8 * 16 * 16, 10)
    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        x = x + x
        return self.fc(self.drop(torch.flatten(x, 1)))
torch.jit.trace(Net().eval(), torch.randn(2, 3, 32, 32)).save(sys.argv[1])
)");
  ASSERT_EQ(std::system((std::string(python) + " " + script + " " + dir.file("traced.pt")).c_str()), 0);
  torch::jit::ExtraFilesMap extra;
  auto module = load_torchscript(read_torchscript_file(dir.file("traced.pt")), "traced.pt", extra);
  EXPECT_EQ(module.forward({torch::rand({1, 3, 32, 32})}).toTensor().sizes(), torch::IntArrayRef({1, 10}));
}

TEST(TorchScriptLoader, AllowlistHasTracedConvNetOpsButNoLoopsOrFiles) {
  for (const char* kind : {"aten::_convolution", "aten::batch_norm", "aten::add", "aten::relu", "aten::max_pool2d",
                           "aten::linear", "aten::addmm", "aten::flatten", "prim::CallMethod", "prim::If"})
    EXPECT_TRUE(is_allowed_node_kind(kind)) << kind;
  for (const char* kind : {"prim::Loop", "aten::from_file", "aten::save", "prim::Print", "prim::CallFunction",
                           "prim::PythonOp", "prim::SetAttr", "prim::CreateObject", "aten::wait", "prim::fork"})
    EXPECT_FALSE(is_allowed_node_kind(kind)) << kind;
}

TEST(RunWithDeadline, ReturnsResultsAndRethrows) {
  EXPECT_EQ(run_with_deadline<int>([] { return 7; }, std::chrono::milliseconds(60000), "seven"), 7);
  EXPECT_THROW(run_with_deadline<int>([]() -> int { throw std::invalid_argument("bad"); },
                                      std::chrono::milliseconds(60000), "bad"),
               std::invalid_argument);
}

TEST(RunWithDeadline, WorkThatDoesNotFinishFailsAndIsAbandoned) {
  // The work cannot finish before the test releases it, so the deadline must expire first.
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = release->get_future().share();
  auto finished = std::make_shared<std::promise<void>>();
  std::future<void> done = finished->get_future();
  const std::string error = error_of([&] {
    run_with_deadline<int>(
        [released, finished] {
          released.wait();
          finished->set_value();
          return 1;
        },
        std::chrono::milliseconds(1), "stuck.pt: loading");
  });
  EXPECT_NE(error.find("stuck.pt: loading did not finish within 1 ms"), std::string::npos) << error;
  release->set_value();
  done.wait();  // the abandoned thread still owns what it captured and ends normally
}

TEST(RunWithDeadline, ZeroDeadlineFailsLoadsAtOnce) {
  TorchScriptLoadOptions none;
  none.deadline = std::chrono::milliseconds(0);
  const std::string error =
      error_of([&] { load_artifact_from_bytes(testing::random_cnn_artifact(1, {"a", "b"}), "slow.pt", none); });
  EXPECT_NE(error.find("slow.pt: loading did not finish"), std::string::npos) << error;
}

// A planted checkpoint runs its code inside InputArchive::load_from unless the reader vets it.
TEST(CheckpointLoader, PlantedLastPtIsRefusedBeforeItRuns) {
  testing::TempDir dir;
  const std::string marker = dir.file("marker");
  testing::write_bytes(marker, "");
  testing::write_bytes(last_checkpoint_path(dir.path()), setstate_archive(marker));
  const std::string error = error_of([&] { CheckpointReader reader(last_checkpoint_path(dir.path())); });
  EXPECT_NE(error.find("last.pt: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("__setstate__"), std::string::npos) << error;
  EXPECT_EQ(fs::file_size(marker), 0u) << "the checkpoint's __setstate__ ran";
  // A checkpoint holds only data: any method at all is refused.
  testing::write_bytes(dir.file("code.pt"), planted_archive("def forward(self, x: Tensor) -> Tensor:\n    return x\n"));
  const std::string code_error = error_of([&] { CheckpointReader reader(dir.file("code.pt")); });
  EXPECT_NE(code_error.find("code.pt: refused: defines code"), std::string::npos) << code_error;
}

// maas-export and maas-train --resume read checkpoints through CheckpointReader: both refuse.
TEST(CheckpointLoader, ExportAndResumeRefuseAPlantedCheckpoint) {
  testing::TempDir data, run;
  testing::write_tiny_cifar(data.path(), 4, 4);
  testing::write_bytes(run.file("config.yaml"), read_text(std::string(MAAS_SOURCE_DIR) + "/configs/cifar10_cnn.yaml"));
  const std::string marker = data.file("marker");
  testing::write_bytes(marker, "");
  testing::write_bytes(best_checkpoint_path(run.path()), setstate_archive(marker));
  testing::write_bytes(last_checkpoint_path(run.path()), setstate_archive(marker));
  ExportOptions options;
  options.run_dir = run.path();
  options.out = data.file("model.pt");
  const std::string export_error = error_of([&] { export_run(options, nullptr); });
  EXPECT_NE(export_error.find("best.pt: refused"), std::string::npos) << export_error;
  const RunConfig config = load_run_config(run.file("config.yaml"), {"data.root=" + data.path(), "train.threads=1"});
  const std::string resume_error = error_of([&] { train(config, run.path(), /*resume=*/true, TrainHooks{}); });
  EXPECT_NE(resume_error.find("last.pt: refused"), std::string::npos) << resume_error;
  EXPECT_EQ(fs::file_size(marker), 0u) << "a planted checkpoint's __setstate__ ran";
  EXPECT_FALSE(fs::exists(options.out));
}

TEST(CheckpointLoader, RealCheckpointsStillLoad) {
  testing::TempDir dir;
  const ModelSpec spec{3, 32, 32, 10};
  torch::manual_seed(3);
  auto model = make_model("cnn", spec);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  CheckpointMeta meta;
  meta.model.name = "cnn";
  meta.spec = spec;
  meta.classes = std::vector<std::string>(10, "c");
  meta.normalization = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  meta.epoch = 2;
  save_checkpoint(dir.file("last.pt"), meta, *model, &adam);
  CheckpointReader reader(dir.file("last.pt"));
  EXPECT_EQ(reader.meta().epoch, 2);
  auto loaded = reader.load_model();
  EXPECT_TRUE(loaded->parameters()[0].equal(model->parameters()[0]));
  reader.restore_optimizer(adam);
}

BatchingOptions one_worker() {
  BatchingOptions o;
  o.max_batch_size = 1;
  o.max_queue_images = 1;
  o.instances = 1;
  o.threads_per_instance = 1;
  return o;
}

// DIR/<name>/<version>/model.pt entries that lead outside DIR through symlinks are refused.
class RepositoryPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    artifact_ = testing::random_cnn_artifact(4, {"a", "b"});
    fs::create_directories(repo_.file("good/1"));
    testing::write_bytes(repo_.file("good/1/model.pt"), artifact_);
    fs::create_directories(outside_.file("1"));
    testing::write_bytes(outside_.file("1/model.pt"), artifact_);
  }
  std::string artifact_;
  testing::TempDir repo_, outside_;
};

TEST_F(RepositoryPaths, NormalRepositoryLoads) {
  ModelRepository repository(repo_.path(), one_worker());
  repository.load_all();
  EXPECT_EQ(repository.get("good")->info().classes.size(), 2u);
  // A symlink within the repository stays inside: allowed.
  fs::create_directories(repo_.file("good/2"));
  fs::create_symlink("../1/model.pt", repo_.file("good/2/model.pt"));
  repository.load("good");
  EXPECT_EQ(repository.get("good")->version(), 2);
}

TEST_F(RepositoryPaths, SymlinkedModelFolderLeadingOutIsRefused) {
  fs::create_directory_symlink(outside_.path(), repo_.file("evil"));
  ModelRepository repository(repo_.path(), one_worker());
  const std::string error = error_of([&] { repository.load_all(); });
  EXPECT_NE(error.find("evil: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("outside the model repository"), std::string::npos) << error;
  EXPECT_THROW(repository.load("evil"), ArtifactError);
  EXPECT_THROW(repository.get("evil"), NotFound);
}

TEST_F(RepositoryPaths, SymlinkedVersionFolderLeadingOutIsRefused) {
  fs::create_directory_symlink(outside_.file("1"), repo_.file("good/2"));
  ModelRepository repository(repo_.path(), one_worker());
  const std::string error = error_of([&] { repository.load("good"); });
  EXPECT_NE(error.find("model.pt: refused"), std::string::npos) << error;
  EXPECT_NE(error.find("outside the model repository"), std::string::npos) << error;
}

TEST_F(RepositoryPaths, SymlinkedModelFileLeadingOutIsRefused) {
  fs::create_directories(repo_.file("good/2"));
  fs::create_symlink(outside_.file("1/model.pt"), repo_.file("good/2/model.pt"));
  ModelRepository repository(repo_.path(), one_worker());
  const std::string error = error_of([&] { repository.load("good"); });
  EXPECT_NE(error.find("good/2/model.pt: refused"), std::string::npos) << error;
}

TEST_F(RepositoryPaths, ExplicitFileMayBeASymlink) {
  // --model NAME=FILE names the file itself: following a symlink there is the user's choice.
  fs::create_symlink(outside_.file("1/model.pt"), repo_.file("link.pt"));
  ModelRepository repository("", one_worker());
  repository.add_file("m", repo_.file("link.pt"));
  EXPECT_EQ(repository.get("m")->version(), 1);
}

TEST_F(RepositoryPaths, LoadAndWarmUpHaveADeadline) {
  TorchScriptLoadOptions none;
  none.deadline = std::chrono::milliseconds(0);
  ModelRepository repository(repo_.path(), one_worker(), none);
  const std::string error = error_of([&] { repository.load_all(); });
  EXPECT_NE(error.find("model.pt: loading and warm-up did not finish"), std::string::npos) << error;
  EXPECT_THROW(repository.add_file("m", repo_.file("good/1/model.pt")), ArtifactError);
}

TEST_F(RepositoryPaths, PlantedArtifactInTheRepositoryIsRefused) {
  const std::string marker = outside_.file("marker");
  testing::write_bytes(marker, "");
  fs::create_directories(repo_.file("bad/1"));
  testing::write_bytes(repo_.file("bad/1/model.pt"), setstate_archive(marker));
  ModelRepository repository(repo_.path(), one_worker());
  EXPECT_NE(error_of([&] { repository.load("bad"); }).find("__setstate__"), std::string::npos);
  EXPECT_EQ(fs::file_size(marker), 0u);
}

}  // namespace
}  // namespace maas
