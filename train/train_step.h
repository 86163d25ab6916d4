// One training step's computation: forward, loss and backward of a batch (the gradients it leaves).
#pragma once

#include <torch/torch.h>

#include "batch_source.h"
#include "loss.h"
#include "models.h"
#include "precision.h"

namespace maas {

// What a step saw, summed over its images (over the group's, after ReplicaSync::reduce_step).
struct StepStats {
  double loss_sum = 0;  // the loss times the images
  double correct = 0;   // top-1 hits
  double seen = 0;      // images
  bool stop = false;    // a stop was requested during the step
};

// Computes a batch's gradients on `model` with `loss` in `precision`: bfloat16 runs forward and
// loss under CPU autocast, backward outside it (autograd follows the casts back to the float32
// weights). Not thread-safe; keeps a reference to the model.
class TrainStep {
 public:
  TrainStep(ClassifierImpl& model, LossFunction loss, Precision precision)
      : model_(model), loss_(std::move(loss)), precision_(precision) {}

  // Runs forward, loss and backward on `batch` (nothing for an empty batch: a rank's shard of a
  // small last batch may be). Requires zeroed gradients. Guarantees: the parameters' .grad() hold
  // d(mean loss)/d(parameter) over the batch.
  StepStats run(const Batch& batch);

 private:
  ClassifierImpl& model_;
  LossFunction loss_;
  Precision precision_;
};

}  // namespace maas
