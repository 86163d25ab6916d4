// Knowledge distillation: a teacher artifact guides the student through the training step's loss.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "trainer.h"

namespace maas {

// alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy of
// the student against the labels smoothed by `smoothing`; KL and cross-entropy are batch means.
// The T^2 keeps the soft term's gradient scale independent of T (Hinton et al., 2015).
torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const torch::Tensor& labels, double temperature, double alpha, double smoothing);

// The loss of a run with distill.teacher set: loads the teacher through the careful artifact
// loader and runs it without autograd on each batch's augmented pixels (Batch::pixels), the same
// images the student sees. Throws ConfigError naming distill.teacher when the file is not an
// artifact, or was trained on other classes (names and order) or another image size than `spec`
// and `classes` describe. The returned function is not thread-safe (one training thread).
LossFunction make_distillation_loss(const DistillOptions& options, double label_smoothing, const ModelSpec& spec,
                                    const std::vector<std::string>& classes);

}  // namespace maas
