// Readers for CIFAR-10 binary and IDX files: one bulk read per file, every size checked.
#include "dataset.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "files.h"

namespace maas {
namespace {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarRecord = 1 + 3 * kCifarSide * kCifarSide;  // 3073

const std::vector<std::string> kCifar10Classes = {"airplane", "automobile", "bird", "cat", "deer",
                                                  "dog",      "frog",       "horse", "ship", "truck"};
const std::vector<std::string> kFashionClasses = {"t-shirt/top", "trouser", "pullover", "dress", "coat",
                                                  "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot"};

std::string read_file(const std::string& path) {
  try {
    return read_regular_file(path);  // never blocks on a FIFO or device
  } catch (const FileError& e) {
    throw DataError(e.what());
  }
}

// Reads a file, inflating it when it starts with the gzip magic bytes.
std::string read_maybe_gzip(const std::string& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  // Inflates the bytes already read: reopening the path could meet another file by now.
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) throw DataError(path + ": zlib initialization failed");
  std::string out;
  char chunk[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    rc = inflate(&z, Z_NO_FLUSH);
    const size_t produced = sizeof chunk - z.avail_out;
    out.append(chunk, produced);
    if (rc == Z_OK && produced == 0 && z.avail_in == 0) break;  // input ends mid-stream
    if (rc == Z_STREAM_END && z.avail_in > 0) rc = inflateReset(&z);  // concatenated members, as gzread reads
  }
  const std::string detail = z.msg ? z.msg : "unexpected end of data";
  inflateEnd(&z);
  if (rc != Z_STREAM_END) throw DataError(path + ": corrupt or truncated gzip data (" + detail + ")");
  return out;
}

uint32_t big_endian_u32(const std::string& bytes, size_t offset) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return v;
}

std::vector<std::string> read_class_names(const std::string& path, const std::vector<std::string>& fallback) {
  if (!std::filesystem::exists(path)) return fallback;
  std::istringstream in(read_file(path));
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() != fallback.size())
    throw DataError(path + ": expected " + std::to_string(fallback.size()) + " class names, found " +
                    std::to_string(names.size()));
  return names;
}

ImageSet concat(const std::vector<ImageSet>& parts) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& p : parts) {
    images.push_back(p.images);
    labels.push_back(p.labels);
  }
  return {torch::cat(images), torch::cat(labels), parts.front().classes};
}

}  // namespace

ImageSet ImageSet::head(int64_t n) const {
  if (n <= 0 || n >= size()) return *this;
  return {images.slice(0, 0, n), labels.slice(0, 0, n), classes};
}

ImageSet read_cifar10_file(const std::string& path) {
  const std::string bytes = read_file(path);
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size == 0 || size % kCifarRecord != 0)
    throw DataError(path + ": size " + std::to_string(size) + " bytes is not a positive multiple of the " +
                    std::to_string(kCifarRecord) + "-byte CIFAR-10 record (truncated or not a CIFAR-10 .bin file)");
  const int64_t n = size / kCifarRecord;
  auto records = torch::from_blob(const_cast<char*>(bytes.data()), {n, kCifarRecord}, torch::kUInt8);
  auto labels = records.select(1, 0).to(torch::kInt64);
  const int64_t max_label = labels.max().item<int64_t>();
  if (max_label >= static_cast<int64_t>(kCifar10Classes.size())) {
    const int64_t bad = (labels >= 10).nonzero()[0][0].item<int64_t>();
    throw DataError(path + ": record " + std::to_string(bad) + " has label " + std::to_string(max_label) +
                    ", outside 0..9");
  }
  auto images = records.slice(1, 1).reshape({n, 3, kCifarSide, kCifarSide}).clone();
  return {images, labels, kCifar10Classes};
}

ImageSet load_cifar10(const std::string& root, Split split) {
  std::vector<std::string> files;
  if (split == Split::kTrain) {
    for (int i = 1; i <= 5; ++i) files.push_back(root + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(root + "/test_batch.bin");
  }
  std::vector<ImageSet> parts;
  for (const auto& f : files) {
    if (!std::filesystem::exists(f))
      throw DataError(f + ": cannot open (missing file); get CIFAR-10 with data/fetch-cifar10, or point data.root at "
                          "a cifar-10-batches-bin folder");
    parts.push_back(read_cifar10_file(f));
  }
  ImageSet set = concat(parts);
  set.classes = read_class_names(root + "/batches.meta.txt", kCifar10Classes);
  return set;
}

ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       std::vector<std::string> classes) {
  const std::string img = read_maybe_gzip(images_path);
  const std::string lab = read_maybe_gzip(labels_path);
  if (img.size() < 16 || big_endian_u32(img, 0) != 0x00000803)
    throw DataError(images_path + ": not an IDX ubyte image file (bad magic number or too short)");
  if (lab.size() < 8 || big_endian_u32(lab, 0) != 0x00000801)
    throw DataError(labels_path + ": not an IDX ubyte label file (bad magic number or too short)");
  const int64_t n = big_endian_u32(img, 4), h = big_endian_u32(img, 8), w = big_endian_u32(img, 12);
  // Training on no images runs zero steps and reports NaN metrics, so an empty set is an error.
  if (n == 0 || h == 0 || w == 0)
    throw DataError(images_path + ": holds no images (header says " + std::to_string(n) + " images of " +
                    std::to_string(h) + "x" + std::to_string(w) + ")");
  // Each factor is below 2^32, so h * w fits in uint64 but n * h * w may not: compare by division.
  const uint64_t area = static_cast<uint64_t>(h) * static_cast<uint64_t>(w);
  const uint64_t pixel_bytes = img.size() - 16;
  if (pixel_bytes % area != 0 || pixel_bytes / area != static_cast<uint64_t>(n))
    throw DataError(images_path + ": header promises " + std::to_string(n) + " images of " + std::to_string(h) +
                    "x" + std::to_string(w) + " but the file has " + std::to_string(img.size() - 16) +
                    " pixel bytes (truncated?)");
  const int64_t n_labels = big_endian_u32(lab, 4);
  if (static_cast<int64_t>(lab.size()) != 8 + n_labels)
    throw DataError(labels_path + ": header promises " + std::to_string(n_labels) + " labels but the file has " +
                    std::to_string(lab.size() - 8) + " (truncated?)");
  if (n_labels != n)
    throw DataError(labels_path + ": " + std::to_string(n_labels) + " labels for " + std::to_string(n) +
                    " images in " + images_path);
  auto images = torch::from_blob(const_cast<char*>(img.data()) + 16, {n, 1, h, w}, torch::kUInt8).clone();
  auto labels = torch::from_blob(const_cast<char*>(lab.data()) + 8, {n}, torch::kUInt8).to(torch::kInt64);
  if (n > 0 && labels.max().item<int64_t>() >= static_cast<int64_t>(classes.size()))
    throw DataError(labels_path + ": label " + std::to_string(labels.max().item<int64_t>()) + " outside 0.." +
                    std::to_string(classes.size() - 1));
  return {images, labels, std::move(classes)};
}

ImageSet load_fashion_mnist(const std::string& root, Split split) {
  const std::string prefix = root + (split == Split::kTrain ? "/train" : "/t10k");
  auto pick = [](const std::string& base) {
    return std::filesystem::exists(base + ".gz") ? base + ".gz" : base;
  };
  return read_idx_pair(pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte"), kFashionClasses);
}

ImageSet load_dataset(const std::string& name, const std::string& root, Split split) {
  if (name == "cifar10") return load_cifar10(root, split);
  if (name == "fashion-mnist") return load_fashion_mnist(root, split);
  throw DataError("unknown data set '" + name + "' (known: cifar10, fashion-mnist)");
}

Normalization Normalization::of(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  Normalization norm;
  for (int64_t c = 0; c < images.size(1); ++c) {
    auto channel = images.select(1, c).to(torch::kDouble).div_(255.0);
    norm.mean.push_back(channel.mean().item<double>());
    norm.std.push_back(channel.std().item<double>());
  }
  return norm;
}

torch::Tensor Normalization::scale() const {
  std::vector<float> v;
  for (double s : std) v.push_back(static_cast<float>(1.0 / (255.0 * s)));
  return torch::tensor(v).view({1, static_cast<int64_t>(v.size()), 1, 1});
}

torch::Tensor Normalization::shift() const {
  std::vector<float> v;
  for (size_t i = 0; i < mean.size(); ++i) v.push_back(static_cast<float>(-mean[i] / std[i]));
  return torch::tensor(v).view({1, static_cast<int64_t>(v.size()), 1, 1});
}

torch::Tensor Normalization::apply(const torch::Tensor& pixels) const {
  return torch::addcmul(shift(), pixels.to(torch::kFloat32), scale());
}

}  // namespace maas
