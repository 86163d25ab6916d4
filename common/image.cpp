// Image decoding (stb_image, compiled here with only PNG/JPEG/BMP/GIF) + LibTorch resizing, and PNG encoding.
#include "image.h"

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace {

// stb's allocations are capped per decode (set by decode_image from the declared size): the
// pixel limit alone does not bound a PNG whose zlib data inflates far beyond its declared size,
// or whose IDAT chunk length makes stb reserve gigabytes before it notices the data is missing.
thread_local size_t stb_allocation_limit = SIZE_MAX;
thread_local bool stb_allocation_refused = false;

// Zeroed: stb 2.27 leaves its JPEG decoder state uninitialized, so a scan using a Huffman table
// no DHT segment defined read garbage and indexed memory with it (found by fuzz_image).
void* stb_malloc(size_t size) {
  if (size > stb_allocation_limit) {
    stb_allocation_refused = true;
    return nullptr;
  }
  return std::calloc(1, size);
}

void* stb_realloc(void* p, size_t size) {
  if (size > stb_allocation_limit) {
    stb_allocation_refused = true;
    return nullptr;  // p stays valid: stb frees it on its error path
  }
  return std::realloc(p, size);
}

}  // namespace

// stb_image and stb_image_write are compiled into this file only, static: no other decoder
// (Debian's libstb also has HDR, PSD, PIC, PNM and TGA; its 2.27 HDR reader can loop forever on
// 49 bytes) is reachable from client bytes, and no stb symbol leaves this file.
// Thread safety: stb 2.27's failure reason is thread_local in C++, and the only other globals
// are the flip/premultiply settings, which maas never changes.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
// No JPEG or GIF can be larger; a bigger PNG/BMP side is a corrupt or hostile header.
#define STBI_MAX_DIMENSIONS 65535  // = kMaxSide
#define STBI_MALLOC(size) stb_malloc(size)
#define STBI_REALLOC(p, size) stb_realloc(p, size)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
// stb 2.27 calls memcpy(NULL, src, 0) when a PNG's first IDAT chunk is empty (valid PNG): undefined
// behaviour, which lets the compiler assume the pointer non-null afterwards. stb's copies go here.
inline void* stb_memcpy(void* to, const void* from, size_t n) { return n ? std::memcpy(to, from, n) : to; }
#define memcpy(to, from, n) stb_memcpy(to, from, n)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
#undef memcpy

namespace maas {
namespace {

// A JPEG decodes every block of the image once per scan, and a scan header costs ~10 bytes:
// without a bound, a small upload buys hours of CPU (progressive files have about 10 scans).
constexpr int kMaxJpegScans = 100;

// Checked before stb's loader sees the header: its BMP loader takes abs() of a height that may
// be INT_MIN.
constexpr int64_t kMaxSide = STBI_MAX_DIMENSIONS;

// What stb 2.27 must not be given in a JPEG, or "" (stb reports everything else). A Huffman
// table (DHT) declaring more than 256 codes overflows stb's tables (heap corruption: stb 2.27
// does not check the sum), and too many scans cost too much time. Walks the marker segments as
// stb's reader does: a marker is FF (after any fill FFs) and the next byte; bytes before an FF
// are skipped; entropy-coded data after a scan header runs to the first marker other than a
// stuffed FF 00 or a restart; reads past the end give 0. Where stb would fail instead, the walk
// goes on harmlessly.
std::string jpeg_problem(std::string_view b) {
  const auto at = [&](size_t i) -> unsigned { return i < b.size() ? static_cast<unsigned char>(b[i]) : 0u; };
  int scans = 0;
  size_t pos = 2;  // after SOI
  while (pos < b.size()) {
    while (pos < b.size() && at(pos) != 0xFF) ++pos;
    while (pos < b.size() && at(pos) == 0xFF) ++pos;
    if (pos >= b.size()) break;
    const unsigned marker = at(pos++);
    if (marker == 0xD9) break;                                // EOI: stb stops
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length
    const size_t length = at(pos) << 8 | at(pos + 1);
    if (marker == 0xC4) {  // stb reads tables while the length lasts, each 17 + n bytes
      size_t p = pos + 2;
      for (int64_t left = static_cast<int64_t>(length) - 2; left > 0;) {
        const unsigned q = at(p++);
        if ((q >> 4) > 1 || (q & 15) > 3) break;  // stb fails here
        size_t codes = 0;
        for (int i = 0; i < 16; ++i) codes += at(p++);
        if (codes > 256) return "JPEG Huffman table has " + std::to_string(codes) + " codes, more than 256";
        p += codes;
        left -= 17 + static_cast<int64_t>(codes);
      }
    }
    pos += length;
    if (marker == 0xDA) {
      if (++scans > kMaxJpegScans) return "JPEG has more than " + std::to_string(kMaxJpegScans) + " scans";
      for (; pos < b.size(); ++pos) {
        if (at(pos) != 0xFF) continue;
        size_t next = pos + 1;
        while (next < b.size() && at(next) == 0xFF) ++next;
        if (next < b.size() && at(next) != 0x00 && !(at(next) >= 0xD0 && at(next) <= 0xD7)) break;  // a marker
        pos = next;
      }
    }
  }
  return "";
}

// The format named by the magic bytes, or nullptr. Nothing else reaches stb.
const char* sniff_format(std::string_view b) {
  if (b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return "PNG";
  if (b.size() >= 3 && b.substr(0, 3) == "\xFF\xD8\xFF") return "JPEG";
  if (b.size() >= 6 && (b.substr(0, 6) == "GIF87a" || b.substr(0, 6) == "GIF89a")) return "GIF";
  if (b.size() >= 2 && b.substr(0, 2) == "BM") return "BMP";
  return nullptr;
}

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument("cannot decode image: " + why); }

// Sets the stb allocation cap for one decode and clears stale state (stb's reason survives
// from an earlier failure on this thread, and some failures set none).
class StbGuard {
 public:
  explicit StbGuard(size_t limit) {
    stb_allocation_limit = limit;
    stb_allocation_refused = false;
    stbi__g_failure_reason = nullptr;
  }
  ~StbGuard() { stb_allocation_limit = SIZE_MAX; }
  StbGuard(const StbGuard&) = delete;
  StbGuard& operator=(const StbGuard&) = delete;
};

}  // namespace

torch::Tensor decode_image(std::string_view bytes, int64_t channels, int64_t height, int64_t width,
                           int64_t max_pixels) {
  if (channels != 1 && channels != 3) throw std::invalid_argument("models must take 1 or 3 channels");
  if (height < 1 || width < 1) throw std::invalid_argument("decode_image needs a positive output size");
  if (max_pixels < 1) throw std::invalid_argument("decode_image needs a positive max_pixels");
  if (bytes.empty()) refuse("empty image");
  // stb takes an int length.
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    refuse(std::to_string(bytes.size()) + " bytes is more than the 2 GiB an image may have");
  const char* format = sniff_format(bytes);
  if (!format) refuse("unsupported image format: send PNG, JPEG, BMP or GIF");
  if (std::string_view(format) == "JPEG") {
    const std::string problem = jpeg_problem(bytes);
    if (!problem.empty()) refuse(problem);
  }

  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int w = 0, h = 0, found = 0;
  {
    StbGuard guard(size_t{1} << 20);  // reading a header allocates only small decoder state
    if (!stbi_info_from_memory(data, length, &w, &h, &found))
      refuse(std::string("corrupt or truncated ") + format + " header");
  }
  // A BMP stored top-down declares a negative height (stb's info passes it on, its loader flips).
  const int64_t declared_w = w, declared_h = std::abs(int64_t{h});
  const std::string size = std::to_string(declared_w) + "x" + std::to_string(declared_h);
  if (declared_w < 1 || declared_h < 1) refuse(std::string(format) + " declares a " + size + " image");
  if (declared_w > kMaxSide || declared_h > kMaxSide)
    refuse(std::string(format) + " declares a " + size + " image, a side over " + std::to_string(kMaxSide));
  const int64_t declared = declared_w * declared_h;
  if (declared > max_pixels)
    refuse(std::string(format) + " declares " + size + " = " + std::to_string(declared) +
           " pixels, more than the limit of " + std::to_string(max_pixels));

  // The largest buffer stb needs for a w x h image is a 16-bit RGBA PNG's inflated data (8 bytes
  // a pixel plus a filter byte a row), doubled when interlacing outgrows stb's first guess;
  // JPEG pads to 16x16 blocks. 16 bytes a pixel + 1 MiB covers all, and bounds zlib bombs.
  StbGuard guard(static_cast<size_t>(declared) * 16 + (size_t{1} << 20));
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data, length, &w, &h, &found, static_cast<int>(channels)), stbi_image_free);
  if (!pixels) {
    if (stb_allocation_refused)
      refuse(std::string(format) + " data needs more memory than a " + size + " image can (decompression bomb?)");
    const char* reason = stbi_failure_reason();
    refuse(std::string("corrupt ") + format + " (" + (reason ? reason : "truncated or malformed data") + ")");
  }
  if (w < 1 || h < 1 || int64_t{w} * h > declared) refuse(std::string(format) + " size changed while decoding");
  auto image = torch::from_blob(pixels.get(), {h, w, channels}, torch::kUInt8).permute({2, 0, 1}).unsqueeze(0);
  if (h == height && w == width) return image.contiguous().clone();
  auto resized = torch::nn::functional::interpolate(
      image.to(torch::kFloat32), torch::nn::functional::InterpolateFuncOptions()
                                     .size(std::vector<int64_t>{height, width})
                                     .mode(torch::kBilinear)
                                     .align_corners(false)
                                     .antialias(true));
  return resized.round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

std::string encode_png(const torch::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || (image.size(0) != 1 && image.size(0) != 3))
    throw std::invalid_argument("encode_png needs a uint8 [C, H, W] image with 1 or 3 channels");
  const auto hwc = image.permute({1, 2, 0}).contiguous();
  std::string png;
  const auto append = [](void* out, void* data, int size) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int w = static_cast<int>(image.size(2)), c = static_cast<int>(image.size(0));
  if (!stbi_write_png_to_func(append, &png, w, static_cast<int>(image.size(1)), c, hwc.data_ptr(), w * c))
    throw std::runtime_error("PNG encoding failed");
  return png;
}

}  // namespace maas
