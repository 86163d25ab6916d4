// Parameter groups, optimizers and learning-rate schedules (see optimizer.h).
#include "optimizer.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace maas {
namespace {

bool is_norm(const std::shared_ptr<torch::nn::Module>& m) {
  return m->as<torch::nn::BatchNorm2d>() || m->as<torch::nn::BatchNorm1d>() || m->as<torch::nn::GroupNorm>() ||
         m->as<torch::nn::LayerNorm>();
}

}  // namespace

double lr_factor(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch) {
  if (o.schedule == "constant") return 1.0;
  if (o.schedule == "step") {
    const int64_t epochs_done = step / std::max<int64_t>(1, steps_per_epoch);
    return std::pow(o.step_gamma, static_cast<double>(epochs_done / o.step_epochs));
  }
  const int64_t warmup_steps = std::llround(o.warmup * static_cast<double>(total_steps));
  if (step < warmup_steps)
    return o.lr_start_factor + (1 - o.lr_start_factor) * static_cast<double>(step) / static_cast<double>(warmup_steps);
  const int64_t span = std::max<int64_t>(1, total_steps - 1 - warmup_steps);  // the last step gets lr_end_factor
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
  if (o.schedule == "cosine") return o.lr_end_factor + (1 - o.lr_end_factor) * 0.5 * (1 + std::cos(M_PI * progress));
  if (o.schedule == "onecycle") return 1 + (o.lr_end_factor - 1) * progress;
  throw std::invalid_argument("unknown schedule '" + o.schedule + "'");
}

TrainingOptimizer::TrainingOptimizer(torch::nn::Module& model, const TrainOptions& options) : options_(options) {
  const double decay_nb = options.decay_norm_and_bias ? options.weight_decay : 0.0;
  groups_ = {{"weights", {}, 1.0, options.weight_decay},
             {"norm", {}, options.norm_lr_multiplier, decay_nb},
             {"bias", {}, options.bias_lr_multiplier, decay_nb}};
  // Groups with the same settings are one group, in parameter order: also the layout of
  // checkpoints written before groups existed, so those runs still resume.
  const bool one_group = groups_[1].lr_multiplier == 1 && groups_[2].lr_multiplier == 1 &&
                         decay_nb == options.weight_decay;
  if (one_group) {
    for (const auto& p : model.parameters())
      if (p.requires_grad()) groups_[0].params.push_back(p);
  } else {
    for (const auto& item : model.named_modules("", /*include_self=*/true)) {
      const bool norm = is_norm(item.value());
      for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
        if (p.value().requires_grad()) groups_[norm ? 1 : p.key() == "bias" ? 2 : 0].params.push_back(p.value());
    }
  }
  // Only non-empty groups are kept, so groups_[i] is the optimizer's param_groups()[i].
  groups_.erase(std::remove_if(groups_.begin(), groups_.end(), [](const Group& g) { return g.params.empty(); }),
                groups_.end());
  if (groups_.empty()) throw std::invalid_argument("the model has no trainable parameters");
  for (const auto& g : groups_) params_.insert(params_.end(), g.params.begin(), g.params.end());

  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (const auto& g : groups_) {
    // The multiplier scales the step, so decay is divided by it: lr * decay stays the base one's.
    const double lr = options.lr * g.lr_multiplier, decay = g.weight_decay / g.lr_multiplier;
    std::unique_ptr<torch::optim::OptimizerOptions> o;
    if (options.optimizer == "sgd")  // SGDW's decay is applied in step(), outside the momentum
      o = std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr).momentum(options.momentum).nesterov(
          options.nesterov).weight_decay(options.decoupled_weight_decay ? 0.0 : decay));
    else if (options.optimizer == "adamw")
      o = std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(lr).betas({options.momentum, 0.999}).weight_decay(decay));
    else
      o = std::make_unique<torch::optim::AdamOptions>(
          torch::optim::AdamOptions(lr).betas({options.momentum, 0.999}).weight_decay(decay));
    torch_groups.emplace_back(g.params, std::move(o));
  }
  if (options.optimizer == "sgd")
    optimizer_ = std::make_unique<torch::optim::SGD>(torch_groups, torch::optim::SGDOptions(options.lr));
  else if (options.optimizer == "adamw")
    optimizer_ = std::make_unique<torch::optim::AdamW>(torch_groups, torch::optim::AdamWOptions(options.lr));
  else
    optimizer_ = std::make_unique<torch::optim::Adam>(torch_groups, torch::optim::AdamOptions(options.lr));
}

void TrainingOptimizer::set_lr_factor(double factor) {
  factor_ = factor;
  for (size_t i = 0; i < groups_.size(); ++i)
    optimizer_->param_groups()[i].options().set_lr(options_.lr * factor * groups_[i].lr_multiplier);
}

void TrainingOptimizer::zero_grad() { optimizer_->zero_grad(); }

void TrainingOptimizer::step() {
  if (options_.clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params_, options_.clip_grad_norm);
  if (options_.optimizer == "sgd" && options_.decoupled_weight_decay) {
    torch::NoGradGuard no_grad;
    for (const auto& g : groups_) {
      if (g.weight_decay == 0) continue;
      for (auto& p : g.params)
        if (p.requires_grad()) p.mul_(1 - options_.lr * factor_ * g.weight_decay);
    }
  }
  optimizer_->step();
}

std::string TrainingOptimizer::describe() const {
  std::ostringstream out;
  out << options_.optimizer << (options_.nesterov ? " (nesterov)" : "") << ", lr " << options_.lr << ", schedule "
      << options_.schedule << "\n";
  for (const auto& g : groups_) {
    int64_t count = 0;
    for (const auto& p : g.params) count += p.numel();
    out << "  " << g.name << ": " << g.params.size() << " tensors, " << count << " parameters, lr x" << g.lr_multiplier
        << ", weight decay " << g.weight_decay << "\n";
  }
  return out.str();
}

void freeze_norm_weights(torch::nn::Module& model) {
  for (const auto& m : model.modules(/*include_self=*/false))
    if (is_norm(m))
      for (auto& p : m->named_parameters(false))
        if (p.key() == "weight") p.value().set_requires_grad(false);
}

std::string freeze_first_layer(torch::nn::Module& model) {
  const auto params = model.named_parameters();
  if (params.is_empty()) return "";
  const std::string first = params.keys().front();
  const std::string layer = first.substr(0, first.rfind('.'));
  for (auto& p : model.named_parameters()) {
    if (p.key().rfind(layer + ".", 0) != 0) continue;
    p.value().set_requires_grad(false);
    p.value().mutable_grad() = torch::Tensor();
  }
  return layer;
}

}  // namespace maas
