// Myrtle's ResNet-9 (David Page, "How to train your ResNet", 2018), with configurable widths.
#pragma once

#include <vector>

#include "../models.h"
#include "blocks.h"

namespace maas {

// prep: ConvBnRelu(C -> w0); layer1: ConvBnRelu(w0 -> w1), max-pool 2, Residual(w1);
// layer2: ConvBnRelu(w1 -> w2), max-pool 2; layer3: ConvBnRelu(w2 -> w3), max-pool 2, Residual(w3);
// head: global max-pool, Linear(w3 -> classes, no bias), times 0.125 (Page's output scale).
// widths = {w0, w1, w2, w3}; Page's network is {64, 128, 256, 512} (6.57M parameters on CIFAR-10).
class ResNet9Impl : public ClassifierImpl {
 public:
  // Throws std::invalid_argument for images smaller than 8x8 (three 2x2 poolings).
  ResNet9Impl(const ModelSpec& spec, const std::vector<int64_t>& widths);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  ConvBnRelu prep_{nullptr}, layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr};
  Residual res1_{nullptr}, res3_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet9);

}  // namespace maas
