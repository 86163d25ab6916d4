// Model registry: shapes, parameter counts, bad specs.
#include <gtest/gtest.h>

#include "models.h"

namespace maas {
namespace {

TEST(Models, SeedCnnHasTheSeedShapeAndParameterCount) {
  auto model = make_model("cnn", {3, 32, 32, 10});
  EXPECT_EQ(parameter_count(*model), 122570);
  EXPECT_EQ(model->forward(torch::randn({5, 3, 32, 32})).sizes(), torch::IntArrayRef({5, 10}));
  // Same weights, channels-last input: same logits.
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(model->forward(x), model->forward(x.contiguous(torch::MemoryFormat::ChannelsLast)),
                              1e-5, 1e-5));
  EXPECT_NE(model_summary(*model, {3, 32, 32, 10}).find("122570"), std::string::npos);
}

TEST(Models, InputShapeComesFromTheDataSet) {
  auto model = make_model("cnn", {1, 28, 28, 10});
  EXPECT_EQ(model->forward(torch::randn({2, 1, 28, 28})).sizes(), torch::IntArrayRef({2, 10}));
  EXPECT_THROW(make_model("cnn", {3, 16, 16, 10}), std::invalid_argument);
  EXPECT_THROW(make_model("nope", {3, 32, 32, 10}), std::invalid_argument);
  EXPECT_TRUE(has_model("cnn"));
}

}  // namespace
}  // namespace maas
