// The parts of a training run, composed once before its first step (see train() in trainer.cpp).
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "batch_source.h"
#include "config.h"
#include "dataset.h"
#include "replica_sync.h"
#include "run_record.h"
#include "train_step.h"
#include "trained_weights.h"
#include "tta.h"

namespace maas {

struct TrainHooks;

struct TrainingRun {
  std::ostream* log = nullptr;  // this process's log (nullptr on ranks other than 0, or silent)
  ImageSet test_set;
  TtaMode tta = TtaMode::kNone;
  Precision precision = Precision::kFloat32;  // of training and evaluation
  int64_t eval_batch_size = 500;
  bool channels_last = true;
  std::unique_ptr<RunRecord> record;        // the run directory and the progress it commits
  std::unique_ptr<TrainedWeights> weights;  // trained and evaluated weights, optimizer, schedule
  std::unique_ptr<ReplicaSync> sync;        // the data-parallel group's agreement (identity alone)
  std::unique_ptr<BatchSource> batches;     // augmented training batches by (epoch, step)
  std::unique_ptr<TrainStep> step;          // a batch's forward, loss and backward
  int64_t steps = 0;                        // per epoch
  int64_t total_steps = 0;                  // of the whole run

  // The test set's figures with the weights that are evaluated.
  Evaluation evaluate();
};

// Sets LibTorch's threads, loads the data, opens the record (fresh or resumed), builds the
// weights, the loss and the batches, writes config.yaml (and on resume report.html) and logs the
// run's description. Throws what train() documents.
std::unique_ptr<TrainingRun> set_up_run(const RunConfig& config, const std::string& run_dir, bool resume,
                                        const TrainHooks& hooks);

}  // namespace maas
