// Variants are built in memory from the run's best checkpoint with the same code maas-export uses
// (int8: calibrated on the run's training images, so the run's data set must be at its data.root).
#include "inference_bench.h"

#include <torch/script.h>

#include <algorithm>
#include <functional>
#include <iomanip>
#include <ostream>

#include "artifact.h"
#include "checkpoint.h"
#include "config.h"
#include "cpu_info.h"
#include "exporter.h"
#include "latency.h"
#include "quantize.h"
#include "torchscript_builder.h"

namespace maas {
namespace {

using Forward = std::function<torch::Tensor(const torch::Tensor&)>;

Forward scripted(torch::jit::Module module) {
  return [module](const torch::Tensor& x) mutable { return module.forward({x}).toTensor(); };
}

InferenceBenchRow measure(const std::string& variant, const Forward& forward, const ModelSpec& spec, int64_t batch,
                          double seconds) {
  torch::NoGradGuard no_grad;
  const auto pixels = torch::randint(0, 256, {batch, spec.channels, spec.height, spec.width}, torch::kUInt8);
  // The warm-up calls build oneDNN primitives and run the JIT's profiling passes.
  const LatencySummary s = time_calls([&] { forward(pixels); }, seconds);
  return {variant, batch, static_cast<double>(batch) * s.calls_per_s(), s.p50, s.p99};
}

}  // namespace

std::vector<InferenceBenchRow> run_inference_bench(const InferenceBenchOptions& options, std::ostream& out) {
  torch::set_num_threads(static_cast<int>(resolve_threads(options.threads)));
  const CheckpointReader checkpoint(best_checkpoint_path(options.run_dir));
  const CheckpointMeta& meta = checkpoint.meta();
  auto trained = checkpoint.load_model();
  trained->eval();
  auto build = [&] {
    return build_torchscript(*trained, meta.model.name, meta.spec, meta.normalization, meta.classes);
  };
  auto optimized = [](torch::jit::Module m) { return torch::jit::optimize_for_inference(m); };
  // As maas-export --quantize int8 makes it (the same calibration images), run as maas-serve does.
  const auto calibration = calibration_images(load_run_dir_config(options.run_dir, {}), ExportOptions{}.calibration_images);

  const std::vector<std::pair<std::string, Forward>> variants = {
      {"trained C++ module", [&](const torch::Tensor& x) { return trained->forward(meta.normalization.apply(x)); }},
      {"TorchScript (exported)", scripted(build())},
      {"frozen", scripted(torch::jit::freeze(build()))},
      {"frozen + optimize_for_inference", scripted(optimized(torch::jit::freeze(build())))},
      {std::string("int8 static (") + kInt8Engine + ")", scripted(quantize_static(build(), calibration).module)},
  };

  out << cpu_line(this_cpu()) << "\n\n";  // figures depend on the CPU's kernels: a copied report names it
  out << "| variant | batch | images/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|\n" << std::flush;
  std::vector<InferenceBenchRow> rows;
  for (const auto& [name, forward] : variants) {
    for (int64_t batch : options.batch_sizes) {
      rows.push_back(measure(name, forward, meta.spec, batch, options.seconds_per_case));
      const auto& r = rows.back();
      out << "| " << r.variant << " | " << r.batch << " | " << std::fixed << std::setprecision(0) << r.images_per_s
          << " | " << std::setprecision(3) << r.p50_ms << " | " << r.p99_ms << " |\n" << std::flush;
    }
  }
  return rows;
}

}  // namespace maas
