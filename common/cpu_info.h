// What the CPU can do (model name, AVX-512/bf16/VNNI flags), and ATen's kernel choice that follows.
#pragma once

#include <iosfwd>
#include <set>
#include <string>

namespace maas {

// The CPU as /proc/cpuinfo describes its first processor.
struct CpuInfo {
  std::string model;            // "model name", e.g. "AMD EPYC 9R14 96-Core Processor"; "unknown" if absent
  std::set<std::string> flags;  // the "flags" line, e.g. {"avx2", "avx512f", "avx512_bf16", ...}

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  // AVX-512 as ATen's avx512 kernels need it (F, BW, VL, DQ).
  bool has_avx512() const;
  // Native bfloat16 arithmetic: AVX-512 BF16 or AMX-BF16.
  bool has_bf16() const;
  // int8 dot products: AVX-512 VNNI (or AMX-INT8).
  bool has_vnni() const;
};

// Parses cpuinfo text (the format of /proc/cpuinfo). Missing fields give model "unknown", no flags.
CpuInfo parse_cpu_info(const std::string& cpuinfo_text);

// This machine's CPU (reads /proc/cpuinfo once; "unknown" and no flags where it cannot be read).
// Thread-safe.
const CpuInfo& this_cpu();

// One line for logs and benchmark reports: the model and the flags that decide maas' kernels, e.g.
// "CPU: AMD EPYC 9R14 (avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_vnni; no amx)".
std::string cpu_line(const CpuInfo& cpu);

// What a program mostly runs, for ATen's kernel choice.
enum class AtenWorkload {
  kTraining,   // maas-train: float32/bf16 BatchNorm, GELU, pooling, elementwise math, forward and backward
  kInference,  // maas-serve, maas-bench: float32, bf16 and int8 forwards
};

// ATen's vectorized kernels default to AVX2 in LibTorch 1.13 even on AVX-512 CPUs; ATEN_CPU_CAPABILITY
// chooses, once per process. Where the user has not set it and the CPU has AVX-512, training gets
// "avx512" (+14% per float32 step); inference keeps LibTorch's avx2, because measured there AVX-512 is no
// faster for float32 forwards and makes int8 ones up to 1.9x slower (1.13's avx512 quantized max-pooling
// runs element by element below 64 channels): docs/benchmarks.md, "ATen's AVX-512 kernels and int8".
// Returns a line saying what ATen will use and why.
// Requires: called before the first ATen kernel runs (ATen reads the variable once), i.e. first in main().
std::string select_aten_cpu_capability(const CpuInfo& cpu, AtenWorkload workload);

}  // namespace maas
