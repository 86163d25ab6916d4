// Evaluation of a classifier on a labelled set: loss, accuracy and confusion matrix, with optional TTA.
#pragma once

#include <cstdint>
#include <vector>

#include "dataset.h"
#include "models.h"
#include "precision.h"
#include "tta.h"

namespace maas {

struct Evaluation {
  double loss = 0;  // mean cross-entropy of the (averaged) logits, no label smoothing
  double acc = 0;   // fraction of top-1 hits
  std::vector<int64_t> confusion;  // classes x classes, row = true class, column = predicted
};

// The figures of a set of `images` from the summed cross-entropy and the confusion counts
// (classes x classes, row = true class): what evaluate() returns, and what a data-parallel group
// gets after adding up its shards' sums.
Evaluation evaluation_from_sums(double loss_sum, std::vector<int64_t> confusion, int64_t images);

// Runs `model` in eval mode without autograd over `set` in batches of `batch_size` and restores
// the model's training mode, in `precision` (the training's: bfloat16 runs under CPU autocast).
// Deterministic. Requires set.size() > 0.
Evaluation evaluate(ClassifierImpl& model, const ImageSet& set, const Normalization& normalization,
                    int64_t batch_size, bool channels_last, TtaMode tta, Precision precision = Precision::kFloat32);

}  // namespace maas
