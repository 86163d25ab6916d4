// Deployment table: each artifact as maas-serve runs it (file size, MACs, test accuracy, in-process speed).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace maas {

struct ArtifactBenchOptions {
  std::vector<std::string> artifacts;  // maas artifacts, loaded through the careful loader
  std::vector<int64_t> threads{1, 2};  // LibTorch intra-op threads, one measurement each
  double seconds_per_case = 1.5;       // measuring time per (artifact, threads, batch size)
  int64_t rounds = 2;                  // all artifacts measured in turn this many times (noise: compare
                                       // alternating runs); the table shows the mean
};

struct ArtifactBenchRow {
  std::string artifact;         // the path as given
  std::string weights;          // "float32" or "int8" (metadata model.weights)
  int64_t file_bytes = 0;
  int64_t macs = 0;             // metadata model.macs_per_image (0 when absent)
  double test_acc = -1;         // metadata verification.artifact_test_acc, or the int8 accuracy; -1 when absent
  int64_t threads = 0;
  double batch1_p50_ms = 0;     // latency of one image
  double batch32_images_per_s = 0;
};

// Loads every artifact as maas-serve does (serving_module: float32 frozen and optimized, int8 as
// exported), measures batch 1 latency and batch 32 throughput on random uint8 pixels per thread
// count, and writes a Markdown table to `out` when done. Throws ArtifactError for a bad artifact.
std::vector<ArtifactBenchRow> run_artifact_bench(const ArtifactBenchOptions& options, std::ostream& out);

}  // namespace maas
