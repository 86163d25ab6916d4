// The optimizer-and-schedule factory: parameter groups, Adam/AdamW/SGD, per-step learning rates.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "config.h"

namespace maas {

// The learning-rate factor of step `step` (0-based, counted over the whole run) of `total_steps`,
// `steps_per_epoch` per epoch: 1 for "constant"; step_gamma^(epochs done / step_epochs) for "step";
// for "cosine" and "onecycle" a linear warmup from lr_start_factor to 1 over the first
// round(warmup * total_steps) steps, then a cosine or a straight line down to lr_end_factor at
// the last step. Requires options validated by the config loader.
double lr_factor(const TrainOptions& options, int64_t step, int64_t total_steps, int64_t steps_per_epoch);

// An optimizer over a model's trainable parameters in three groups: BatchNorm parameters ("norm"),
// other biases ("bias") and the rest ("weights"), each with its learning-rate multiplier and
// weight decay (none for norm and bias when decay_norm_and_bias is false). Multipliers scale the
// learning rate, not the decay: a group's decay per step is the base one's.
// Groups whose settings are all equal are one group, in parameter order.
// Not thread-safe.
class TrainingOptimizer {
 public:
  // Requires: parameters that must not train already have requires_grad false (see freeze_*).
  TrainingOptimizer(torch::nn::Module& model, const TrainOptions& options);

  // Sets every group's learning rate for the next step: base lr * factor * multiplier.
  void set_lr_factor(double factor);
  double current_lr() const { return options_.lr * factor_; }  // the base group's

  void zero_grad();
  // Clips the gradient norm (when asked), applies SGDW's decoupled decay (when asked), steps.
  void step();

  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  // One line per group: name, tensors, parameters, lr multiplier, weight decay.
  std::string describe() const;

 private:
  struct Group {
    std::string name;
    std::vector<torch::Tensor> params;
    double lr_multiplier = 1, weight_decay = 0;
  };
  TrainOptions options_;
  std::vector<Group> groups_;
  std::vector<torch::Tensor> params_;  // every group's, for gradient clipping
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  double factor_ = 1;
};

// BatchNorm scales stop training (stay as they are; airbench keeps them at 1).
void freeze_norm_weights(torch::nn::Module& model);
// The first layer's parameters (the module of the first registered parameter) stop training, and
// their gradients are dropped so momentum and decay leave them alone. Returns that layer's name.
std::string freeze_first_layer(torch::nn::Module& model);

}  // namespace maas
