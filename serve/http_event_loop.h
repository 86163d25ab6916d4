// maas-serve's event loops (internal to the transport): epoll threads that serve whole small
// requests without a thread per connection, and answer deferred responses when they are ready.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http_connection.h"
#include "request_framing.h"
#include "http_transport.h"

namespace maas {

// Where replies and new sockets wait for an event loop (shared with every Reply it gave out).
struct LoopMailbox;

// One event loop: its thread, its epoll set and its clients.
// Thread-safety: add() and Reply::send (through the mailbox) from any thread; defer() on the
// loop's thread; finish() from the thread that created it.
class HttpTransport::EventLoop {
 public:
  explicit EventLoop(HttpTransport& transport);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Takes a connected socket (counted open by the transport): served here until it closes or is
  // handed to a thread.
  void add(int sock);
  // Serves the open connections to their end as in a shutdown (idle ones close, requests in
  // flight finish with Connection: close), then joins the thread.
  void finish();
  // For HttpTransport::defer on this loop's thread, while `connection`'s request is handled.
  void defer(Connection& connection, std::function<AfterRound(Reply)> start);

 private:
  struct Client;
  void run();
  // Reads and handles what the `n` events report, writes the replies that came, and advances the
  // clients concerned (appended to `touched`).
  void dispatch(const epoll_event* events, int n, std::vector<uint64_t>& touched);
  // With requests deferred this round, goes on reading while clients answered within the last
  // gather_us are expected back, for up to gather_us: they join the round's batch.
  void gather(std::vector<epoll_event>& events, std::vector<uint64_t>& touched);
  // Starts the round's deferred requests, runs what they left for after the round, and writes the
  // replies that produced. True when anything was served.
  bool run_round(std::vector<uint64_t>& touched);
  // Registers new sockets and writes the replies that came (their clients appended to `touched`).
  void take_mail(std::vector<uint64_t>& touched);
  void receive(Client& c);
  void advance(Client& c);
  void handle(Client& c);
  void send_output(Client& c);
  void start_output(Client& c, std::string bytes);
  void sweep(bool shutting_down);
  void set_interest(Client& c);
  void close(Client& c);
  void hand_over(Client& c);
  void start_draining(Client& c);
  Client* find(uint64_t id);

  HttpTransport& transport_;
  const TransportOptions& options_;
  int epoll_ = -1;
  std::shared_ptr<LoopMailbox> mailbox_;
  std::unordered_map<uint64_t, std::unique_ptr<Client>> clients_;  // loop thread only
  uint64_t next_id_ = 2;  // 0 and 1 are the mailbox and the shutdown descriptors
  std::vector<std::function<AfterRound()>> starts_;  // deferred starts of the current round
  std::vector<std::pair<uint64_t, Clock::time_point>> answered_;  // clients answered lately, and when
  bool spin_ = false;  // idle_spin_us > 0 and a core to spare
  std::atomic<bool> finishing_{false};
  std::thread thread_;
};

}  // namespace maas
