// libFuzzer target: untrusted bytes through maas::parse_infer_request (KServe v2 JSON + binary data).
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "protocol.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

// Input layout: byte 0 bit 0 = an Inference-Header-Content-Length is sent; bytes 1-2 (little
// endian) = its value, modulo body size + 2 (so most values are in range, some one past it);
// the rest is the request body.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::optional<size_t> json_length;
  if (data[0] & 1) json_length = (data[1] | (size_t{data[2]} << 8)) % (body.size() + 2);
  try {
    const maas::InferRequest request = maas::parse_infer_request(body, json_length);
    // The contract (protocol.h): images is uint8 or float32 [N, C, H, W].
    const auto& images = request.images;
    if (!images.defined() || images.dim() != 4 ||
        (images.scalar_type() != torch::kUInt8 && images.scalar_type() != torch::kFloat32)) {
      std::fprintf(stderr, "parse_infer_request returned images %s\n",
                   images.defined() ? images.toString().c_str() : "(undefined)");
      std::abort();
    }
  } catch (const std::invalid_argument&) {
    // Bad input, reported as it should be. Any other exception escapes: a finding.
  }
  return 0;
}
