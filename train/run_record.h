// The run's record in its directory: config.yaml, last.pt/best.pt, metrics.csv and report.html,
// the progress they commit (CheckpointMeta), and their repair after a crash.
#pragma once

#include <functional>
#include <algorithm>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "config.h"
#include "evaluate.h"
#include "models.h"
#include "optimizer.h"

namespace maas {

// One epoch commits as a unit, and last.pt is the commit point: it records the epoch's weights,
// all metrics rows (meta.history) and which epoch best.pt must hold. The order is last.pt, then
// best.pt (a byte copy of it, when this epoch is the best), then metrics.csv. A crash before
// last.pt's rename loses only the uncommitted epoch, which a resume redoes identically; a crash
// after it leaves best.pt or metrics.csv behind last.pt, and resuming rebuilds both from last.pt
// before training on. best.pt is never written ahead of last.pt, so a crash can not leave it
// holding an epoch the record does not know.
//
// Only the `writer` (the one process of a group that writes) touches files; the others keep the
// same meta. Not thread-safe.
class RunRecord {
 public:
  // Creates `run_dir` and removes temp files an interrupted run left (writer only). `after_write`
  // is called with each file's path right after its rename.
  RunRecord(std::string run_dir, bool writer, std::ostream* log, std::function<void(const std::string&)> after_write);

  // A fresh run's record of `network` trained on `train_set`.
  void start(const ModelOptions& network, const ModelSpec& spec, const ImageSet& train_set);
  // Opens last.pt to resume: throws CheckpointError when it is missing or was trained on another
  // network or data, ConfigError when `epochs` is fewer than it holds. Returns the reader (the
  // weights' restore needs it); the record takes its meta.
  std::unique_ptr<CheckpointReader> resume(const ModelOptions& network, const ModelSpec& spec, int64_t epochs);
  // After a resume's weights are restored: the random generator continues where it was, and
  // best.pt and metrics.csv are rebuilt from last.pt (see the class comment).
  void continue_after_resume();

  const CheckpointMeta& meta() const { return meta_; }
  // The precision the checkpoints record ("float32" or "bfloat16").
  void set_precision(const std::string& precision) { meta_.precision = precision; }
  int64_t epochs_done() const { return meta_.epoch; }
  int64_t steps_done() const { return meta_.step; }  // in epoch epochs_done() + 1

  // Writes config.yaml; remembers it for report.html.
  void write_config(const std::string& config_yaml);
  // The model's description for report.html.
  void set_model_summary(const std::string& summary) { model_summary_ = summary; }
  // report.html, a view of the record (written after metrics.csv).
  void write_report();

  // Adds a step's figures to the partial epoch. Returns the epoch's running (loss, accuracy,
  // images/s) for a progress bar.
  struct Running {
    double loss, acc, images_per_s;
  };
  Running add_step(double loss_sum, double correct, double seen, double seconds);
  // Saves last.pt in the middle of an epoch (an interruption): the resume continues after this step.
  void save_mid_epoch(ClassifierImpl& evaluated, TrainingOptimizer& optimizer, ClassifierImpl* trained);
  // Ends `epoch` with its test figures (NaN when not evaluated), last learning rate and wall time;
  // returns its metrics and whether it is the best so far.
  EpochMetrics end_epoch(int64_t epoch, const Evaluation& test, bool evaluated, double lr, double seconds, bool* best);
  // Commits the ended epoch: last.pt, best.pt when `best`, metrics.csv, report.html.
  void commit_epoch(bool best, ClassifierImpl& evaluated, TrainingOptimizer& optimizer, ClassifierImpl* trained);

  std::vector<EpochMetrics> history() const { return meta_.history; }
  double best_test_acc() const { return std::max(0.0, meta_.best_test_acc); }
  std::string last_checkpoint() const { return last_checkpoint_path(run_dir_); }

 private:
  void wrote(const std::string& path) { after_write_(path); }
  void repair_best_checkpoint();

  std::string run_dir_;
  bool writer_;
  std::ostream* log_;
  std::function<void(const std::string&)> after_write_;
  CheckpointMeta meta_;
  std::string config_yaml_, model_summary_;
};

}  // namespace maas
