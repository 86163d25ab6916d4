// The training loop, top to bottom: data, model, optimizer, epochs (train, evaluate, checkpoint).
#include "trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "checkpoint.h"
#include "dataset.h"
#include "files.h"
#include "models.h"
#include "progress.h"

namespace maas {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

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
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line) || line != kMetricsHeader) return rows;
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

// Each epoch's order depends only on (seed, epoch), so a resumed run shuffles identically.
torch::Tensor epoch_order(int64_t n, int64_t seed, int64_t epoch) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed) * 1000003ULL +
                                                            static_cast<uint64_t>(epoch));
  return torch::randperm(n, generator, torch::kInt64);
}

// Pixels of the chosen images, normalized, in the layout the model runs fastest in.
torch::Tensor make_batch(const ImageSet& set, const torch::Tensor& index, const Normalization& norm,
                         bool channels_last) {
  auto x = norm.apply(set.images.index_select(0, index));
  return channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

struct Evaluation {
  double loss = 0, acc = 0;
};

Evaluation evaluate(ClassifierImpl& model, const ImageSet& set, const Normalization& norm, int64_t batch_size,
                    bool channels_last) {
  model.eval();
  torch::NoGradGuard no_grad;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < set.size(); begin += batch_size) {
    const int64_t end = std::min(set.size(), begin + batch_size);
    auto index = torch::arange(begin, end, torch::kInt64);
    auto logits = model.forward(make_batch(set, index, norm, channels_last));
    auto labels = set.labels.slice(0, begin, end);
    loss_sum += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  model.train();
  return {loss_sum / static_cast<double>(set.size()), static_cast<double>(correct) / static_cast<double>(set.size())};
}

void to_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

std::string epoch_line(const EpochMetrics& m, int64_t epochs) {
  std::ostringstream out;
  out << "epoch " << m.epoch << "/" << epochs << std::fixed << std::setprecision(4) << "  train_loss " << m.train_loss
      << std::setprecision(2) << "  train_acc " << 100 * m.train_acc << "%" << std::setprecision(4) << "  test_loss "
      << m.test_loss << std::setprecision(2) << "  test_acc " << 100 * m.test_acc << "%" << std::setprecision(0)
      << "  " << m.images_per_s << " img/s" << std::setprecision(1) << "  " << m.seconds << " s";
  return out.str();
}

}  // namespace

TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume, const TrainHooks& hooks) {
  const auto& opt = config.train;
  std::ostream* log = hooks.log;
  torch::set_num_threads(static_cast<int>(resolve_threads(opt.threads)));

  // Data: uint8 in memory, normalized batch by batch.
  const ImageSet train_set = load_dataset(config.data.dataset, config.data.root, Split::kTrain).head(config.data.train_limit);
  const ImageSet test_set = load_dataset(config.data.dataset, config.data.root, Split::kTest).head(config.data.test_limit);
  // No images means no steps and NaN metrics: refuse instead of "succeeding".
  if (train_set.size() == 0 || test_set.size() == 0)
    throw DataError(config.data.root + ": the " + (train_set.size() == 0 ? "training" : "test") + " set holds no images");
  const ModelSpec spec{train_set.channels(), train_set.height(), train_set.width(),
                       static_cast<int64_t>(train_set.classes.size())};

  // Model and optimizer, fresh or from the last checkpoint.
  fs::create_directories(run_dir);
  // A killed process can leave "last.pt.tmp.PID" and the like; they are never renamed now.
  for (const auto& stale : remove_stale_temp_files(run_dir))
    if (log) *log << "removed " << stale << " (left by an interrupted run)\n";
  auto wrote = [&](const std::string& path) { hooks.after_write(path); };
  CheckpointMeta meta;
  meta.model = config.model;
  meta.spec = spec;
  meta.classes = train_set.classes;
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  auto model = make_model(config.model, spec);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(opt.lr));
  if (resume) {
    CheckpointReader checkpoint(last_checkpoint_path(run_dir));
    if (!same_network(checkpoint.meta().model, meta.model) || checkpoint.meta().spec.channels != spec.channels ||
        checkpoint.meta().spec.height != spec.height || checkpoint.meta().spec.width != spec.width ||
        checkpoint.meta().spec.classes != spec.classes)
      throw CheckpointError(last_checkpoint_path(run_dir) + ": was trained with model '" +
                            checkpoint.meta().model.name + "' (or other model.* keys) on other data than this config describes");
    if (opt.epochs < checkpoint.meta().epoch)
      throw ConfigError("train.epochs=" + std::to_string(opt.epochs) + " but " + last_checkpoint_path(run_dir) +
                        " already holds " + std::to_string(checkpoint.meta().epoch) +
                        " epochs; resume with at least that many");
    checkpoint.restore_model(*model);
    checkpoint.restore_optimizer(optimizer);
    meta = checkpoint.meta();
    if (meta.rng_state.numel() > 0) {
      auto generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(meta.rng_state);
    }
    if (meta.history.empty()) meta.history = read_metrics(metrics_path(run_dir), meta.epoch);
    // Repair what a crash after last.pt's commit left behind (see the epoch's end below): best.pt
    // is copied from last.pt when last.pt is the best epoch and best.pt does not hold it yet.
    // Only a completed epoch (step 0) can be that copy: a mid-epoch checkpoint is written only
    // after its process already did this repair or wrote best.pt itself.
    if (meta.best_epoch > 0 && meta.best_epoch == meta.epoch && meta.step == 0) {
      int64_t best_holds = -1;
      try {
        best_holds = CheckpointReader(best_checkpoint_path(run_dir)).meta().epoch;
      } catch (const CheckpointError&) {
        // missing or torn: rewritten below
      }
      if (best_holds != meta.best_epoch) {
        write_text_atomically(best_checkpoint_path(run_dir), read_text(last_checkpoint_path(run_dir)));
        wrote(best_checkpoint_path(run_dir));
        if (log) *log << "restored " << best_checkpoint_path(run_dir) << " (epoch " << meta.best_epoch << ") from last.pt\n";
      }
    }
    write_text_atomically(metrics_path(run_dir), metrics_csv(meta.history));
    wrote(metrics_path(run_dir));
  } else {
    meta.normalization = Normalization::of(train_set.images);
  }
  if (opt.channels_last) to_channels_last(*model);
  model->train();
  write_text_atomically(run_config_path(run_dir), to_yaml(config));
  wrote(run_config_path(run_dir));

  TrainResult result;
  result.history = meta.history;
  result.best_test_acc = std::max(0.0, meta.best_test_acc);
  if (log) {
    *log << "model '" << meta.model.name << "':\n" << model_summary(*model, spec);
    *log << "data: " << train_set.size() << " train / " << test_set.size() << " test images of " << spec.channels
         << "x" << spec.height << "x" << spec.width << ", " << spec.classes << " classes; run directory " << run_dir
         << "\n";
    if (resume) *log << "resuming after epoch " << meta.epoch << ", batch " << meta.step << "\n";
  }

  const int64_t n = train_set.size();
  const int64_t steps = n / opt.batch_size + (n % opt.batch_size != 0);  // no overflow for any batch size
  ProgressBar bar(log, hooks.progress_bar);
  auto save_last = [&] {
    save_checkpoint(last_checkpoint_path(run_dir), meta, *model, &optimizer);
    wrote(last_checkpoint_path(run_dir));
  };

  for (int64_t epoch = meta.epoch + 1; epoch <= opt.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const torch::Tensor order = epoch_order(n, opt.seed, epoch);
    bar.start("epoch " + std::to_string(epoch) + "/" + std::to_string(opt.epochs), steps, meta.step);
    for (int64_t step = meta.step; step < steps; ++step) {
      const auto batch_start = Clock::now();
      const auto index = order.slice(0, step * opt.batch_size, std::min(n, (step + 1) * opt.batch_size));
      const auto images = make_batch(train_set, index, meta.normalization, opt.channels_last);
      const auto labels = train_set.labels.index_select(0, index);

      optimizer.zero_grad();
      const auto logits = model->forward(images);
      const auto loss = torch::cross_entropy_loss(logits, labels);
      loss.backward();
      optimizer.step();

      const int64_t count = index.size(0);
      meta.partial_loss_sum += loss.item<double>() * static_cast<double>(count);
      meta.partial_correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
      meta.partial_seen += count;
      meta.partial_seconds += std::chrono::duration<double>(Clock::now() - batch_start).count();
      meta.step = step + 1;
      const double seen = static_cast<double>(meta.partial_seen);
      bar.update(step + 1, meta.partial_loss_sum / seen, static_cast<double>(meta.partial_correct) / seen,
                 seen / meta.partial_seconds);

      if (hooks.should_stop() && step + 1 < steps) {
        meta.rng_state = at::detail::getDefaultCPUGenerator().get_state();
        save_last();
        bar.finish("interrupted in epoch " + std::to_string(epoch) + " after batch " + std::to_string(step + 1) +
                   "/" + std::to_string(steps) + "; checkpoint written to " + last_checkpoint_path(run_dir));
        result.interrupted = true;
        return result;
      }
    }

    const Evaluation test = evaluate(*model, test_set, meta.normalization, opt.eval_batch_size, opt.channels_last);
    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = meta.partial_loss_sum / static_cast<double>(meta.partial_seen);
    m.train_acc = static_cast<double>(meta.partial_correct) / static_cast<double>(meta.partial_seen);
    m.test_loss = test.loss;
    m.test_acc = test.acc;
    m.lr = opt.lr;
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
    meta.last_test_acc = test.acc;
    meta.rng_state = at::detail::getDefaultCPUGenerator().get_state();
    const bool best = test.acc > meta.best_test_acc;
    if (best) {
      meta.best_test_acc = test.acc;
      meta.best_epoch = epoch;
    }
    result.best_test_acc = meta.best_test_acc;
    const std::string checkpoint = checkpoint_bytes(meta, *model, &optimizer);
    write_text_atomically(last_checkpoint_path(run_dir), checkpoint);
    wrote(last_checkpoint_path(run_dir));
    if (best) {
      write_text_atomically(best_checkpoint_path(run_dir), checkpoint);
      wrote(best_checkpoint_path(run_dir));
    }
    write_text_atomically(metrics_path(run_dir), metrics_csv(meta.history));
    wrote(metrics_path(run_dir));
    bar.finish(epoch_line(m, opt.epochs) + (best ? "  (best)" : ""));

    if (hooks.should_stop() && epoch < opt.epochs) {
      result.interrupted = true;
      if (log) *log << "interrupted after epoch " << epoch << "; checkpoint written to " << last_checkpoint_path(run_dir) << "\n";
      return result;
    }
  }
  return result;
}

}  // namespace maas
