// One thread, non-blocking sockets, epoll: send a request, read the response head and its
// Content-Length body, record the latency, send again.
#include "epoll_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace maas {
namespace {

using Clock = std::chrono::steady_clock;

struct LoadConnection {
  int fd = -1;
  size_t sent = 0;         // bytes of the request sent
  std::string in;          // response bytes received
  Clock::time_point started;
};

// The status and total length of the response at the start of `in`; 0 length while incomplete;
// status -1 when the head is not a response with a Content-Length.
std::pair<int, size_t> parse_response(const std::string& in) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return {0, 0};
  if (in.compare(0, 9, "HTTP/1.1 ") != 0 && in.compare(0, 9, "HTTP/1.0 ") != 0) return {-1, 0};
  const int status = std::atoi(in.c_str() + 9);
  std::string head = in.substr(0, head_end + 2);
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
  const size_t at = head.find("\r\ncontent-length:");
  if (at == std::string::npos) return {-1, 0};
  const size_t length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
  const size_t total = head_end + 4 + length;
  return {status, in.size() >= total ? total : 0};
}

}  // namespace

EpollLoadResult run_epoll_load(const std::string& host, int port, const std::string& request, int64_t connections,
                               double seconds, std::chrono::seconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    throw std::runtime_error("cannot resolve " + host);
  const sockaddr_storage address = [&] {
    sockaddr_storage a{};
    std::memcpy(&a, found->ai_addr, found->ai_addrlen);
    return a;
  }();
  const socklen_t address_length = found->ai_addrlen;
  const int family = found->ai_family;
  ::freeaddrinfo(found);

  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  EpollLoadResult result;
  std::vector<LoadConnection> conns(static_cast<size_t>(connections));
  const auto fail = [&](const std::string& reason) { ++result.errors[reason]; };
  // (Re)opens connection i and starts its request; a connect in progress completes as writable.
  const auto open = [&](size_t i) {
    LoadConnection& c = conns[i];
    if (c.fd >= 0) ::close(c.fd);
    c = LoadConnection{};
    c.started = Clock::now();  // a connect that never completes times out like a request
    c.fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int yes = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&address), address_length) != 0 && errno != EINPROGRESS) {
      fail(std::string("connect: ") + std::strerror(errno));
      return false;
    }
    epoll_event ev{EPOLLIN | EPOLLOUT, {}};
    ev.data.u64 = i;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
    return true;
  };
  const auto want_write = [&](size_t i, bool write) {
    epoll_event ev{static_cast<uint32_t>(EPOLLIN | (write ? EPOLLOUT : 0)), {}};
    ev.data.u64 = i;
    ::epoll_ctl(epoll, EPOLL_CTL_MOD, conns[i].fd, &ev);
  };
  // Sends what it can; asks for EPOLLOUT only while some is left (two epoll_ctl calls per request
  // would double the client's system calls).
  const auto send_some = [&](size_t i, bool writable_wanted) {
    LoadConnection& c = conns[i];
    while (c.sent < request.size()) {
      const ssize_t n = ::send(c.fd, request.data() + c.sent, request.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!writable_wanted) want_write(i, true);
        return true;
      }
      if (n <= 0) return false;
      c.sent += static_cast<size_t>(n);
    }
    if (writable_wanted) want_write(i, false);
    return true;
  };

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  for (size_t i = 0; i < conns.size(); ++i) open(i);
  std::vector<epoll_event> events(256);
  char buffer[64 * 1024];
  while (Clock::now() < end) {
    const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 10);
    for (int e = 0; e < n; ++e) {
      const size_t i = events[e].data.u64;
      LoadConnection& c = conns[i];
      bool ok = true;
      std::string error = "connection closed";
      if ((events[e].events & EPOLLOUT) && c.sent < request.size()) ok = send_some(i, true);
      if (ok && (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        while (true) {
          const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
          if (got > 0) {
            c.in.append(buffer, static_cast<size_t>(got));
            continue;
          }
          if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          ok = false;  // closed or failed
          break;
        }
        const auto [status, total] = parse_response(c.in);
        if (status < 0) {
          error = "a response without Content-Length";
          ok = false;
        } else if (total > 0) {
          if (status == 200)
            result.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c.started).count());
          else
            fail("HTTP " + std::to_string(status));
          c.in.erase(0, total);
          if (!c.in.empty()) {
            error = "bytes after the response";
            ok = false;
          } else if (ok && Clock::now() < end) {
            c.sent = 0;
            c.started = Clock::now();
            ok = send_some(i, false);
          }
          if (ok) continue;
        }
      }
      if (!ok) {
        fail(error);
        open(i);
      }
    }
    const auto now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i)
      if (now - conns[i].started > timeout) {
        fail("no response within " + std::to_string(timeout.count()) + " s");
        open(i);
      }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& c : conns)
    if (c.fd >= 0) ::close(c.fd);
  ::close(epoll);
  return result;
}

}  // namespace maas
