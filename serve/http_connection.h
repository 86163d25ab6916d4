// maas-serve's connection stream (internal to the transport and its event loop): one client
// connection as httplib::Stream, with the current request's deadline, byte budgets and refusal.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "http_transport.h"
#include "request_framing.h"

namespace maas {
namespace transport_detail {

using Clock = std::chrono::steady_clock;

inline Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

inline int millis_until(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60'000));  // +1: never wake just before it
}

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace transport_detail

using namespace transport_detail;

// One connection: its socket stream and what the transport knows about the current request.
// Used by one thread at a time (its connection thread, or its event loop's thread).
class HttpTransport::Connection final : public httplib::Stream {
 public:
  // `in_memory`: an event loop's connection. Requests are read from input() only (the loop has
  // received them whole) and responses are held in the output (take_output()), never sent.
  Connection(HttpTransport& transport, int sock, bool in_memory = false)
      : transport_(transport), options_(transport.options_), sock_(sock), in_memory_(in_memory) {}
  ~Connection() override { release_inflight(); }

  // Waits for the next request's first byte. False on close, idle timeout or shutdown.
  bool wait_for_request() {
    if (buffered() > 0) return true;
    // Readable also means closed by the client: the request line's read then sees the end.
    return poll_socket(POLLIN, Clock::now() + seconds(options_.idle_timeout_s), /*wake_on_shutdown=*/true) > 0;
  }

  // A new request starts: its deadline runs from now (or `deadline`, for a request whose first
  // bytes an event loop received); reads count as header bytes.
  void begin_request(std::optional<Clock::time_point> deadline = std::nullopt) {
    release_inflight();
    deadline_ = deadline ? *deadline : Clock::now() + seconds(options_.request_timeout_s);
    deferred_ = false;
    read_at_begin_ = read_total_;
    in_headers_ = true;
    header_bytes_ = buffered();
    body_bytes_ = 0;
    refusal_ = Refusal::kNone;
    charge_as_received_ = false;
    content_encoding_.clear();
    written_ = false;
  }

  // Called by httplib once the request line and headers are parsed (before routing): checks the
  // framing, takes the body encoding away from httplib, and reserves the declared body.
  void on_headers(httplib::Request& req) {
    in_headers_ = false;
    body_bytes_ = buffered();  // read ahead with the headers
    // Exact (httplib reads the head a byte at a time), and also for bytes an event loop received:
    // the check on the socket's reads below allows a buffer of slack and never sees those.
    if (read_total_ - read_at_begin_ > options_.max_header_bytes) return refuse(Refusal::kHeadersTooLarge);
    const bool chunked = req.has_header("Transfer-Encoding");
    const size_t lengths = req.get_header_value_count("Content-Length");
    // httplib reads bodies only for these methods; another method's body would be read as the
    // next request.
    const bool takes_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                            req.method == "DELETE" || req.method == "PRI";
    if (!takes_body && (chunked || (lengths > 0 && req.get_header_value("Content-Length") != "0"))) {
      refuse(Refusal::kBadFraming);
      return;
    }
    if (chunked && (lengths > 0 || !equals_lower(req.get_header_value("Transfer-Encoding"), "chunked"))) {
      refuse(Refusal::kBadFraming);  // request smuggling, or a coding httplib would misread
      return;
    }
    if (lengths > 1) {
      refuse(Refusal::kBadFraming);
      return;
    }
    if (lengths == 1) {
      const std::string v = req.get_header_value("Content-Length");
      if (!is_digits(v)) return refuse(Refusal::kBadFraming);
      const int64_t length = std::stoll(v);
      if (length > options_.max_body_bytes) return refuse(Refusal::kBodyTooLarge);
      if (!charge_inflight(length)) return;
      // Room for the declared body at once (already charged to the budget): grown by doubling,
      // the string would peak at up to three times the body while it arrives.
      req.body.reserve(static_cast<size_t>(length));
    } else if (chunked) {
      charge_as_received_ = true;  // no declared length: the budget is charged as bytes arrive
    } else {
      // RFC 9112 6.3: a request with neither header has no body. httplib would read until the
      // client closes (tritonclient's empty POSTs waited for its 5-s timeout, then got 400).
      req.set_header("Content-Length", "0");
    }
    if (req.has_header("Content-Encoding")) {
      const std::string encoding = lower(req.get_header_value("Content-Encoding"));
      req.headers.erase("Content-Encoding");
      if (encoding == "gzip" || encoding == "x-gzip" || encoding == "deflate") content_encoding_ = encoding;
      else if (encoding != "identity") return refuse(Refusal::kEncoding);
      if (!content_encoding_.empty() && req.is_multipart_form_data()) return refuse(Refusal::kEncoding);
    }
  }

  void refuse(Refusal refusal) {
    if (refusal_ == Refusal::kNone) refusal_ = refusal;
  }
  Refusal refusal() const { return refusal_; }
  // Whether httplib has parsed the current request's line and headers (on_headers ran).
  bool headers_parsed() const { return !in_headers_; }
  bool written() const { return written_; }
  const std::string& content_encoding() const { return content_encoding_; }

  // Counts `bytes` against max_inflight_body_bytes until the request ends. False (and refused
  // with kBusy) when over the budget.
  bool charge_inflight(int64_t bytes) {
    const int64_t total = transport_.inflight_body_bytes_ += bytes;
    inflight_ += bytes;
    if (total > options_.max_inflight_body_bytes) {
      refuse(Refusal::kBusy);
      return false;
    }
    return true;
  }

  // httplib::Stream
  bool is_readable() const override { return buffered() > 0 || poll_socket(POLLIN, deadline_, false) > 0; }
  bool is_writable() const override {
    return poll_socket(POLLOUT, Clock::now() + seconds(options_.write_timeout_s), false) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (input_pos_ < input_.size()) {  // received before: counted by begin_request()/on_headers()
      const size_t n = std::min(size, input_.size() - input_pos_);
      std::memcpy(ptr, input_.data() + input_pos_, n);
      input_pos_ += n;
      read_total_ += static_cast<int64_t>(n);
      return static_cast<ssize_t>(n);
    }
    if (in_memory_ && buffered() == 0) return 0;  // the loop framed the request: httplib wants no more
    if (buffered() == 0) {
      if (!pending_.empty() && !flush()) return -1;  // e.g. a 100 Continue the client waits for
      if (refusal_ != Refusal::kNone) return -1;
      const int ready = poll_socket(POLLIN, deadline_, in_headers_);
      if (ready < 0) return -1;
      if (ready == 0) {
        refuse(transport_.shutting_down_ && in_headers_ ? Refusal::kShuttingDown : Refusal::kTimeout);
        return -1;
      }
      const ssize_t n = ::recv(sock_, buffer_, sizeof buffer_, 0);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
      if (in_headers_) {
        header_bytes_ += n;
        // One buffer of slack: the body's first bytes may arrive with the headers.
        if (header_bytes_ > options_.max_header_bytes + static_cast<int64_t>(sizeof buffer_)) {
          refuse(Refusal::kHeadersTooLarge);
          return -1;
        }
      } else {
        body_bytes_ += n;
        // Chunked framing costs a few bytes per chunk: allow an eighth more on the wire.
        if (body_bytes_ > options_.max_body_bytes + options_.max_body_bytes / 8 + 4096) {
          refuse(Refusal::kBodyTooLarge);
          return -1;
        }
        if (charge_as_received_ && !charge_inflight(n)) return -1;
      }
    }
    const size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buffer_ + begin_, n);
    begin_ += n;
    read_total_ += static_cast<int64_t>(n);
    return static_cast<ssize_t>(n);
  }

  // httplib writes a response's headers and body separately: small writes are held and sent
  // together (flush() after each request, and before any read), so a small response leaves in one
  // segment and wakes the client once. A held write reports success before it is sent; a failed
  // flush closes the connection. (maas-serve streams no response; a streamed one would be held
  // until 16 KiB or the request's end.)
  ssize_t write(const char* ptr, size_t size) override {
    written_ = true;
    if (in_memory_ || pending_.size() + size <= kCoalesceBytes) {
      pending_.append(ptr, size);
      return static_cast<ssize_t>(size);
    }
    if (!flush()) return -1;
    return send_some(ptr, size);
  }

  // Sends what write() held. False when the socket failed or timed out (the bytes are dropped).
  bool flush() {
    if (in_memory_) return true;  // the loop sends take_output()
    for (size_t sent = 0; sent < pending_.size();) {
      const ssize_t n = send_some(pending_.data() + sent, pending_.size() - sent);
      if (n <= 0) {
        pending_.clear();
        return false;
      }
      sent += static_cast<size_t>(n);
    }
    pending_.clear();
    return true;
  }

  // Bytes received but not yet read by httplib: an event loop appends to it, and a connection
  // handed from a loop to a thread starts with what the loop received.
  void append_input(const char* data, size_t size) {
    if (input_pos_ > 0 && input_pos_ == input_.size()) input_.clear(), input_pos_ = 0;
    input_.append(data, size);
  }
  // The unread input (from the start of the request being received).
  std::string_view unread_input() const { return std::string_view(input_).substr(input_pos_); }
  // Drops the input httplib has read (call between requests).
  void drop_read_input() {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
  }
  // What the handled request wrote (in-memory connections).
  std::string take_output() { return std::move(pending_); }
  // The handler deferred its response (HttpTransport::defer): what httplib writes is discarded.
  void set_deferred() { deferred_ = true; }
  bool deferred() const { return deferred_; }
  bool in_memory() const { return in_memory_; }
  // The event loop the request runs on (set by the loop around each request; null on threads).
  HttpTransport::EventLoop* loop = nullptr;
  uint64_t loop_client = 0;  // and the loop's id of this connection

  // httplib asks for both on every request; a socket's addresses never change: looked up once.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    if (!remote_.known) remote_ = address(true);
    ip = remote_.ip, port = remote_.port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (!local_.known) local_ = address(false);
    ip = local_.ip, port = local_.port;
  }
  socket_t socket() const override { return sock_; }

 private:
  static constexpr size_t kCoalesceBytes = 16 * 1024;

  ssize_t send_some(const char* ptr, size_t size) {
    if (poll_socket(POLLOUT, Clock::now() + seconds(options_.write_timeout_s), false) <= 0) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }
  size_t buffered() const { return end_ - begin_ + (input_.size() - input_pos_); }

  // poll() on the socket until `deadline`; with `wake_on_shutdown`, also returns 0 once shutdown
  // begins. Returns > 0 ready, 0 timeout (or shutdown), < 0 error.
  int poll_socket(short events, Clock::time_point deadline, bool wake_on_shutdown) const {
    pollfd fds[2] = {{sock_, events, 0}, {transport_.wake_fd_, POLLIN, 0}};
    while (true) {
      if (wake_on_shutdown && transport_.shutting_down_) return 0;
      const int timeout = millis_until(deadline);
      if (timeout == 0) return 0;
      const int ready = ::poll(fds, wake_on_shutdown ? 2 : 1, timeout);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return -1;
      if (ready == 0) continue;  // re-check the deadline
      if (fds[0].revents != 0) return 1;
      if (wake_on_shutdown && fds[1].revents != 0) return 0;
    }
  }

  struct Address {
    bool known = false;
    std::string ip;
    int port = 0;
  };
  Address address(bool remote) const {
    Address result;
    result.known = true;
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int rc = remote ? ::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len)
                          : ::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) return result;
    std::string& ip = result.ip;
    int& port = result.port;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    ip = text;
    return result;
  }

  void release_inflight() {
    transport_.inflight_body_bytes_ -= inflight_;
    inflight_ = 0;
  }

  HttpTransport& transport_;
  const TransportOptions& options_;
  const int sock_;
  const bool in_memory_;
  std::string input_;  // see append_input()
  size_t input_pos_ = 0;
  bool deferred_ = false;
  int64_t read_total_ = 0, read_at_begin_ = 0;  // bytes httplib read: in all, and before this request
  mutable Address remote_, local_;  // see get_remote_ip_and_port()
  char buffer_[16 * 1024];
  size_t begin_ = 0, end_ = 0;
  Clock::time_point deadline_ = Clock::now();
  bool in_headers_ = true;
  int64_t header_bytes_ = 0, body_bytes_ = 0, inflight_ = 0;
  Refusal refusal_ = Refusal::kNone;
  bool charge_as_received_ = false;  // a chunked body: counted against the in-flight budget as read
  std::string content_encoding_;
  bool written_ = false;
  std::string pending_;  // written, not yet sent (see write())
};

}  // namespace maas
