// The seed CNN.
#include "cnn.h"

#include <stdexcept>
#include <string>

namespace maas {
namespace {

// Side after a valid 3x3 convolution and after 2x2 max pooling.
int64_t conv3(int64_t side) { return side - 2; }
int64_t pool2(int64_t side) { return side / 2; }

}  // namespace

CnnImpl::CnnImpl(const ModelSpec& spec, const std::vector<int64_t>& widths) {
  const int64_t h = conv3(pool2(conv3(pool2(conv3(spec.height)))));
  const int64_t w = conv3(pool2(conv3(pool2(conv3(spec.width)))));
  if (h < 1 || w < 1)
    throw std::invalid_argument("model 'cnn' needs images of at least 18x18 pixels, got " +
                                std::to_string(spec.height) + "x" + std::to_string(spec.width));
  using torch::nn::Conv2dOptions;
  conv1_ = register_module("conv1", torch::nn::Conv2d(Conv2dOptions(spec.channels, widths.at(0), 3)));
  conv2_ = register_module("conv2", torch::nn::Conv2d(Conv2dOptions(widths.at(0), widths.at(1), 3)));
  conv3_ = register_module("conv3", torch::nn::Conv2d(Conv2dOptions(widths.at(1), widths.at(2), 3)));
  fc1_ = register_module("fc1", torch::nn::Linear(widths.at(2) * h * w, widths.at(3)));
  fc2_ = register_module("fc2", torch::nn::Linear(widths.at(3), spec.classes));
}

torch::Tensor CnnImpl::forward(torch::Tensor x) {
  // Pooling before ReLU gives the same values and gradients as ReLU before pooling (ReLU is
  // monotonic) while the ReLU touches a quarter of the elements.
  x = torch::max_pool2d(conv1_->forward(x), 2).relu_();
  x = torch::max_pool2d(conv2_->forward(x), 2).relu_();
  x = conv3_->forward(x).relu_();
  // Plain Linear layers: with OpenBLAS (.ci/install-deps) they are as fast as running them as
  // whole-map convolutions through oneDNN in training, and faster at batch 1 (docs/benchmarks.md, "BLAS").
  return fc2_->forward(fc1_->forward(x.flatten(1)).relu_());
}

}  // namespace maas
