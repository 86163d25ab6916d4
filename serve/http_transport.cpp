// The per-connection loop, the deadline-aware socket stream, the elastic connection threads and
// bounded inflation of compressed bodies.
#include "http_transport.h"

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

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

int millis_until(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60'000));  // +1: never wake just before it
}

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

bool is_digits(const std::string& s) {
  return !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string::npos;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// One connection: its socket stream and what the transport knows about the current request.
class HttpTransport::Connection final : public httplib::Stream {
 public:
  Connection(HttpTransport& transport, int sock) : transport_(transport), options_(transport.options_), sock_(sock) {}
  ~Connection() override { release_inflight(); }

  // Waits for the next request's first byte. False on close, idle timeout or shutdown.
  bool wait_for_request() {
    if (buffered() > 0) return true;
    // Readable also means closed by the client: the request line's read then sees the end.
    return poll_socket(POLLIN, Clock::now() + seconds(options_.idle_timeout_s), /*wake_on_shutdown=*/true) > 0;
  }

  // A new request starts: its deadline runs from now; reads count as header bytes.
  void begin_request() {
    release_inflight();
    deadline_ = Clock::now() + seconds(options_.request_timeout_s);
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
    if (chunked && (lengths > 0 || lower(req.get_header_value("Transfer-Encoding")) != "chunked")) {
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
    const size_t n = std::min(size, buffered());
    std::memcpy(ptr, buffer_ + begin_, n);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  // httplib writes a response's headers and body separately: small writes are held and sent
  // together (flush() after each request, and before any read), so a small response leaves in one
  // segment and wakes the client once. A held write reports success before it is sent; a failed
  // flush closes the connection. (maas-serve streams no response; a streamed one would be held
  // until 16 KiB or the request's end.)
  ssize_t write(const char* ptr, size_t size) override {
    written_ = true;
    if (pending_.size() + size <= kCoalesceBytes) {
      pending_.append(ptr, size);
      return static_cast<ssize_t>(size);
    }
    if (!flush()) return -1;
    return send_some(ptr, size);
  }

  // Sends what write() held. False when the socket failed or timed out (the bytes are dropped).
  bool flush() {
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

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  static constexpr size_t kCoalesceBytes = 16 * 1024;

  ssize_t send_some(const char* ptr, size_t size) {
    if (poll_socket(POLLOUT, Clock::now() + seconds(options_.write_timeout_s), false) <= 0) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }
  size_t buffered() const { return end_ - begin_; }

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

  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int rc = remote ? ::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len)
                          : ::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) return;
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
  }

  void release_inflight() {
    transport_.inflight_body_bytes_ -= inflight_;
    inflight_ = 0;
  }

  HttpTransport& transport_;
  const TransportOptions& options_;
  const int sock_;
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
  struct Counted {
    std::atomic<int64_t>& count;
    ~Counted() { --count; }
  } counted{open_connections_};
  if (++open_connections_ > options_.max_connections) {
    refuse_connection(sock);
    return false;
  }
  bool ok = true;
  {
    Connection connection(*this, sock);
    current_ = &connection;
    while (!shutting_down_ && connection.wait_for_request()) {
      connection.begin_request();
      bool closed = false;
      ok = process_request(connection, /*close_connection=*/shutting_down_.load(), closed,
                           [&connection](httplib::Request& req) { connection.on_headers(req); });
      if (!connection.flush()) ok = false;
      if (!ok && connection.refusal() != Refusal::kNone && !connection.written()) {
        // Cut before httplib could answer (request line too long, too slow, shutting down).
        const Refusal refusal = connection.refusal();
        const std::string body = "{\"error\":\"" + refusal_message(refusal, options_) + "\"}";
        const std::string response = "HTTP/1.1 " + std::to_string(refusal_status(refusal)) +
                                     " \r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\n\r\n" + body;
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
