// Knowledge distillation (see distill.h).
#include "distill.h"

#include <iomanip>
#include <sstream>

#include "artifact.h"

namespace maas {

torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const torch::Tensor& labels, double temperature, double alpha, double smoothing) {
  const auto student = torch::log_softmax(student_logits / temperature, 1);
  const auto teacher = torch::log_softmax(teacher_logits / temperature, 1);
  // kl_div with log targets: sum p_t (log p_t - log p_s), safe where p_t underflows to 0.
  const auto kl = torch::kl_div(student, teacher, at::Reduction::Sum, /*log_target=*/true) /
                  static_cast<double>(student_logits.size(0));
  const auto hard = torch::cross_entropy_loss(student_logits, labels, {}, at::Reduction::Mean, -100, smoothing);
  return alpha * temperature * temperature * kl + (1 - alpha) * hard;
}

Distillation make_distillation(const DistillOptions& options, double label_smoothing, const ModelSpec& spec,
                               const std::vector<std::string>& classes, const torch::Tensor& sample_pixels,
                               const torch::Tensor& sample_labels) {
  Artifact artifact;
  try {
    artifact = load_artifact(options.teacher);
  } catch (const std::exception& e) {
    throw ConfigError("distill.teacher=" + options.teacher + ": " + e.what());
  }
  const auto& info = artifact.info;
  if (info.classes != classes)
    throw ConfigError("distill.teacher=" + options.teacher + " was trained on other classes (" +
                      std::to_string(info.classes.size()) + " there, " + std::to_string(classes.size()) +
                      " here, or the same number with other names or order)");
  if (info.channels != spec.channels || info.height != spec.height || info.width != spec.width)
    throw ConfigError("distill.teacher=" + options.teacher + " takes " + std::to_string(info.channels) + "x" +
                      std::to_string(info.height) + "x" + std::to_string(info.width) + " images, the data has " +
                      std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
                      std::to_string(spec.width));
  // Frozen and optimized as maas-serve runs it: the teacher only ever runs forward.
  auto teacher = std::make_shared<torch::jit::Module>(torch::jit::optimize_for_inference(artifact.module));
  const double t = options.temperature, alpha = options.alpha;
  Distillation result;
  result.loss = [teacher, t, alpha, label_smoothing](const torch::Tensor& logits, const Batch& batch) {
    torch::Tensor soft;
    {
      torch::NoGradGuard no_grad;
      soft = teacher->forward({batch.pixels}).toTensor();
    }
    return distillation_loss(logits, soft, batch.labels, t, alpha, label_smoothing);
  };

  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = teacher->forward({sample_pixels}).toTensor();
  }
  const double accuracy = logits.argmax(1).eq(sample_labels).to(torch::kDouble).mean().item<double>();
  const double top = torch::softmax(logits.to(torch::kDouble) / t, 1).amax(1).mean().item<double>();
  const double uniform = 1.0 / static_cast<double>(classes.size());
  std::ostringstream line;
  line << "distillation: teacher " << options.teacher << ", temperature " << t << ", alpha " << alpha << "; on "
       << sample_pixels.size(0) << " training images the teacher is " << std::fixed << std::setprecision(1)
       << 100 * accuracy << "% right, its mean top probability at T=" << std::defaultfloat << t << " is "
       << std::fixed << std::setprecision(3) << top << " (uniform: " << uniform << ")";
  if (top < 3 * uniform)
    line << ": nearly uniform soft targets teach little beyond label smoothing (a teacher trained with label "
            "smoothing is soft already); lower distill.temperature";
  result.summary = line.str();
  return result;
}

}  // namespace maas
