// Building blocks shared by the architectures: convolution + BatchNorm + activation units.
#pragma once

#include <torch/torch.h>

namespace maas {

// 3x3 convolution (same padding, no bias: BatchNorm's shift replaces it) -> BatchNorm -> ReLU.
class ConvBnReluImpl : public torch::nn::Module {
 public:
  ConvBnReluImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ConvBnRelu);

// x + f(x) with f = two ConvBnRelu units of `channels` channels (ResNet-9's residual block).
class ResidualImpl : public torch::nn::Module {
 public:
  explicit ResidualImpl(int64_t channels);
  torch::Tensor forward(torch::Tensor x);

 private:
  ConvBnRelu first_{nullptr}, second_{nullptr};
};
TORCH_MODULE(Residual);

// The side of a feature map after `pools` 2x2 max poolings (floor, as torch does).
inline int64_t after_pools(int64_t side, int pools) {
  for (int i = 0; i < pools; ++i) side /= 2;
  return side;
}

}  // namespace maas
