// Training batches: each epoch's order and the augmentation of its images, both fixed by (seed, epoch, step).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "config.h"
#include "dataset.h"

namespace maas {

// What one image of a batch becomes; drawn per batch by BatchSource, or given by tests.
struct ImageAugmentation {
  int64_t shift_x = 0, shift_y = 0;  // content moves right/down by this many pixels (negative: left/up)
  bool flip = false;                 // mirrored left-right (before the shift)
  bool cutout = false;                 // a square of side AugmentOptions::cutout is filled
  int64_t cutout_x = 0, cutout_y = 0;  // its top-left corner; may lie outside the image (square clipped)
};

// Applies `augmentations[i]` to image `index[i]` of `images` (uint8 [N, C, H, W], contiguous) and
// returns the batch as uint8 [B, C, H, W]. Pixels a shift uncovers are reflected (padding
// "reflect", the edge row not repeated) or 0 ("zeros"); a cutout square of side `cutout` is set
// to `fill` (one value per channel). Plain loops over bytes, no per-image tensor ops.
// Requires: index values in [0, N), |shift| < H and W, fill.size() == C.
torch::Tensor augment_images(const torch::Tensor& images, const std::vector<int64_t>& index,
                             const std::vector<ImageAugmentation>& augmentations, const AugmentOptions& options,
                             const std::vector<uint8_t>& fill);

struct Batch {
  torch::Tensor images;  // float32 [B, C, H, W], normalized, channels-last if asked
  torch::Tensor labels;  // int64 [B]
  torch::Tensor pixels;  // uint8 [B, C, H, W]: the same augmented images before normalization (a teacher artifact's input)
};

// The training batches of a run. Deterministic: batch (epoch, step) depends only on the seed, the
// data and the options, so a resumed run sees exactly the images an uninterrupted one would.
// Not thread-safe: it keeps the current epoch's order (one permutation per epoch, not per batch).
class BatchSource {
 public:
  BatchSource(ImageSet set, AugmentOptions augment, Normalization normalization, int64_t batch_size, int64_t seed,
              bool channels_last);
  int64_t steps_per_epoch() const;  // the last batch of an epoch may be smaller
  // The dataset indices of batch `step` of `epoch` (epochs count from 1).
  std::vector<int64_t> indices(int64_t epoch, int64_t step) const;
  // What each image of that batch becomes.
  std::vector<ImageAugmentation> augmentations(int64_t epoch, int64_t step,
                                               const std::vector<int64_t>& indices) const;
  // Batch `step` of `epoch`, or with shards > 1 only its part `shard` (0-based): images
  // [n * shard / shards, n * (shard + 1) / shards) of its n, augmented exactly as in the whole
  // batch, so that the shards of all ranks together are the single-process batch.
  Batch batch(int64_t epoch, int64_t step, int64_t shard = 0, int64_t shards = 1) const;

 private:
  ImageSet set_;
  AugmentOptions augment_;
  Normalization normalization_;
  int64_t batch_size_, seed_;
  bool channels_last_;
  std::vector<uint8_t> fill_;  // the mean colour, for cutout
  mutable int64_t order_epoch_ = -1;  // the epoch `order_` belongs to
  mutable torch::Tensor order_;       // that epoch's permutation of the images
};

}  // namespace maas
