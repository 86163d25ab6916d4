// What every export format's steps share: the step log, logits over a data set, accuracy, sample images.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <iomanip>
#include <ostream>
#include <string>
#include <vector>

#include "dataset.h"
#include "files.h"

namespace maas {

// Prints one line per finished step: name, what it did, how long it took. `out` may be null.
class StepLog {
 public:
  explicit StepLog(std::ostream* out) : out_(out) {}
  void begin(const std::string& step) {
    step_ = step;
    started_ = std::chrono::steady_clock::now();
  }
  void end(const std::string& detail) {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
    if (out_)
      *out_ << std::left << std::setw(10) << step_ << detail << "  (" << std::fixed << std::setprecision(0) << ms
            << " ms)\n" << std::flush;
  }

 private:
  std::ostream* out_;
  std::string step_;
  std::chrono::steady_clock::time_point started_;
};

// Logits of `logits_of` (a batch of uint8 images -> logits) for the whole set, `batch` at a time.
template <typename Fn>
torch::Tensor logits_on(const ImageSet& set, int64_t batch, Fn&& logits_of) {
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < set.size(); begin += batch)
    parts.push_back(logits_of(set.images.slice(0, begin, std::min(set.size(), begin + batch))));
  return torch::cat(parts);
}

// Fraction of rows of `logits` whose argmax is the label.
inline double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
}

// Stages one test image per class as DIR/<class>.png (names made file-safe) into `outputs`, which
// the caller commits with the artifact: all or nothing.
void stage_class_samples(const ImageSet& test_set, const std::vector<std::string>& classes, const std::string& dir,
                         StagedWrites& outputs);

}  // namespace maas
