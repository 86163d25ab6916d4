// maas-bench's load generator (our perf_analyzer): sweeps client concurrency against a running
// maas-serve for v2 JSON, v2 binary and image upload, next to the in-process ceiling.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace maas {

struct LoadBenchOptions {
  std::string url = "http://127.0.0.1:8000";  // a running maas-serve
  std::string model = "cifar10";
  std::string artifact;                        // if set, also measure it in-process (the ceiling)
  std::vector<int64_t> concurrency{1, 4, 16, 64};
  std::vector<int64_t> images_per_request{1, 8, 32};  // perf_analyzer's -b; image uploads are always 1
  std::vector<std::string> protocols{"binary", "json", "image"};
  double seconds = 3;                          // per (protocol, concurrency) case
};

// Prints Markdown tables to `out` as results arrive. Requires non-empty concurrency and
// images_per_request lists. Throws std::runtime_error if the server cannot be reached or rejects
// the model.
void run_load_bench(const LoadBenchOptions& options, std::ostream& out);

}  // namespace maas
