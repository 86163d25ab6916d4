// The training loss (see loss.h).
#include "loss.h"

#include "distill.h"

namespace maas {

namespace {
// Training images the run's log describes a distillation teacher on (its accuracy and softness).
constexpr int64_t kTeacherSampleImages = 1000;
}  // namespace

LossFunction label_smoothed_cross_entropy(double smoothing) {
  return [smoothing](const torch::Tensor& logits, const Batch& batch) {
    return torch::cross_entropy_loss(logits, batch.labels, {}, at::Reduction::Mean, -100, smoothing);
  };
}

TrainingLoss choose_loss(const RunConfig& config, const LossFunction& override_loss, const ModelSpec& spec,
                         const std::vector<std::string>& classes, const ImageSet& train_set) {
  if (override_loss) return {override_loss, ""};
  if (!config.distill.teacher.empty()) {
    const ImageSet sample = train_set.head(kTeacherSampleImages);
    Distillation distillation = make_distillation(config.distill, config.train.label_smoothing, spec, classes,
                                                  sample.images, sample.labels);
    return {distillation.loss, distillation.summary};
  }
  return {label_smoothed_cross_entropy(config.train.label_smoothing), ""};
}

}  // namespace maas
