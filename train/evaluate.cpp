// Evaluation (see evaluate.h).
#include "evaluate.h"

#include <cmath>

namespace maas {

Evaluation evaluation_from_sums(double loss_sum, std::vector<int64_t> confusion, int64_t images) {
  const auto classes = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(confusion.size()))));
  int64_t correct = 0;
  for (int64_t c = 0; c < classes; ++c) correct += confusion[static_cast<size_t>(c * classes + c)];
  Evaluation e;
  e.loss = loss_sum / static_cast<double>(images);
  e.acc = static_cast<double>(correct) / static_cast<double>(images);
  e.confusion = std::move(confusion);
  return e;
}

Evaluation evaluate(ClassifierImpl& model, const ImageSet& set, const Normalization& normalization,
                    int64_t batch_size, bool channels_last, TtaMode tta, Precision precision) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const AutocastScope autocast(precision);  // bfloat16 weight copies cached across the batches
  const int64_t classes = static_cast<int64_t>(set.classes.size());
  auto confusion = torch::zeros({classes * classes}, torch::kInt64);
  double loss_sum = 0;
  auto classify = [&](const torch::Tensor& x) { return model.forward(x); };
  for (int64_t begin = 0; begin < set.size(); begin += batch_size) {
    const int64_t end = std::min(set.size(), begin + batch_size);
    const auto pixels = set.images.slice(0, begin, end);
    auto x = normalization.apply(channels_last ? pixels.contiguous(torch::MemoryFormat::ChannelsLast) : pixels);
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    const auto logits = tta_logits(classify, x, tta).to(torch::kFloat32);
    const auto labels = set.labels.slice(0, begin, end);
    loss_sum += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
    confusion.index_add_(0, labels * classes + logits.argmax(1), torch::ones_like(labels));
  }
  model.train(was_training);
  return evaluation_from_sums(
      loss_sum, std::vector<int64_t>(confusion.data_ptr<int64_t>(), confusion.data_ptr<int64_t>() + confusion.numel()),
      set.size());
}

}  // namespace maas
