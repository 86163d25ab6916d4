// The arithmetic precision of training and evaluation: float32, or bfloat16 under CPU autocast.
#pragma once

#include <functional>
#include <string>

#include "cpu_info.h"

namespace maas {

enum class Precision { kFloat32, kBFloat16 };

// "float32" or "bfloat16" (the names train.precision, checkpoints and artifacts use).
std::string precision_name(Precision precision);

struct PrecisionChoice {
  Precision precision = Precision::kFloat32;
  std::string reason;  // why, for the run's log: "auto: the CPU has avx512_bf16", "train.precision=float32"
};

// How many times faster this machine trains in bfloat16 than in float32 (> 1: bfloat16 is faster).
using Bf16Speedup = std::function<double()>;

// auto takes bfloat16 only if it measured at least this much faster: a CPU with avx512_bf16 but
// no AMX may run bfloat16 convolutions no faster than float32 (Intel's AVX-512 BF16 dot product
// issues half as often as its float32 FMA), and runs differ by up to +-20%.
constexpr double kAutoBf16MinSpeedup = 1.15;

// Resolves train.precision ("float32", "bfloat16" or "auto") on `cpu`: auto is float32 where the
// CPU lacks native bfloat16 (CpuInfo::has_bf16: AVX-512 BF16 or AMX; emulated bfloat16 is slower),
// and elsewhere bfloat16 if `speedup()` (called only then) is at least kAutoBf16MinSpeedup.
// Requires a setting the config loader validated; throws std::invalid_argument otherwise.
PrecisionChoice resolve_precision(const std::string& setting, const CpuInfo& cpu, const Bf16Speedup& speedup);

// Measures bfloat16 against float32 on this machine in about a second: a 3x3 convolution (64 to 64
// channels, 32x32, channels-last, batch 16: the bulk of a CNN's training step) forward and both
// backward passes, best of 3 alternating timings each, on the current thread count. Uses no random
// numbers and no global state beyond LibTorch's kernel caches, so a run's results do not depend on it.
double measure_bf16_speedup();

// Runs the ops of its scope in `precision`: for bfloat16 LibTorch's CPU autocast (convolutions
// and matrix products in bfloat16, precision-sensitive ops such as losses in float32; weights,
// their gradients and BatchNorm statistics stay float32), for float32 nothing. On exit the
// previous autocast state returns and, when autocast ends, its cache of bfloat16 weight copies
// is cleared (the weights change every step). Not thread-safe: autocast state is per thread.
class AutocastScope {
 public:
  explicit AutocastScope(Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
  int dtype_was_ = 0;  // the previous autocast dtype (c10::ScalarType), restored on exit
};

}  // namespace maas
