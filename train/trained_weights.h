// The weights a run trains and the ones it evaluates: the model, its optimizer and schedule, the
// weight average (EMA/lookahead) when on, and the layers that stop training.
#pragma once

#include <torch/torch.h>

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "models.h"
#include "optimizer.h"
#include "prune.h"
#include "weight_average.h"

namespace maas {

// Not thread-safe. Everything that decides which parameters train happens before the optimizer
// is built, identically on resume, so the optimizer's groups match its saved state.
class TrainedWeights {
 public:
  // Seeds torch with train.seed and builds `network` for `spec`; initializes it from the data
  // (train.data_init, the first training images normalized by meta.normalization), from
  // model.init or from `pruned` (fresh runs only), freezes what the config freezes, builds the
  // optimizer and the average, then restores all of them from `checkpoint` when given. Logs what
  // it did to `log` (may be nullptr). Throws ConfigError or CheckpointError.
  TrainedWeights(const RunConfig& config, const ModelOptions& network, const ModelSpec& spec,
                 const CheckpointMeta& meta, const ImageSet& train_set, const PrunedNetwork* pruned,
                 const CheckpointReader* checkpoint, std::ostream* log);

  ClassifierImpl& model() { return *model_; }
  TrainingOptimizer& optimizer() { return optimizer_; }
  // What evaluation, best.pt and export see: the average when on, else the model.
  ClassifierImpl& evaluated() { return average_ ? average_->average() : *model_; }
  // The weights being trained when they are not the evaluated ones (for the checkpoint), else nullptr.
  ClassifierImpl* trained_if_averaged() { return average_ ? model_.get() : nullptr; }
  // Every tensor the replicas of a data-parallel group must hold identically.
  std::vector<torch::Tensor> replicated_tensors();

  // Sets the learning rate of step `global_step` (0-based over the run) and returns the base one.
  double schedule(int64_t global_step, int64_t total_steps, int64_t steps_per_epoch);
  // The optimizer's step, then the average's update when due.
  void step(int64_t global_step, int64_t total_steps);
  // Freezes the first layer once train.stem_epochs have passed (logs it).
  void freeze_stem_if_due(int64_t epochs_done, std::ostream* log);
  // Throws ConfigError when the average would never be updated in `total_steps`.
  void check_average_updates(int64_t total_steps, int64_t steps_per_epoch) const;

 private:
  TrainOptions options_;
  std::shared_ptr<ClassifierImpl> model_;
  TrainingOptimizer optimizer_;
  std::unique_ptr<WeightAverage> average_;
  std::string frozen_layer_;
};

}  // namespace maas
