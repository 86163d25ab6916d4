// The arithmetic precision of training and evaluation: float32, or bfloat16 under CPU autocast.
#pragma once

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

// Resolves train.precision ("float32", "bfloat16" or "auto") on `cpu`: auto is bfloat16 where the
// CPU computes it natively (CpuInfo::has_bf16: AVX-512 BF16 or AMX), float32 elsewhere (emulated
// bfloat16 is slower than float32). Requires a setting the config loader validated; throws
// std::invalid_argument otherwise.
PrecisionChoice resolve_precision(const std::string& setting, const CpuInfo& cpu);

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
