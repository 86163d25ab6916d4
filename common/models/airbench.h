// An airbench-style network (Keller Jordan, KellerJordan/cifar10-airbench): small, fast, CIFAR-tuned.
#pragma once

#include <vector>

#include "../models.h"

namespace maas {

// The nonlinearity and the order around it (model.activation).
enum class AirbenchActivation {
  kGelu,  // airbench's own: conv, max-pool, BN, GELU. int8 has no GELU kernel, and BN after the pool
          // cannot fold into the convolution, so an int8 export leaves int8 at every group.
  kRelu,  // conv, BN, ReLU, max-pool: BN folds into the convolution, ReLU fuses into it, and int8
          // max-pooling exists, so the trunk runs int8 from the first convolution to the last.
};

// gelu: conv, max-pool 2, BatchNorm, GELU, conv, BatchNorm, GELU; relu: conv, BatchNorm, ReLU,
// max-pool 2, conv, BatchNorm, ReLU (3x3 convolutions without bias).
class ConvGroupImpl : public torch::nn::Module {
 public:
  ConvGroupImpl(int64_t in_channels, int64_t out_channels, AirbenchActivation activation = AirbenchActivation::kGelu);
  torch::Tensor forward(torch::Tensor x);

 private:
  AirbenchActivation activation_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
};
TORCH_MODULE(ConvGroup);

// stem: 2x2 convolution (no padding) to 8*C channels, GELU (or ReLU); three ConvGroups of widths
// {w0, w1, w2}; global max-pool; Linear(w2 -> classes, no bias); times 1/9 (airbench's output
// scale). airbench94 is {64, 256, 256}, airbench93 {64, 128, 128}. The groups' convolutions start
// as identities on their first channels (dirac), as in airbench; with train.data_init the stem is
// airbench's patch-whitening layer (init_from_data) and its weights stay fixed.
class AirbenchImpl : public ClassifierImpl {
 public:
  // Throws std::invalid_argument for images smaller than 9x9 (2x2 stem, three 2x2 poolings).
  AirbenchImpl(const ModelSpec& spec, const std::vector<int64_t>& widths,
               AirbenchActivation activation = AirbenchActivation::kGelu);
  torch::Tensor forward(torch::Tensor images) override;
  // The stem's 4C filters become the eigenvectors of the covariance of the images' 2x2 patches,
  // scaled by 1/sqrt(eigenvalue + 5e-4), and their negatives (the other 4C); then frozen.
  bool init_from_data(const torch::Tensor& images) override;

 private:
  AirbenchActivation activation_;
  torch::nn::Conv2d stem_{nullptr};
  ConvGroup group1_{nullptr}, group2_{nullptr}, group3_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(Airbench);

}  // namespace maas
