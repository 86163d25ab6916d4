// Parameter groups, optimizers and learning-rate schedules (see optimizer.h).
#include "optimizer.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace maas {
namespace {

bool is_norm(const std::shared_ptr<torch::nn::Module>& m) {
  return m->as<torch::nn::BatchNorm2d>() || m->as<torch::nn::BatchNorm1d>() || m->as<torch::nn::GroupNorm>() ||
         m->as<torch::nn::LayerNorm>();
}

template <typename Options>
void set_group_lr(torch::optim::OptimizerParamGroup& group, double lr) {
  static_cast<Options&>(group.options()).lr(lr);
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
  // With no group options in use, one group in parameter order: the layout of checkpoints written
  // before groups existed, so those runs still resume.
  const bool one_group = options.norm_lr_multiplier == 1 && options.bias_lr_multiplier == 1 &&
                         options.decay_norm_and_bias;
  if (one_group) {
    for (const auto& p : model.parameters())
      if (p.requires_grad()) groups_[0].params.push_back(p);
  }
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    if (one_group) break;
    const bool norm = is_norm(item.value());
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      if (!p.value().requires_grad()) continue;
      groups_[norm ? 1 : p.key() == "bias" ? 2 : 0].params.push_back(p.value());
    }
  }
  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (auto& g : groups_) {
    if (g.params.empty()) continue;
    // The multiplier scales the step, so decay is divided by it: lr * decay stays the base one's.
    const double lr = options.lr * g.lr_multiplier, decay = g.weight_decay / g.lr_multiplier;
    const bool decoupled_sgd = options.optimizer == "sgd" && options.decoupled_weight_decay;
    if (options.optimizer == "sgd") {
      auto o = std::make_unique<torch::optim::SGDOptions>(lr);
      o->momentum(options.momentum).nesterov(options.nesterov).weight_decay(decoupled_sgd ? 0.0 : decay);
      torch_groups.emplace_back(g.params, std::move(o));
    } else if (options.optimizer == "adamw") {
      auto o = std::make_unique<torch::optim::AdamWOptions>(lr);
      o->betas({options.momentum, 0.999}).weight_decay(decay);
      torch_groups.emplace_back(g.params, std::move(o));
    } else {
      auto o = std::make_unique<torch::optim::AdamOptions>(lr);
      o->betas({options.momentum, 0.999}).weight_decay(decay);
      torch_groups.emplace_back(g.params, std::move(o));
    }
  }
  if (torch_groups.empty()) throw std::invalid_argument("the model has no trainable parameters");
  if (options.optimizer == "sgd")
    optimizer_ = std::make_unique<torch::optim::SGD>(torch_groups, torch::optim::SGDOptions(options.lr));
  else if (options.optimizer == "adamw")
    optimizer_ = std::make_unique<torch::optim::AdamW>(torch_groups, torch::optim::AdamWOptions(options.lr));
  else
    optimizer_ = std::make_unique<torch::optim::Adam>(torch_groups, torch::optim::AdamOptions(options.lr));
}

void TrainingOptimizer::set_lr_factor(double factor) {
  factor_ = factor;
  size_t i = 0;
  for (const auto& g : groups_) {
    if (g.params.empty()) continue;
    auto& group = optimizer_->param_groups()[i++];
    const double lr = options_.lr * factor * g.lr_multiplier;
    if (options_.optimizer == "sgd") set_group_lr<torch::optim::SGDOptions>(group, lr);
    else if (options_.optimizer == "adamw") set_group_lr<torch::optim::AdamWOptions>(group, lr);
    else set_group_lr<torch::optim::AdamOptions>(group, lr);
  }
}

void TrainingOptimizer::zero_grad() { optimizer_->zero_grad(); }

void TrainingOptimizer::step() {
  if (options_.clip_grad_norm > 0) {
    std::vector<torch::Tensor> all;
    for (const auto& g : groups_) all.insert(all.end(), g.params.begin(), g.params.end());
    torch::nn::utils::clip_grad_norm_(all, options_.clip_grad_norm);
  }
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
    if (g.params.empty()) continue;
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
