// Image files to model input: the one place that decodes and resizes uploaded images.
#pragma once

#include <torch/torch.h>

#include <string>

namespace maas {

// Decodes PNG, JPEG, BMP or GIF bytes (stb_image; first frame of a GIF) into uint8
// [1, channels, height, width]: converted to 1 (grey) or 3 (RGB) channels and resized with
// antialiased bilinear interpolation when the size differs.
// Throws std::invalid_argument naming stb's reason when the bytes are not a decodable image.
torch::Tensor decode_image(const std::string& bytes, int64_t channels, int64_t height, int64_t width);

// PNG bytes of one uint8 image [C, H, W] (C = 1 or 3). Throws std::invalid_argument otherwise.
std::string encode_png(const torch::Tensor& image);

}  // namespace maas
