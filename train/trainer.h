// The training loop of maas-train: batches, optimizer and schedule, evaluation, checkpoints, resume.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "batch_source.h"
#include "checkpoint.h"
#include "config.h"
#include "cpu_info.h"
#include "distributed.h"
#include "loss.h"
#include "precision.h"

namespace maas {

struct TrainHooks {
  // Polled after every batch; returning true makes train() checkpoint and return early.
  std::function<bool()> should_stop = [] { return false; };
  // Where progress and logs go; nullptr silences them.
  std::ostream* log = nullptr;
  // Redraw a one-line progress bar (for terminals) instead of logging one line per epoch.
  bool progress_bar = false;
  // Called with each run-directory file's path right after it is renamed into place. Tests throw
  // here to stop the run exactly there, as a kill -9 at that moment would.
  std::function<void(const std::string& path)> after_write = [](const std::string&) {};
  // Replaces the configured loss (cross-entropy with train.label_smoothing) when set.
  LossFunction loss;
  // The data-parallel group this process trains in; nullptr = alone. With a group, every rank
  // calls train() with the same config: each computes its shard of every batch, gradients are
  // averaged over the group, evaluation is sharded, and only rank 0 logs and writes run_dir.
  DataParallelGroup* group = nullptr;
  // The CPU that train.precision=auto decides for; nullptr = this machine's (tests pretend others).
  const CpuInfo* cpu = nullptr;
  // How much faster bfloat16 trains than float32, asked by train.precision=auto on a CPU with
  // native bfloat16; empty = measure_bf16_speedup() (tests pretend a result).
  Bf16Speedup bf16_speedup;
};

struct TrainResult {
  bool interrupted = false;
  std::vector<EpochMetrics> history;  // every epoch of the run, resumed ones included
  double best_test_acc = 0;
};

// Trains `config` in `run_dir` (created if needed). Writes config.yaml, metrics.csv, last.pt and
// best.pt there, all atomically, after every epoch. With `resume`, continues from run_dir/last.pt
// and ends where an uninterrupted run would (bit-identical with train.threads=1), whenever the
// previous process died: last.pt commits an epoch, and resuming first rebuilds metrics.csv and
// best.pt from it (see run_record.h).
// train.precision=auto resolves on hooks.cpu and hooks.bf16_speedup; a resume keeps the run's precision (auto takes it
// from last.pt; another explicit one is a ConfigError). config.yaml records the resolved one.
// Throws ConfigError, DataError or CheckpointError with a message naming the problem, and
// DistributedError when a rank of the group is lost. Not thread-safe: sets LibTorch's global
// thread count and seed.
TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume, const TrainHooks& hooks);

}  // namespace maas
