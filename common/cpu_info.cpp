// CPU model and flags from /proc/cpuinfo, and the ATen kernel capability chosen from them.
#include "cpu_info.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace maas {

namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

}  // namespace

bool CpuInfo::has_avx512() const { return has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq"); }
bool CpuInfo::has_bf16() const { return has("avx512_bf16") || has("amx_bf16"); }
bool CpuInfo::has_vnni() const { return has("avx512_vnni") || has("amx_int8"); }

CpuInfo parse_cpu_info(const std::string& cpuinfo_text) {
  CpuInfo cpu;
  std::istringstream in(cpuinfo_text);
  std::string line;
  bool have_model = false, have_flags = false;
  while (std::getline(in, line) && !(have_model && have_flags)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name" && !have_model) {
      cpu.model = value;
      have_model = true;
    } else if (key == "flags" && !have_flags) {
      std::istringstream words(value);
      for (std::string flag; words >> flag;) cpu.flags.insert(flag);
      have_flags = true;
    }
  }
  if (cpu.model.empty()) cpu.model = "unknown";
  return cpu;
}

const CpuInfo& this_cpu() {
  static const CpuInfo cpu = [] {
    std::ifstream in("/proc/cpuinfo");
    std::ostringstream text;
    if (in) text << in.rdbuf();
    return parse_cpu_info(text.str());
  }();
  return cpu;
}

std::string cpu_line(const CpuInfo& cpu) {
  std::string flags;
  for (const char* flag : {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni",
                           "amx_bf16", "amx_int8"})
    if (cpu.has(flag)) flags += (flags.empty() ? "" : " ") + std::string(flag);
  if (!cpu.has_avx512()) flags += flags.empty() ? "no avx512" : "; no avx512";
  else if (!cpu.has_bf16()) flags += "; no avx512_bf16";
  return "CPU: " + cpu.model + " (" + (flags.empty() ? "flags unknown" : flags) + ")";
}

std::string select_aten_cpu_capability(const CpuInfo& cpu, AtenWorkload workload) {
  if (const char* set = std::getenv("ATEN_CPU_CAPABILITY"))
    return std::string("ATen kernels: ATEN_CPU_CAPABILITY=") + set + " (set by the user)";
  if (!cpu.has_avx512()) return "ATen kernels: avx2 or lower (the CPU has no AVX-512)";
  if (workload == AtenWorkload::kInference)
    return "ATen kernels: avx2 (LibTorch's default; its AVX-512 kernels are no faster for inference and slow int8 "
           "max-pooling down; set ATEN_CPU_CAPABILITY=avx512 to override)";
  setenv("ATEN_CPU_CAPABILITY", "avx512", /*overwrite=*/0);
  return "ATen kernels: avx512 (the CPU has AVX-512; LibTorch 1.13 defaults to avx2; "
         "set ATEN_CPU_CAPABILITY=avx2 to override)";
}

}  // namespace maas
