// stb_image decoding + LibTorch resizing.
#include "image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

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

std::string encode_png(const torch::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || (image.size(0) != 1 && image.size(0) != 3))
    throw std::invalid_argument("encode_png needs a uint8 [C, H, W] image with 1 or 3 channels");
  const auto hwc = image.permute({1, 2, 0}).contiguous();
  std::string png;
  const auto append = [](void* out, void* data, int size) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int w = static_cast<int>(image.size(2)), c = static_cast<int>(image.size(0));
  if (!stbi_write_png_to_func(append, &png, w, static_cast<int>(image.size(1)), c, hwc.data_ptr(), w * c))
    throw std::runtime_error("PNG encoding failed");
  return png;
}

}  // namespace maas
