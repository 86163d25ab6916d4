// The trained and the evaluated weights (see trained_weights.h).
#include "trained_weights.h"

#include <ostream>

#include "fine_tune.h"

namespace maas {

namespace {

// Training images that train.data_init hands the architecture (airbench whitens from 5000).
constexpr int64_t kDataInitImages = 5000;

void to_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

// The network with its starting weights and frozen parts, before the optimizer sees it.
std::shared_ptr<ClassifierImpl> starting_model(const RunConfig& config, const ModelOptions& network,
                                               const ModelSpec& spec, const CheckpointMeta& meta,
                                               const ImageSet& train_set, const PrunedNetwork* pruned, bool resuming,
                                               std::ostream* log) {
  const TrainOptions& opt = config.train;
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  auto model = make_model(network, spec);
  if (opt.data_init && !model->init_from_data(meta.normalization.apply(train_set.head(kDataInitImages).images)))
    throw ConfigError("train.data_init=true but model '" + config.model.name +
                      "' has no data-dependent initialization (airbench has one); set train.data_init=false");
  if (!resuming && !config.model.init.empty()) {
    const std::string summary = init_from_file(config.model.init, *model, meta.classes);
    if (log) *log << summary << "\n";
  }
  if (!resuming && pruned) {
    copy_pruned_weights(*pruned, *model);
    if (log) *log << pruned->summary << "\n";
  }
  if (!opt.train_norm_weights) freeze_norm_weights(*model);
  return model;
}

}  // namespace

TrainedWeights::TrainedWeights(const RunConfig& config, const ModelOptions& network, const ModelSpec& spec,
                               const CheckpointMeta& meta, const ImageSet& train_set, const PrunedNetwork* pruned,
                               const CheckpointReader* checkpoint, std::ostream* log)
    : options_(config.train),
      model_(starting_model(config, network, spec, meta, train_set, pruned, checkpoint != nullptr, log)),
      optimizer_(*model_, config.train) {
  std::shared_ptr<ClassifierImpl> average_model;
  if (options_.ema_decay > 0) average_model = make_model(network, spec);
  if (checkpoint) {
    if (average_model) {
      checkpoint->restore_trained_model(*model_);
      checkpoint->restore_model(*average_model);
    } else {
      checkpoint->restore_model(*model_);
    }
    checkpoint->restore_optimizer(optimizer_.optimizer());
  }
  if (options_.channels_last) {
    to_channels_last(*model_);
    if (average_model) to_channels_last(*average_model);
  }
  if (average_model)
    average_ = std::make_unique<WeightAverage>(model_, average_model, /*start_from_trained=*/checkpoint == nullptr);
  model_->train();
  evaluated().train();
}

std::vector<torch::Tensor> TrainedWeights::replicated_tensors() {
  std::vector<torch::Tensor> tensors;
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(model_.get()),
                               average_ ? static_cast<torch::nn::Module*>(&average_->average()) : nullptr}) {
    if (!m) continue;
    for (const auto& p : m->parameters()) tensors.push_back(p);
    for (const auto& b : m->buffers()) tensors.push_back(b);
  }
  return tensors;
}

double TrainedWeights::schedule(int64_t global_step, int64_t total_steps, int64_t steps_per_epoch) {
  optimizer_.set_lr_factor(lr_factor(options_, global_step, total_steps, steps_per_epoch));
  return optimizer_.current_lr();
}

void TrainedWeights::step(int64_t global_step, int64_t total_steps) {
  optimizer_.step();
  if (average_ && (global_step + 1) % options_.ema_every == 0)
    average_->update(average_decay(options_.ema_decay, options_.ema_warmup_power, global_step + 1, total_steps),
                     options_.lookahead);
}

void TrainedWeights::freeze_stem_if_due(int64_t epochs_done, std::ostream* log) {
  if (options_.stem_epochs > 0 && epochs_done >= options_.stem_epochs && frozen_layer_.empty()) {
    frozen_layer_ = freeze_first_layer(*model_);
    if (log && frozen_layer_.size()) *log << "froze layer '" << frozen_layer_ << "' after epoch " << epochs_done << "\n";
  }
}

void TrainedWeights::check_average_updates(int64_t total_steps, int64_t steps_per_epoch) const {
  // An average updated every N > total steps would never move: evaluation would see initial weights.
  if (average_ && options_.ema_every > total_steps)
    throw ConfigError("train.ema_every=" + std::to_string(options_.ema_every) + " but the run has only " +
                      std::to_string(total_steps) + " steps (" + std::to_string(steps_per_epoch) +
                      " a epoch): the average would never be updated; lower train.ema_every");
}

}  // namespace maas
