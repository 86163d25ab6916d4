// The airbench-style network.
#include "airbench.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <stdexcept>
#include <string>

#include "blocks.h"

namespace maas {
namespace {

// airbench's BatchNorm: running statistics follow the batches quickly (torch momentum 0.4) and a
// tiny epsilon; both matter for its short schedules.
torch::nn::BatchNorm2d airbench_batch_norm(int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).momentum(0.4).eps(1e-12));
}

torch::nn::Conv2d conv3x3(int64_t in_channels, int64_t out_channels) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3).padding(1).bias(false));
}

// airbench starts each convolution as an identity on its first channels: the network begins close
// to a shallower one, which trains faster.
void dirac_init(torch::nn::Conv2d& conv) {
  torch::NoGradGuard no_grad;
  auto& w = conv->weight;
  torch::nn::init::dirac_(w.narrow(0, 0, std::min(w.size(0), w.size(1))));
}

}  // namespace

ConvGroupImpl::ConvGroupImpl(int64_t in_channels, int64_t out_channels, AirbenchActivation activation)
    : activation_(activation) {
  conv1_ = register_module("conv1", conv3x3(in_channels, out_channels));
  bn1_ = register_module("bn1", airbench_batch_norm(out_channels));
  conv2_ = register_module("conv2", conv3x3(out_channels, out_channels));
  bn2_ = register_module("bn2", airbench_batch_norm(out_channels));
  dirac_init(conv1_);
  dirac_init(conv2_);
}

torch::Tensor ConvGroupImpl::forward(torch::Tensor x) {
  if (activation_ == AirbenchActivation::kRelu) {
    x = torch::max_pool2d(torch::relu(bn1_->forward(conv1_->forward(x))), 2);
    return torch::relu(bn2_->forward(conv2_->forward(x)));
  }
  x = torch::gelu(bn1_->forward(torch::max_pool2d(conv1_->forward(x), 2)));
  return torch::gelu(bn2_->forward(conv2_->forward(x)));
}

AirbenchImpl::AirbenchImpl(const ModelSpec& spec, const std::vector<int64_t>& widths, AirbenchActivation activation)
    : activation_(activation) {
  if (after_pools(spec.height - 1, 3) < 1 || after_pools(spec.width - 1, 3) < 1)
    throw std::invalid_argument("model 'airbench' needs images of at least 9x9 pixels, got " +
                                std::to_string(spec.height) + "x" + std::to_string(spec.width));
  const int64_t stem_channels = 8 * spec.channels;  // 2 * C * 2 * 2: airbench's whitening width
  stem_ = register_module("stem", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.channels, stem_channels, 2)));
  group1_ = register_module("group1", ConvGroup(stem_channels, widths.at(0), activation));
  group2_ = register_module("group2", ConvGroup(widths.at(0), widths.at(1), activation));
  group3_ = register_module("group3", ConvGroup(widths.at(1), widths.at(2), activation));
  fc_ = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(widths.at(2), spec.classes).bias(false)));
}

bool AirbenchImpl::init_from_data(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  const int64_t c = images.size(1), patch = 4 * c;
  // Covariance of all 2x2 patches (uncentred, as airbench), accumulated in chunks to bound memory.
  auto covariance = torch::zeros({patch, patch}, torch::kFloat64);
  int64_t count = 0;
  for (int64_t begin = 0; begin < images.size(0); begin += 256) {
    const auto x = images.slice(0, begin, std::min(images.size(0), begin + 256)).to(torch::kFloat64);
    // [n, C, H-1, W-1, 2, 2] -> [n, H-1, W-1, C, 2, 2] -> rows of C*2*2 (the stem weight's layout)
    const auto rows = x.unfold(2, 2, 1).unfold(3, 2, 1).permute({0, 2, 3, 1, 4, 5}).reshape({-1, patch});
    covariance += rows.t().mm(rows);
    count += rows.size(0);
  }
  covariance /= static_cast<double>(count);
  const auto [eigenvalues, eigenvectors] = torch::linalg::eigh(covariance, "L");
  const auto filters = (eigenvectors.t() / (eigenvalues + 5e-4).sqrt().unsqueeze(1)).reshape({patch, c, 2, 2});
  auto& w = stem_->weight;
  w.copy_(torch::cat({filters, -filters}).to(w.dtype()));
  w.set_requires_grad(false);
  stem_->bias.zero_();  // airbench starts the whitened stem without offsets
  return true;
}

torch::Tensor AirbenchImpl::forward(torch::Tensor x) {
  {
    // The stem runs without autocast, in its input's precision: float32 in training (the batch is
    // float32), where oneDNN's bf16 weight-gradient kernel for 3 input channels is several times
    // slower than float32's (1.8 s of a 15 s step of the fast config, DNNL_VERBOSE) for a tiny share
    // of the work; bfloat16 in a bf16 artifact. No cast here: a traced cast would meet bf16 weights.
    const c10::impl::ExcludeDispatchKeyGuard no_autocast_stem(c10::DispatchKey::AutocastCPU);
    x = stem_->forward(x);
  }
  x = activation_ == AirbenchActivation::kRelu ? torch::relu(x) : torch::gelu(x);
  x = group3_->forward(group2_->forward(group1_->forward(x)));
  x = x.amax({2, 3});  // global max-pool: [N, C, H, W] -> [N, C]
  return fc_->forward(x) / 9.0;
}

}  // namespace maas
