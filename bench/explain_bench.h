// Explanation latency: one explanation at a time, in-process through a ModelRunner (the ceiling)
// and over HTTP against a running maas-serve (POST /explanations).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace maas {

struct ExplainBenchOptions {
  std::string image;                           // the image explained (PNG, JPEG, BMP or GIF file)
  std::string artifact;                        // model.pt measured in-process ("" = not measured)
  std::string url;                             // a running maas-serve ("" = not measured)
  std::string model = "cifar10";               // its model name
  std::vector<int64_t> steps{16, 64};          // integrated gradients' steps, one case each
  double seconds = 5;                          // measuring time per case
};

// Measures integrated gradients at each of options.steps and gradient x input, back to back, in
// each place asked for; prints a Markdown table to `out` as rows arrive. Throws
// std::runtime_error when the image cannot be read, the server cannot be reached or answers an
// error, and ArtifactError for a bad artifact.
void run_explain_bench(const ExplainBenchOptions& options, std::ostream& out);

}  // namespace maas
