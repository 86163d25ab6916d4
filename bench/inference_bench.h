// In-process inference benchmark: forward throughput and latency of a run's model in each form
// maas can deploy it (trained nn::Module, TorchScript, frozen, optimized, static int8). No HTTP: the ceiling.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace maas {

struct InferenceBenchOptions {
  std::string run_dir;                              // maas-train run directory (uses best.pt)
  std::vector<int64_t> batch_sizes{1, 8, 32, 128};
  double seconds_per_case = 1.5;                    // measuring time per (variant, batch size)
  int64_t threads = 0;                              // LibTorch intra-op threads; 0 = all cores
};

struct InferenceBenchRow {
  std::string variant;
  int64_t batch = 0;
  double images_per_s = 0;
  double p50_ms = 0, p99_ms = 0;
};

// Runs every variant at every batch size on uint8 pixels; writes a Markdown table to `out` as it goes.
std::vector<InferenceBenchRow> run_inference_bench(const InferenceBenchOptions& options, std::ostream& out);

}  // namespace maas
