// maas-bench's HTTP load client: closed-loop keep-alive connections driven by one epoll thread
// (like wrk), so the client takes little of the CPU it shares with the server it measures.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace maas {

struct EpollLoadResult {
  std::vector<double> latencies_ms;       // of the answered (HTTP 200) requests
  std::map<std::string, int64_t> errors;  // failed requests by reason
  double seconds = 0;                     // the run's length
};

// Opens `connections` connections to host:port and, on each, sends `request` (a whole HTTP/1.1
// request, keep-alive) and waits for its response, again and again until `seconds` have passed.
// A response counts when its status is 200; others, and closed or timed-out connections (no
// response within `timeout`), are errors (the connection is then opened again).
// Throws std::runtime_error when host:port cannot be resolved.
EpollLoadResult run_epoll_load(const std::string& host, int port, const std::string& request, int64_t connections,
                               double seconds, std::chrono::seconds timeout = std::chrono::seconds(30));

}  // namespace maas
