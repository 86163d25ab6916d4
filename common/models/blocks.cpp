// Building blocks shared by the architectures.
#include "blocks.h"

namespace maas {

ConvBnReluImpl::ConvBnReluImpl(int64_t in_channels, int64_t out_channels) {
  conv_ = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3).padding(1).bias(false)));
  bn_ = register_module("bn", torch::nn::BatchNorm2d(out_channels));
}

torch::Tensor ConvBnReluImpl::forward(torch::Tensor x) { return bn_->forward(conv_->forward(x)).relu_(); }

ResidualImpl::ResidualImpl(int64_t channels) {
  first_ = register_module("first", ConvBnRelu(channels, channels));
  second_ = register_module("second", ConvBnRelu(channels, channels));
}

torch::Tensor ResidualImpl::forward(torch::Tensor x) { return x + second_->forward(first_->forward(x)); }

}  // namespace maas
