// An exponential moving average of a model's weights and BatchNorm statistics (EMA, or lookahead).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "models.h"

namespace maas {

// Keeps `average`, a second instance of the trained architecture, as
//   average = decay * average + (1 - decay) * trained
// over every floating-point parameter and buffer (BatchNorm running statistics included).
// Not thread-safe; the two models must have the same architecture.
class WeightAverage {
 public:
  // With `start_from_trained`, the average starts as a copy of `trained`; otherwise it keeps its
  // weights (restored from a checkpoint).
  WeightAverage(std::shared_ptr<ClassifierImpl> trained, std::shared_ptr<ClassifierImpl> average,
                bool start_from_trained);
  // One update. With `lookahead`, the trained weights then restart from the average (airbench).
  void update(double decay, bool lookahead);
  ClassifierImpl& average() { return *average_; }

 private:
  std::shared_ptr<ClassifierImpl> trained_, average_;
  std::vector<torch::Tensor> trained_tensors_, average_tensors_;  // floating-point, in the same order
};

// The decay of the update after `step` of `total_steps` steps: decay * (step / total)^power
// (power 0: always `decay`).
double average_decay(double decay, double power, int64_t step, int64_t total_steps);

}  // namespace maas
