// Batch order and uint8 augmentation (see batch_source.h).
#include "batch_source.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace maas {
namespace {

// One 64-bit stream per purpose and position; splitmix64 spreads nearby inputs apart.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t stream_seed(int64_t seed, uint64_t purpose, int64_t a, int64_t b = 0) {
  return mix(mix(mix(static_cast<uint64_t>(seed) ^ (purpose << 56)) + static_cast<uint64_t>(a)) +
             static_cast<uint64_t>(b));
}

constexpr uint64_t kAugmentStream = 1, kFlipStream = 2;

// Source coordinate for output coordinate `i` shifted by `shift`, or -1 for a zero pixel.
int64_t source_coordinate(int64_t i, int64_t shift, int64_t size, bool reflect) {
  int64_t s = i - shift;
  if (s >= 0 && s < size) return s;
  if (!reflect) return -1;
  if (s < 0) return -s;                // reflect without repeating the edge: -1 -> 1
  return 2 * (size - 1) - s;           // size -> size - 2
}

}  // namespace

torch::Tensor augment_images(const torch::Tensor& images, const std::vector<int64_t>& index,
                             const std::vector<ImageAugmentation>& augmentations, const AugmentOptions& options,
                             const std::vector<uint8_t>& fill) {
  if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || !images.is_contiguous())
    throw std::invalid_argument("augment_images: images must be contiguous uint8 [N, C, H, W]");
  if (augmentations.size() != index.size()) throw std::invalid_argument("augment_images: one augmentation per image");
  const int64_t n = images.size(0), channels = images.size(1), height = images.size(2), width = images.size(3);
  if (static_cast<int64_t>(fill.size()) != channels) throw std::invalid_argument("augment_images: one fill per channel");
  const bool reflect = options.padding == "reflect";
  const int64_t batch = static_cast<int64_t>(index.size());
  auto out = torch::empty({batch, channels, height, width}, torch::kUInt8);
  const uint8_t* src = images.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t plane = height * width, image_bytes = channels * plane;
  std::vector<int64_t> columns(static_cast<size_t>(width));
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t i = index[static_cast<size_t>(b)];
    if (i < 0 || i >= n) throw std::out_of_range("augment_images: image index out of range");
    const ImageAugmentation& a = augmentations[static_cast<size_t>(b)];
    if (std::abs(a.shift_x) >= width || std::abs(a.shift_y) >= height)
      throw std::invalid_argument("augment_images: shift as large as the image");
    // Flip first, then shift: output column x shows flipped column source_coordinate(x).
    for (int64_t x = 0; x < width; ++x) {
      const int64_t c = source_coordinate(x, a.shift_x, width, reflect);
      columns[static_cast<size_t>(x)] = c < 0 ? -1 : (a.flip ? width - 1 - c : c);
    }
    for (int64_t ch = 0; ch < channels; ++ch) {
      const uint8_t* in = src + i * image_bytes + ch * plane;
      uint8_t* o = dst + b * image_bytes + ch * plane;
      for (int64_t y = 0; y < height; ++y) {
        const int64_t sy = source_coordinate(y, a.shift_y, height, reflect);
        uint8_t* row = o + y * width;
        if (sy < 0) {
          std::fill(row, row + width, uint8_t{0});
          continue;
        }
        const uint8_t* in_row = in + sy * width;
        for (int64_t x = 0; x < width; ++x) {
          const int64_t sx = columns[static_cast<size_t>(x)];
          row[x] = sx < 0 ? uint8_t{0} : in_row[sx];
        }
      }
      if (a.cutout && options.cutout > 0) {
        const int64_t y_end = std::min(height, a.cutout_y + options.cutout);
        const int64_t x_end = std::min(width, a.cutout_x + options.cutout);
        const int64_t x_begin = std::max<int64_t>(0, a.cutout_x);
        for (int64_t y = std::max<int64_t>(0, a.cutout_y); y < y_end && x_begin < x_end; ++y)
          std::fill(o + y * width + x_begin, o + y * width + x_end, fill[static_cast<size_t>(ch)]);
      }
    }
  }
  return out;
}

BatchSource::BatchSource(ImageSet set, AugmentOptions augment, Normalization normalization, int64_t batch_size,
                         int64_t seed, bool channels_last)
    : set_(std::move(set)),
      augment_(std::move(augment)),
      normalization_(std::move(normalization)),
      batch_size_(batch_size),
      seed_(seed),
      channels_last_(channels_last) {
  for (double m : normalization_.mean)
    fill_.push_back(static_cast<uint8_t>(std::lround(std::clamp(m, 0.0, 1.0) * 255)));
}

int64_t BatchSource::steps_per_epoch() const {
  const int64_t n = set_.size();
  return n / batch_size_ + (n % batch_size_ != 0);  // no overflow for any batch size
}

std::vector<int64_t> BatchSource::indices(int64_t epoch, int64_t step) const {
  if (epoch != order_epoch_) {
    // Each epoch's order depends only on (seed, epoch); the formula is the seed recipe's, so runs
    // without augmentation keep their batches.
    auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed_) * 1000003ULL +
                                                              static_cast<uint64_t>(epoch));
    order_ = torch::randperm(set_.size(), generator, torch::kInt64);
    order_epoch_ = epoch;
  }
  const int64_t begin = step * batch_size_, end = std::min(set_.size(), begin + batch_size_);
  const int64_t* p = order_.data_ptr<int64_t>();
  return std::vector<int64_t>(p + begin, p + end);
}

std::vector<ImageAugmentation> BatchSource::augmentations(int64_t epoch, int64_t step,
                                                          const std::vector<int64_t>& indices) const {
  std::vector<ImageAugmentation> out(indices.size());
  std::mt19937_64 rng(stream_seed(seed_, kAugmentStream, epoch, step));
  const int64_t t = augment_.translate, h = set_.height(), w = set_.width();
  for (size_t i = 0; i < indices.size(); ++i) {
    auto& a = out[i];
    if (t > 0) {
      std::uniform_int_distribution<int64_t> shift(-t, t);
      a.shift_x = std::clamp<int64_t>(shift(rng), -(w - 1), w - 1);
      a.shift_y = std::clamp<int64_t>(shift(rng), -(h - 1), h - 1);
    }
    if (augment_.flip == "random") {
      a.flip = (rng() & 1) != 0;
    } else if (augment_.flip == "alternating") {
      // Each image has a fixed coin (seed, image); it flips with it in odd epochs and against it in even ones.
      const bool coin = (mix(stream_seed(seed_, kFlipStream, indices[i])) & 1) != 0;
      a.flip = coin != (epoch % 2 == 0);
    }
    if (augment_.cutout > 0) {
      // The square's centre is anywhere in the image, so it may hang over an edge (DeVries & Taylor).
      std::uniform_int_distribution<int64_t> cy(0, h - 1), cx(0, w - 1);
      a.cutout = true;
      a.cutout_y = cy(rng) - augment_.cutout / 2;
      a.cutout_x = cx(rng) - augment_.cutout / 2;
    }
  }
  return out;
}

Batch BatchSource::batch(int64_t epoch, int64_t step, int64_t shard, int64_t shards) const {
  auto index = indices(epoch, step);
  auto chosen = augmentations(epoch, step, index);  // drawn for the whole batch: each shard sees its part of it
  if (shards > 1) {
    const auto n = static_cast<int64_t>(index.size());
    const int64_t begin = n * shard / shards, end = n * (shard + 1) / shards;
    index = std::vector<int64_t>(index.begin() + begin, index.begin() + end);
    chosen = std::vector<ImageAugmentation>(chosen.begin() + begin, chosen.begin() + end);
  }
  auto pixels = augment_images(set_.images, index, chosen, augment_, fill_);
  // Channels-last from the bytes on: the float batch is born in the layout the convolutions read
  // (a uint8 transpose is a quarter of a float one; the values are the same).
  auto x = normalization_.apply(channels_last_ ? pixels.contiguous(torch::MemoryFormat::ChannelsLast) : pixels);
  if (channels_last_) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  auto labels = set_.labels.index_select(0, torch::tensor(index, torch::kInt64));
  return {x, labels, pixels};
}

}  // namespace maas
