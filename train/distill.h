// Knowledge distillation: a teacher artifact guides the student through the training step's loss.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "loss.h"

namespace maas {

// alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy of
// the student against the labels smoothed by `smoothing`; KL and cross-entropy are batch means.
// The T^2 keeps the soft term's gradient scale independent of T (Hinton et al., 2015).
torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const torch::Tensor& labels, double temperature, double alpha, double smoothing);

// What a run with distill.teacher set trains with.
struct Distillation {
  // Runs the teacher without autograd on each batch's augmented pixels (Batch::pixels), the same
  // images the student sees. Not thread-safe (one training thread).
  LossFunction loss;
  // One line for the run's log: the teacher, T, alpha, and how the teacher sees the sample images:
  // its accuracy and the mean largest probability of softmax(logits / T). When that is below
  // 3 / classes (uniform is 1 / classes), the soft targets carry little beyond label smoothing (a
  // teacher trained with label smoothing is already soft at T = 1), and the line says to lower
  // distill.temperature.
  std::string summary;
};

// Loads the teacher through the careful artifact loader and describes it on `sample_pixels`
// (uint8 [N, C, H, W], N >= 1) with `sample_labels` ([N]). Throws ConfigError naming
// distill.teacher when the file is not an artifact, or was trained on other classes (names and
// order) or another image size than `spec` and `classes` describe.
Distillation make_distillation(const DistillOptions& options, double label_smoothing, const ModelSpec& spec,
                               const std::vector<std::string>& classes, const torch::Tensor& sample_pixels,
                               const torch::Tensor& sample_labels);

}  // namespace maas
