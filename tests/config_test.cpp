// Config loading: defaults, overrides, and one clear error per bad key or value.
#include <gtest/gtest.h>

#include "config.h"
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

TEST(Config, ShippedConfigReproducesTheSeed) {
  const RunConfig c = load_run_config(std::string(MAAS_SOURCE_DIR) + "/configs/cifar10_cnn.yaml", {});
  EXPECT_EQ(c.model.name, "cnn");
  EXPECT_EQ(c.train.epochs, 10);
  EXPECT_EQ(c.train.batch_size, 32);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_THROW(load_run_config("/no/such/config.yaml", {}), ConfigError);
}

}  // namespace
}  // namespace maas
