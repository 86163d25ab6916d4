// Why a model answered what it did: pixel attributions (integrated gradients, gradient x input)
// computed on the artifact's autograd module, and their heatmap. Tensors only: no HTTP or JSON.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "artifact.h"

namespace maas {

enum class ExplainMethod {
  kIntegratedGradients,  // Sundararajan et al. 2017 (Captum's IntegratedGradients)
  kGradientTimesInput,   // gradient at the input times the input (Captum's InputXGradient)
};
// "integrated_gradients" or "gradient" (the names of the `method` query parameter).
const char* method_name(ExplainMethod method);

inline constexpr int64_t kDefaultExplainSteps = 16;

// One explanation to compute. Pixels are the model's raw input (0..255), so a baseline of 0 is a
// black image (Captum's default baseline is zeros in the model's input space, which here is black).
struct ExplainRequest {
  ExplainRequest() = default;
  // Not explicit: {image}, {image, target}, ... read as the fields in order.
  ExplainRequest(torch::Tensor image, std::optional<int64_t> target = std::nullopt,
                 ExplainMethod method = ExplainMethod::kIntegratedGradients, int64_t steps = kDefaultExplainSteps,
                 double baseline = 0)
      : image(std::move(image)), target(target), method(method), steps(steps), baseline(baseline) {}

  torch::Tensor image;            // uint8 or float32 [1, C, H, W] of the model's input size
  std::optional<int64_t> target;  // class index; none = the class the model predicts for `image`
  ExplainMethod method = ExplainMethod::kIntegratedGradients;
  int64_t steps = kDefaultExplainSteps;  // integrated gradients: points on the path, all in one batch
  double baseline = 0;                   // integrated gradients: pixel value of the uniform baseline image
};

// Integrated gradients' completeness axiom: the attributions sum to logit(input) - logit(baseline)
// exactly for the true integral; how far the steps' sum is from it shows how well they approximate it.
struct Completeness {
  double attribution_sum = 0;
  double logit_input = 0, logit_baseline = 0;  // of the target class
  double delta() const { return attribution_sum - (logit_input - logit_baseline); }  // Captum's convergence delta
  // |delta| / |logit_input - logit_baseline|; none when the logits are equal.
  std::optional<double> relative_error() const;
};

struct Explanation {
  torch::Tensor attribution;  // float32 [C, H, W], in logit units per pixel value
  int64_t target = 0;
  std::string label;
  double probability = 0;                   // softmax probability of the target for the image
  std::optional<Completeness> completeness;  // integrated gradients only
};

// The images one explanation runs forward and backward in one batch (its cost in the runner's queue):
// integrated gradients steps + 2 (the path, the input, the baseline), gradient x input 1.
int64_t explain_batch_images(const ExplainRequest& request);

// Integrated gradients use the Riemann midpoint rule: alpha_k = (k + 1/2) / steps, k = 0..steps-1,
// attribution = (input - baseline) * mean_k gradient(baseline + alpha_k * (input - baseline)).
// (Captum defaults to Gauss-Legendre points; for a ReLU network, piecewise linear along the path,
// neither rule is exact and the midpoint rule is the simpler one.) Exact for a linear model.
class Explainer {
 public:
  // `module` follows the artifact contract (artifact.h), is in eval mode and must not be frozen for
  // inference (optimize_for_inference rewrites ops autograd cannot differentiate): the runner
  // passes a clone of the loaded artifact taken before optimizing its own.
  Explainer(torch::jit::Module module, ArtifactInfo info);

  // Throws std::invalid_argument naming the problem: an int8 model (quantized kernels have no
  // gradients), image not uint8/float32 [1, C, H, W] of the model's size, pixels outside 0..255,
  // target outside the classes, steps < 1, baseline outside 0..255.
  void check(const ExplainRequest& request) const;

  // Computes the attribution (one forward and one backward of explain_batch_images() images),
  // with gradients enabled whatever the calling thread's grad mode. Requires check(request) to pass
  // (throws as it does otherwise). Thread-safe: any number of threads may explain at once.
  Explanation explain(const ExplainRequest& request) const;

 private:
  mutable torch::jit::Module module_;  // forward() is not const, but running it changes nothing
  const ArtifactInfo info_;
};

// A heatmap of |attribution| summed over channels (scaled so its 99th percentile, or its maximum
// when that is 0, is full strength,
// "hot" colours: black, red, yellow, white) blended over `image`, both enlarged by the same whole
// factor so the longer side is at least `min_side` pixels (the image pixelated, the heatmap
// bilinear). `image`: uint8 [C, H, W] (C = 1 or 3); `attribution`: [C, H, W]. Returns uint8 RGB
// [3, H * f, W * f]. Throws std::invalid_argument for other shapes.
torch::Tensor heatmap_overlay(const torch::Tensor& image, const torch::Tensor& attribution, int64_t min_side = 256);

}  // namespace maas
