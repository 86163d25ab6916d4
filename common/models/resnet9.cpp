// Myrtle's ResNet-9.
#include "resnet9.h"

#include <stdexcept>
#include <string>

namespace maas {

ResNet9Impl::ResNet9Impl(const ModelSpec& spec, const std::vector<int64_t>& widths) {
  if (after_pools(spec.height, 3) < 1 || after_pools(spec.width, 3) < 1)
    throw std::invalid_argument("model 'resnet9' needs images of at least 8x8 pixels, got " +
                                std::to_string(spec.height) + "x" + std::to_string(spec.width));
  prep_ = register_module("prep", ConvBnRelu(spec.channels, widths.at(0)));
  layer1_ = register_module("layer1", ConvBnRelu(widths.at(0), widths.at(1)));
  res1_ = register_module("res1", Residual(widths.at(1)));
  layer2_ = register_module("layer2", ConvBnRelu(widths.at(1), widths.at(2)));
  layer3_ = register_module("layer3", ConvBnRelu(widths.at(2), widths.at(3)));
  res3_ = register_module("res3", Residual(widths.at(3)));
  fc_ = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(widths.at(3), spec.classes).bias(false)));
}

torch::Tensor ResNet9Impl::forward(torch::Tensor x) {
  x = prep_->forward(x);
  x = res1_->forward(torch::max_pool2d(layer1_->forward(x), 2));
  x = torch::max_pool2d(layer2_->forward(x), 2);
  x = res3_->forward(torch::max_pool2d(layer3_->forward(x), 2));
  x = x.amax({2, 3});  // global max-pool: [N, C, H, W] -> [N, C]
  return fc_->forward(x) * 0.125;  // Page: scaled logits train better with this recipe's learning rates
}

}  // namespace maas
