// Artifacts measured in turn, as served, with what their metadata says about them.
#include "artifact_bench.h"

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include <filesystem>
#include <iomanip>
#include <ostream>

#include "artifact.h"
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
  const auto metadata = nlohmann::json::parse(artifact.info.metadata_json, nullptr, false);
  auto at = [&](std::initializer_list<const char*> keys) -> const nlohmann::json* {
    const nlohmann::json* node = &metadata;
    for (const char* key : keys) {
      if (!node->is_object() || !node->contains(key)) return nullptr;
      node = &(*node)[key];
    }
    return node;
  };
  const auto* weights = at({"model", "weights"});
  l.about.weights = weights && weights->is_string() ? weights->get<std::string>() : "float32";
  if (const auto* macs = at({"model", "macs_per_image"}); macs && macs->is_number_integer()) l.about.macs = macs->get<int64_t>();
  const auto* acc = at({"quantization", "int8_test_acc"});
  if (!acc) acc = at({"verification", "artifact_test_acc"});
  if (acc && acc->is_number()) l.about.test_acc = acc->get<double>();
  return l;
}

}  // namespace

std::vector<ArtifactBenchRow> run_artifact_bench(const ArtifactBenchOptions& options, std::ostream& out) {
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
