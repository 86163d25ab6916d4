// Which loss a training step minimizes: label-smoothed cross-entropy, distillation, or a caller's.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "batch_source.h"
#include "config.h"
#include "dataset.h"
#include "models.h"

namespace maas {

// The loss of one training batch from the model's logits: a scalar to minimize. The training step
// calls it; distillation and other objectives plug in here.
using LossFunction = std::function<torch::Tensor(const torch::Tensor& logits, const Batch& batch)>;

// The configured loss: cross-entropy against the labels smoothed by `smoothing` ((1 - s) one-hot
// + s / classes), averaged over the batch.
LossFunction label_smoothed_cross_entropy(double smoothing);

struct TrainingLoss {
  LossFunction loss;
  std::string summary;  // a line for the run's log ("" when there is nothing to say)
};

// The run's loss: `override_loss` when set (tests, callers with their own objective), else
// distillation when distill.teacher is set (the teacher described on the first training images of
// `train_set`), else label-smoothed cross-entropy. Throws ConfigError for a bad teacher.
TrainingLoss choose_loss(const RunConfig& config, const LossFunction& override_loss, const ModelSpec& spec,
                         const std::vector<std::string>& classes, const ImageSet& train_set);

}  // namespace maas
