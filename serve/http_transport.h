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
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  // Threads that serve connections from epoll event loops; 0 = a thread per connection for all.
  // A loop reads each request whole (at most loop_request_bytes, no chunked or compressed body, no
  // Expect) for the routes set_loop_route() names, runs it, and answers deferred responses when
  // they are ready, without a thread per request. A connection that sends anything else is handed
  // to a thread of its own for the rest of its life, with its deadline.
  int64_t event_loop_threads = 1;
  // After a round that served requests, a loop polls its sockets this long before it sleeps: on a
  // VM whose idle vCPUs halt, the next request then finds a warm core (see
  // BatchingOptions::idle_spin_us). 0 = sleep at once; off on one core.
  int64_t idle_spin_us = 1000;
  // After reading requests it defers, a loop reads on for up to this long while clients it answered
  // within this long are silent, so that their next requests join the same batch (clients of a
  // busy server answer and send again within microseconds). 0 = run what was read at once.
  int64_t gather_us = 500;
  // Request line, headers and body of a request an event loop serves, in bytes at most.
  int64_t loop_request_bytes = 64 << 10;
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

// The answer to a deferred request (HttpTransport::defer). Copies share one answer: send() it
// once, from any thread. If the last copy is destroyed unsent, the client gets a 500.
class Reply {
 public:
  void send(httplib::Response response) const;

  struct State;  // the connection it answers (internal)
  explicit Reply(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
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

  // Serves until httplib's stop(), then until every connection has closed; blocks. Use instead of
  // listen_after_bind() (which would serve without the event loops).
  bool serve();

  // The routes event loops may run (by method and request target, before any decoding); their
  // handlers must not block: they answer at once or defer(). Others go to connection threads.
  // Unset: every request goes to a connection thread.
  void set_loop_route(std::function<bool(std::string_view method, std::string_view target)> route) {
    loop_route_ = std::move(route);
  }

  // What a deferred request's start returns: work for the loop's thread once every start of the
  // round has run (e.g. running the batch their submissions formed), or nullptr.
  using AfterRound = std::function<void()>;
  // For a handler: defers the response of the request it handles. `start` runs on this thread
  // once the requests read together with this one were all handled (so their inference can be
  // batched) and must lead to one Reply::send. What the handler writes to its Response is
  // discarded. Returns false and does nothing on a connection thread: answer in the handler.
  static bool defer(std::function<AfterRound(Reply)> start);
  // Whether defer() would defer the request this thread handles (it runs on an event loop).
  static bool can_defer();
  // Whether the request this thread handles was deferred (its httplib response is discarded).
  static bool current_deferred();

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
  class EventLoop;
  // The connection whose request this thread is handling: handlers get only the
  // httplib::Request, and each connection's requests run on its own thread, start to finish.
  static thread_local Connection* current_;
  bool process_and_close_socket(socket_t sock) override;
  // The thread-per-connection loop. `carried`: bytes an event loop received (a request's start),
  // whose deadline is `deadline`; that first request is served even while shutting down.
  // Closes the socket and counts the connection closed.
  bool serve_on_thread(socket_t sock, std::string carried = {},
                       std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // From an event loop: serve_on_thread() on a thread of its own.
  void hand_to_thread(socket_t sock, std::string carried, std::optional<std::chrono::steady_clock::time_point> deadline);
  void refuse_connection(socket_t sock) const;
  // The whole response (Connection: close) for a request cut before httplib could answer it.
  std::string refusal_response(Refusal refusal) const;

  const TransportOptions options_;
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int64_t> inflight_body_bytes_{0};
  std::atomic<bool> shutting_down_{false};
  int wake_fd_ = -1;  // eventfd, readable once shutdown begins: wakes every waiting connection
  std::function<bool(std::string_view, std::string_view)> loop_route_;
  std::vector<std::unique_ptr<EventLoop>> loops_;  // while serve() runs
  std::atomic<uint64_t> next_loop_{0};
  std::atomic<int64_t> awake_loops_{0};  // loops not blocked in epoll_wait (see EventLoop::run)
  std::unique_ptr<httplib::TaskQueue> handed_over_;  // threads of connections loops handed over
};

}  // namespace maas
