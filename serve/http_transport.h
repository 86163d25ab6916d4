// maas-serve's connection layer: cpp-httplib parses and routes each request, but connections run
// in maas's own loop, with deadlines, byte budgets, a connection cap and a wake-up for shutdown.
//
// Why not httplib's own loop: Debian's cpp-httplib 0.11 reads a request with a per-recv timeout
// only (a client sending one byte every few seconds holds a thread forever), reads chunked and
// length-less bodies and whole request lines without limit, inflates gzip bodies without limit,
// and serves connections from a fixed pool that slow clients can fill. Server's per-request
// parser (process_request) is protected and its per-connection loop virtual, so maas replaces
// the loop and keeps the parser.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace maas {

struct TransportOptions {
  // Open connections at most. One more is answered 503 (Retry-After) and closed at once.
  int64_t max_connections = 2048;
  // A request's line, headers and body must all arrive within this many seconds of its first
  // byte; otherwise 408 and the connection closes.
  double request_timeout_s = 30;
  // A keep-alive connection that sends no new request for this long is closed.
  double idle_timeout_s = 10;
  // Seconds a response may wait for the client to accept bytes; then the connection closes.
  double write_timeout_s = 10;
  // Request line plus headers, in bytes; beyond: 431 and close.
  int64_t max_header_bytes = 64 << 10;
  // A body on the wire and after decompression, in bytes; beyond: 413 and close.
  int64_t max_body_bytes = 64 << 20;
  // All request bodies being received or held at once, in bytes (decompressed ones included);
  // beyond: 503 + Retry-After, so many large uploads at once cannot exhaust memory.
  int64_t max_inflight_body_bytes = int64_t{1} << 30;
};

// Why the connection layer refused or cut the request being handled (see current_refusal()).
enum class Refusal {
  kNone,
  kBadFraming,       // 400: conflicting or malformed Content-Length / Transfer-Encoding
  kMalformed,        // 400 (or httplib's 414): a request line or header httplib could not parse
  kTimeout,          // 408: the request did not arrive within request_timeout_s
  kBodyTooLarge,     // 413
  kHeadersTooLarge,  // 431
  kEncoding,         // 415: a Content-Encoding other than gzip, deflate or identity
  kBusy,             // 503: max_inflight_body_bytes reached
  kShuttingDown,     // 503
};

// The HTTP status and message of a refusal (kNone: 0, "").
int refusal_status(Refusal refusal);
std::string refusal_message(Refusal refusal, const TransportOptions& options);

// Thrown by request_body() when the inflated body is over max_body_bytes (413) or over the
// in-flight budget (503); carries the status.
struct RequestRefused : std::runtime_error {
  RequestRefused(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

// An httplib::Server whose connections run through maas's loop. Configure routes and handlers on
// it as on httplib::Server; bind and listen with httplib's calls.
// Thread-safety: begin_shutdown() and open_connections() may be called from any thread.
class HttpTransport : public httplib::Server {
 public:
  explicit HttpTransport(const TransportOptions& options);
  ~HttpTransport() override;
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // From now on idle connections close, requests still arriving are cut, and requests being
  // handled finish with Connection: close. Call before httplib's stop().
  void begin_shutdown();
  int64_t open_connections() const { return open_connections_.load(); }
  int64_t inflight_body_bytes() const { return inflight_body_bytes_.load(); }
  const TransportOptions& options() const { return options_; }

  // For handlers and the error handler, on the thread handling the request: why the connection
  // layer refused or cut it (kNone when it did not).
  static Refusal current_refusal();
  // For the error handler (a status >= 400 being written): current_refusal(), after recording
  // kMalformed when httplib refused the request before its headers were parsed. Any refusal
  // closes the connection after the answer.
  static Refusal refusal_for_error_response();

  // The request's body, inflated when it was sent with Content-Encoding gzip or deflate (httplib
  // would inflate it without limit, so the transport takes the header away and keeps it here).
  // Throws RequestRefused past max_body_bytes or the in-flight budget, std::invalid_argument for
  // corrupt compressed data.
  // Returns req.body itself when it was not compressed, else `inflated`, filled.
  // Requires: called on the thread handling `req`.
  const std::string& request_body(const httplib::Request& req, std::string& inflated) const;

 private:
  class Connection;
  // The connection whose request this thread is handling: handlers get only the
  // httplib::Request, and each connection's requests run on its own thread, start to finish.
  static thread_local Connection* current_;
  bool process_and_close_socket(socket_t sock) override;
  void refuse_connection(socket_t sock) const;

  const TransportOptions options_;
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int64_t> inflight_body_bytes_{0};
  std::atomic<bool> shutting_down_{false};
  int wake_fd_ = -1;  // eventfd, readable once shutdown begins: wakes every waiting connection
};

}  // namespace maas
