// Training precision and CPU autocast (see precision.h).
#include "precision.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace maas {

std::string precision_name(Precision precision) {
  return precision == Precision::kBFloat16 ? "bfloat16" : "float32";
}

PrecisionChoice resolve_precision(const std::string& setting, const CpuInfo& cpu, const Bf16Speedup& speedup) {
  if (setting == "float32") return {Precision::kFloat32, "train.precision=float32"};
  if (setting == "bfloat16")
    return {Precision::kBFloat16, cpu.has_bf16() ? "train.precision=bfloat16"
                                                 : "train.precision=bfloat16 (this CPU has no avx512_bf16 or AMX: "
                                                   "bfloat16 is emulated and slower than float32)"};
  if (setting == "auto") {
    if (!cpu.has_bf16())
      return {Precision::kFloat32, "train.precision=auto: the CPU has no avx512_bf16 or AMX (bfloat16 would be emulated)"};
    const double measured = speedup();
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.2fx", measured);
    const std::string why = std::string("train.precision=auto: the CPU has ") +
                            (cpu.has("avx512_bf16") ? "avx512_bf16" : "AMX-BF16") +
                            " and a bfloat16 convolution step measured " + ratio + " the speed of float32 here";
    if (measured >= kAutoBf16MinSpeedup)
      return {Precision::kBFloat16, why + " (set train.precision=float32 to train in float32)"};
    return {Precision::kFloat32, why + ", so float32 (set train.precision=bfloat16 to force it)"};
  }
  throw std::invalid_argument("train.precision '" + setting + "': expected float32, bfloat16 or auto");
}

namespace {

// Seconds for one forward + backward of `conv_weight` on `input` in `precision`.
double time_convolution_step(const torch::Tensor& input, const torch::Tensor& conv_weight, Precision precision) {
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor loss;
  {
    const AutocastScope scope(precision);
    loss = torch::conv2d(input, conv_weight, {}, 1, 1).to(torch::kFloat32).sum();
  }
  torch::autograd::grad({loss}, {input, conv_weight});  // both backward passes; nothing accumulates
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double measure_bf16_speedup() {
  constexpr int64_t kBatch = 16, kChannels = 64, kSide = 32;
  // Deterministic values in [-1, 1] (no generator is touched; the values do not change the speed).
  auto values = [](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return torch::sin(torch::arange(n, torch::kFloat32)).reshape(shape);
  };
  const auto input = values({kBatch, kChannels, kSide, kSide}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_();
  const auto weight = (values({kChannels, kChannels, 3, 3}) * 0.05).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_();
  double best[2] = {1e30, 1e30};
  const Precision order[2] = {Precision::kFloat32, Precision::kBFloat16};
  for (int round = 0; round < 4; ++round)  // round 0 warms up (oneDNN creates its kernels)
    for (int i = 0; i < 2; ++i) {
      const double seconds = time_convolution_step(input, weight, order[i]);
      if (round > 0) best[i] = std::min(best[i], seconds);
    }
  return best[0] / best[1];
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
