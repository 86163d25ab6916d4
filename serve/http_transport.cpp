// Connections on threads (one each, elastic), handing connections to the event loops, refusals,
// and bounded inflation of compressed bodies.
#include "http_transport.h"

#include "http_connection.h"
#include "http_event_loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace maas {
namespace {

// Connection threads: one per open connection, made when no idle one is left, up to `max_threads`
// (beyond, connections wait for a thread). httplib's fixed pool let slow clients hold every thread.
class ElasticThreads : public httplib::TaskQueue {
 public:
  explicit ElasticThreads(size_t max_threads) : max_threads_(max_threads) {}
  ~ElasticThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_threads_) {
      ++idle_;  // counted idle until it takes its first job
      threads_.emplace_back([this] { work(); });
    }
    ready_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    pthread_setname_np(pthread_self(), "maas-http");
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      ready_.wait(lock, [&] { return stopped_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopped and drained
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      --idle_;
      lock.unlock();
      fn();
      lock.lock();
      ++idle_;
    }
  }

  const size_t max_threads_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopped_ = false;
};

// Reads and drops what arrives on `sock` until the peer closes, `wait` passes or `limit` bytes.
void discard_input(int sock, std::chrono::milliseconds wait, size_t limit) {
  char sink[16 * 1024];
  const auto until = Clock::now() + wait;
  for (size_t dropped = 0; dropped < limit;) {
    pollfd in{sock, POLLIN, 0};
    if (::poll(&in, 1, millis_until(until)) <= 0) return;
    const ssize_t n = ::recv(sock, sink, sizeof sink, 0);
    if (n <= 0) return;
    dropped += static_cast<size_t>(n);
  }
}

}  // namespace

thread_local HttpTransport::Connection* HttpTransport::current_ = nullptr;

int refusal_status(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNone: return 0;
    case Refusal::kBadFraming:
    case Refusal::kMalformed: return 400;
    case Refusal::kTimeout: return 408;
    case Refusal::kBodyTooLarge: return 413;
    case Refusal::kHeadersTooLarge: return 431;
    case Refusal::kEncoding: return 415;
    case Refusal::kBusy:
    case Refusal::kShuttingDown: return 503;
  }
  return 500;
}

std::string refusal_message(Refusal refusal, const TransportOptions& o) {
  switch (refusal) {
    case Refusal::kNone: return "";
    case Refusal::kBadFraming:
      return "bad body framing: send one Content-Length, or Transfer-Encoding: chunked alone";
    case Refusal::kMalformed:
      return "malformed request: expected the request line 'METHOD /path HTTP/1.1' (method GET, HEAD, POST, PUT, "
             "DELETE, OPTIONS or PATCH; target at most 8 KiB), then 'Name: value' header lines";
    case Refusal::kTimeout:
      return "the request did not arrive within server.request_timeout_s (" + std::to_string(o.request_timeout_s) + " s)";
    case Refusal::kBodyTooLarge:
      return "request body over server.max_body_bytes (" + std::to_string(o.max_body_bytes) +
             " bytes, on the wire and after decompression)";
    case Refusal::kHeadersTooLarge:
      return "request line and headers over server.max_header_bytes (" + std::to_string(o.max_header_bytes) + " bytes)";
    case Refusal::kEncoding: return "unsupported Content-Encoding: use gzip, deflate or none (and none for multipart)";
    case Refusal::kBusy:
      return "too many request bodies in flight (server.max_inflight_body_bytes); retry later";
    case Refusal::kShuttingDown: return "server is shutting down";
  }
  return "";
}

HttpTransport::HttpTransport(const TransportOptions& options) : options_(options) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd failed: ") + std::strerror(errno));
  // Extra threads beyond the cap answer the connections over it (503) instead of queueing them.
  const size_t threads = static_cast<size_t>(options_.max_connections) + 64;
  new_task_queue = [threads] { return new ElasticThreads(threads); };
  // The loop below enforces the body limit (httplib's check only covers Content-Length).
  set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  set_expect_100_continue_handler([](const httplib::Request&, httplib::Response& res) {
    const Refusal refusal = current_refusal();
    if (refusal == Refusal::kNone) return 100;
    res.status = refusal_status(refusal);
    return res.status;  // answered before the client sends the body
  });
}

HttpTransport::~HttpTransport() {
  loops_.clear();  // serve() ended them unless it threw
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void HttpTransport::begin_shutdown() {
  shutting_down_ = true;
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) {
    // the eventfd counter cannot overflow from one write; pollers also check shutting_down_
  }
}

Refusal HttpTransport::current_refusal() {
  return current_ ? current_->refusal() : Refusal::kNone;
}

Refusal HttpTransport::refusal_for_error_response() {
  // httplib answers a request line or header it cannot parse (400, or 414 for a long target)
  // before on_headers, and carries on with the next line as a new request: the connection must
  // close after this answer, or header lines are served as requests.
  if (current_ && current_->refusal() == Refusal::kNone && !current_->headers_parsed())
    current_->refuse(Refusal::kMalformed);
  return current_refusal();
}

void HttpTransport::refuse_connection(socket_t sock) const {
  const std::string body = "{\"error\":\"too many open connections (server.max_connections=" +
                           std::to_string(options_.max_connections) + "); retry later\"}";
  const std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body;
  pollfd fd{sock, POLLOUT, 0};
  if (::poll(&fd, 1, 100) > 0) (void)::send(sock, response.data(), response.size(), MSG_NOSIGNAL);
  // Half-close and read briefly what the client already sent: closing with unread bytes would
  // reset the connection, and the client might never see the 503.
  ::shutdown(sock, SHUT_WR);
  discard_input(sock, std::chrono::milliseconds(100), 64 << 10);
  ::close(sock);
}

bool HttpTransport::process_and_close_socket(socket_t sock) {
  if (++open_connections_ > options_.max_connections) {
    refuse_connection(sock);
    --open_connections_;
    return false;
  }
  if (!loops_.empty()) {
    loops_[next_loop_++ % loops_.size()]->add(sock);
    return true;
  }
  return serve_on_thread(sock);
}

void HttpTransport::hand_to_thread(socket_t sock, std::string carried, std::optional<Clock::time_point> deadline) {
  handed_over_->enqueue([this, sock, carried = std::move(carried), deadline]() mutable {
    serve_on_thread(sock, std::move(carried), deadline);
  });
}

std::string HttpTransport::refusal_response(Refusal refusal) const {
  const std::string body = "{\"error\":\"" + refusal_message(refusal, options_) + "\"}";
  return "HTTP/1.1 " + std::to_string(refusal_status(refusal)) +
         " \r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool HttpTransport::serve_on_thread(socket_t sock, std::string carried, std::optional<Clock::time_point> deadline) {
  struct Counted {
    std::atomic<int64_t>& count;
    ~Counted() { --count; }
  } counted{open_connections_};
  bool ok = true;
  {
    Connection connection(*this, sock);
    connection.append_input(carried.data(), carried.size());
    current_ = &connection;
    bool carried_request = deadline.has_value();  // served even while shutting down
    while ((carried_request || !shutting_down_) && connection.wait_for_request()) {
      connection.begin_request(carried_request ? deadline : std::nullopt);
      carried_request = false;
      bool closed = false;
      ok = process_request(connection, /*close_connection=*/shutting_down_.load(), closed,
                           [&connection](httplib::Request& req) { connection.on_headers(req); });
      if (!connection.flush()) ok = false;
      if (!ok && connection.refusal() != Refusal::kNone && !connection.written()) {
        // Cut before httplib could answer (request line too long, too slow, shutting down).
        const std::string response = refusal_response(connection.refusal());
        for (size_t sent = 0; sent < response.size();) {
          const ssize_t n = connection.write(response.data() + sent, response.size() - sent);
          if (n <= 0) break;
          sent += static_cast<size_t>(n);
        }
        connection.flush();
      }
      // After a refusal the rest of the request is unread: the connection cannot go on.
      if (!ok || closed || connection.refusal() != Refusal::kNone) break;
    }
    current_ = nullptr;
    if (connection.refusal() != Refusal::kNone) {
      // Closing with the client's unread bytes queued resets the connection, and the client may
      // lose the answer: half-close, then discard what still arrives for a moment.
      ::shutdown(sock, SHUT_WR);
      discard_input(sock, std::chrono::milliseconds(500), 4 << 20);
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

bool HttpTransport::serve() {
  handed_over_ = std::make_unique<ElasticThreads>(static_cast<size_t>(options_.max_connections) + 64);
  for (int64_t i = 0; i < options_.event_loop_threads; ++i) loops_.push_back(std::make_unique<EventLoop>(*this));
  const bool ok = listen_after_bind();
  // httplib has stopped accepting and joined its connection jobs; the loops serve their
  // connections to the end (shutdown closes idle ones), then the handed-over ones finish.
  for (auto& loop : loops_) loop->finish();
  loops_.clear();
  handed_over_->shutdown();
  handed_over_.reset();
  return ok;
}

bool HttpTransport::defer(std::function<AfterRound(Reply)> start) {
  if (!can_defer()) return false;
  current_->loop->defer(*current_, std::move(start));
  return true;
}

bool HttpTransport::can_defer() { return current_ && current_->loop; }

bool HttpTransport::current_deferred() { return current_ && current_->deferred(); }

const std::string& HttpTransport::request_body(const httplib::Request& req, std::string& inflated) const {
  Connection* connection = current_;
  if (!connection || connection->content_encoding().empty()) return req.body;  // no copy on the common path
  z_stream z{};
  // 15 + 32: zlib or gzip header, detected. "deflate" is zlib-wrapped by RFC 9110, but some
  // clients send raw deflate: retried below with -15.
  const bool raw_deflate_possible = connection->content_encoding() == "deflate";
  for (const int window_bits : {15 + 32, -15}) {
    if (window_bits < 0 && !raw_deflate_possible) break;
    if (inflateInit2(&z, window_bits) != Z_OK) throw std::runtime_error("zlib initialization failed");
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(req.body.data()));
    z.avail_in = static_cast<uInt>(req.body.size());
    int rc = Z_OK;
    char chunk[64 * 1024];
    while (rc == Z_OK) {
      z.next_out = reinterpret_cast<Bytef*>(chunk);
      z.avail_out = sizeof chunk;
      rc = inflate(&z, Z_NO_FLUSH);
      const size_t produced = sizeof chunk - z.avail_out;
      if (static_cast<int64_t>(out.size() + produced) > options_.max_body_bytes) {
        inflateEnd(&z);
        connection->refuse(Refusal::kBodyTooLarge);
        throw RequestRefused(413, refusal_message(Refusal::kBodyTooLarge, options_));
      }
      if (rc == Z_OK && produced == 0 && z.avail_in == 0) break;  // truncated input
      if (!connection->charge_inflight(static_cast<int64_t>(produced))) {
        inflateEnd(&z);
        throw RequestRefused(503, refusal_message(Refusal::kBusy, options_));
      }
      out.append(chunk, produced);
    }
    inflateEnd(&z);
    if (rc == Z_STREAM_END) {
      inflated = std::move(out);
      return inflated;
    }
  }
  throw std::invalid_argument("request body is not valid " + connection->content_encoding() + " data");
}

}  // namespace maas
