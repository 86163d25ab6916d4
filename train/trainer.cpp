// The training loop, top to bottom: set-up (run_setup.cpp), epochs of steps, evaluation and the record.
#include "trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "progress.h"
#include "run_setup.h"

namespace maas {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

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

}  // namespace

TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume, const TrainHooks& hooks) {
  const int64_t epochs = config.train.epochs;
  const auto run = set_up_run(config, run_dir, resume, hooks);
  RunRecord& record = *run->record;
  TrainedWeights& weights = *run->weights;
  ReplicaSync& sync = *run->sync;
  TrainResult result;
  ProgressBar bar(run->log, hooks.progress_bar);

  for (int64_t epoch = record.epochs_done() + 1; epoch <= epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    bar.start("epoch " + std::to_string(epoch) + "/" + std::to_string(epochs), run->steps, record.steps_done());
    double lr = weights.optimizer().current_lr();
    for (int64_t step = record.steps_done(); step < run->steps; ++step) {
      const auto step_start = Clock::now();
      const int64_t global_step = (epoch - 1) * run->steps + step;  // 0-based over the run
      lr = weights.schedule(global_step, run->total_steps, run->steps);
      const Batch batch = sync.batch(*run->batches, epoch, step);
      weights.optimizer().zero_grad();
      StepStats stats = run->step->run(batch);
      stats.stop = hooks.should_stop();
      sync.reduce_step(weights.model(), stats, epoch, step);
      weights.step(global_step, run->total_steps);
      const auto running = record.add_step(stats.loss_sum, stats.correct, stats.seen, seconds_since(step_start));
      bar.update(step + 1, running.loss, running.acc, running.images_per_s);
      if (stats.stop && step + 1 < run->steps) {
        record.save_mid_epoch(weights.evaluated(), weights.optimizer(), weights.trained_if_averaged());
        bar.finish("interrupted in epoch " + std::to_string(epoch) + " after batch " + std::to_string(step + 1) +
                   "/" + std::to_string(run->steps) + "; checkpoint written to " + record.last_checkpoint());
        result.interrupted = true;
        break;
      }
    }
    if (result.interrupted) break;

    const bool evaluate_now = epoch == epochs || (config.eval.every > 0 && epoch % config.eval.every == 0);
    Evaluation test;
    test.loss = test.acc = std::numeric_limits<double>::quiet_NaN();  // not evaluated this epoch
    if (evaluate_now) test = run->evaluate();
    bool best = false;
    const EpochMetrics m = record.end_epoch(epoch, test, evaluate_now, lr, seconds_since(epoch_start), &best);
    sync.check_identical(weights.replicated_tensors(), epoch);
    record.commit_epoch(best, weights.evaluated(), weights.optimizer(), weights.trained_if_averaged());
    bar.finish(epoch_line(m, epochs) + (best ? "  (best)" : "") + sync.epoch_note(run->steps));
    weights.freeze_stem_if_due(epoch, run->log);

    if (sync.agree_to_stop(hooks.should_stop(), epoch) && epoch < epochs) {
      result.interrupted = true;
      if (run->log) *run->log << "interrupted after epoch " << epoch << "; checkpoint written to " << record.last_checkpoint() << "\n";
      break;
    }
  }
  result.history = record.history();
  result.best_test_acc = record.best_test_acc();
  return result;
}

}  // namespace maas
