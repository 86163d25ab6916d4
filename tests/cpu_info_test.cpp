// CPU model and flag parsing, and the line every benchmark report carries.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "cpu_info.h"

namespace maas {
namespace {

const char* kAvx512Cpu =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
    "flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni\n\n"
    "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n";

TEST(CpuInfo, ReadsTheFirstProcessorsModelAndFlags) {
  const CpuInfo cpu = parse_cpu_info(kAvx512Cpu);
  EXPECT_EQ(cpu.model, "AMD EPYC 9R14 96-Core Processor");
  EXPECT_TRUE(cpu.has_avx512());
  EXPECT_TRUE(cpu.has_bf16());
  EXPECT_TRUE(cpu.has_vnni());
  EXPECT_FALSE(cpu.has("fpux"));
  EXPECT_EQ(cpu_line(cpu),
            "CPU: AMD EPYC 9R14 96-Core Processor (avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_vnni)");
}

TEST(CpuInfo, AnAvx2CpuSaysWhatItLacks) {
  const CpuInfo cpu = parse_cpu_info("model name : AMD EPYC 7B13\nflags : fpu avx2 fma\n");
  EXPECT_FALSE(cpu.has_avx512());
  EXPECT_FALSE(cpu.has_bf16());
  EXPECT_EQ(cpu_line(cpu), "CPU: AMD EPYC 7B13 (avx2; no avx512)");
}

TEST(CpuInfo, UnreadableTextGivesUnknown) {
  const CpuInfo cpu = parse_cpu_info("");
  EXPECT_EQ(cpu.model, "unknown");
  EXPECT_TRUE(cpu.flags.empty());
  EXPECT_EQ(cpu_line(cpu), "CPU: unknown (no avx512)");
}

// Saves ATEN_CPU_CAPABILITY, clears it for the test, and puts it back. (ATen read it at start-up; what
// these tests set changes nothing in this process's kernels.)
class AtenCapabilityVariable {
 public:
  AtenCapabilityVariable() {
    if (const char* value = std::getenv("ATEN_CPU_CAPABILITY")) saved_ = value;
    unsetenv("ATEN_CPU_CAPABILITY");
  }
  ~AtenCapabilityVariable() {
    if (saved_) setenv("ATEN_CPU_CAPABILITY", saved_->c_str(), 1);
    else unsetenv("ATEN_CPU_CAPABILITY");
  }
  static std::optional<std::string> value() {
    const char* value = std::getenv("ATEN_CPU_CAPABILITY");
    return value ? std::optional<std::string>(value) : std::nullopt;
  }

 private:
  std::optional<std::string> saved_;
};

TEST(AtenCapability, TrainingOnAnAvx512CpuUsesAtensAvx512Kernels) {
  AtenCapabilityVariable variable;
  const std::string line = select_aten_cpu_capability(parse_cpu_info(kAvx512Cpu), AtenWorkload::kTraining);
  EXPECT_EQ(AtenCapabilityVariable::value(), "avx512");
  EXPECT_NE(line.find("ATen kernels: avx512"), std::string::npos) << line;
}

// Regression: maas-serve and maas-bench used to choose avx512 too, which ran the seed CNN's int8 artifact at
// 1.08x its float32 form instead of 1.9x (docs/benchmarks.md, "ATen's AVX-512 kernels and int8").
TEST(AtenCapability, InferenceKeepsLibTorchsAvx2) {
  AtenCapabilityVariable variable;
  const std::string line = select_aten_cpu_capability(parse_cpu_info(kAvx512Cpu), AtenWorkload::kInference);
  EXPECT_EQ(AtenCapabilityVariable::value(), std::nullopt);
  EXPECT_NE(line.find("ATen kernels: avx2 (LibTorch's default"), std::string::npos) << line;
}

TEST(AtenCapability, TheUsersChoiceIsKeptAndAnAvx2CpuIsLeftAlone) {
  AtenCapabilityVariable variable;
  setenv("ATEN_CPU_CAPABILITY", "avx512", 1);
  EXPECT_EQ(select_aten_cpu_capability(parse_cpu_info(kAvx512Cpu), AtenWorkload::kInference),
            "ATen kernels: ATEN_CPU_CAPABILITY=avx512 (set by the user)");
  EXPECT_EQ(AtenCapabilityVariable::value(), "avx512");
  unsetenv("ATEN_CPU_CAPABILITY");
  select_aten_cpu_capability(parse_cpu_info("model name : AMD EPYC 7B13\nflags : fpu avx2 fma\n"),
                             AtenWorkload::kTraining);
  EXPECT_EQ(AtenCapabilityVariable::value(), std::nullopt);
}

}  // namespace
}  // namespace maas
