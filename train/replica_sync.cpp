// Data-parallel synchronization of the replicas (see replica_sync.h).
#include "replica_sync.h"

#include <chrono>
#include <iomanip>
#include <sstream>

namespace maas {

namespace {

// Images [begin, end) of `set`; shares storage.
ImageSet slice(const ImageSet& set, int64_t begin, int64_t end) {
  return {set.images.slice(0, begin, end), set.labels.slice(0, begin, end), set.classes};
}

}  // namespace

Batch ReplicaSync::batch(const BatchSource& batches, int64_t epoch, int64_t step) const {
  return group_ ? batches.batch(epoch, step, group_->rank(), group_->size()) : batches.batch(epoch, step);
}

void ReplicaSync::broadcast_from_rank0(const std::vector<torch::Tensor>& tensors) {
  if (group_) group_->broadcast_from_rank0(tensors, "broadcasting rank 0's weights");
}

void ReplicaSync::reduce_step(ClassifierImpl& model, StepStats& stats, int64_t epoch, int64_t step) {
  if (!group_) return;
  const int64_t batch_images = std::min(batch_size_, train_images_ - step * batch_size_);
  std::vector<torch::Tensor> shared;
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    p.mutable_grad().mul_(stats.seen / static_cast<double>(batch_images));
    shared.push_back(p.grad());
  }
  for (auto& b : model.buffers())
    if (b.is_floating_point()) shared.push_back(b.div_(static_cast<double>(group_->size())));
  auto step_stats = torch::tensor({stats.loss_sum, stats.correct, stats.seen, stats.stop ? 1.0 : 0.0}, torch::kFloat64);
  shared.push_back(step_stats);
  const auto reduce_start = std::chrono::steady_clock::now();
  group_->all_reduce_sum(shared, "the all-reduce of epoch " + std::to_string(epoch) + " step " + std::to_string(step + 1));
  all_reduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce_start).count();
  stats.loss_sum = step_stats[0].item<double>();
  stats.correct = step_stats[1].item<double>();
  stats.seen = step_stats[2].item<double>();
  stats.stop = step_stats[3].item<double>() > 0;
}

Evaluation ReplicaSync::evaluate(ClassifierImpl& model, const ImageSet& set, const Normalization& normalization,
                                 int64_t batch_size, bool channels_last, TtaMode tta, Precision precision) {
  if (!group_) return maas::evaluate(model, set, normalization, batch_size, channels_last, tta, precision);
  const int64_t n = set.size(), rank = group_->rank(), ranks = group_->size();
  const ImageSet shard = slice(set, n * rank / ranks, n * (rank + 1) / ranks);
  const auto classes = static_cast<int64_t>(set.classes.size());
  auto sums = torch::zeros({1 + classes * classes}, torch::kFloat64);  // loss sum, then the confusion counts
  if (shard.size() > 0) {
    const Evaluation local = maas::evaluate(model, shard, normalization, batch_size, channels_last, tta, precision);
    sums[0].fill_(local.loss * static_cast<double>(shard.size()));
    sums.slice(0, 1).add_(torch::tensor(local.confusion, torch::kInt64).to(torch::kFloat64));
  }
  group_->all_reduce_sum({sums}, "sharded evaluation");
  const auto counts = sums.slice(0, 1).round().to(torch::kInt64).contiguous();
  return evaluation_from_sums(sums[0].item<double>(),
                              std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel()),
                              n);
}

void ReplicaSync::check_identical(const std::vector<torch::Tensor>& tensors, int64_t epoch) {
  if (group_)
    group_->check_same_on_all_ranks(bitwise_digest(tensors), "the weights after epoch " + std::to_string(epoch));
}

bool ReplicaSync::agree_to_stop(bool stop, int64_t epoch) {
  if (!group_) return stop;
  auto request = torch::tensor({stop ? 1.0 : 0.0}, torch::kFloat64);
  group_->all_reduce_sum({request}, "agreeing on a stop after epoch " + std::to_string(epoch));
  return request.item<double>() > 0;
}

std::string ReplicaSync::epoch_note(int64_t steps) {
  if (!group_) return "";
  std::ostringstream note;
  note << std::fixed << std::setprecision(1) << "  all-reduce " << 1000 * all_reduce_seconds_ / static_cast<double>(steps)
       << " ms/step; weights bitwise identical on " << group_->size() << " ranks";
  all_reduce_seconds_ = 0;
  return note.str();
}

}  // namespace maas
