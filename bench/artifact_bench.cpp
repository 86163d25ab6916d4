// Artifacts measured in turn, as served, with what their metadata says about them.
#include "artifact_bench.h"

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include <filesystem>
#include <iomanip>
#include <ostream>

#include "artifact.h"
#include "cpu_info.h"
#include "latency.h"
#include "model_runner.h"

namespace maas {
namespace {

struct Loaded {
  torch::jit::Module module;
  ArtifactInfo info;
  ArtifactBenchRow about;  // the metadata columns
};

Loaded load(const std::string& path) {
  const Artifact artifact = load_artifact(path);
  Loaded l{serving_module(artifact), artifact.info, {}};
  l.about.artifact = path;
  l.about.file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  // load_artifact checked the metadata's required keys; these are optional, read with a default.
  const auto metadata = nlohmann::json::parse(artifact.info.metadata_json, nullptr, false);
  auto value = [&](const char* pointer, auto fallback) {
    try {
      return metadata.value(nlohmann::json::json_pointer(pointer), fallback);
    } catch (const nlohmann::json::exception&) {  // present with another type
      return fallback;
    }
  };
  l.about.weights = value("/model/weights", std::string("float32"));
  l.about.macs = value("/model/macs_per_image", int64_t{0});
  l.about.test_acc = value("/quantization/int8_test_acc", value("/verification/artifact_test_acc", -1.0));
  return l;
}

}  // namespace

std::vector<ArtifactBenchRow> run_artifact_bench(const ArtifactBenchOptions& options, std::ostream& out) {
  out << cpu_line(this_cpu()) << "\n\n" << std::flush;  // figures depend on the CPU's kernels: a copied report names it
  torch::NoGradGuard no_grad;
  std::vector<Loaded> loaded;
  for (const auto& path : options.artifacts) loaded.push_back(load(path));
  std::vector<ArtifactBenchRow> rows;
  for (const int64_t threads : options.threads)
    for (const auto& l : loaded) {
      rows.push_back(l.about);
      rows.back().threads = threads;
    }
  const double rounds = static_cast<double>(std::max<int64_t>(1, options.rounds));
  for (int64_t round = 0; round < static_cast<int64_t>(rounds); ++round) {
    size_t row = 0;
    for (const int64_t threads : options.threads) {
      torch::set_num_threads(static_cast<int>(threads));
      for (auto& l : loaded) {
        auto& r = rows[row++];
        for (const int64_t batch : {1, 32}) {
          const auto pixels = torch::randint(0, 256, {batch, l.info.channels, l.info.height, l.info.width}, torch::kUInt8);
          const LatencySummary s = time_calls([&] { l.module.forward({pixels}); }, options.seconds_per_case);
          if (batch == 1) r.batch1_p50_ms += s.p50 / rounds;
          else r.batch32_images_per_s += 32 * s.calls_per_s() / rounds;
        }
      }
    }
  }
  out << "| artifact | weights | file bytes | MACs/image | test acc | threads | batch 1 p50 ms | batch 32 images/s |\n"
      << "|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    out << "| " << r.artifact << " | " << r.weights << " | " << r.file_bytes << " | " << r.macs << " | ";
    if (r.test_acc >= 0) out << std::fixed << std::setprecision(2) << 100 * r.test_acc << "%";
    else out << "-";
    out << " | " << r.threads << " | " << std::fixed << std::setprecision(3) << r.batch1_p50_ms << " | "
        << std::setprecision(0) << r.batch32_images_per_s << " |\n";
  }
  out << std::flush;
  return rows;
}

}  // namespace maas
