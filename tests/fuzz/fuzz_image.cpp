// libFuzzer target: untrusted bytes through maas::decode_image, as an image upload does.
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "image.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);  // reproducible, and LibTorch's pool would add noise to every run
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A 1-megapixel cap instead of the server's 16: the same checks, but every input stays fast.
  constexpr int64_t kMaxPixels = int64_t{1} << 20;
  try {
    const auto image = maas::decode_image(std::string_view(reinterpret_cast<const char*>(data), size), 3, 32, 32,
                                          kMaxPixels);
    // The contract: uint8 [1, 3, 32, 32], whatever the file declared.
    if (image.sizes() != torch::IntArrayRef({1, 3, 32, 32}) || image.scalar_type() != torch::kUInt8) {
      std::fprintf(stderr, "decode_image returned %s\n", image.toString().c_str());
      std::abort();
    }
  } catch (const std::invalid_argument&) {
    // Bad input, reported as it should be. Any other exception escapes: a finding.
  }
  return 0;
}
