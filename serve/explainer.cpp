// Integrated gradients and gradient x input in one batched forward and backward; the heatmap.
#include "explainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace maas {

const char* method_name(ExplainMethod method) {
  return method == ExplainMethod::kIntegratedGradients ? "integrated_gradients" : "gradient";
}

std::optional<double> Completeness::relative_error() const {
  const double difference = logit_input - logit_baseline;
  if (difference == 0) return std::nullopt;
  return std::abs(delta()) / std::abs(difference);
}

int64_t explain_batch_images(const ExplainRequest& request) {
  return request.method == ExplainMethod::kIntegratedGradients ? request.steps + 2 : 1;
}

Explainer::Explainer(torch::jit::Module module, ArtifactInfo info) : module_(std::move(module)), info_(std::move(info)) {}

void Explainer::check(const ExplainRequest& r) const {
  if (!info_.quantization_engine.empty())
    throw std::invalid_argument("its weights are int8 and quantized kernels have no gradients; serve the run's "
                                "float32 export beside it to explain its answers");
  const auto& image = r.image;
  if (!image.defined() || image.dim() != 4 || image.size(0) != 1 || image.size(1) != info_.channels ||
      image.size(2) != info_.height || image.size(3) != info_.width)
    throw std::invalid_argument("an explanation needs one image of shape [1, " + std::to_string(info_.channels) +
                                ", " + std::to_string(info_.height) + ", " + std::to_string(info_.width) + "]");
  if (image.scalar_type() != torch::kUInt8 && image.scalar_type() != torch::kFloat32)
    throw std::invalid_argument("images must be uint8 or float32");
  if (image.scalar_type() == torch::kFloat32 &&
      !(image.min().item<float>() >= 0 && image.max().item<float>() <= 255))  // NaN fails too
    throw std::invalid_argument("pixels must be in 0..255");
  const auto classes = static_cast<int64_t>(info_.classes.size());
  if (r.target && (*r.target < 0 || *r.target >= classes))
    throw std::invalid_argument("target must be a class index in 0.." + std::to_string(classes - 1));
  if (r.steps < 1) throw std::invalid_argument("steps must be >= 1");
  if (!(r.baseline >= 0 && r.baseline <= 255)) throw std::invalid_argument("baseline must be a pixel value in 0..255");
}

Explanation Explainer::explain(const ExplainRequest& r) const {
  check(r);
  torch::AutoGradMode gradients_on(true);  // serving threads run with gradients off
  const bool integrated = r.method == ExplainMethod::kIntegratedGradients;
  const auto input = r.image.to(torch::kFloat32);
  const auto baseline = torch::full_like(input, r.baseline);
  // Rows: the path points (or the input alone), then for integrated gradients the input and the
  // baseline themselves, whose logits the completeness check needs: one forward for all.
  torch::Tensor batch = input.clone();
  int64_t path_rows = 1, input_row = 0;
  if (integrated) {
    const auto alphas = (torch::arange(r.steps, torch::kFloat32) + 0.5) / static_cast<double>(r.steps);
    batch = torch::cat({baseline + alphas.view({-1, 1, 1, 1}) * (input - baseline), input, baseline});
    path_rows = r.steps;
    input_row = r.steps;
  }
  batch.requires_grad_(true);
  const auto logits = module_.forward({batch}).toTensor();
  const auto input_logits = logits[input_row].detach();
  const int64_t target = r.target.value_or(input_logits.argmax().item<int64_t>());
  // The rows are independent (eval mode), so the gradient of the summed target logits holds each
  // row's own gradient.
  const auto gradients =
      torch::autograd::grad({logits.slice(0, 0, path_rows).select(1, target).sum()}, {batch})[0].slice(0, 0, path_rows);

  Explanation e;
  e.target = target;
  e.label = info_.classes.at(static_cast<size_t>(target));
  e.probability = torch::softmax(input_logits, 0)[target].item<double>();
  if (integrated) {
    e.attribution = ((input - baseline) * gradients.mean(0, true))[0].detach();
    Completeness c;
    c.attribution_sum = e.attribution.sum().item<double>();
    c.logit_input = input_logits[target].item<double>();
    c.logit_baseline = logits[input_row + 1][target].item<double>();
    e.completeness = c;
  } else {
    e.attribution = (input * gradients)[0].detach();
  }
  return e;
}

torch::Tensor heatmap_overlay(const torch::Tensor& image, const torch::Tensor& attribution, int64_t min_side) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || (image.size(0) != 1 && image.size(0) != 3))
    throw std::invalid_argument("heatmap_overlay needs a uint8 [C, H, W] image with 1 or 3 channels");
  if (attribution.dim() != 3 || attribution.size(1) != image.size(1) || attribution.size(2) != image.size(2))
    throw std::invalid_argument("heatmap_overlay needs an attribution [C, H, W] of the image's size");
  torch::NoGradGuard no_grad;
  const int64_t h = image.size(1), w = image.size(2);
  const int64_t factor = std::max<int64_t>(1, (min_side + std::max(h, w) - 1) / std::max(h, w));
  auto heat = attribution.to(torch::kFloat32).abs().sum(0);
  // The 99th percentile as full strength: one extreme pixel does not wash out the rest (the
  // maximum when fewer than 1% of the pixels have any attribution).
  double top = torch::quantile(heat.flatten(), 0.99).item<double>();
  if (top <= 0) top = heat.max().item<double>();
  heat = top > 0 ? (heat / top).clamp(0, 1) : torch::zeros_like(heat);
  heat = torch::nn::functional::interpolate(heat.view({1, 1, h, w}),
                                            torch::nn::functional::InterpolateFuncOptions()
                                                .size(std::vector<int64_t>{h * factor, w * factor})
                                                .mode(torch::kBilinear)
                                                .align_corners(false))[0]
             .clamp(0, 1);  // [1, H*f, W*f]
  auto rgb = image.to(torch::kFloat32).expand({3, h, w});
  rgb = rgb.repeat_interleave(factor, 1).repeat_interleave(factor, 2);
  const auto hot = torch::cat({(heat * 3).clamp(0, 1), (heat * 3 - 1).clamp(0, 1), (heat * 3 - 2).clamp(0, 1)}) * 255;
  const auto alpha = heat * 0.8;  // where attribution is weak, the image shows through
  return (rgb * (1 - alpha) + hot * alpha).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

}  // namespace maas
