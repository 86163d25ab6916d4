// libFuzzer target: frame_request (serve/request_framing.h) on arbitrary bytes. Checks that it
// never reads past its input and that a complete request lies within it, starting with its method
// and target; crashes and sanitizer findings are libFuzzer's.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "request_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);  // an exact-size heap copy: ASan sees overreads
  for (const size_t max_bytes : {size_t{64}, size_t{65536}}) {
    const maas::RequestFraming framing = maas::frame_request(input, max_bytes);
    if (framing.kind != maas::RequestFraming::kComplete) continue;
    const char* begin = input.data();
    const char* end = begin + input.size();
    if (framing.bytes > input.size() || framing.bytes > max_bytes || framing.method.data() != begin ||
        framing.target.data() < begin || framing.target.data() + framing.target.size() > end)
      std::abort();
  }
  return 0;
}
