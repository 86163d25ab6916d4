// Structured pruning: a trained network made physically narrower, whole channels at a time (prune.*).
//
// Which tensor dimensions hold a stage's channels is found from the registry itself, not written per
// architecture: the network is rebuilt with one stage one channel wider, and every parameter or
// buffer dimension that grows belongs to that stage (by 1, or by H*W for a flattened feature map).
// A stage keeps the same channel indices in all its dimensions, so residual sums stay aligned. The
// result is an ordinary registry model with smaller model.widths: no masks, loadable, exportable.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models.h"

namespace maas {

enum class PruneCriterion {
  kL1,       // sum over the layers that produce a stage of each filter's L1 norm (per layer / its mean)
  kBnScale,  // |BatchNorm scale| summed over the stage's BatchNorm layers (needs trained scales)
};

// Throws ConfigError naming prune.criterion for another name.
PruneCriterion prune_criterion_from_name(const std::string& name);

struct PrunedNetwork {
  std::shared_ptr<ClassifierImpl> model;  // the narrow network, holding the kept channels' weights
  ModelOptions options;                   // its architecture and widths (model.width 1, no model.init)
  std::vector<std::vector<int64_t>> kept;  // per stage: the source's channel indices kept, ascending
  int64_t macs_before = 0, macs_after = 0;  // multiply-accumulates per image
  std::string summary;                    // one line: widths and MACs before and after
};

// Prunes `source` (built from `options` for `spec`) to the widest uniform narrowing of its stages whose
// multiply-accumulates are at most `macs_fraction` of the source's, keeping in each stage the channels
// that `criterion` ranks highest. Deterministic; leaves `source` unchanged and torch's RNG as it was.
// Requires 0 < macs_fraction <= 1. Throws std::invalid_argument when the architecture's tensors do not
// scale with its widths as described above, or the criterion has nothing to rank a stage by.
PrunedNetwork prune_channels(ClassifierImpl& source, const ModelOptions& options, const ModelSpec& spec,
                             double macs_fraction, PruneCriterion criterion);

// Copies the pruned network's weights (parameters and BatchNorm statistics) into `model`, a fresh
// make_model(pruned.options, ...). Throws std::invalid_argument if a tensor is missing or differs in shape.
void copy_pruned_weights(const PrunedNetwork& pruned, torch::nn::Module& model);

// prune_channels on the best checkpoint of the run directory `from` (or the checkpoint file `from`),
// for a run on `spec` and `classes`. Throws ConfigError naming prune.from when it is not a run, was
// trained on other data (spec or class names), or cannot be pruned.
PrunedNetwork prune_run(const std::string& from, const ModelSpec& spec, const std::vector<std::string>& classes,
                        double macs_fraction, PruneCriterion criterion);

}  // namespace maas
