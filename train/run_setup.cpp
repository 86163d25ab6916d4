// Composing a training run's parts (see run_setup.h).
#include "run_setup.h"

#include <optional>
#include <ostream>

#include "loss.h"
#include "prune.h"
#include "trainer.h"

namespace maas {

namespace {

// prune.from: the network is another run's, narrowed (recomputed on resume: it is deterministic).
std::optional<PrunedNetwork> pruned_network(const RunConfig& config, const ModelSpec& spec,
                                            const std::vector<std::string>& classes) {
  if (config.prune.from.empty()) return std::nullopt;
  if (!config.model.init.empty())
    throw ConfigError("prune.from and model.init both name starting weights; set only one");
  if (!config.model.widths.empty() || config.model.width != 1)
    throw ConfigError("prune.from takes the widths from the pruned run: leave model.widths and model.width unset");
  PrunedNetwork pruned = prune_run(config.prune.from, spec, classes, config.prune.macs,
                                   prune_criterion_from_name(config.prune.criterion));
  if (pruned.options.name != config.model.name)
    throw ConfigError("prune.from=" + config.prune.from + " trained model '" + pruned.options.name +
                      "' but model.name is '" + config.model.name + "'");
  return pruned;
}

// The run's precision: train.precision resolved on `cpu`; a resume keeps the checkpoint's ("auto"
// takes it, another explicit precision is refused).
PrecisionChoice run_precision(const TrainOptions& opt, const CpuInfo& cpu, const Bf16Speedup& speedup,
                              const CheckpointReader* checkpoint, const std::string& checkpoint_path) {
  if (checkpoint && opt.precision == "auto") {
    const Precision saved =
        checkpoint->meta().precision == "bfloat16" ? Precision::kBFloat16 : Precision::kFloat32;
    return {saved, "the run's own (train.precision=auto on resume keeps what " + checkpoint_path + " trained in)"};
  }
  const PrecisionChoice choice = resolve_precision(opt.precision, cpu, speedup);
  if (checkpoint && precision_name(choice.precision) != checkpoint->meta().precision)
    throw ConfigError("train.precision=" + opt.precision + " but " + checkpoint_path + " was trained in " +
                      checkpoint->meta().precision + "; a run keeps its precision: resume with train.precision=" +
                      checkpoint->meta().precision + " (or auto), or start a new run");
  return choice;
}

// Every rank trains in rank 0's precision: auto measures on each host, and replicas must agree.
Precision rank0_precision(DataParallelGroup& group, Precision mine) {
  const torch::Tensor bf16 = torch::tensor({mine == Precision::kBFloat16 ? 1 : 0}, torch::kInt64);
  group.broadcast_from_rank0({bf16}, "agreeing on rank 0's training precision");
  return bf16.item<int64_t>() ? Precision::kBFloat16 : Precision::kFloat32;
}

}  // namespace

Evaluation TrainingRun::evaluate() {
  return sync->evaluate(weights->evaluated(), test_set, record->meta().normalization, eval_batch_size,
                        channels_last, tta, precision);
}

std::unique_ptr<TrainingRun> set_up_run(const RunConfig& config, const std::string& run_dir, bool resume,
                                        const TrainHooks& hooks) {
  const auto& opt = config.train;
  DataParallelGroup* const group = hooks.group;
  auto run = std::make_unique<TrainingRun>();
  const bool writer = !group || group->rank() == 0;  // the one process that logs and writes run_dir
  std::ostream* const log = run->log = writer ? hooks.log : nullptr;
  // Processes on one host share its cores: by default each takes its share.
  const int64_t local_processes = group ? group->launch().local_world_size : 1;
  torch::set_num_threads(static_cast<int>(
      opt.threads > 0 ? opt.threads : std::max<int64_t>(1, resolve_threads(0) / local_processes)));

  // Data: uint8 in memory, augmented and normalized batch by batch.
  const ImageSet train_set = load_dataset(config.data.dataset, config.data.root, Split::kTrain).head(config.data.train_limit);
  run->test_set = load_dataset(config.data.dataset, config.data.root, Split::kTest).head(config.data.test_limit);
  // No images means no steps and NaN metrics: refuse instead of "succeeding".
  if (train_set.size() == 0 || run->test_set.size() == 0)
    throw DataError(config.data.root + ": the " + (train_set.size() == 0 ? "training" : "test") + " set holds no images");
  const ModelSpec spec{train_set.channels(), train_set.height(), train_set.width(),
                       static_cast<int64_t>(train_set.classes.size())};

  run->record = std::make_unique<RunRecord>(run_dir, writer, log, hooks.after_write);
  const std::optional<PrunedNetwork> pruned = pruned_network(config, spec, train_set.classes);
  const ModelOptions network = pruned ? pruned->options : config.model;
  std::unique_ptr<CheckpointReader> checkpoint;
  if (resume)
    checkpoint = run->record->resume(network, spec, opt.epochs);
  else
    run->record->start(network, spec, train_set);
  // Only rank 0 measures for auto; the others take its choice.
  const Bf16Speedup speedup = !writer ? Bf16Speedup([] { return 1.0; })
                              : hooks.bf16_speedup ? hooks.bf16_speedup : Bf16Speedup(measure_bf16_speedup);
  const PrecisionChoice precision = run_precision(opt, hooks.cpu ? *hooks.cpu : this_cpu(), speedup,
                                                  checkpoint.get(), last_checkpoint_path(run_dir));
  run->precision = group ? rank0_precision(*group, precision.precision) : precision.precision;
  run->record->set_precision(precision_name(precision.precision));
  if (log) *log << "precision: " << precision_name(precision.precision) << " (" << precision.reason << ")\n";
  run->weights = std::make_unique<TrainedWeights>(config, network, spec, run->record->meta(), train_set,
                                                  pruned ? &*pruned : nullptr, checkpoint.get(), log);
  if (checkpoint) run->record->continue_after_resume();
  run->sync = std::make_unique<ReplicaSync>(group, opt.batch_size, train_set.size());
  if (group) run->sync->broadcast_from_rank0(run->weights->replicated_tensors());
  RunConfig recorded = config;  // config.yaml says what the run trains in, not "auto"
  recorded.train.precision = precision_name(run->precision);
  run->record->write_config(to_yaml(recorded));

  run->batches = std::make_unique<BatchSource>(train_set, config.augment, run->record->meta().normalization,
                                               opt.batch_size, opt.seed, opt.channels_last);
  run->steps = run->batches->steps_per_epoch();
  run->total_steps = run->steps * opt.epochs;
  run->weights->check_average_updates(run->total_steps, run->steps);
  run->tta = parse_tta_mode(config.eval.tta);
  run->eval_batch_size = opt.eval_batch_size;
  run->channels_last = opt.channels_last;
  const TrainingLoss loss = choose_loss(config, hooks.loss, spec, run->record->meta().classes, train_set);
  run->step = std::make_unique<TrainStep>(run->weights->model(), loss.loss, run->precision);
  run->weights->freeze_stem_if_due(run->record->epochs_done(), log);

  const std::string summary = model_summary(run->weights->model(), spec);
  run->record->set_model_summary(summary);
  if (resume) run->record->write_report();  // a crash may have come before the last epoch's report
  if (log) {
    *log << "model '" << network.name << "':\n" << summary;
    *log << "optimizer: " << run->weights->optimizer().describe();
    *log << "data: " << train_set.size() << " train / " << run->test_set.size() << " test images of "
         << spec.channels << "x" << spec.height << "x" << spec.width << ", " << spec.classes
         << " classes; run directory " << run_dir << "\n";
    if (resume) *log << "resuming after epoch " << run->record->epochs_done() << ", batch " << run->record->steps_done() << "\n";
    if (!loss.summary.empty()) *log << loss.summary << "\n";
    if (group)
      *log << "data-parallel: " << group->size() << " processes, " << torch::get_num_threads()
           << " threads each here; each computes 1/" << group->size() << " of every batch of " << opt.batch_size << "\n";
  }
  return run;
}

}  // namespace maas
