// The event loop: epoll, non-blocking sockets, whole requests run through httplib's parser in
// memory, deferred answers through a mailbox, deadlines by a periodic sweep, hand-over to threads.
#include "http_event_loop.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <future>
#include <iostream>

#include "config.h"

namespace maas {
namespace {

constexpr uint64_t kMailboxTag = 0;
constexpr uint64_t kShutdownTag = 1;
// Deadlines are checked this often (they are seconds long; a late check costs at most this).
constexpr auto kSweepInterval = std::chrono::milliseconds(50);
// After a refusal, the client's remaining bytes are read and dropped this long (see start_draining).
constexpr auto kDrainTime = std::chrono::milliseconds(500);
constexpr size_t kDrainBytes = 4 << 20;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
  }
}

// The HTTP/1.1 bytes of a deferred response (what httplib writes for a handler's response).
std::string serialize(const httplib::Response& res, bool close) {
  const int status = res.status < 0 ? 200 : res.status;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += close ? "Connection: close\r\n" : "Connection: Keep-Alive\r\n";
  out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (equals_lower(name, "content-length") || equals_lower(name, "connection")) continue;
    if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos)
      continue;  // never split the header block (our handlers set no such field)
    out += name + ": " + value + "\r\n";
  }
  out += "\r\n";
  out += res.body;
  return out;
}

void set_blocking(int sock, bool blocking) {
  const int flags = ::fcntl(sock, F_GETFL, 0);
  if (flags >= 0) ::fcntl(sock, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

}  // namespace

// Replies and new sockets for the loop, from any thread; the eventfd wakes the loop.
struct LoopMailbox {
  std::mutex mutex;
  std::vector<std::pair<uint64_t, httplib::Response>> replies;
  std::vector<int> sockets;
  bool closed = false;  // the loop has ended: replies are dropped
  int fd = -1;
  std::thread::id loop_thread;  // set before the loop runs
  // Replies sent on the loop's own thread (a batch it ran itself): no lock and no wake-up needed,
  // the loop writes them before it waits again.
  std::vector<std::pair<uint64_t, httplib::Response>> own_replies;

  // Requires: `mutex` held (the descriptor closes under it when the loop is destroyed).
  void wake_locked() const {
    const uint64_t one = 1;
    if (fd >= 0 && ::write(fd, &one, sizeof one) < 0) {
      // the counter cannot overflow from our writes
    }
  }
  void post(uint64_t client, httplib::Response response) {
    if (std::this_thread::get_id() == loop_thread) {
      own_replies.emplace_back(client, std::move(response));
      return;
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return;
    replies.emplace_back(client, std::move(response));
    wake_locked();
  }
};

struct Reply::State {
  std::shared_ptr<LoopMailbox> mailbox;
  uint64_t client = 0;
  std::atomic<bool> sent{false};

  ~State() {
    if (sent.exchange(true)) return;
    httplib::Response res;
    res.status = 500;
    res.set_content("{\"error\":\"internal error: the request was never answered\"}", "application/json");
    mailbox->post(client, std::move(res));
  }
};

void Reply::send(httplib::Response response) const {
  if (!state_ || state_->sent.exchange(true)) return;  // answered already
  state_->mailbox->post(state_->client, std::move(response));
}

struct HttpTransport::EventLoop::Client {
  enum class State {
    kReading,        // waiting for (the rest of) a request; `deadline`: idle or request timeout
    kAwaitingReply,  // its request was deferred
    kWriting,        // `out` is being sent; `deadline`: write timeout
    kDraining,       // refused: reading and dropping the client's bytes before closing
  };
  Client(HttpTransport& transport, uint64_t id, int sock) : id(id), sock(sock), stream(transport, sock, true) {
    stream.loop_client = id;
  }
  const uint64_t id;
  const int sock;
  Connection stream;
  State state = State::kReading;
  Clock::time_point deadline;
  bool request_begun = false;  // kReading: bytes of a request have arrived
  bool close_after = false;    // close once `out` is sent
  bool drain_after = false;    // ... after draining (a refusal)
  bool peer_closed = false;    // the client sent its end (it may still read the answer)
  bool broken = false;         // the socket failed: close at once
  std::string out;
  size_t out_sent = 0;
  size_t drained = 0;
  uint32_t interest = 0;     // the events registered for it (see set_interest)
  bool registered = false;  // in the epoll set
};

HttpTransport::EventLoop::EventLoop(HttpTransport& transport)
    : transport_(transport), options_(transport.options_), mailbox_(std::make_shared<LoopMailbox>()) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  mailbox_->fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_ < 0 || mailbox_->fd < 0) {
    if (epoll_ >= 0) ::close(epoll_);
    if (mailbox_->fd >= 0) ::close(mailbox_->fd);
    throw std::runtime_error(std::string("cannot create an event loop: ") + std::strerror(errno));
  }
  epoll_event mail{EPOLLIN, {}};
  mail.data.u64 = kMailboxTag;
  epoll_event shutdown{EPOLLIN | EPOLLET, {}};  // the transport's descriptor stays readable: report it once
  shutdown.data.u64 = kShutdownTag;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, mailbox_->fd, &mail);
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, transport_.wake_fd_, &shutdown);
  spin_ = options_.idle_spin_us > 0 && core_count() >= 2;
  std::promise<void> started;
  thread_ = std::thread([this, &started] {
    mailbox_->loop_thread = std::this_thread::get_id();
    started.set_value();
    run();
  });
  started.get_future().wait();  // loop_thread is set before any Reply can be made
}

HttpTransport::EventLoop::~EventLoop() {
  finish();
  ::close(epoll_);
  // Replies still on their way find the mailbox closed; its descriptor closes with the last Reply.
  std::lock_guard<std::mutex> lock(mailbox_->mutex);
  ::close(mailbox_->fd);
  mailbox_->fd = -1;
}

void HttpTransport::EventLoop::add(int sock) {
  {
    std::lock_guard<std::mutex> lock(mailbox_->mutex);
    if (!mailbox_->closed) {
      mailbox_->sockets.push_back(sock);
      mailbox_->wake_locked();
      return;
    }
  }
  ::close(sock);  // the loop has ended (shutdown): the connection is not served
  --transport_.open_connections_;
}

void HttpTransport::EventLoop::finish() {
  if (!thread_.joinable()) return;
  finishing_ = true;
  {
    std::lock_guard<std::mutex> lock(mailbox_->mutex);
    mailbox_->wake_locked();
  }
  thread_.join();
}

void HttpTransport::EventLoop::defer(Connection& connection, std::function<AfterRound(Reply)> start) {
  auto state = std::make_shared<Reply::State>();
  state->mailbox = mailbox_;
  state->client = connection.loop_client;
  connection.set_deferred();
  starts_.push_back([start = std::move(start), reply = Reply(std::move(state))] { return start(reply); });
}

HttpTransport::EventLoop::Client* HttpTransport::EventLoop::find(uint64_t id) {
  const auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.get();
}

void HttpTransport::EventLoop::run() {
  pthread_setname_np(pthread_self(), "maas-loop");
  ++transport_.awake_loops_;
  struct Asleep {  // counted awake until the thread ends
    std::atomic<int64_t>& awake;
    ~Asleep() { --awake; }
  } asleep{transport_.awake_loops_};
  std::vector<epoll_event> events(256);
  std::vector<uint64_t> touched;
  auto next_sweep = Clock::now() + kSweepInterval;
  bool served = false;  // the last round handled requests or sent replies
  while (true) {
    touched.clear();
    int n = 0;
    if (served && spin_) {
      // Poll before sleeping (TransportOptions::idle_spin_us): the next request finds a warm core.
      // Only while no other loop is awake: then its core is needed for serving, not for waiting.
      const auto until = Clock::now() + std::chrono::microseconds(options_.idle_spin_us);
      do n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 0);
      while (n == 0 && Clock::now() < until && transport_.awake_loops_.load(std::memory_order_relaxed) == 1);
    }
    if (n == 0) {
      --transport_.awake_loops_;
      n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), static_cast<int>(kSweepInterval.count()));
      ++transport_.awake_loops_;
    }
    if (n < 0 && errno != EINTR) {
      std::cerr << "maas-serve: epoll_wait failed: " << std::strerror(errno) << "\n";
      break;
    }
    dispatch(events.data(), n, touched);
    gather(events, touched);
    // Only a round that ran requests leads to polling: after writing a worker's answer (a lone
    // request) the polling worker holds the other core, and a polling loop slowed it down.
    served = run_round(touched);
    const bool shutting_down = transport_.shutting_down_ || finishing_;
    const auto now = Clock::now();
    if (now >= next_sweep || shutting_down) {
      sweep(shutting_down);
      next_sweep = now + kSweepInterval;
    }
    for (const uint64_t id : touched)
      if (Client* c = find(id)) set_interest(*c);
    if (shutting_down && clients_.empty()) break;
  }
  std::vector<int> unserved;
  {
    std::lock_guard<std::mutex> lock(mailbox_->mutex);
    mailbox_->closed = true;
    mailbox_->replies.clear();
    unserved.swap(mailbox_->sockets);
  }
  for (const int sock : unserved) {
    ::close(sock);
    --transport_.open_connections_;
  }
  while (!clients_.empty()) close(*clients_.begin()->second);  // only after epoll_wait failed
}

void HttpTransport::EventLoop::dispatch(const epoll_event* events, int n, std::vector<uint64_t>& touched) {
  for (int i = 0; i < n; ++i) {
    const uint64_t tag = events[i].data.u64;
    if (tag == kMailboxTag) {
      uint64_t count;
      while (::read(mailbox_->fd, &count, sizeof count) > 0) {
      }
      continue;
    }
    if (tag == kShutdownTag) continue;  // transport_.shutting_down_ is read by run()
    Client* c = find(tag);
    if (!c) continue;
    if (events[i].events & EPOLLOUT) send_output(*c);
    if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) receive(*c);
    touched.push_back(tag);
  }
  take_mail(touched);
  for (const uint64_t id : touched)
    if (Client* c = find(id)) advance(*c);
}

void HttpTransport::EventLoop::gather(std::vector<epoll_event>& events, std::vector<uint64_t>& touched) {
  if (starts_.empty() || options_.gather_us <= 0) return;
  const auto now = Clock::now();
  const auto window = std::chrono::microseconds(options_.gather_us);
  const auto until = now + window;
  // Clients answered within the window, now silent: likely to send their next request soon.
  const auto expected = [&] {
    const auto t = Clock::now();
    size_t count = 0;
    for (size_t i = 0; i < answered_.size();) {
      Client* c = find(answered_[i].first);
      if (!c || c->state != Client::State::kReading || !c->stream.unread_input().empty() ||
          answered_[i].second + window < t) {
        answered_[i] = answered_.back();  // it sent its request, left, or is not coming soon
        answered_.pop_back();
        continue;
      }
      ++count;
      ++i;
    }
    return count;
  };
  // Sleeping, not spinning: the clients may need this core to send.
  for (auto t = Clock::now(); expected() > 0 && t < until; t = Clock::now()) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until - t).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    int n = ::epoll_pwait2(epoll_, events.data(), static_cast<int>(events.size()), &timeout, nullptr);
    if (n < 0 && errno == ENOSYS)  // before Linux 5.11: whole milliseconds
      n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                       static_cast<int>(std::max<int64_t>(1, ns / 1'000'000)));
    if (n <= 0) continue;
    const size_t before = touched.size();
    dispatch(events.data(), n, touched);
    // A client that sent its end or filled its input must leave the set now, or the level-triggered
    // events would return at once for the rest of the window.
    for (size_t i = before; i < touched.size(); ++i)
      if (Client* c = find(touched[i])) set_interest(*c);
  }
}

bool HttpTransport::EventLoop::run_round(std::vector<uint64_t>& touched) {
  // Every request this round read has been handled: start them together (their inference forms
  // one batch), then run what the starts left for after the round (the batch itself).
  std::vector<std::function<AfterRound()>> starts;
  starts.swap(starts_);
  bool served = !starts.empty();
  std::vector<AfterRound> after_round;
  for (auto& start : starts)
    if (AfterRound after = start()) after_round.push_back(std::move(after));  // failures go through the Reply
  starts.clear();  // the requests' runners and arrivals are released on this thread
  for (auto& after : after_round) after();
  after_round.clear();
  if (!mailbox_->own_replies.empty()) {  // answers of the batches just run here: write them now
    served = true;
    const size_t before = touched.size();
    take_mail(touched);
    for (size_t i = before; i < touched.size(); ++i)
      if (Client* c = find(touched[i])) advance(*c);
  }
  return served;
}

void HttpTransport::EventLoop::take_mail(std::vector<uint64_t>& touched) {
  std::vector<int> sockets;
  std::vector<std::pair<uint64_t, httplib::Response>> replies;
  replies.swap(mailbox_->own_replies);
  {
    std::lock_guard<std::mutex> lock(mailbox_->mutex);
    sockets.swap(mailbox_->sockets);
    for (auto& reply : mailbox_->replies) replies.push_back(std::move(reply));
    mailbox_->replies.clear();
  }
  for (const int sock : sockets) {
    set_blocking(sock, false);
    const uint64_t id = next_id_++;
    Client& client = *clients_.emplace(id, std::make_unique<Client>(transport_, id, sock)).first->second;
    client.deadline = Clock::now() + seconds(options_.idle_timeout_s);
    set_interest(client);  // a failure marks it broken: closed by the next sweep
  }
  for (auto& [id, response] : replies) {
    Client* c = find(id);
    if (!c || c->state != Client::State::kAwaitingReply) continue;  // closed meanwhile
    // A client that sent its end still gets the answers to every request it sent before.
    const bool close = c->close_after || transport_.shutting_down_ || finishing_ ||
                       (c->peer_closed && c->stream.unread_input().empty());
    c->close_after = close;
    start_output(*c, serialize(response, close));
    touched.push_back(id);
  }
}

void HttpTransport::EventLoop::receive(Client& c) {
  char buffer[16 * 1024];
  while (!c.peer_closed) {
    size_t room = sizeof buffer;
    if (c.state != Client::State::kDraining) {
      // One byte over the limit tells frame_request() the request is too large for a loop.
      const size_t held = c.stream.unread_input().size();
      const size_t limit = static_cast<size_t>(options_.loop_request_bytes) + 1;
      if (held >= limit) return;
      room = std::min(room, limit - held);
    }
    const ssize_t n = ::recv(c.sock, buffer, room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) c.broken = true;
    if (n <= 0) {
      c.peer_closed = true;
      return;
    }
    if (c.state == Client::State::kDraining) {
      c.drained += static_cast<size_t>(n);
      if (c.drained >= kDrainBytes) c.peer_closed = true;
      continue;
    }
    c.stream.append_input(buffer, static_cast<size_t>(n));
  }
}

void HttpTransport::EventLoop::advance(Client& c) {
  const uint64_t id = c.id;
  while (Client* client = find(id)) {
    Client& cl = *client;
    if (cl.broken) {
      close(cl);
      return;
    }
    switch (cl.state) {
      case Client::State::kAwaitingReply:
        return;
      case Client::State::kDraining:
        if (cl.peer_closed) close(cl);
        return;
      case Client::State::kWriting:
        if (cl.out_sent < cl.out.size()) return;  // EPOLLOUT resumes it
        cl.out.clear();
        cl.out_sent = 0;
        if (cl.close_after) {
          if (cl.drain_after) start_draining(cl);
          else close(cl);
          return;
        }
        cl.state = Client::State::kReading;
        cl.request_begun = false;
        cl.deadline = Clock::now() + seconds(options_.idle_timeout_s);
        if (options_.gather_us > 0) answered_.emplace_back(cl.id, Clock::now());
        continue;
      case Client::State::kReading: {
        const std::string_view input = cl.stream.unread_input();
        if (input.empty()) {
          if (cl.peer_closed) close(cl);
          return;
        }
        if (!cl.request_begun) {
          cl.request_begun = true;
          cl.deadline = Clock::now() + seconds(options_.request_timeout_s);
        }
        const RequestFraming framing = frame_request(input, static_cast<size_t>(options_.loop_request_bytes));
        if (framing.kind == RequestFraming::kIncomplete) {
          if (cl.peer_closed) close(cl);  // cut off mid-request: nobody waits for an answer
          return;
        }
        if (framing.kind == RequestFraming::kOther || !transport_.loop_route_ ||
            !transport_.loop_route_(framing.method, framing.target)) {
          hand_over(cl);
          return;
        }
        handle(cl);
        continue;
      }
    }
  }
}

void HttpTransport::EventLoop::handle(Client& c) {
  const bool shutting_down = transport_.shutting_down_ || finishing_;
  c.stream.begin_request(c.deadline);
  c.stream.loop = this;
  HttpTransport::current_ = &c.stream;
  bool closed = false;
  const bool ok = transport_.process_request(c.stream, shutting_down, closed,
                                             [&c](httplib::Request& req) { c.stream.on_headers(req); });
  HttpTransport::current_ = nullptr;
  c.stream.loop = nullptr;
  c.stream.drop_read_input();
  std::string out = c.stream.take_output();
  const Refusal refusal = c.stream.refusal();
  c.close_after = !ok || closed || refusal != Refusal::kNone || shutting_down;
  c.drain_after = refusal != Refusal::kNone;
  if (c.stream.deferred()) {
    c.state = Client::State::kAwaitingReply;  // httplib's response is a placeholder
    return;
  }
  if (out.empty() && refusal != Refusal::kNone) out = transport_.refusal_response(refusal);
  start_output(c, std::move(out));
}

void HttpTransport::EventLoop::start_output(Client& c, std::string bytes) {
  c.state = Client::State::kWriting;
  c.out = std::move(bytes);
  c.out_sent = 0;
  c.deadline = Clock::now() + seconds(options_.write_timeout_s);
  send_output(c);
}

void HttpTransport::EventLoop::send_output(Client& c) {
  while (c.state == Client::State::kWriting && c.out_sent < c.out.size()) {
    const ssize_t n = ::send(c.sock, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT resumes it
    if (n <= 0) {
      c.broken = true;  // the answer is undeliverable
      return;
    }
    c.out_sent += static_cast<size_t>(n);
    c.deadline = Clock::now() + seconds(options_.write_timeout_s);  // the client is reading
  }
}

void HttpTransport::EventLoop::sweep(bool shutting_down) {
  const auto now = Clock::now();
  // Answers older than the gather window say nothing about what comes next (see gather()).
  const auto window = std::chrono::microseconds(options_.gather_us);
  answered_.erase(std::remove_if(answered_.begin(), answered_.end(),
                                 [&](const auto& answered) { return answered.second + window < now; }),
                  answered_.end());
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = *it->second;
    ++it;  // closing or handing over `c` erases it; the other iterators stay valid
    if (c.broken) {
      close(c);
      continue;
    }
    const bool late = now >= c.deadline;
    switch (c.state) {
      case Client::State::kReading:
        // A request still arriving goes to a thread, which answers 408 (or 503 while shutting down).
        if (c.request_begun && (late || shutting_down)) hand_over(c);
        else if (!c.request_begun && (late || shutting_down)) close(c);
        break;
      case Client::State::kWriting:
      case Client::State::kDraining:
        if (late) close(c);
        break;
      case Client::State::kAwaitingReply:
        break;
    }
  }
}

void HttpTransport::EventLoop::set_interest(Client& c) {
  uint32_t events = 0;
  if (!c.peer_closed) {
    const bool room = c.stream.unread_input().size() <= static_cast<size_t>(options_.loop_request_bytes);
    if (c.state == Client::State::kDraining || room) events |= EPOLLIN | EPOLLRDHUP;
  }
  if (c.state == Client::State::kWriting && c.out_sent < c.out.size()) events |= EPOLLOUT;
  if (events == 0) {
    // A client that sent its end stays readable (EOF): out of the set while it awaits its answer.
    if (c.registered) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.sock, nullptr);
    c.registered = false;
    return;
  }
  if (c.registered && events == c.interest) return;
  epoll_event ev{events, {}};
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.sock, &ev) != 0) {
    c.broken = true;  // cannot happen for an open socket; closed by the next sweep
    return;
  }
  c.registered = true;
  c.interest = events;
}

void HttpTransport::EventLoop::close(Client& c) {
  if (c.registered) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.sock, nullptr);
  ::shutdown(c.sock, SHUT_RDWR);
  ::close(c.sock);
  --transport_.open_connections_;
  clients_.erase(c.id);
}

void HttpTransport::EventLoop::hand_over(Client& c) {
  if (c.registered) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.sock, nullptr);
  set_blocking(c.sock, true);
  const int sock = c.sock;
  std::string carried(c.stream.unread_input());
  const auto deadline = c.deadline;
  clients_.erase(c.id);  // the thread owns the socket and its count from here
  transport_.hand_to_thread(sock, std::move(carried), deadline);
}

void HttpTransport::EventLoop::start_draining(Client& c) {
  // Closing with the client's unread bytes queued resets the connection and the client may lose
  // the answer: half-close, then drop what still arrives for a moment (as the threads do).
  if (c.peer_closed) {  // nothing more will come
    close(c);
    return;
  }
  ::shutdown(c.sock, SHUT_WR);
  c.state = Client::State::kDraining;
  c.deadline = Clock::now() + kDrainTime;
  c.drained = 0;
  set_interest(c);
}

}  // namespace maas
