// A strict reading of the request line and header fields; anything unusual is left to httplib on
// a connection thread, so the loop never frames a request differently from httplib's parser.
#include "request_framing.h"

#include <cctype>
#include <optional>
#include <string>

namespace maas {
namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

bool equals_lower(std::string_view text, std::string_view lower_text) {
  if (text.size() != lower_text.size()) return false;
  for (size_t i = 0; i < text.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != lower_text[i]) return false;
  return true;
}

bool is_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

RequestFraming frame_request(std::string_view input, size_t max_bytes) {
  RequestFraming framing;
  const auto other = [] { return RequestFraming{RequestFraming::kOther, 0, {}, {}}; };
  const size_t end = input.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    // A bare LF ends lines for httplib too: such a request is a thread's to read.
    // (No CRLF CRLF yet, so any LF CRLF has a bare LF before it.)
    if (input.find("\n\n") != std::string_view::npos || input.find("\n\r\n") != std::string_view::npos ||
        input.size() >= max_bytes)
      return other();
    return framing;
  }
  const std::string_view head = input.substr(0, end + 2);  // every line with its CRLF
  size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return other();
  const std::string_view method = request_line.substr(0, sp1);
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = request_line.substr(sp2 + 1);
  if (method.empty() || target.empty() || target[0] != '/' || (version != "HTTP/1.1" && version != "HTTP/1.0"))
    return other();
  for (const char c : method)
    if (c < 'A' || c > 'Z') return other();
  for (const char c : target)
    if (c <= ' ' || c >= 0x7f) return other();
  std::optional<size_t> content_length;
  for (size_t at = line_end + 2; at < head.size(); at = line_end + 2) {
    line_end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, line_end - at);
    if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos) return other();
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return other();  // also folded lines (leading space)
    const std::string_view name = line.substr(0, colon);
    for (const char c : name)
      if (!is_token_char(c)) return other();
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (equals_lower(name, "transfer-encoding") || equals_lower(name, "content-encoding") ||
        equals_lower(name, "expect"))
      return other();
    if (equals_lower(name, "content-length")) {
      if (content_length || !is_digits(value)) return other();
      content_length = static_cast<size_t>(std::stoull(std::string(value)));
      if (*content_length > max_bytes) return other();
    }
  }
  const size_t bytes = end + 4 + content_length.value_or(0);
  if (bytes > max_bytes) return other();
  if (input.size() < bytes) return framing;
  return {RequestFraming::kComplete, bytes, method, target};
}

}  // namespace maas
