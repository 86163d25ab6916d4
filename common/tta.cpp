// Test-time augmentation views (see tta.h).
#include "tta.h"

#include <stdexcept>

namespace maas {
namespace {

const std::vector<std::pair<TtaMode, std::string>>& modes() {
  static const std::vector<std::pair<TtaMode, std::string>> table = {
      {TtaMode::kNone, "none"}, {TtaMode::kFlip, "flip"}, {TtaMode::kFlipTranslate, "flip_translate"}};
  return table;
}

torch::Tensor flip_mean(const std::function<torch::Tensor(const torch::Tensor&)>& classify, const torch::Tensor& x) {
  return 0.5 * (classify(x) + classify(x.flip({3})));
}

}  // namespace

TtaMode parse_tta_mode(const std::string& name) {
  for (const auto& [mode, mode_name] : modes())
    if (mode_name == name) return mode;
  throw std::invalid_argument("unknown test-time augmentation '" + name + "'");
}

std::string tta_mode_name(TtaMode mode) {
  for (const auto& [m, name] : modes())
    if (m == mode) return name;
  return "?";
}

std::vector<std::string> tta_mode_names() {
  std::vector<std::string> names;
  for (const auto& entry : modes()) names.push_back(entry.second);
  return names;
}

torch::Tensor tta_logits(const std::function<torch::Tensor(const torch::Tensor&)>& classify,
                         const torch::Tensor& images, TtaMode mode) {
  switch (mode) {
    case TtaMode::kNone:
      return classify(images);
    case TtaMode::kFlip:
      return flip_mean(classify, images);
    case TtaMode::kFlipTranslate: {
      const int64_t h = images.size(2), w = images.size(3);
      // Reflect padding keeps the shifted views free of black borders the network never saw.
      const auto padded = torch::reflection_pad2d(images, {1, 1, 1, 1});
      const auto moved_down_right = padded.narrow(2, 0, h).narrow(3, 0, w);  // content one pixel down-right
      const auto moved_up_left = padded.narrow(2, 2, h).narrow(3, 2, w);

      const auto memory_format = images.suggest_memory_format();
      return 0.5 * flip_mean(classify, images) +
             0.25 * flip_mean(classify, moved_down_right.contiguous(memory_format)) +
             0.25 * flip_mean(classify, moved_up_left.contiguous(memory_format));
    }
  }
  throw std::logic_error("tta_logits: unhandled mode");
}

}  // namespace maas
