// Readers: good files load exactly; truncated and corrupt files fail with the file named.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>

#include "dataset.h"
#include "test_util.h"

namespace maas {
namespace {

using testing::TempDir;
using testing::write_bytes;

std::string cifar_record(int label, int fill) {
  std::string r(1, static_cast<char>(label));
  r.append(3072, static_cast<char>(fill));
  return r;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Cifar10Reader, ReadsRecordsInOrder) {
  TempDir dir;
  std::string bytes = cifar_record(3, 7) + cifar_record(9, 200);
  bytes[1 + 1024] = 42;  // first green pixel of record 0
  write_bytes(dir.file("a.bin"), bytes);
  const ImageSet set = read_cifar10_file(dir.file("a.bin"));
  ASSERT_EQ(set.size(), 2);
  EXPECT_EQ(set.images.sizes(), torch::IntArrayRef({2, 3, 32, 32}));
  EXPECT_EQ(set.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(set.labels[0].item<int64_t>(), 3);
  EXPECT_EQ(set.labels[1].item<int64_t>(), 9);
  EXPECT_EQ(set.images[0][1][0][0].item<int>(), 42);
  EXPECT_EQ(set.images[0][0][0][0].item<int>(), 7);
  EXPECT_EQ(set.images[1][2][31][31].item<int>(), 200);
}

TEST(Cifar10Reader, RejectsMissingTruncatedAndBadLabels) {
  TempDir dir;
  EXPECT_NE(error_of([&] { read_cifar10_file(dir.file("nope.bin")); }).find("nope.bin: cannot open"), std::string::npos);

  write_bytes(dir.file("short.bin"), cifar_record(1, 0) + cifar_record(2, 0).substr(0, 100));
  const auto truncated = error_of([&] { read_cifar10_file(dir.file("short.bin")); });
  EXPECT_NE(truncated.find("short.bin"), std::string::npos);
  EXPECT_NE(truncated.find("multiple of the 3073"), std::string::npos);

  write_bytes(dir.file("empty.bin"), "");
  EXPECT_NE(error_of([&] { read_cifar10_file(dir.file("empty.bin")); }).find("empty.bin"), std::string::npos);

  write_bytes(dir.file("label.bin"), cifar_record(1, 0) + cifar_record(12, 0));
  const auto label = error_of([&] { read_cifar10_file(dir.file("label.bin")); });
  EXPECT_NE(label.find("record 1 has label 12"), std::string::npos) << label;
}

TEST(Cifar10Reader, LoadsSplitsAndClassNames) {
  TempDir dir;
  testing::write_tiny_cifar(dir.path(), 4, 6);
  write_bytes(dir.file("batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
  const ImageSet train = load_cifar10(dir.path(), Split::kTrain);
  const ImageSet test = load_cifar10(dir.path(), Split::kTest);
  EXPECT_EQ(train.size(), 20);
  EXPECT_EQ(test.size(), 6);
  EXPECT_EQ(train.classes.front(), "a");
  EXPECT_EQ(train.classes.back(), "j");
  EXPECT_EQ(train.head(5).size(), 5);
  EXPECT_EQ(train.head(0).size(), 20);

  std::remove(dir.file("data_batch_4.bin").c_str());
  EXPECT_NE(error_of([&] { load_cifar10(dir.path(), Split::kTrain); }).find("data_batch_4.bin"), std::string::npos);
}

std::string idx_header(uint32_t magic, std::initializer_list<uint32_t> dims) {
  std::string h;
  for (uint32_t v : std::initializer_list<uint32_t>{magic}) {
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((v >> s) & 0xff));
  }
  for (uint32_t v : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((v >> s) & 0xff));
  return h;
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(gz);
}

TEST(IdxReader, RefusesAFileWithNoImages) {
  // Zero images used to load as an empty set: training ran zero steps and exited 0 with NaN metrics.
  TempDir dir;
  write_bytes(dir.file("img"), idx_header(0x803, {0, 28, 28}));
  write_bytes(dir.file("lab"), idx_header(0x801, {0}));
  auto e = error_of([&] { read_idx_pair(dir.file("img"), dir.file("lab"), {"a", "b"}); });
  EXPECT_NE(e.find(dir.file("img") + ": holds no images"), std::string::npos) << e;
  // Zero-sized images are no images either; a header whose sizes overflow int64 is a mismatch.
  write_bytes(dir.file("flat"), idx_header(0x803, {2, 0, 28}));
  e = error_of([&] { read_idx_pair(dir.file("flat"), dir.file("lab"), {"a", "b"}); });
  EXPECT_NE(e.find("holds no images"), std::string::npos) << e;
  write_bytes(dir.file("huge"), idx_header(0x803, {0xffffffffu, 0xffffffffu, 0xffffffffu}) + std::string(4, '\0'));
  e = error_of([&] { read_idx_pair(dir.file("huge"), dir.file("lab"), {"a", "b"}); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(IdxReader, ReadsRawAndGzipAndRejectsMismatches) {
  TempDir dir;
  std::string pixels(2 * 5 * 4, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i);
  const std::string images = idx_header(0x803, {2, 5, 4}) + pixels;
  const std::string labels = idx_header(0x801, {2}) + std::string{1, 0};
  write_bytes(dir.file("img"), images);
  write_gzip(dir.file("lab.gz"), labels);
  const std::vector<std::string> classes = {"zero", "one"};
  const ImageSet set = read_idx_pair(dir.file("img"), dir.file("lab.gz"), classes);
  EXPECT_EQ(set.images.sizes(), torch::IntArrayRef({2, 1, 5, 4}));
  EXPECT_EQ(set.images[1][0][4][3].item<int>(), 39);
  EXPECT_EQ(set.labels[0].item<int64_t>(), 1);

  write_bytes(dir.file("short"), images.substr(0, images.size() - 3));
  EXPECT_NE(error_of([&] { read_idx_pair(dir.file("short"), dir.file("lab.gz"), classes); }).find("truncated"),
            std::string::npos);
  write_bytes(dir.file("magic"), idx_header(0x801, {2}) + pixels);
  EXPECT_NE(error_of([&] { read_idx_pair(dir.file("magic"), dir.file("lab.gz"), classes); }).find("magic"),
            std::string::npos);
  write_bytes(dir.file("three"), idx_header(0x801, {3}) + std::string{0, 1, 1});
  EXPECT_NE(error_of([&] { read_idx_pair(dir.file("img"), dir.file("three"), classes); }).find("3 labels for 2"),
            std::string::npos);
  write_bytes(dir.file("badlabel"), idx_header(0x801, {2}) + std::string{0, 5});
  EXPECT_NE(error_of([&] { read_idx_pair(dir.file("img"), dir.file("badlabel"), classes); }).find("label 5"),
            std::string::npos);
  std::string gz_truncated;
  write_gzip(dir.file("full.gz"), images);
  {
    std::ifstream in(dir.file("full.gz"), std::ios::binary);
    gz_truncated.assign(std::istreambuf_iterator<char>(in), {});
  }
  write_bytes(dir.file("cut.gz"), gz_truncated.substr(0, gz_truncated.size() / 2));
  EXPECT_NE(error_of([&] { read_idx_pair(dir.file("cut.gz"), dir.file("lab.gz"), classes); }).find("cut.gz"),
            std::string::npos);
}

TEST(IdxReader, ReadsDebianFashionMnistWhenInstalled) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!std::ifstream(root + "/t10k-labels-idx1-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const ImageSet test = load_fashion_mnist(root, Split::kTest);
  EXPECT_EQ(test.images.sizes(), torch::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(test.classes.size(), 10u);
  EXPECT_EQ(test.labels.bincount().min().item<int64_t>(), 1000);  // balanced: 1000 per class
}

TEST(Normalization, StandardizesEachChannel) {
  auto images = torch::randint(0, 256, {64, 3, 8, 8}, torch::kUInt8);
  const Normalization norm = Normalization::of(images);
  ASSERT_EQ(norm.mean.size(), 3u);
  const auto x = norm.apply(images);
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(x.select(1, c).mean().item<double>(), 0.0, 1e-4);
    EXPECT_NEAR(x.select(1, c).std().item<double>(), 1.0, 1e-3);
  }
  // uint8 and float pixels give the same result.
  EXPECT_TRUE(torch::allclose(x, norm.apply(images.to(torch::kFloat32))));
}

}  // namespace
}  // namespace maas
