// Image files to model input: the one place that decodes and resizes uploaded images.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace maas {

// Default cap on an image's declared width * height (4096 x 4096): a few bytes can declare a
// huge image, and decoding costs about 4 bytes of memory per declared pixel before resizing.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{16} * 1024 * 1024;

// Decodes PNG, JPEG, BMP or GIF bytes (first frame of an animated GIF) into uint8
// [1, channels, height, width]: converted to 1 (grey) or 3 (RGB, alpha dropped) channels and
// resized with antialiased bilinear interpolation when the size differs.
// The format is recognised by its magic bytes, and the header is read before anything is
// decoded: an image declaring more than max_pixels pixels is refused without decoding it.
// Bytes are untrusted: every problem (empty, other format, corrupt, too large) throws one
// std::invalid_argument starting "cannot decode image: " and naming it. Thread-safe.
torch::Tensor decode_image(std::string_view bytes, int64_t channels, int64_t height, int64_t width,
                           int64_t max_pixels = kDefaultMaxImagePixels);

// PNG bytes of one uint8 image [C, H, W] (C = 1 or 3). Throws std::invalid_argument otherwise.
std::string encode_png(const torch::Tensor& image);

}  // namespace maas
