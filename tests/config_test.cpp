// Config loading: defaults, overrides, and one clear error per bad key or value.
#include <gtest/gtest.h>

#include <filesystem>

#include "config.h"
#include "models.h"
#include "test_util.h"

namespace maas {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_run_config(yaml, "cfg.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ParsesValuesAndOverrides) {
  const RunConfig c = parse_run_config("train:\n  epochs: 3\n  lr: 0.01\ndata:\n  root: /x\n", "cfg.yaml",
                                       {"train.epochs=1", "data.train_limit=2000", "train.channels_last=false"});
  EXPECT_EQ(c.train.epochs, 1);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.data.root, "/x");
  EXPECT_EQ(c.data.train_limit, 2000);
  EXPECT_FALSE(c.train.channels_last);
  EXPECT_EQ(c.train.batch_size, 32);  // default kept
}

TEST(Config, UnknownKeyNamesKeyFileAndLine) {
  const auto e = error_of("train:\n  epochs: 3\n  epoch: 4\n");
  EXPECT_NE(e.find("unknown key 'train.epoch'"), std::string::npos) << e;
  EXPECT_NE(e.find("cfg.yaml:3"), std::string::npos) << e;
  EXPECT_NE(error_of("", {"train.nope=1"}).find("unknown key 'train.nope' (--set train.nope=1)"), std::string::npos);
}

TEST(Config, WrongTypesAndValuesAreRejected) {
  EXPECT_NE(error_of("train:\n  epochs: ten\n").find("'train.epochs' (cfg.yaml:2): expected an integer, got 'ten'"),
            std::string::npos);
  EXPECT_NE(error_of("train:\n  batch_size: 0\n").find("must be > 0"), std::string::npos);
  EXPECT_NE(error_of("train:\n  lr: -1\n").find("'train.lr'"), std::string::npos);
  EXPECT_NE(error_of("", {"train.channels_last=maybe"}).find("expected true or false"), std::string::npos);
  EXPECT_NE(error_of("model:\n  name: resnet9000\n").find("unknown model"), std::string::npos);
  EXPECT_NE(error_of("data:\n  dataset: imagenet\n").find("must be one of"), std::string::npos);
  EXPECT_NE(error_of("train: [1, 2]\n").find("'train'"), std::string::npos);
  EXPECT_NE(error_of("train:\n  epochs: [1\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("", {"train.epochs"}).find("expected key=value"), std::string::npos);
}

TEST(Config, DuplicateKeysNameTheKeyAndBothLines) {
  auto e = error_of("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n");
  EXPECT_NE(e.find("duplicate key 'train.epochs' (cfg.yaml:2 and cfg.yaml:4)"), std::string::npos) << e;
  e = error_of("train:\n  epochs: 3\ndata:\n  root: x\ntrain:\n  lr: 0.1\n");
  EXPECT_NE(e.find("duplicate key 'train' (cfg.yaml:1 and cfg.yaml:5)"), std::string::npos) << e;
  e = error_of("train: {epochs: 1, epochs: 2}\n");
  EXPECT_NE(e.find("duplicate key 'train.epochs'"), std::string::npos) << e;
  // The same name in different sections is not a duplicate.
  EXPECT_EQ(error_of("data:\n  train_limit: 1\n  test_limit: 1\ntrain:\n  epochs: 1\n"), "");
}

TEST(Config, AnchorsAndAliasesAreRefusedBeforeExpansion) {
  // Levels of ten aliases each grow tenfold per level when expanded (871 bytes took 3.7 GB before);
  // five levels keep the old code's run of this test short.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'e'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += (i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  auto e = error_of(bomb);
  EXPECT_NE(e.find("cfg.yaml:1: YAML anchors (&a) are not allowed"), std::string::npos) << e;
  e = error_of("train:\n  epochs: &n 3\n");
  EXPECT_NE(e.find("cfg.yaml:2: YAML anchors"), std::string::npos) << e;
  e = error_of("train:\n  epochs: *n\n");
  EXPECT_NE(e.find("cfg.yaml:2"), std::string::npos) << e;
  e = error_of("", {"train.epochs=[&a [1, 1], [*a, *a]]"});
  EXPECT_NE(e.find("--set 'train.epochs=[&a [1, 1], [*a, *a]]'"), std::string::npos) << e;
  EXPECT_NE(e.find("not allowed"), std::string::npos) << e;
  // A file is capped before it is parsed.
  e = error_of(std::string(2 << 20, '#'));
  EXPECT_NE(e.find("more than a config may hold"), std::string::npos) << e;
  EXPECT_NE(error_of("train:\n  epochs: 1\n---\ntrain:\n  epochs: 2\n").find("more than one YAML document"),
            std::string::npos);
}

TEST(Config, SyntaxErrorsWinOverWhatTheCheckerSawBeforeThem) {
  // yaml-cpp reports an unclosed "[" as maps with list keys before its syntax error.
  auto e = error_of("[[[");
  EXPECT_NE(e.find("cfg.yaml:1: invalid YAML: end of sequence flow not found"), std::string::npos) << e;
  e = error_of(std::string(3000, '[') + std::string(3000, ']'));
  EXPECT_NE(e.find("cfg.yaml:1: invalid YAML: nested too deeply"), std::string::npos) << e;
  e = error_of("train:\n  ? [a, b]\n  : 1\n");
  EXPECT_NE(e.find("cfg.yaml:2: a key must be a plain name"), std::string::npos) << e;
}

TEST(Config, ThreadsAndBatchSizesMustBeSane) {
  // 100000 threads deadlocked LibTorch; 4294967297 wrapped to 1 through an int; 2^63-1 overflowed the
  // step count to zero steps and NaN metrics.
  for (const char* bad : {"train.threads=100000", "train.threads=4294967297", "train.threads=-1"}) {
    const auto e = error_of("", {bad});
    EXPECT_NE(e.find("key 'train.threads' (--set " + std::string(bad) + ")"), std::string::npos) << e;
    EXPECT_NE(e.find("must be >= 0 and at most 256"), std::string::npos) << e;
  }
  for (const char* bad : {"train.batch_size=9223372036854775807", "train.eval_batch_size=9223372036854775807",
                          "train.batch_size=0"}) {
    const auto e = error_of("", {bad});
    EXPECT_NE(e.find("must be > 0 and at most 65536"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_EQ(error_of("", {"train.threads=0", "train.threads=256", "train.batch_size=65536"}), "");
}

TEST(Config, YamlRoundTripKeepsEveryValue) {
  RunConfig c;
  c.train.lr = 0.000123456789;
  c.data.train_limit = 7;
  c.train.channels_last = false;
  const RunConfig back = parse_run_config(to_yaml(c), "written");
  EXPECT_DOUBLE_EQ(back.train.lr, c.train.lr);
  EXPECT_EQ(back.data.train_limit, 7);
  EXPECT_FALSE(back.train.channels_last);
  EXPECT_EQ(to_yaml(back), to_yaml(c));
}

TEST(Config, ModelWidthsAreAListCheckedAgainstTheArchitecture) {
  const RunConfig c = parse_run_config("model:\n  name: resnet9\n  widths: [16, 32, 64, 128]\n  width: 0.5\n", "cfg.yaml");
  EXPECT_EQ(c.model.widths, (std::vector<int64_t>{16, 32, 64, 128}));
  EXPECT_DOUBLE_EQ(c.model.width, 0.5);
  EXPECT_EQ(parse_run_config(to_yaml(c), "written").model, c.model);  // written as a list, read back
  EXPECT_NE(to_yaml(c).find("widths: [16, 32, 64, 128]"), std::string::npos) << to_yaml(c);
  EXPECT_EQ(parse_run_config("", "cfg.yaml", {"model.name=airbench", "model.widths=[64, 128, 128]"}).model.widths,
            (std::vector<int64_t>{64, 128, 128}));
  // The count is the architecture's: one error naming the key.
  const std::string count = error_of("model:\n  name: airbench\n  widths: [64, 128]\n");
  EXPECT_NE(count.find("key 'model.widths'"), std::string::npos) << count;
  EXPECT_NE(count.find("takes 3 widths"), std::string::npos) << count;
  EXPECT_NE(error_of("model:\n  widths: 64\n").find("expected a list"), std::string::npos);
  EXPECT_NE(error_of("model:\n  widths: [64, x]\n").find("a list of integers"), std::string::npos);
  EXPECT_NE(error_of("model:\n  widths: [0, 1, 1, 1]\n").find("cfg.yaml:2"), std::string::npos);
  EXPECT_NE(error_of("model:\n  width: 0\n").find("key 'model.width'"), std::string::npos);
  EXPECT_NE(error_of("model:\n  name: resnet\n").find("known models: airbench, cnn, resnet9"), std::string::npos);
}

// model.activation: airbench offers gelu (its own) and relu (the int8-friendly order); the
// others have one nonlinearity, and saying another is an error naming the key, not ignored.
TEST(Config, ModelActivationIsCheckedAgainstTheArchitecture) {
  const RunConfig c = parse_run_config("model:\n  name: airbench\n  activation: relu\n", "cfg.yaml");
  EXPECT_EQ(c.model.activation, "relu");
  EXPECT_EQ(parse_run_config(to_yaml(c), "written").model, c.model);
  EXPECT_EQ(resolved_activation(parse_run_config("model:\n  name: airbench\n", "cfg.yaml").model), "gelu");
  EXPECT_NO_THROW(parse_run_config("model:\n  name: cnn\n  activation: relu\n", "cfg.yaml"));
  const std::string other = error_of("model:\n  name: cnn\n  activation: gelu\n");
  EXPECT_NE(other.find("key 'model.activation': model 'cnn' takes relu"), std::string::npos) << other;
  const std::string unknown = error_of("model:\n  name: airbench\n  activation: swish\n");
  EXPECT_NE(unknown.find("key 'model.activation'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("must be gelu, relu"), std::string::npos) << unknown;
  // gelu written out is airbench's own network; relu is another one.
  ModelOptions own, gelu, relu;
  own.name = gelu.name = relu.name = "airbench";
  gelu.activation = "gelu";
  relu.activation = "relu";
  EXPECT_TRUE(same_network(own, gelu));
  EXPECT_FALSE(same_network(own, relu));
}

TEST(Config, ResumeRefusesKeysThatChangeTheRunAndTakesTheSafeOnes) {
  RunConfig saved;
  RunConfig requested = saved;
  requested.train.epochs = 20;  // more epochs, other threads, moved data: the same run
  requested.train.threads = 1;
  requested.data.root = "/elsewhere";
  requested.train.eval_batch_size = 100;
  EXPECT_TRUE(resume_conflicts(saved, requested).empty());
  requested.train.batch_size = 64;
  requested.model.widths = {8, 8, 8, 8};
  const auto conflicts = resume_conflicts(saved, requested);
  ASSERT_EQ(conflicts.size(), 2u);
  EXPECT_EQ(conflicts[0], "model.widths: [] in the run, [8, 8, 8, 8] now");
  EXPECT_EQ(conflicts[1], "train.batch_size: 32 in the run, 64 now");
}

TEST(Config, ShippedConfigReproducesTheSeed) {
  const RunConfig c = load_run_config(std::string(MAAS_SOURCE_DIR) + "/configs/cifar10_cnn.yaml", {});
  EXPECT_EQ(c.model.name, "cnn");
  EXPECT_EQ(c.train.epochs, 10);
  EXPECT_EQ(c.train.batch_size, 32);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_THROW(load_run_config("/no/such/config.yaml", {}), ConfigError);
  EXPECT_EQ(c.model, ModelOptions{});  // the seed network: cnn with its own widths
}

TEST(Config, EveryShippedConfigLoads) {
  int training_configs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(MAAS_SOURCE_DIR) + "/configs")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".yaml" || name == "serve.yaml") continue;  // serve.yaml is maas-serve's
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(load_run_config(entry.path().string(), {}));
    ++training_configs;
  }
  EXPECT_GE(training_configs, 5);  // cnn, cnn_aug, fast, airbench, resnet9
  EXPECT_EQ(load_run_config(std::string(MAAS_SOURCE_DIR) + "/configs/cifar10_resnet9.yaml", {}).model.name, "resnet9");
}

}  // namespace
}  // namespace maas
