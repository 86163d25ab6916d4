// How the data-parallel group's replicas stay one model: sharded batches, averaged gradients and
// BatchNorm statistics, sharded evaluation, identical weights, and a stop all ranks agree on.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "batch_source.h"
#include "distributed.h"
#include "evaluate.h"
#include "models.h"
#include "train_step.h"

namespace maas {

// Without a group (nullptr) every call is the single-process identity: the whole batch, no
// collectives, the local stop request. With one, every rank must make the same calls in the same
// order (they are collectives). Not thread-safe.
class ReplicaSync {
 public:
  // `batch_size` and `train_images` are the run's (the whole group's), to weight the shards.
  ReplicaSync(DataParallelGroup* group, int64_t batch_size, int64_t train_images)
      : group_(group), batch_size_(batch_size), train_images_(train_images) {}

  bool alone() const { return group_ == nullptr; }
  // This rank's share of batch (epoch, step).
  Batch batch(const BatchSource& batches, int64_t epoch, int64_t step) const;
  // Overwrites `tensors` with rank 0's (the start of a run).
  void broadcast_from_rank0(const std::vector<torch::Tensor>& tensors);
  // After backward of `step` (0-based in its epoch): each rank's gradient is the mean over its
  // shard; weighted by its share of the batch, their sum is the batch's mean gradient, as one
  // process would compute it. BatchNorm's running statistics (from each shard's batch
  // statistics) are averaged; so are the step's loss and hits, and a stop request of any rank
  // stops all. `stats` becomes the group's.
  void reduce_step(ClassifierImpl& model, StepStats& stats, int64_t epoch, int64_t step);
  // evaluate() over the whole set; with a group each rank evaluates its share and the sums are
  // combined, so every rank gets the figures of the whole set.
  Evaluation evaluate(ClassifierImpl& model, const ImageSet& set, const Normalization& normalization,
                      int64_t batch_size, bool channels_last, TtaMode tta, Precision precision);
  // Throws DistributedError unless every rank holds bitwise the same `tensors` after `epoch`.
  void check_identical(const std::vector<torch::Tensor>& tensors, int64_t epoch);
  // True when any rank asked to stop after `epoch`.
  bool agree_to_stop(bool stop, int64_t epoch);
  // For the epoch's log line: the all-reduce's wait per step, and the weights' check ("" alone).
  // Resets the epoch's wait.
  std::string epoch_note(int64_t steps);

 private:
  DataParallelGroup* group_;
  int64_t batch_size_, train_images_;
  double all_reduce_seconds_ = 0;  // this process's wait in the epoch's gradient all-reduces
};

}  // namespace maas
