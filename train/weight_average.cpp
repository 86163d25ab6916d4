// Weight averaging (see weight_average.h).
#include "weight_average.h"

#include <cmath>
#include <stdexcept>

namespace maas {
namespace {

std::vector<torch::Tensor> floating_tensors(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p);
  for (const auto& b : m.buffers())
    if (b.is_floating_point()) out.push_back(b);
  return out;
}

}  // namespace

WeightAverage::WeightAverage(std::shared_ptr<ClassifierImpl> trained, std::shared_ptr<ClassifierImpl> average,
                             bool start_from_trained)
    : trained_(std::move(trained)), average_(std::move(average)) {
  trained_tensors_ = floating_tensors(*trained_);
  average_tensors_ = floating_tensors(*average_);
  if (trained_tensors_.size() != average_tensors_.size())
    throw std::invalid_argument("WeightAverage: the two models differ");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trained_tensors_.size(); ++i) {
    if (!trained_tensors_[i].sizes().equals(average_tensors_[i].sizes()))
      throw std::invalid_argument("WeightAverage: the two models differ");
    if (start_from_trained) average_tensors_[i].copy_(trained_tensors_[i]);
  }
}

void WeightAverage::update(double decay, bool lookahead) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trained_tensors_.size(); ++i) {
    average_tensors_[i].lerp_(trained_tensors_[i], 1 - decay);
    if (lookahead) trained_tensors_[i].copy_(average_tensors_[i]);
  }
}

double average_decay(double decay, double power, int64_t step, int64_t total_steps) {
  if (power == 0) return decay;
  return decay * std::pow(static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, total_steps)), power);
}

}  // namespace maas
