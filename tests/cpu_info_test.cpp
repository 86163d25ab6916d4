// CPU model and flag parsing, and the line every benchmark report carries.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace maas
