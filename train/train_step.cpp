// One training step's computation (see train_step.h).
#include "train_step.h"

namespace maas {

StepStats TrainStep::run(const Batch& batch) {
  StepStats stats;
  const int64_t count = batch.labels.size(0);
  stats.seen = static_cast<double>(count);
  if (count == 0) return stats;
  torch::Tensor logits, loss;
  {
    const AutocastScope autocast(precision_);  // its end drops the step's bfloat16 weight copies
    logits = model_.forward(batch.images);
    loss = loss_(logits.to(torch::kFloat32), batch);  // the loss of float32 logits, as autocast's policy has it
  }
  loss.backward();
  stats.loss_sum = loss.item<double>() * static_cast<double>(count);
  stats.correct = static_cast<double>(logits.argmax(1).eq(batch.labels).sum().item<int64_t>());
  return stats;
}

}  // namespace maas
