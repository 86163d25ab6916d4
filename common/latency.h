// Latency percentiles and a timing loop, shared by the benchmarks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

namespace maas {

struct LatencySummary {
  size_t calls = 0;
  double seconds = 0;           // wall time over which the calls were made
  double p50 = 0, p90 = 0, p99 = 0;  // milliseconds
  double calls_per_s() const { return seconds > 0 ? static_cast<double>(calls) / seconds : 0; }
};

// Percentiles of `latencies_ms` (any order) for calls made over `seconds`.
inline LatencySummary summarize_latencies(std::vector<double> latencies_ms, double seconds) {
  LatencySummary s;
  s.calls = latencies_ms.size();
  s.seconds = seconds;
  if (latencies_ms.empty()) return s;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) { return latencies_ms[std::min(s.calls - 1, static_cast<size_t>(p * s.calls))]; };
  s.p50 = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  return s;
}

// Calls `fn` `warmup` times untimed, then back to back for `seconds`, timing each call.
inline LatencySummary time_calls(const std::function<void()>& fn, double seconds, int warmup = 20) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  const auto start = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return summarize_latencies(std::move(ms), std::chrono::duration<double>(Clock::now() - start).count());
}

}  // namespace maas
