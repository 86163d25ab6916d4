// The seed CNN: three valid 3x3 convolutions and two fully connected layers, no normalization.
#pragma once

#include <vector>

#include "../models.h"

namespace maas {

// Conv(C->w0, 3x3) ReLU MaxPool2, Conv(w0->w1, 3x3) ReLU MaxPool2, Conv(w1->w2, 3x3) ReLU,
// Flatten, Linear(->w3) ReLU, Linear(w3->classes). widths = {w0, w1, w2, w3}, by default
// {32, 64, 64, 64}: 122,570 parameters for CIFAR-10.
class CnnImpl : public ClassifierImpl {
 public:
  // Throws std::invalid_argument when the input is too small for the three valid convolutions.
  CnnImpl(const ModelSpec& spec, const std::vector<int64_t>& widths);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Cnn);

}  // namespace maas
