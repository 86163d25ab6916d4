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

}  // namespace maas
