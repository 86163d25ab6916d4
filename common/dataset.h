// Image-classification data sets held in memory as uint8, and their readers (CIFAR-10, IDX).
#pragma once

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace maas {

// Thrown when a data file is missing, unreadable or malformed; the message names the file.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A labelled image set. images: uint8 [N, C, H, W], contiguous; labels: int64 [N] in
// [0, classes.size()). Cheap to copy (tensors share storage).
struct ImageSet {
  torch::Tensor images;
  torch::Tensor labels;
  std::vector<std::string> classes;

  int64_t size() const { return labels.size(0); }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  // The first n items (all when n <= 0 or n >= size()); shares storage.
  ImageSet head(int64_t n) const;
};

enum class Split { kTrain, kTest };

// CIFAR-10 binary records (1 label byte + 3072 pixel bytes) from one .bin file.
// Throws DataError for a missing file, a size that is not a multiple of 3073, or a label > 9.
ImageSet read_cifar10_file(const std::string& path);

// The five data_batch_*.bin (train) or test_batch.bin (test) under `root`; class names from
// batches.meta.txt when present, else the standard ten.
ImageSet load_cifar10(const std::string& root, Split split);

// An IDX image file (ubyte, 3 dims) and its label file (ubyte, 1 dim); gzip or raw.
// Throws DataError naming the file for a bad magic number, truncation or mismatched counts.
ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       std::vector<std::string> classes);

// Fashion-MNIST's four IDX files under `root` (Debian: /usr/share/datasets/fashion-mnist).
ImageSet load_fashion_mnist(const std::string& root, Split split);

// Dispatches on the data set name used in configs ("cifar10", "fashion-mnist").
ImageSet load_dataset(const std::string& name, const std::string& root, Split split);

// Per-channel normalization (values for pixels scaled to [0, 1]): x = (p / 255 - mean) / std.
struct Normalization {
  std::vector<double> mean;
  std::vector<double> std;

  // Mean and standard deviation of each channel over `images` (uint8 [N, C, H, W]).
  static Normalization of(const torch::Tensor& images);

  // uint8 or float pixels 0..255 [N, C, H, W] -> normalized float32, same shape:
  // shift + pixels * scale, with scale = 1 / (255 std) and shift = -mean / std, both [1, C, 1, 1].
  // Exported artifacts compute exactly this, with scale() and shift() stored as buffers.
  torch::Tensor apply(const torch::Tensor& pixels) const;
  torch::Tensor scale() const;
  torch::Tensor shift() const;
};

}  // namespace maas
