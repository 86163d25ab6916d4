// One training step's computation: forward, loss and backward of a batch (the gradients it leaves).
#pragma once

#include <torch/torch.h>

#include "batch_source.h"
#include "loss.h"
#include "models.h"

namespace maas {

// What a step saw, summed over its images (over the group's, after ReplicaSync::reduce_step).
struct StepStats {
  double loss_sum = 0;  // the loss times the images
  double correct = 0;   // top-1 hits
  double seen = 0;      // images
  bool stop = false;    // a stop was requested during the step
};

// Computes a batch's gradients on `model` with `loss`. Not thread-safe; keeps references to both.
class TrainStep {
 public:
  TrainStep(ClassifierImpl& model, LossFunction loss) : model_(model), loss_(std::move(loss)) {}

  // Runs forward, loss and backward on `batch` (nothing for an empty batch: a rank's shard of a
  // small last batch may be). Requires zeroed gradients. Guarantees: the parameters' .grad() hold
  // d(mean loss)/d(parameter) over the batch.
  StepStats run(const Batch& batch);

 private:
  ClassifierImpl& model_;
  LossFunction loss_;
};

}  // namespace maas
