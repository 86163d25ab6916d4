// The training loop of maas-train: Adam + cross-entropy, per-epoch evaluation, checkpoints, resume.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "config.h"

namespace maas {

struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0;  // mean over the epoch's batches, accuracy as a fraction
  double test_loss = 0, test_acc = 0;
  double lr = 0;
  double images_per_s = 0;  // training images per second (evaluation excluded)
  double seconds = 0;       // wall time of the epoch, evaluation included
};

struct TrainHooks {
  // Polled after every batch; returning true makes train() checkpoint and return early.
  std::function<bool()> should_stop = [] { return false; };
  // Where progress and logs go; nullptr silences them.
  std::ostream* log = nullptr;
  // Redraw a one-line progress bar (for terminals) instead of logging one line per epoch.
  bool progress_bar = false;
};

struct TrainResult {
  bool interrupted = false;
  std::vector<EpochMetrics> history;  // every epoch of the run, resumed ones included
  double best_test_acc = 0;
};

// Trains `config` in `run_dir` (created if needed). Writes config.yaml, metrics.csv, last.pt and
// best.pt there, all atomically, after every epoch. With `resume`, continues from run_dir/last.pt
// and ends where an uninterrupted run would (bit-identical with train.threads=1).
// Throws ConfigError, DataError or CheckpointError with a message naming the problem.
// Not thread-safe: sets LibTorch's global thread count and seed.
TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume, const TrainHooks& hooks);

}  // namespace maas
