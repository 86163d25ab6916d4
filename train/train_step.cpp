// One training step's computation (see train_step.h).
#include "train_step.h"

namespace maas {

StepStats TrainStep::run(const Batch& batch) {
  StepStats stats;
  const int64_t count = batch.labels.size(0);
  stats.seen = static_cast<double>(count);
  if (count == 0) return stats;
  const auto logits = model_.forward(batch.images);
  const auto loss = loss_(logits, batch);
  loss.backward();
  stats.loss_sum = loss.item<double>() * static_cast<double>(count);
  stats.correct = static_cast<double>(logits.argmax(1).eq(batch.labels).sum().item<int64_t>());
  return stats;
}

}  // namespace maas
