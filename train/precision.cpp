// Training precision and CPU autocast (see precision.h).
#include "precision.h"

#include <ATen/autocast_mode.h>

#include <stdexcept>

namespace maas {

std::string precision_name(Precision precision) {
  return precision == Precision::kBFloat16 ? "bfloat16" : "float32";
}

PrecisionChoice resolve_precision(const std::string& setting, const CpuInfo& cpu) {
  if (setting == "float32") return {Precision::kFloat32, "train.precision=float32"};
  if (setting == "bfloat16")
    return {Precision::kBFloat16, cpu.has_bf16() ? "train.precision=bfloat16"
                                                 : "train.precision=bfloat16 (this CPU has no avx512_bf16 or AMX: "
                                                   "bfloat16 is emulated and slower than float32)"};
  if (setting == "auto") {
    if (cpu.has_bf16())
      return {Precision::kBFloat16, std::string("train.precision=auto: the CPU has ") +
                                        (cpu.has("avx512_bf16") ? "avx512_bf16" : "AMX-BF16") +
                                        " (set train.precision=float32 to train in float32)"};
    return {Precision::kFloat32, "train.precision=auto: the CPU has no avx512_bf16 or AMX (bfloat16 would be emulated)"};
  }
  throw std::invalid_argument("train.precision '" + setting + "': expected float32, bfloat16 or auto");
}

AutocastScope::AutocastScope(Precision precision) {
  if (precision != Precision::kBFloat16) return;
  active_ = true;
  was_enabled_ = at::autocast::is_cpu_enabled();
  dtype_was_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(dtype_was_));
  at::autocast::set_cpu_enabled(was_enabled_);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace maas
