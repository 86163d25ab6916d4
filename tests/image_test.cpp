// decode_image on valid files of each accepted format and on hostile bytes (the upload path's decoder).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <zlib.h>

#include <cstring>
#include <memory>
#include <string>

#include "image.h"

namespace maas {
namespace {

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string be16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string le16(uint16_t v) { return {static_cast<char>(v), static_cast<char>(v >> 8)}; }
std::string le32(uint32_t v) { return le16(static_cast<uint16_t>(v)) + le16(static_cast<uint16_t>(v >> 16)); }
std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s += static_cast<char>(b);
  return s;
}

const std::string kPngSignature("\x89PNG\r\n\x1a\n", 8);

std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const auto crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(static_cast<uint32_t>(crc));
}

// IHDR of an 8-bit grey, non-interlaced w x h image.
std::string png_ihdr(uint32_t w, uint32_t h) { return png_chunk("IHDR", be32(w) + be32(h) + bytes({8, 0, 0, 0, 0})); }

// A zlib stream inflating to `size` zero bytes (compressed a chunk at a time: a few KB out).
std::string zlib_zeros(size_t size) {
  z_stream z{};
  EXPECT_EQ(deflateInit(&z, 9), Z_OK);
  const std::string zeros(1 << 16, '\0');
  std::string out;
  char buffer[1 << 16];
  for (size_t done = 0;;) {
    const size_t n = std::min(zeros.size(), size - done);
    done += n;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(n);
    const int flush = done == size ? Z_FINISH : Z_NO_FLUSH;
    int rc;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      rc = deflate(&z, flush);
      out.append(buffer, sizeof buffer - z.avail_out);
    } while (z.avail_out == 0);
    if (flush == Z_FINISH) {
      EXPECT_EQ(rc, Z_STREAM_END);
      break;
    }
  }
  deflateEnd(&z);
  return out;
}

// A GIF whose logical screen is w x h with one 1x1 frame per palette index in `frames`
// (palette: 0 = red, 1 = blue): 35 bytes for one frame.
std::string gif(uint16_t w, uint16_t h, std::initializer_list<int> frames = {0}) {
  std::string g = "GIF89a" + le16(w) + le16(h) + bytes({0x80, 0, 0, 255, 0, 0, 0, 0, 255});
  for (int index : frames) {
    // LZW, 2-bit minimum code size, 3-bit codes: clear (4), the index, end (5), LSB first.
    const int codes = 4 | (index << 3) | (5 << 6);
    g += bytes({0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, codes & 255, codes >> 8, 0});
  }
  return g + ";";
}

// A 2x2 24-bit BMP: red, green on the top row; blue, white on the bottom row.
std::string bmp_2x2() {
  return "BM" + le32(14 + 40 + 16) + le32(0) + le32(54) + le32(40) + le32(2) + le32(2) + le16(1) + le16(24) +
         le32(0) + le32(16) + le32(0) + le32(0) + le32(0) + le32(0) +
         bytes({255, 0, 0, 255, 255, 255, 0, 0}) +  // bottom row first, BGR, padded to 4 bytes
         bytes({0, 0, 255, 0, 255, 0, 0, 0});
}

// A baseline 8x8 grey JPEG whose every scan codes one flat block (value 128): DC and AC Huffman
// tables each hold one 1-bit code (DC difference 0, end of block), so a scan's data is 0x3F.
std::string jpeg_flat_8x8(int scans) {
  const std::string one_code = bytes({1}) + std::string(15, '\0') + bytes({0});
  std::string j = bytes({0xFF, 0xD8, 0xFF, 0xDB, 0, 0x43, 0}) + std::string(64, '\x01') +
                  bytes({0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0}) + bytes({0xFF, 0xC4, 0, 20, 0x00}) +
                  one_code + bytes({0xFF, 0xC4, 0, 20, 0x10}) + one_code;
  for (int i = 0; i < scans; ++i) j += bytes({0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x3F});
  return j + bytes({0xFF, 0xD9});
}

std::string decode_error(std::string_view data, int64_t max_pixels = kDefaultMaxImagePixels) {
  try {
    decode_image(data, 3, 8, 8, max_pixels);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(decoded)";
}

TEST(DecodeImageFormats, PngRoundTripsExactlyInRgbAndGrey) {
  torch::manual_seed(1);
  const auto rgb = torch::randint(0, 256, {3, 5, 7}, torch::kUInt8);
  EXPECT_TRUE(decode_image(encode_png(rgb), 3, 5, 7).equal(rgb.unsqueeze(0)));
  const auto grey = torch::randint(0, 256, {1, 5, 7}, torch::kUInt8);
  EXPECT_TRUE(decode_image(encode_png(grey), 1, 5, 7).equal(grey.unsqueeze(0)));
}

TEST(DecodeImageFormats, ConvertsChannelsAndResizes) {
  const auto red = torch::zeros({3, 4, 4}, torch::kUInt8);
  red[0].fill_(255);
  // stb's luma: (77 r + 150 g + 29 b) >> 8.
  EXPECT_TRUE(decode_image(encode_png(red), 1, 2, 3).equal(torch::full({1, 1, 2, 3}, 76, torch::kUInt8)));
  const auto grey = torch::full({1, 4, 4}, 9, torch::kUInt8);
  EXPECT_TRUE(decode_image(encode_png(grey), 3, 6, 6).equal(torch::full({1, 3, 6, 6}, 9, torch::kUInt8)));
}

TEST(DecodeImageFormats, DecodesBmp) {
  const auto image = decode_image(bmp_2x2(), 3, 2, 2);
  const auto expected = torch::tensor({255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255}, torch::kUInt8).view({1, 3, 2, 2});
  EXPECT_TRUE(image.equal(expected)) << image;
}

TEST(DecodeImageFormats, DecodesTopDownBmp) {
  std::string bmp = bmp_2x2();
  bmp.replace(22, 4, le32(static_cast<uint32_t>(-2)));  // negative height: rows stored top first
  const auto image = decode_image(bmp, 3, 2, 2);
  const auto expected = torch::tensor({0, 255, 255, 0, 0, 255, 0, 255, 255, 255, 0, 0}, torch::kUInt8).view({1, 3, 2, 2});
  EXPECT_TRUE(image.equal(expected)) << image;
}

TEST(DecodeImageFormats, DecodesTheFirstFrameOfAnAnimatedGif) {
  const auto image = decode_image(gif(1, 1, {0, 1}), 3, 1, 1);
  EXPECT_TRUE(image.equal(torch::tensor({255, 0, 0}, torch::kUInt8).view({1, 3, 1, 1}))) << image;
}

TEST(DecodeImageFormats, DecodesBaselineJpeg) {
  EXPECT_TRUE(decode_image(jpeg_flat_8x8(1), 3, 8, 8).equal(torch::full({1, 3, 8, 8}, 128, torch::kUInt8)));
}

// Regression: an output height of 0 reached LibTorch and threw c10::Error.
// Found by fuzz_image (UBSan: memcpy to NULL in stb when the first IDAT chunk is empty). The
// GCC build cannot see that; the fuzz corpus replays it under the sanitizer.
TEST(DecodeImageFormats, DecodesPngWhoseFirstIdatChunkIsEmpty) {
  const std::string raw = bytes({0, 7, 9});  // filter byte, two grey pixels
  const auto deflated = [&] {
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    std::string out(size, '\0');
    EXPECT_EQ(compress(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                       static_cast<uLong>(raw.size())),
              Z_OK);
    return out.substr(0, size);
  }();
  const std::string png = kPngSignature + png_ihdr(2, 1) + png_chunk("IDAT", "") + png_chunk("IDAT", deflated) +
                          png_chunk("IEND", "");
  EXPECT_TRUE(decode_image(png, 1, 1, 2).equal(torch::tensor({7, 9}, torch::kUInt8).view({1, 1, 1, 2})));
}

TEST(DecodeImageFormats, RefusesBadArgumentsFromTheCaller) {
  const std::string png = encode_png(torch::zeros({1, 2, 2}, torch::kUInt8));
  EXPECT_THROW(decode_image(png, 2, 8, 8), std::invalid_argument);
  EXPECT_THROW(decode_image(png, 3, 0, 8), std::invalid_argument);
  EXPECT_THROW(decode_image(png, 3, 8, 8, 0), std::invalid_argument);
}

// Regression: stb fails without a reason on an IDAT length >= 2^31, and building the message
// from the null stbi_failure_reason() crashed the server (SIGSEGV). A GIF without frames also
// fails without one in our build of stb (Debian's left a reason from another decoder).
TEST(DecodeImageHostile, StbFailuresWithoutAReasonAreErrorsNotCrashes) {
  const std::string png = kPngSignature + png_ihdr(1, 1) + be32(0x80000000u) + "IDAT" + std::string(35, 'x');
  ASSERT_EQ(png.size(), 76u);
  EXPECT_NE(decode_error(png).find("cannot decode image: corrupt PNG"), std::string::npos) << decode_error(png);
  EXPECT_NE(decode_error(gif(1, 1, {})).find("cannot decode image: corrupt GIF"), std::string::npos)
      << decode_error(gif(1, 1, {}));
}

// Regression: stb's failure reason outlives a failure, so a later failure without a reason
// reported the earlier one.
TEST(DecodeImageHostile, AFailureWithoutReasonDoesNotRepeatAnEarlierOne) {
  const std::string first = kPngSignature + png_ihdr(1, 1) + png_chunk("IDAT", "not zlib") + png_chunk("IEND", "");
  const std::string first_error = decode_error(first);
  const std::string stale = first_error.substr(first_error.find('(') + 1);
  const std::string png = kPngSignature + png_ihdr(1, 1) + be32(0x80000000u) + "IDAT" + std::string(35, 'x');
  EXPECT_EQ(decode_error(png).find(stale), std::string::npos) << first_error << " | " << decode_error(png);
}

// Regression: a 35-byte GIF declaring 16384x16384 cost 3.85 GB and 27 s; now the header is read
// first and the image refused before anything is decoded.
TEST(DecodeImageHostile, DeclaredSizeOverTheDefaultLimitIsRefusedBeforeDecoding) {
  const std::string error = decode_error(gif(4097, 4096));
  EXPECT_NE(error.find("GIF declares 4097x4096 = 16781312 pixels, more than the limit of 16777216"), std::string::npos)
      << error;
  EXPECT_NE(decode_error(gif(16384, 16384)).find("more than the limit"), std::string::npos);
  const std::string big_png = kPngSignature + png_ihdr(32767, 32767) + png_chunk("IDAT", zlib_zeros(1000));
  EXPECT_NE(decode_error(big_png).find("PNG declares 32767x32767"), std::string::npos) << decode_error(big_png);
}

TEST(DecodeImageHostile, MaxPixelsIsInclusive) {
  const std::string png = encode_png(torch::zeros({3, 40, 40}, torch::kUInt8));
  EXPECT_EQ(decode_image(png, 3, 40, 40, 1600).sizes(), torch::IntArrayRef({1, 3, 40, 40}));
  EXPECT_NE(decode_error(png, 1599).find("40x40 = 1600 pixels, more than the limit of 1599"), std::string::npos);
}

// A zero declared dimension is named (stb's own reasons for it vary by format).
TEST(DecodeImageHostile, ZeroDeclaredDimensionIsRefused) {
  EXPECT_NE(decode_error(gif(0, 16)).find("GIF declares a 0x16 image"), std::string::npos) << decode_error(gif(0, 16));
  EXPECT_NE(decode_error(gif(16, 0)).find("cannot decode image"), std::string::npos);
  const std::string png = kPngSignature + png_ihdr(0, 1) + png_chunk("IDAT", zlib_zeros(2)) + png_chunk("IEND", "");
  EXPECT_NE(decode_error(png).find("cannot decode image"), std::string::npos);
}

// Regression: a 1x1 PNG whose zlib data inflated to 8 MiB was accepted (the inflated buffer
// grows without bound: a 1 MB upload could cost 1 GB).
TEST(DecodeImageHostile, PngInflatingFarBeyondItsDeclaredSizeIsRefused) {
  const std::string png = kPngSignature + png_ihdr(1, 1) + png_chunk("IDAT", zlib_zeros(8 << 20)) + png_chunk("IEND", "");
  ASSERT_LT(png.size(), 20000u);
  EXPECT_NE(decode_error(png).find("decompression bomb"), std::string::npos) << decode_error(png);
  // The same stream at the declared size is fine: 1 filter byte + 1 pixel.
  const std::string fine = kPngSignature + png_ihdr(1, 1) + png_chunk("IDAT", zlib_zeros(2)) + png_chunk("IEND", "");
  EXPECT_TRUE(decode_image(fine, 1, 1, 1).equal(torch::zeros({1, 1, 1, 1}, torch::kUInt8)));
}

// Regression: every JPEG scan decodes the whole image again, and a scan costs 11 bytes, so a
// small upload declaring a large image could keep a worker busy for hours.
TEST(DecodeImageHostile, JpegWithTooManyScansIsRefused) {
  EXPECT_TRUE(decode_image(jpeg_flat_8x8(100), 1, 8, 8).equal(torch::full({1, 1, 8, 8}, 128, torch::kUInt8)));
  EXPECT_NE(decode_error(jpeg_flat_8x8(101)).find("JPEG has more than 100 scans"), std::string::npos);
}

// Regression (found by fuzz_image): a JPEG Huffman table declaring more than 256 codes made
// stb 2.27 write past its tables (heap corruption). The table may come before or between scans.
TEST(DecodeImageHostile, JpegHuffmanTableWithMoreThan256CodesIsRefused) {
  const std::string overfull = bytes({0xFF, 0xC4, 0, 19, 0x11}) + std::string(16, '\xFF');
  std::string jpeg = jpeg_flat_8x8(2);
  EXPECT_EQ(decode_error(jpeg.substr(0, 2) + overfull + jpeg.substr(2)),
            "cannot decode image: JPEG Huffman table has 4080 codes, more than 256");
  const size_t second_scan = jpeg.rfind(bytes({0xFF, 0xDA}));
  const std::string just_over = bytes({0xFF, 0xC4, 0, 19 + 2, 0x10, 255, 2}) + std::string(14 + 2, '\0');
  EXPECT_EQ(decode_error(jpeg.substr(0, second_scan) + just_over + jpeg.substr(second_scan)),
            "cannot decode image: JPEG Huffman table has 257 codes, more than 256");
}

// Regression, found by fuzz_image (UBSan: index -477 in stb's Huffman decoder): a scan using
// Huffman tables that no DHT segment defined read stb's uninitialized decoder state and indexed
// memory with it; Debian's libstb, built with assertions, aborted the whole server on it.
TEST(DecodeImageHostile, JpegScanWithUndefinedHuffmanTablesIsDeterministic) {
  std::string jpeg = jpeg_flat_8x8(1);
  const size_t dht = jpeg.find(bytes({0xFF, 0xC4}));
  jpeg.erase(dht, 2 * (2 + 20));  // both tables
  ASSERT_EQ(jpeg.find(bytes({0xFF, 0xC4})), std::string::npos);
  for (int i = 0; i < 2; ++i) {
    {  // leave garbage in freed heap memory that the decoder's state may reuse
      std::unique_ptr<char[]> garbage(new char[64 << 10]);
      std::memset(garbage.get(), 0xFF, 64 << 10);
      volatile char keep = garbage[i];
      (void)keep;
    }
    EXPECT_TRUE(decode_image(jpeg, 1, 8, 8).equal(torch::full({1, 1, 8, 8}, 128, torch::kUInt8)));
  }
}

// Regression: Debian's stb also decodes HDR (a 49-byte file looped forever), PSD, PIC, PNM and
// TGA. Only PNG, JPEG, BMP and GIF reach the decoder. The HDR case returning is the assertion.
TEST(DecodeImageHostile, OtherFormatsAreRefusedByTheirMagicBytes) {
  const std::string message = "cannot decode image: unsupported image format: send PNG, JPEG, BMP or GIF";
  const std::string hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n" + bytes({2, 2, 0, 8});
  ASSERT_EQ(hdr.size(), 49u);
  const std::string tga = bytes({0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 24, 0, 10, 20, 30});
  const std::string psd = "8BPS" + be16(1) + std::string(6, '\0') + be16(3) + be32(1) + be32(1) + be16(8) + be16(3) +
                          be32(0) + be32(0) + be32(0) + be16(0) + bytes({10, 20, 30});
  const std::string pnm = "P6\n1 1\n255\n" + bytes({10, 20, 30});
  for (const std::string& data : {hdr, tga, psd, pnm, std::string("definitely not an image"), std::string("B")})
    EXPECT_EQ(decode_error(data), message) << data;
  EXPECT_EQ(decode_error(""), "cannot decode image: empty image");
}

// Regression: the length was cast to int, so 4 GiB + n bytes decoded as their first n bytes.
TEST(DecodeImageHostile, InputsOver2GiBAreRefused) {
  const std::string png = encode_png(torch::zeros({1, 2, 2}, torch::kUInt8));
  const size_t size = (size_t{1} << 32) + png.size();
  // Untouched pages of an anonymous mapping cost no memory.
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::memcpy(map, png.data(), png.size());
  const std::string error = decode_error(std::string_view(static_cast<const char*>(map), size));
  munmap(map, size);
  EXPECT_NE(error.find("4294967363 bytes is more than the 2 GiB"), std::string::npos) << error;
}

// Every prefix and every one-byte corruption of small valid files decodes or throws
// std::invalid_argument: nothing else (the fuzz target does this at length).
TEST(DecodeImageHostile, TruncatedOrCorruptedFilesDecodeOrFailCleanly) {
  const std::string png = encode_png(torch::arange(48, torch::kInt64).to(torch::kUInt8).view({3, 4, 4}));
  for (const std::string& file : {png, gif(3, 2, {0, 1}), bmp_2x2(), jpeg_flat_8x8(2)}) {
    for (size_t i = 0; i < file.size(); ++i) {
      std::string corrupt = file;
      corrupt[i] = static_cast<char>(corrupt[i] ^ 0xFF);
      for (const std::string& data : {file.substr(0, i), corrupt}) {
        try {
          EXPECT_EQ(decode_image(data, 3, 4, 4, 1 << 20).sizes(), torch::IntArrayRef({1, 3, 4, 4}));
        } catch (const std::invalid_argument&) {
        }
      }
    }
  }
}

}  // namespace
}  // namespace maas
