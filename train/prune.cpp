// Structured pruning: stage dimensions found by probing the registry, channels ranked, tensors sliced.
#include "prune.h"

#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "checkpoint.h"
#include "config.h"
#include "fine_tune.h"

namespace maas {
namespace {

using TensorMap = std::map<std::string, torch::Tensor>;

// A tensor dimension that holds stage `stage`'s channels, `multiplicity` consecutive entries each.
struct StageDim {
  size_t stage = 0;
  int64_t multiplicity = 1;
};
using StageDims = std::map<std::pair<std::string, int64_t>, StageDim>;  // (tensor name, dim) ->

ModelOptions with_widths(const ModelOptions& options, std::vector<int64_t> widths) {
  ModelOptions o;
  o.name = options.name;
  o.widths = std::move(widths);
  o.activation = options.activation;  // the same nonlinearity, narrower
  return o;
}

std::string widths_text(const std::vector<int64_t>& widths) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < widths.size(); ++i) out << (i ? ", " : "") << widths[i];
  out << "]";
  return out.str();
}

// Rebuilds the network with each stage one channel wider and records the dimensions that grow.
StageDims find_stage_dims(const ModelOptions& options, const std::vector<int64_t>& widths, const ModelSpec& spec,
                          const TensorMap& base) {
  const std::string where = "cannot prune model '" + options.name + "': ";
  StageDims dims;
  for (size_t k = 0; k < widths.size(); ++k) {
    auto probe_widths = widths;
    ++probe_widths[k];
    auto wider = make_model(with_widths(options, probe_widths), spec);
    const TensorMap grown = named_tensors(*wider);
    if (grown.size() != base.size()) throw std::invalid_argument(where + "its tensors change with its widths");
    for (const auto& [name, tensor] : grown) {
      const auto found = base.find(name);
      if (found == base.end() || found->second.dim() != tensor.dim())
        throw std::invalid_argument(where + "tensor '" + name + "' changes with its widths");
      for (int64_t d = 0; d < tensor.dim(); ++d) {
        const int64_t size = found->second.size(d), growth = tensor.size(d) - size;
        if (growth == 0) continue;
        if (growth < 0 || size != growth * widths[k])
          throw std::invalid_argument(where + "dimension " + std::to_string(d) + " of tensor '" + name +
                                      "' does not grow in proportion to stage " + std::to_string(k) + "'s width");
        if (!dims.emplace(std::make_pair(name, d), StageDim{k, growth}).second)
          throw std::invalid_argument(where + "dimension " + std::to_string(d) + " of tensor '" + name +
                                      "' depends on two stages");
      }
    }
  }
  return dims;
}

// Per stage, a score per channel (higher = keep).
std::vector<torch::Tensor> rank_channels(const TensorMap& tensors, const StageDims& dims,
                                         const std::vector<int64_t>& widths, PruneCriterion criterion,
                                         const std::string& model_name) {
  std::vector<torch::Tensor> scores;
  for (const int64_t w : widths) scores.push_back(torch::zeros({w}, torch::kFloat64));
  std::vector<bool> ranked(widths.size(), false);
  for (const auto& [key, dim] : dims) {
    const auto& [name, d] = key;
    const auto& t = tensors.at(name);
    if (d != 0 || dim.multiplicity != 1) continue;  // only the layers that produce the stage's channels
    if (criterion == PruneCriterion::kL1) {
      if (t.dim() < 2) continue;  // weights of convolutions and linear layers, not biases or norms
      const auto l1 = t.detach().abs().flatten(1).sum(1).to(torch::kFloat64);
      scores[dim.stage] += l1 / l1.mean().clamp_min(1e-30);  // each layer counts alike, whatever its fan-in
    } else {
      // A BatchNorm scale: a 1-D "weight" beside a running variance.
      const auto dot = name.rfind('.');
      const std::string prefix = dot == std::string::npos ? "" : name.substr(0, dot + 1);
      if (t.dim() != 1 || name.substr(prefix.size()) != "weight" || !tensors.count(prefix + "running_var")) continue;
      scores[dim.stage] += t.detach().abs().to(torch::kFloat64);
    }
    ranked[dim.stage] = true;
  }
  const char* criterion_name = criterion == PruneCriterion::kL1 ? "l1" : "bn_scale";
  for (size_t k = 0; k < widths.size(); ++k) {
    const std::string stage = "stage " + std::to_string(k) + " of model '" + model_name + "'";
    if (!ranked[k])
      throw std::invalid_argument(std::string("prune.criterion=") + criterion_name + " finds nothing to rank " +
                                  stage + " by" + (criterion == PruneCriterion::kBnScale ? " (no BatchNorm): use l1" : ""));
    if (criterion == PruneCriterion::kBnScale && widths[k] > 1 &&
        (scores[k].max() - scores[k].min()).item<double>() <= 1e-12 * scores[k].max().item<double>())
      throw std::invalid_argument("prune.criterion=bn_scale: the BatchNorm scales of " + stage +
                                  " are all equal (untrained, e.g. train.train_norm_weights=false): use l1");
  }
  return scores;
}

// The indices `multiplicity` entries per channel take: channel c -> c*m .. c*m + m-1.
torch::Tensor entries_of(const torch::Tensor& channels, int64_t multiplicity) {
  return (channels.unsqueeze(1) * multiplicity + torch::arange(multiplicity, torch::kLong).unsqueeze(0)).flatten();
}

// Restores torch's default generator on scope exit: probing builds (and initializes) networks.
class RngRestorer {
 public:
  RngRestorer() : generator_(at::detail::getDefaultCPUGenerator()), state_(generator_.get_state()) {}
  ~RngRestorer() { generator_.set_state(state_); }
  RngRestorer(const RngRestorer&) = delete;
  RngRestorer& operator=(const RngRestorer&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

}  // namespace

PruneCriterion prune_criterion_from_name(const std::string& name) {
  if (name == "l1") return PruneCriterion::kL1;
  if (name == "bn_scale") return PruneCriterion::kBnScale;
  throw ConfigError("prune.criterion: must be one of: l1, bn_scale (got '" + name + "')");
}

PrunedNetwork prune_channels(ClassifierImpl& source, const ModelOptions& options, const ModelSpec& spec,
                             double macs_fraction, PruneCriterion criterion) {
  if (!(macs_fraction > 0 && macs_fraction <= 1)) throw std::invalid_argument("the MACs fraction must be in (0, 1]");
  torch::NoGradGuard no_grad;
  const RngRestorer keep_rng;
  const std::vector<int64_t> widths = resolved_widths(options);
  const TensorMap tensors = named_tensors(source);
  const StageDims dims = find_stage_dims(options, widths, spec, tensors);
  const auto scores = rank_channels(tensors, dims, widths, criterion, options.name);

  // The widest uniform narrowing within the budget (MACs grow with every width, so bisect the factor).
  PrunedNetwork result;
  result.macs_before = macs_per_image(source, spec);
  const double budget = macs_fraction * static_cast<double>(result.macs_before);
  auto widths_at = [&](double factor) {
    std::vector<int64_t> w;
    for (const int64_t width : widths) w.push_back(std::max<int64_t>(1, std::llround(static_cast<double>(width) * factor)));
    return w;
  };
  auto macs_at = [&](const std::vector<int64_t>& w) {
    auto model = make_model(with_widths(options, w), spec);
    return macs_per_image(*model, spec);
  };
  std::vector<int64_t> chosen = widths;
  if (macs_fraction < 1) {
    chosen = widths_at(0);
    if (static_cast<double>(macs_at(chosen)) > budget)
      throw std::invalid_argument("model '" + options.name + "' cannot be pruned to " + std::to_string(macs_fraction) +
                                  " of its MACs: one channel a stage already costs more");
    double fits = 0, too_wide = 1;
    for (int i = 0; i < 20; ++i) {
      const double middle = (fits + too_wide) / 2;
      const auto candidate = widths_at(middle);
      if (static_cast<double>(macs_at(candidate)) <= budget) {
        fits = middle;
        chosen = candidate;
      } else {
        too_wide = middle;
      }
    }
  }

  for (size_t k = 0; k < widths.size(); ++k) {
    // Stable: equal scores keep the lower index, so the choice never depends on sort internals.
    const auto order = std::get<1>(torch::sort(scores[k], /*stable=*/true, /*dim=*/0, /*descending=*/true));
    const auto kept = std::get<0>(torch::sort(order.slice(0, 0, chosen[k])));
    result.kept.emplace_back(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + kept.numel());
  }
  result.options = with_widths(options, chosen);
  result.model = make_model(result.options, spec);
  result.model->train(source.is_training());
  for (auto& [name, target] : named_tensors(*result.model)) {
    torch::Tensor value = tensors.at(name).detach();
    for (int64_t d = 0; d < value.dim(); ++d) {
      const auto dim = dims.find({name, d});
      if (dim == dims.end()) continue;
      const auto& kept = result.kept[dim->second.stage];
      value = value.index_select(d, entries_of(torch::tensor(kept, torch::kLong), dim->second.multiplicity));
    }
    if (value.sizes() != target.sizes())
      throw std::invalid_argument("cannot prune model '" + options.name + "': tensor '" + name + "' did not narrow as its widths");
    target.copy_(value);
  }
  result.macs_after = macs_per_image(*result.model, spec);
  std::ostringstream summary;
  summary.precision(3);
  summary << "pruned model '" << options.name << "': widths " << widths_text(widths) << " -> " << widths_text(chosen)
          << ", multiply-accumulates " << result.macs_before << " -> " << result.macs_after << " per image ("
          << 100.0 * static_cast<double>(result.macs_after) / static_cast<double>(result.macs_before)
          << "%), channels ranked by " << (criterion == PruneCriterion::kL1 ? "filter L1 norm" : "BatchNorm scale");
  result.summary = summary.str();
  return result;
}

void copy_pruned_weights(const PrunedNetwork& pruned, torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  const TensorMap from = named_tensors(*pruned.model);
  TensorMap into = named_tensors(model);
  if (from.size() != into.size()) throw std::invalid_argument("the pruned network has other tensors than the model");
  for (auto& [name, target] : into) {
    const auto source = from.find(name);
    if (source == from.end() || source->second.sizes() != target.sizes())
      throw std::invalid_argument("the pruned network's tensor '" + name + "' is missing or of another shape");
    target.copy_(source->second);
  }
}

PrunedNetwork prune_run(const std::string& from, const ModelSpec& spec, const std::vector<std::string>& classes,
                        double macs_fraction, PruneCriterion criterion) {
  const std::string path = std::filesystem::is_directory(from) ? best_checkpoint_path(from) : from;
  const std::string key = "prune.from=" + from + ": ";
  try {
    const CheckpointReader reader(path);
    const auto& meta = reader.meta();
    if (meta.spec.channels != spec.channels || meta.spec.height != spec.height || meta.spec.width != spec.width ||
        meta.classes != classes)
      throw ConfigError(key + "that run was trained on other data (image size or class names) than this config's");
    auto source = reader.load_model();
    ModelOptions options = meta.model;
    options.init.clear();
    PrunedNetwork pruned = prune_channels(*source, options, spec, macs_fraction, criterion);
    pruned.summary += " from " + path;
    return pruned;
  } catch (const CheckpointError& e) {
    throw ConfigError(key + e.what() + " (give a maas-train run directory or one of its .pt checkpoints)");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(key + e.what());
  }
}

}  // namespace maas
