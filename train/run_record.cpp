// The run's record in its directory (see run_record.h).
#include "run_record.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "files.h"
#include "report.h"

namespace maas {

namespace {

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

}  // namespace

RunRecord::RunRecord(std::string run_dir, bool writer, std::ostream* log,
                     std::function<void(const std::string&)> after_write)
    : run_dir_(std::move(run_dir)), writer_(writer), log_(log), after_write_(std::move(after_write)) {
  if (!writer_) return;
  std::filesystem::create_directories(run_dir_);
  // A killed process can leave "last.pt.tmp.PID" and the like; they are never renamed now.
  for (const auto& stale : remove_stale_temp_files(run_dir_))
    if (log_) *log_ << "removed " << stale << " (left by an interrupted run)\n";
}

void RunRecord::start(const ModelOptions& network, const ModelSpec& spec, const ImageSet& train_set) {
  meta_.model = network;
  meta_.spec = spec;
  meta_.classes = train_set.classes;
  meta_.normalization = Normalization::of(train_set.images);
}

std::unique_ptr<CheckpointReader> RunRecord::resume(const ModelOptions& network, const ModelSpec& spec,
                                                    int64_t epochs) {
  auto checkpoint = std::make_unique<CheckpointReader>(last_checkpoint_path(run_dir_));
  const auto& saved = checkpoint->meta();
  if (!same_network(saved.model, network) || saved.spec.channels != spec.channels ||
      saved.spec.height != spec.height || saved.spec.width != spec.width || saved.spec.classes != spec.classes)
    throw CheckpointError(last_checkpoint_path(run_dir_) + ": was trained with model '" + saved.model.name +
                          "' (or other model.* keys) on other data than this config describes");
  if (epochs < saved.epoch)
    throw ConfigError("train.epochs=" + std::to_string(epochs) + " but " + last_checkpoint_path(run_dir_) +
                      " already holds " + std::to_string(saved.epoch) + " epochs; resume with at least that many");
  meta_ = saved;
  return checkpoint;
}

void RunRecord::continue_after_resume() {
  if (meta_.rng_state.numel() > 0) {
    auto generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(meta_.rng_state);
  }
  if (meta_.history.empty()) meta_.history = read_metrics(metrics_path(run_dir_), meta_.epoch);
  if (!writer_) return;
  repair_best_checkpoint();
  write_text_atomically(metrics_path(run_dir_), metrics_csv(meta_.history));
  wrote(metrics_path(run_dir_));
}

// best.pt is copied from last.pt when last.pt is the best epoch and best.pt does not hold it yet.
// Only a completed epoch (step 0) can be that copy: a mid-epoch checkpoint is written only after
// its process already did this repair or wrote best.pt itself.
void RunRecord::repair_best_checkpoint() {
  if (meta_.best_epoch == 0 || meta_.best_epoch != meta_.epoch || meta_.step != 0) return;
  int64_t best_holds = -1;
  try {
    best_holds = CheckpointReader(best_checkpoint_path(run_dir_)).meta().epoch;
  } catch (const CheckpointError&) {
    // missing or torn: rewritten below
  }
  if (best_holds == meta_.best_epoch) return;
  write_text_atomically(best_checkpoint_path(run_dir_), read_text(last_checkpoint_path(run_dir_)));
  wrote(best_checkpoint_path(run_dir_));
  if (log_)
    *log_ << "restored " << best_checkpoint_path(run_dir_) << " (epoch " << meta_.best_epoch << ") from last.pt\n";
}

void RunRecord::write_config(const std::string& config_yaml) {
  config_yaml_ = config_yaml;
  if (!writer_) return;
  write_text_atomically(run_config_path(run_dir_), config_yaml_);
  wrote(run_config_path(run_dir_));
}

void RunRecord::write_report() {
  if (!writer_) return;
  write_text_atomically(run_report_path(run_dir_),
                        render_run_report(run_report_of(run_dir_, meta_, config_yaml_, model_summary_)));
  wrote(run_report_path(run_dir_));
}

RunRecord::Running RunRecord::add_step(double loss_sum, double correct, double seen, double seconds) {
  meta_.partial_loss_sum += loss_sum;
  meta_.partial_correct += static_cast<int64_t>(correct);
  meta_.partial_seen += static_cast<int64_t>(seen);
  meta_.partial_seconds += seconds;
  meta_.step += 1;
  const double seen_so_far = static_cast<double>(meta_.partial_seen);
  return {meta_.partial_loss_sum / seen_so_far, static_cast<double>(meta_.partial_correct) / seen_so_far,
          seen_so_far / meta_.partial_seconds};
}

void RunRecord::save_mid_epoch(ClassifierImpl& evaluated, TrainingOptimizer& optimizer, ClassifierImpl* trained) {
  meta_.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  if (!writer_) return;
  save_checkpoint(last_checkpoint_path(run_dir_), meta_, evaluated, &optimizer.optimizer(), trained);
  wrote(last_checkpoint_path(run_dir_));
}

EpochMetrics RunRecord::end_epoch(int64_t epoch, const Evaluation& test, bool evaluated, double lr, double seconds,
                                  bool* best) {
  EpochMetrics m;
  m.epoch = epoch;
  m.train_loss = meta_.partial_loss_sum / static_cast<double>(meta_.partial_seen);
  m.train_acc = static_cast<double>(meta_.partial_correct) / static_cast<double>(meta_.partial_seen);
  m.test_loss = test.loss;
  m.test_acc = test.acc;
  m.lr = lr;
  m.images_per_s = static_cast<double>(meta_.partial_seen) / meta_.partial_seconds;
  m.seconds = seconds;
  meta_.history.push_back(m);
  meta_.epoch = epoch;
  meta_.step = 0;
  meta_.partial_loss_sum = meta_.partial_seconds = 0;
  meta_.partial_correct = meta_.partial_seen = 0;
  if (evaluated) meta_.last_test_acc = test.acc;
  meta_.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  *best = evaluated && test.acc > meta_.best_test_acc;
  if (*best) {
    meta_.best_test_acc = test.acc;
    meta_.best_epoch = epoch;
    meta_.best_confusion = test.confusion;
  }
  return m;
}

void RunRecord::commit_epoch(bool best, ClassifierImpl& evaluated, TrainingOptimizer& optimizer,
                             ClassifierImpl* trained) {
  if (!writer_) return;
  const std::string bytes = checkpoint_bytes(meta_, evaluated, &optimizer.optimizer(), trained);
  write_text_atomically(last_checkpoint_path(run_dir_), bytes);
  wrote(last_checkpoint_path(run_dir_));
  if (best) {
    write_text_atomically(best_checkpoint_path(run_dir_), bytes);
    wrote(best_checkpoint_path(run_dir_));
  }
  write_text_atomically(metrics_path(run_dir_), metrics_csv(meta_.history));
  wrote(metrics_path(run_dir_));
  write_report();
}

}  // namespace maas
