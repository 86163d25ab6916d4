// Timing explanations in-process and over HTTP with the same image, steps and method.
#include "explain_bench.h"

#include <httplib.h>

#include <iomanip>
#include <ostream>
#include <thread>

#include "artifact.h"
#include "cpu_info.h"
#include "files.h"
#include "image.h"
#include "latency.h"
#include "model_runner.h"

namespace maas {
namespace {

struct ExplainCase {
  ExplainMethod method;
  int64_t steps;
  std::string query() const {
    return method == ExplainMethod::kIntegratedGradients ? "?steps=" + std::to_string(steps) : "?method=gradient";
  }
};

void print_row(std::ostream& out, const std::string& where, const ExplainCase& c, const LatencySummary& s) {
  out << "| " << where << " | " << method_name(c.method) << " | "
      << (c.method == ExplainMethod::kIntegratedGradients ? std::to_string(c.steps) : "-") << " | " << std::fixed
      << std::setprecision(1) << s.calls_per_s() << " | " << std::setprecision(1) << s.p50 << " | " << s.p90 << " | "
      << s.p99 << " |" << std::endl;
}

}  // namespace

void run_explain_bench(const ExplainBenchOptions& o, std::ostream& out) {
  const std::string bytes = read_text(o.image);
  std::vector<ExplainCase> cases;
  for (const int64_t steps : o.steps) cases.push_back({ExplainMethod::kIntegratedGradients, steps});
  cases.push_back({ExplainMethod::kGradientTimesInput, 1});
  out << cpu_line(this_cpu()) << "\n\n";  // figures depend on the CPU's kernels: a copied report names it
  out << "| where | method | steps | explanations/s | p50 ms | p90 ms | p99 ms |\n|---|---|---:|---:|---:|---:|---:|"
      << std::endl;
  if (!o.artifact.empty()) {
    // The server's defaults: one worker per core, each with one LibTorch thread.
    const Artifact artifact = load_artifact(o.artifact);
    ModelRunner runner("bench", 1, artifact, BatchingOptions{});
    const auto image = decode_image(bytes, artifact.info.channels, artifact.info.height, artifact.info.width);
    for (const auto& c : cases) {
      const ExplainRequest request{image, std::nullopt, c.method, c.steps};
      print_row(out, "in-process", c, time_calls([&] { runner.explain(request); }, o.seconds, 3));
    }
  }
  if (!o.url.empty()) {
    httplib::Client client(o.url);
    client.set_read_timeout(60, 0);
    for (const auto& c : cases) {
      const std::string path = "/explanations/" + o.model + c.query();
      print_row(out, "served", c, time_calls([&] {
                  const auto res = client.Post(path.c_str(), bytes, "application/octet-stream");
                  if (!res) throw std::runtime_error("cannot reach maas-serve at " + o.url + " (is it running?)");
                  if (res->status != 200)
                    throw std::runtime_error("POST " + path + ": HTTP " + std::to_string(res->status) + " " + res->body);
                }, o.seconds, 3));
    }
  }
}

}  // namespace maas
