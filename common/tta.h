// Test-time augmentation: a classifier's logits averaged over flipped and shifted views of a batch.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace maas {

enum class TtaMode {
  kNone,           // the image as it is
  kFlip,           // mean of the image and its mirror image
  kFlipTranslate,  // airbench's 6 views: 1/2 flip-mean of the image, 1/4 each of the flip-mean of
                   // the image moved one pixel down-right and one pixel up-left (reflect-padded)
};

// "none", "flip", "flip_translate"; parse_tta_mode throws std::invalid_argument for other names.
TtaMode parse_tta_mode(const std::string& name);
std::string tta_mode_name(TtaMode mode);
std::vector<std::string> tta_mode_names();

// Logits of `images` ([N, C, H, W], already normalized, any memory format) under `mode`: the
// weighted mean of `classify` over the views above. Calls `classify` once per view (1, 2 or 6
// times) with a batch as large as `images`. Pure tensor ops: tracing it records the views.
torch::Tensor tta_logits(const std::function<torch::Tensor(const torch::Tensor&)>& classify,
                         const torch::Tensor& images, TtaMode mode);

}  // namespace maas
