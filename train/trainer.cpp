// The training loop, top to bottom: data, model, optimizer, epochs (train, evaluate, checkpoint).
#include "trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <limits>
#include <optional>

#include "batch_source.h"
#include "checkpoint.h"
#include "dataset.h"
#include "distill.h"
#include "distributed.h"
#include "evaluate.h"
#include "files.h"
#include "fine_tune.h"
#include "models.h"
#include "optimizer.h"
#include "prune.h"
#include "progress.h"
#include "report.h"
#include "weight_average.h"

namespace maas {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Training images that train.data_init hands the architecture (airbench whitens from 5000).
constexpr int64_t kDataInitImages = 5000;
// Training images the run's log describes a distillation teacher on (its accuracy and softness).
constexpr int64_t kTeacherSampleImages = 1000;

const char* kMetricsHeader = "epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_s,seconds";

std::string metrics_csv(const std::vector<EpochMetrics>& history) {
  std::ostringstream out;
  out << kMetricsHeader << "\n" << std::setprecision(6);
  for (const auto& m : history)
    out << m.epoch << "," << m.train_loss << "," << m.train_acc << "," << m.test_loss << "," << m.test_acc << ","
        << m.lr << "," << m.images_per_s << "," << m.seconds << "\n";
  return out.str();
}

// Rows of an existing metrics.csv up to and including `last_epoch` (resuming from a checkpoint
// written before checkpoints carried the training record).
std::vector<EpochMetrics> read_metrics(const std::string& path, int64_t last_epoch) {
  std::vector<EpochMetrics> rows;
  if (!std::filesystem::exists(path)) return rows;
  std::istringstream in(read_text(path));  // refuses a FIFO or device instead of blocking on it
  std::string line;
  if (!std::getline(in, line) || line != kMetricsHeader) return rows;
  while (std::getline(in, line)) {
    EpochMetrics m;
    char c;
    std::istringstream row(line);
    if (!(row >> m.epoch >> c >> m.train_loss >> c >> m.train_acc >> c >> m.test_loss >> c >> m.test_acc >> c >>
          m.lr >> c >> m.images_per_s >> c >> m.seconds))
      continue;
    if (m.epoch <= last_epoch) rows.push_back(m);
  }
  return rows;
}

void to_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

std::string epoch_line(const EpochMetrics& m, int64_t epochs) {
  std::ostringstream out;
  out << "epoch " << m.epoch << "/" << epochs << std::fixed << std::setprecision(4) << "  train_loss " << m.train_loss
      << std::setprecision(2) << "  train_acc " << 100 * m.train_acc << "%";
  if (std::isnan(m.test_acc))
    out << "  (not evaluated)";
  else
    out << std::setprecision(4) << "  test_loss " << m.test_loss << std::setprecision(2) << "  test_acc "
        << 100 * m.test_acc << "%";
  out << std::setprecision(0) << "  " << m.images_per_s << " img/s" << std::setprecision(1) << "  " << m.seconds
      << " s" << std::scientific << std::setprecision(3) << "  lr " << m.lr;
  return out.str();
}

// Repairs what a crash after last.pt's commit left behind (see the epoch's end in train()):
// best.pt is copied from last.pt when last.pt is the best epoch and best.pt does not hold it yet.
// Only a completed epoch (step 0) can be that copy: a mid-epoch checkpoint is written only after
// its process already did this repair or wrote best.pt itself.
void repair_after_crash(const CheckpointMeta& meta, const std::string& run_dir, std::ostream* log,
                        const std::function<void(const std::string&)>& wrote) {
  if (meta.best_epoch == 0 || meta.best_epoch != meta.epoch || meta.step != 0) return;
  int64_t best_holds = -1;
  try {
    best_holds = CheckpointReader(best_checkpoint_path(run_dir)).meta().epoch;
  } catch (const CheckpointError&) {
    // missing or torn: rewritten below
  }
  if (best_holds == meta.best_epoch) return;
  write_text_atomically(best_checkpoint_path(run_dir), read_text(last_checkpoint_path(run_dir)));
  wrote(best_checkpoint_path(run_dir));
  if (log) *log << "restored " << best_checkpoint_path(run_dir) << " (epoch " << meta.best_epoch << ") from last.pt\n";
}

// Images [begin, end) of `set`; shares storage.
ImageSet slice(const ImageSet& set, int64_t begin, int64_t end) {
  return {set.images.slice(0, begin, end), set.labels.slice(0, begin, end), set.classes};
}

// evaluate() over the whole set; with a group, each rank evaluates its share and the sums are
// combined, so every rank gets the figures of the whole set.
Evaluation evaluate_test_set(ClassifierImpl& model, const ImageSet& set, const Normalization& normalization,
                             const TrainOptions& opt, TtaMode tta, DataParallelGroup* group) {
  if (!group) return evaluate(model, set, normalization, opt.eval_batch_size, opt.channels_last, tta);
  const int64_t n = set.size(), rank = group->rank(), ranks = group->size();
  const ImageSet shard = slice(set, n * rank / ranks, n * (rank + 1) / ranks);
  const auto classes = static_cast<int64_t>(set.classes.size());
  auto sums = torch::zeros({1 + classes * classes}, torch::kFloat64);  // loss sum, then the confusion counts
  if (shard.size() > 0) {
    const Evaluation local = evaluate(model, shard, normalization, opt.eval_batch_size, opt.channels_last, tta);
    sums[0].fill_(local.loss * static_cast<double>(shard.size()));
    sums.slice(0, 1).add_(torch::tensor(local.confusion, torch::kInt64).to(torch::kFloat64));
  }
  group->all_reduce_sum({sums}, "sharded evaluation");
  const auto counts = sums.slice(0, 1).round().to(torch::kInt64).contiguous();
  return evaluation_from_sums(sums[0].item<double>(),
                              std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel()),
                              n);
}

// Every rank's parameters and buffers (the trained weights and, when on, the average) are
// rank 0's: broadcast at start, then checked bitwise after each epoch.
std::vector<torch::Tensor> replicated_tensors(torch::nn::Module& model, torch::nn::Module* average) {
  std::vector<torch::Tensor> tensors;
  for (auto* m : {&model, average}) {
    if (!m) continue;
    for (const auto& p : m->parameters()) tensors.push_back(p);
    for (const auto& b : m->buffers()) tensors.push_back(b);
  }
  return tensors;
}

}  // namespace

LossFunction label_smoothed_cross_entropy(double smoothing) {
  return [smoothing](const torch::Tensor& logits, const Batch& batch) {
    return torch::cross_entropy_loss(logits, batch.labels, {}, at::Reduction::Mean, -100, smoothing);
  };
}

TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume, const TrainHooks& hooks) {
  const auto& opt = config.train;
  DataParallelGroup* const group = hooks.group;
  const bool writer = !group || group->rank() == 0;  // the one process that logs and writes run_dir
  std::ostream* log = writer ? hooks.log : nullptr;
  // Processes on one host share its cores: by default each takes its share.
  const int64_t local_processes = group ? group->launch().local_world_size : 1;
  torch::set_num_threads(static_cast<int>(
      opt.threads > 0 ? opt.threads : std::max<int64_t>(1, resolve_threads(0) / local_processes)));

  // Data: uint8 in memory, augmented and normalized batch by batch.
  const ImageSet train_set = load_dataset(config.data.dataset, config.data.root, Split::kTrain).head(config.data.train_limit);
  const ImageSet test_set = load_dataset(config.data.dataset, config.data.root, Split::kTest).head(config.data.test_limit);
  // No images means no steps and NaN metrics: refuse instead of "succeeding".
  if (train_set.size() == 0 || test_set.size() == 0)
    throw DataError(config.data.root + ": the " + (train_set.size() == 0 ? "training" : "test") + " set holds no images");
  const ModelSpec spec{train_set.channels(), train_set.height(), train_set.width(),
                       static_cast<int64_t>(train_set.classes.size())};

  if (writer) {
    fs::create_directories(run_dir);
    // A killed process can leave "last.pt.tmp.PID" and the like; they are never renamed now.
    for (const auto& stale : remove_stale_temp_files(run_dir))
      if (log) *log << "removed " << stale << " (left by an interrupted run)\n";
  }
  auto wrote = [&](const std::string& path) { hooks.after_write(path); };

  // prune.from: the network is another run's, narrowed (recomputed on resume: it is deterministic).
  ModelOptions model_options = config.model;
  std::optional<PrunedNetwork> pruned;
  if (!config.prune.from.empty()) {
    if (!config.model.init.empty())
      throw ConfigError("prune.from and model.init both name starting weights; set only one");
    if (!config.model.widths.empty() || config.model.width != 1)
      throw ConfigError("prune.from takes the widths from the pruned run: leave model.widths and model.width unset");
    pruned = prune_run(config.prune.from, spec, train_set.classes, config.prune.macs,
                       prune_criterion_from_name(config.prune.criterion));
    if (pruned->options.name != config.model.name)
      throw ConfigError("prune.from=" + config.prune.from + " trained model '" + pruned->options.name +
                        "' but model.name is '" + config.model.name + "'");
    model_options = pruned->options;
  }

  // The run's record: fresh, or the last checkpoint's.
  CheckpointMeta meta;
  std::unique_ptr<CheckpointReader> checkpoint;
  if (resume) {
    checkpoint = std::make_unique<CheckpointReader>(last_checkpoint_path(run_dir));
    const auto& saved = checkpoint->meta();
    if (!same_network(saved.model, model_options) || saved.spec.channels != spec.channels ||
        saved.spec.height != spec.height || saved.spec.width != spec.width || saved.spec.classes != spec.classes)
      throw CheckpointError(last_checkpoint_path(run_dir) + ": was trained with model '" + saved.model.name +
                            "' (or other model.* keys) on other data than this config describes");
    if (opt.epochs < saved.epoch)
      throw ConfigError("train.epochs=" + std::to_string(opt.epochs) + " but " + last_checkpoint_path(run_dir) +
                        " already holds " + std::to_string(saved.epoch) + " epochs; resume with at least that many");
    meta = saved;
  } else {
    meta.model = model_options;
    meta.spec = spec;
    meta.classes = train_set.classes;
    meta.normalization = Normalization::of(train_set.images);
  }

  // Model, weight average and optimizer. Everything that decides which parameters train happens
  // before the optimizer is built, identically on resume, so the optimizer's groups match its state.
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  auto model = make_model(model_options, spec);
  if (opt.data_init && !model->init_from_data(meta.normalization.apply(train_set.head(kDataInitImages).images)))
    throw ConfigError("train.data_init=true but model '" + config.model.name +
                      "' has no data-dependent initialization (airbench has one); set train.data_init=false");
  if (!checkpoint && !config.model.init.empty()) {
    const std::string summary = init_from_file(config.model.init, *model, meta.classes);
    if (log) *log << summary << "\n";
  }
  if (!checkpoint && pruned) {
    copy_pruned_weights(*pruned, *model);
    if (log) *log << pruned->summary << "\n";
  }
  if (!opt.train_norm_weights) freeze_norm_weights(*model);
  TrainingOptimizer optimizer(*model, opt);
  std::shared_ptr<ClassifierImpl> average_model;
  if (opt.ema_decay > 0) average_model = make_model(model_options, spec);
  if (checkpoint) {
    if (average_model) {
      checkpoint->restore_trained_model(*model);
      checkpoint->restore_model(*average_model);
    } else {
      checkpoint->restore_model(*model);
    }
    checkpoint->restore_optimizer(optimizer.optimizer());
    if (meta.rng_state.numel() > 0) {
      auto generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(meta.rng_state);
    }
    if (meta.history.empty()) meta.history = read_metrics(metrics_path(run_dir), meta.epoch);
    if (writer) {
      repair_after_crash(meta, run_dir, log, wrote);
      write_text_atomically(metrics_path(run_dir), metrics_csv(meta.history));
      wrote(metrics_path(run_dir));
    }
  }
  if (opt.channels_last) {
    to_channels_last(*model);
    if (average_model) to_channels_last(*average_model);
  }
  if (group)
    group->broadcast_from_rank0(replicated_tensors(*model, average_model.get()), "broadcasting rank 0's weights");
  std::unique_ptr<WeightAverage> average;
  if (average_model) average = std::make_unique<WeightAverage>(model, average_model, /*start_from_trained=*/!checkpoint);
  ClassifierImpl& evaluated = average ? average->average() : *model;  // what evaluation, best.pt and export see
  model->train();
  evaluated.train();
  const std::string config_yaml = to_yaml(config);
  if (writer) {
    write_text_atomically(run_config_path(run_dir), config_yaml);
    wrote(run_config_path(run_dir));
  }

  const BatchSource batches(train_set, config.augment, meta.normalization, opt.batch_size, opt.seed, opt.channels_last);
  const int64_t steps = batches.steps_per_epoch();
  const int64_t total_steps = steps * opt.epochs;
  // An average updated every N > total steps would never move: evaluation would see initial weights.
  if (average && opt.ema_every > total_steps)
    throw ConfigError("train.ema_every=" + std::to_string(opt.ema_every) + " but the run has only " +
                      std::to_string(total_steps) + " steps (" + std::to_string(steps) +
                      " a epoch): the average would never be updated; lower train.ema_every");
  const TtaMode tta = parse_tta_mode(config.eval.tta);
  Distillation distillation;
  if (!hooks.loss && !config.distill.teacher.empty()) {
    const ImageSet sample = train_set.head(kTeacherSampleImages);
    distillation = make_distillation(config.distill, opt.label_smoothing, spec, meta.classes, sample.images,
                                     sample.labels);
  }
  const LossFunction loss_of = hooks.loss          ? hooks.loss
                               : distillation.loss ? distillation.loss
                                                   : label_smoothed_cross_entropy(opt.label_smoothing);
  std::string frozen_layer;
  auto freeze_stem_if_due = [&](int64_t epochs_done) {
    if (opt.stem_epochs > 0 && epochs_done >= opt.stem_epochs && frozen_layer.empty()) {
      frozen_layer = freeze_first_layer(*model);
      if (log && frozen_layer.size()) *log << "froze layer '" << frozen_layer << "' after epoch " << epochs_done << "\n";
    }
  };
  freeze_stem_if_due(meta.epoch);

  TrainResult result;
  result.history = meta.history;
  result.best_test_acc = std::max(0.0, meta.best_test_acc);
  const std::string summary = model_summary(*model, spec);
  // report.html, rewritten after each epoch (after metrics.csv: it is a view of the record, not part of it).
  auto write_run_report = [&] {
    if (!writer) return;
    write_text_atomically(run_report_path(run_dir), render_run_report(run_report_of(run_dir, meta, config_yaml, summary)));
    wrote(run_report_path(run_dir));
  };
  if (resume) write_run_report();  // a crash may have come before the last epoch's report
  if (log) {
    *log << "model '" << meta.model.name << "':\n" << summary;
    *log << "optimizer: " << optimizer.describe();
    *log << "data: " << train_set.size() << " train / " << test_set.size() << " test images of " << spec.channels
         << "x" << spec.height << "x" << spec.width << ", " << spec.classes << " classes; run directory " << run_dir
         << "\n";
    if (resume) *log << "resuming after epoch " << meta.epoch << ", batch " << meta.step << "\n";
    if (!distillation.summary.empty()) *log << distillation.summary << "\n";
    if (group)
      *log << "data-parallel: " << group->size() << " processes, " << torch::get_num_threads()
           << " threads each here; each computes 1/" << group->size() << " of every batch of " << opt.batch_size << "\n";
  }

  ProgressBar bar(log, hooks.progress_bar);
  auto save_last = [&] {
    if (!writer) return;
    save_checkpoint(last_checkpoint_path(run_dir), meta, evaluated, &optimizer.optimizer(),
                    average ? model.get() : nullptr);
    wrote(last_checkpoint_path(run_dir));
  };

  for (int64_t epoch = meta.epoch + 1; epoch <= opt.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    double all_reduce_seconds = 0;  // this process's wait in the gradient all-reduce (a group's cost)
    bar.start("epoch " + std::to_string(epoch) + "/" + std::to_string(opt.epochs), steps, meta.step);
    double lr = optimizer.current_lr();
    for (int64_t step = meta.step; step < steps; ++step) {
      const auto batch_start = Clock::now();
      const int64_t global_step = (epoch - 1) * steps + step;  // 0-based over the run
      optimizer.set_lr_factor(lr_factor(opt, global_step, total_steps, steps));
      lr = optimizer.current_lr();
      const Batch batch = group ? batches.batch(epoch, step, group->rank(), group->size()) : batches.batch(epoch, step);
      const int64_t count = batch.labels.size(0);

      // One training step.
      optimizer.zero_grad();
      double loss_sum = 0, correct = 0;
      if (count > 0) {  // a rank's shard of a small last batch may be empty
        const auto logits = model->forward(batch.images);
        const auto loss = loss_of(logits, batch);
        loss.backward();
        loss_sum = loss.item<double>() * static_cast<double>(count);
        correct = static_cast<double>(logits.argmax(1).eq(batch.labels).sum().item<int64_t>());
      }
      bool stop = hooks.should_stop();
      double seen = static_cast<double>(count);
      if (group) {
        // Each rank's gradient is the mean over its shard: weighted by its share of the batch,
        // their sum is the batch's mean gradient, as one process would compute it. BatchNorm's
        // running statistics (from each shard's batch statistics) are averaged; so are the
        // step's loss and hits, and a stop request of any rank stops all.
        const int64_t batch_images = std::min(opt.batch_size, train_set.size() - step * opt.batch_size);
        std::vector<torch::Tensor> shared;
        torch::NoGradGuard no_grad;
        for (auto& p : model->parameters()) {
          if (!p.requires_grad()) continue;
          if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
          p.mutable_grad().mul_(static_cast<double>(count) / static_cast<double>(batch_images));
          shared.push_back(p.grad());
        }
        for (auto& b : model->buffers())
          if (b.is_floating_point()) shared.push_back(b.div_(static_cast<double>(group->size())));
        auto step_stats = torch::tensor({loss_sum, correct, seen, stop ? 1.0 : 0.0}, torch::kFloat64);
        shared.push_back(step_stats);
        const auto reduce_start = Clock::now();
        group->all_reduce_sum(shared, "the all-reduce of epoch " + std::to_string(epoch) + " step " +
                                          std::to_string(step + 1));
        all_reduce_seconds += std::chrono::duration<double>(Clock::now() - reduce_start).count();
        loss_sum = step_stats[0].item<double>();
        correct = step_stats[1].item<double>();
        seen = step_stats[2].item<double>();
        stop = step_stats[3].item<double>() > 0;
      }
      optimizer.step();
      if (average && (global_step + 1) % opt.ema_every == 0)
        average->update(average_decay(opt.ema_decay, opt.ema_warmup_power, global_step + 1, total_steps),
                        opt.lookahead);

      meta.partial_loss_sum += loss_sum;
      meta.partial_correct += static_cast<int64_t>(correct);
      meta.partial_seen += static_cast<int64_t>(seen);
      meta.partial_seconds += std::chrono::duration<double>(Clock::now() - batch_start).count();
      meta.step = step + 1;
      const double seen_so_far = static_cast<double>(meta.partial_seen);
      bar.update(step + 1, meta.partial_loss_sum / seen_so_far, static_cast<double>(meta.partial_correct) / seen_so_far,
                 seen_so_far / meta.partial_seconds);

      if (stop && step + 1 < steps) {
        meta.rng_state = at::detail::getDefaultCPUGenerator().get_state();
        save_last();
        bar.finish("interrupted in epoch " + std::to_string(epoch) + " after batch " + std::to_string(step + 1) +
                   "/" + std::to_string(steps) + "; checkpoint written to " + last_checkpoint_path(run_dir));
        result.interrupted = true;
        return result;
      }
    }

    const bool evaluate_now = epoch == opt.epochs || (config.eval.every > 0 && epoch % config.eval.every == 0);
    Evaluation test;
    test.loss = test.acc = std::numeric_limits<double>::quiet_NaN();  // not evaluated this epoch
    if (evaluate_now) test = evaluate_test_set(evaluated, test_set, meta.normalization, opt, tta, group);
    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = meta.partial_loss_sum / static_cast<double>(meta.partial_seen);
    m.train_acc = static_cast<double>(meta.partial_correct) / static_cast<double>(meta.partial_seen);
    m.test_loss = test.loss;
    m.test_acc = test.acc;
    m.lr = lr;
    m.images_per_s = static_cast<double>(meta.partial_seen) / meta.partial_seconds;
    m.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    result.history.push_back(m);

    // One epoch commits as a unit, and last.pt is the commit point: it records the epoch's
    // weights, all metrics rows (meta.history) and which epoch best.pt must hold. The order is
    // last.pt, then best.pt (a byte copy of it, when this epoch is the best), then metrics.csv.
    // A crash before last.pt's rename loses only the uncommitted epoch, which a resume redoes
    // identically; a crash after it leaves best.pt or metrics.csv behind last.pt, and resuming
    // rebuilds both from last.pt before training on. best.pt is never written ahead of last.pt,
    // so a crash can not leave it holding an epoch the record does not know.
    meta.history.push_back(m);
    meta.epoch = epoch;
    meta.step = 0;
    meta.partial_loss_sum = meta.partial_seconds = 0;
    meta.partial_correct = meta.partial_seen = 0;
    if (evaluate_now) meta.last_test_acc = test.acc;
    meta.rng_state = at::detail::getDefaultCPUGenerator().get_state();
    const bool best = evaluate_now && test.acc > meta.best_test_acc;
    if (best) {
      meta.best_test_acc = test.acc;
      meta.best_epoch = epoch;
      meta.best_confusion = test.confusion;
    }
    result.best_test_acc = std::max(0.0, meta.best_test_acc);
    if (group)
      group->check_same_on_all_ranks(bitwise_digest(replicated_tensors(*model, average_model.get())),
                                     "the weights after epoch " + std::to_string(epoch));
    if (writer) {
      const std::string bytes =
          checkpoint_bytes(meta, evaluated, &optimizer.optimizer(), average ? model.get() : nullptr);
      write_text_atomically(last_checkpoint_path(run_dir), bytes);
      wrote(last_checkpoint_path(run_dir));
      if (best) {
        write_text_atomically(best_checkpoint_path(run_dir), bytes);
        wrote(best_checkpoint_path(run_dir));
      }
      write_text_atomically(metrics_path(run_dir), metrics_csv(meta.history));
      wrote(metrics_path(run_dir));
      write_run_report();
    }
    std::string group_note;
    if (group) {
      std::ostringstream note;
      note << std::fixed << std::setprecision(1) << "  all-reduce " << 1000 * all_reduce_seconds / static_cast<double>(steps)
           << " ms/step; weights bitwise identical on " << group->size() << " ranks";
      group_note = note.str();
    }
    bar.finish(epoch_line(m, opt.epochs) + (best ? "  (best)" : "") + group_note);
    freeze_stem_if_due(epoch);

    bool stop = hooks.should_stop();
    if (group) {
      auto request = torch::tensor({stop ? 1.0 : 0.0}, torch::kFloat64);
      group->all_reduce_sum({request}, "agreeing on a stop after epoch " + std::to_string(epoch));
      stop = request.item<double>() > 0;
    }
    if (stop && epoch < opt.epochs) {
      result.interrupted = true;
      if (log) *log << "interrupted after epoch " << epoch << "; checkpoint written to " << last_checkpoint_path(run_dir) << "\n";
      return result;
    }
  }
  return result;
}

}  // namespace maas
