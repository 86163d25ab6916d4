// stb_image decoding + LibTorch resizing.
#include "image.h"

#include <stb/stb_image.h>

#include <memory>
#include <stdexcept>

namespace maas {

torch::Tensor decode_image(const std::string& bytes, int64_t channels, int64_t height, int64_t width) {
  if (bytes.empty()) throw std::invalid_argument("empty image");
  if (channels != 1 && channels != 3) throw std::invalid_argument("models must take 1 or 3 channels");
  int w = 0, h = 0, found = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &h,
                            &found, static_cast<int>(channels)),
      stbi_image_free);
  if (!pixels) throw std::invalid_argument(std::string("cannot decode image: ") + stbi_failure_reason());
  auto image = torch::from_blob(pixels.get(), {h, w, channels}, torch::kUInt8).permute({2, 0, 1}).unsqueeze(0);
  if (h == height && w == width) return image.contiguous().clone();
  auto resized = torch::nn::functional::interpolate(
      image.to(torch::kFloat32), torch::nn::functional::InterpolateFuncOptions()
                                     .size(std::vector<int64_t>{height, width})
                                     .mode(torch::kBilinear)
                                     .align_corners(false)
                                     .antialias(true));
  return resized.round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

}  // namespace maas
