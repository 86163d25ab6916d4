// Framing of a request an event loop reads (internal to the transport): how much of the bytes
// received is one whole request the loop may run, and whether a thread must read it instead.
// No dependencies: fuzzed alone (tests/fuzz/fuzz_frame_request.cpp).
#pragma once

#include <cstddef>
#include <string_view>

namespace maas {

// How much of `input` is one request an event loop can run by itself.
struct RequestFraming {
  enum Kind {
    kIncomplete,  // the request line and headers, or the body they declare, are still arriving
    kComplete,    // `bytes` bytes are one whole request with a Content-Length body (or none)
    kOther,       // anything else (chunked, compressed, Expect, over max_bytes, odd syntax): a thread reads it
  } kind = kIncomplete;
  size_t bytes = 0;
  std::string_view method, target;  // of a complete request
};
// Reads the request line and headers of the request at the start of `input`, strictly (CRLF
// line ends, "Name: value" fields, at most one Content-Length, no Transfer-Encoding,
// Content-Encoding or Expect). Never reads past `input`.
RequestFraming frame_request(std::string_view input, size_t max_bytes);

// The HTTP text rules it uses, shared with the connection layer:
// `text` equals `lower_text` (lower case) ignoring ASCII case, as field names compare.
bool equals_lower(std::string_view text, std::string_view lower_text);
// 1 to 18 decimal digits (a byte count that fits int64 and is not empty).
bool is_digits(std::string_view s);

}  // namespace maas
