// Training checkpoints: weights, optimizer state, progress and what is needed to rebuild the model.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "dataset.h"
#include "models.h"

namespace maas {

// Thrown for a missing, corrupt, truncated or mismatched checkpoint; the message names the file.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One row of metrics.csv: the results of one completed epoch.
struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0;  // mean over the epoch's batches, accuracy as a fraction
  double test_loss = 0, test_acc = 0;
  double lr = 0;
  double images_per_s = 0;  // training images per second (evaluation excluded)
  double seconds = 0;       // wall time of the epoch, evaluation included
};

// Everything a checkpoint records besides the tensors of the model and the optimizer.
struct CheckpointMeta {
  ModelOptions model;  // the architecture and its hyperparameters: rebuilds the exact network
  ModelSpec spec;
  std::vector<std::string> classes;
  Normalization normalization;
  int64_t epoch = 0;  // epochs fully completed
  int64_t step = 0;   // batches done in epoch `epoch + 1` (non-zero only after an interruption)
  // Running sums of the partial epoch, so a resumed epoch reports the same averages.
  double partial_loss_sum = 0, partial_seconds = 0;
  int64_t partial_correct = 0, partial_seen = 0;
  double best_test_acc = -1;  // best test accuracy (fraction) seen so far; -1 before any
  double last_test_acc = -1;  // test accuracy after epoch `epoch`
  torch::Tensor rng_state;    // torch's default CPU generator, so later random ops continue identically
  // The training record, so last.pt alone commits an epoch: metrics.csv and best.pt are rebuilt
  // from it after a crash. Empty/0 in checkpoints written before it existed.
  std::vector<EpochMetrics> history;  // epochs 1..epoch, one row each
  int64_t best_epoch = 0;             // the epoch whose weights best.pt holds; 0 = none yet
  // The confusion matrix of best.pt's evaluation: classes x classes counts, row-major, row = true
  // class, column = predicted class. Empty before the first evaluation and in older checkpoints.
  std::vector<int64_t> best_confusion;
  // The arithmetic the run trains and evaluates in ("float32" or "bfloat16"); the weights are
  // float32 either way. "float32" in checkpoints written before it existed.
  std::string precision = "float32";
};

// The checkpoint file's bytes: meta, model and (if given) optimizer. `model` is the network that
// evaluation, best.pt and export use; with weight averaging that is the average, and
// `trained_model` holds the weights being trained (for resuming). Serialized in memory, so a
// failing disk surfaces in the plain write that follows, not inside LibTorch's zip writer.
std::string checkpoint_bytes(const CheckpointMeta& meta, torch::nn::Module& model,
                             torch::optim::Optimizer* optimizer, torch::nn::Module* trained_model = nullptr);

// Writes checkpoint_bytes to `path` atomically; throws std::runtime_error naming `path` and the
// system's reason ("No space left on device") when it cannot, leaving the old file and no temp file.
void save_checkpoint(const std::string& path, const CheckpointMeta& meta, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, torch::nn::Module* trained_model = nullptr);

// An opened checkpoint: the metadata is read at once; tensors are restored on request.
class CheckpointReader {
 public:
  // Throws CheckpointError when the file is missing, not a maas checkpoint, or corrupt.
  explicit CheckpointReader(const std::string& path);
  const CheckpointMeta& meta() const { return meta_; }
  // Builds the recorded architecture (with its hyperparameters) and loads its weights.
  std::shared_ptr<ClassifierImpl> load_model() const;
  // Loads weights into an existing model; throws CheckpointError if shapes or names differ.
  void restore_model(torch::nn::Module& model) const;
  void restore_optimizer(torch::optim::Optimizer& optimizer) const;
  // The weights being trained when the checkpoint also holds an average of them (see
  // checkpoint_bytes); throws CheckpointError if it holds none or they do not fit.
  void restore_trained_model(torch::nn::Module& model) const;

 private:
  void restore(const char* key, torch::nn::Module& model) const;

  std::string path_;
  std::shared_ptr<torch::serialize::InputArchive> archive_;
  CheckpointMeta meta_;
};

// The files maas-train keeps in a run directory.
std::string run_config_path(const std::string& run_dir);       // config.yaml
std::string last_checkpoint_path(const std::string& run_dir);  // last.pt
std::string best_checkpoint_path(const std::string& run_dir);  // best.pt
std::string metrics_path(const std::string& run_dir);          // metrics.csv

// The config.yaml of a maas-train run directory, with "key=value" `overrides`. Throws
// CheckpointError if run_dir holds no config.yaml, ConfigError for a bad one.
RunConfig load_run_dir_config(const std::string& run_dir, const std::vector<std::string>& overrides);

}  // namespace maas
