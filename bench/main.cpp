// maas-bench: `inference` measures a run's model in-process in every deployable form;
// `serve` load-tests a running maas-serve (see load_bench.h); `explain` times explanations
// (explain_bench.h).
#include <cxxopts.hpp>

#include <iostream>

#include "cli.h"
#include "cpu_info.h"
#include "artifact_bench.h"
#include "explain_bench.h"
#include "inference_bench.h"
#include "load_bench.h"

int main(int argc, char** argv) {
  std::cerr << maas::select_aten_cpu_capability(maas::this_cpu(), maas::AtenWorkload::kInference) << "\n";  // before any ATen kernel runs
  cxxopts::Options options("maas-bench",
                           "Measure maas.\n  maas-bench inference --run DIR   in-process forward speed of a run's model\n"
                           "  maas-bench artifacts --artifacts A.pt,B.pt [--threads 1,2]   artifacts as served: size, MACs, accuracy, speed\n"
                           "  maas-bench serve --url URL --model NAME [--in-process FILE]   load-test a running maas-serve\n"
                           "  maas-bench explain --image FILE [--in-process FILE] [--url URL --model NAME]   explanation latency");
  options.add_options()
      ("mode", "inference, artifacts, serve or explain", cxxopts::value<std::string>())
      ("run", "inference: maas-train run directory (its best.pt)", cxxopts::value<std::string>())
      ("artifacts", "artifacts: maas artifacts to compare as served", cxxopts::value<std::vector<std::string>>())
      ("batches", "inference: batch sizes", cxxopts::value<std::vector<int64_t>>()->default_value("1,8,32,128"))
      ("threads", "inference: LibTorch threads (0 = all cores); artifacts: thread counts", cxxopts::value<std::vector<int64_t>>())
      ("url", "serve, explain: server address", cxxopts::value<std::string>()->default_value("http://127.0.0.1:8000"))
      ("model", "serve, explain: model name", cxxopts::value<std::string>()->default_value("cifar10"))
      ("in-process", "serve, explain: the served model.pt, also run in-process through the same batcher (the ceiling)", cxxopts::value<std::string>())
      ("concurrency", "serve: client counts", cxxopts::value<std::vector<int64_t>>()->default_value("1,4,16,64"))
      ("images-per-request", "serve: images in each request (like perf_analyzer's -b)", cxxopts::value<std::vector<int64_t>>()->default_value("1,8,32"))
      ("protocols", "serve: binary, json, image", cxxopts::value<std::vector<std::string>>()->default_value("binary,json,image"))
      ("image", "explain: the image explained", cxxopts::value<std::string>())
      ("steps", "explain: integrated gradients' steps", cxxopts::value<std::vector<int64_t>>()->default_value("16,64"))
      ("seconds", "measuring time per case", cxxopts::value<double>()->default_value("3"))
      ("h,help", "show this help");
  options.parse_positional({"mode"});
  return maas::run_cli("maas-bench", [&] {
    const auto parsed = maas::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    if (!args.count("mode")) throw maas::UsageError("say what to measure: maas-bench inference|artifacts|serve|explain ...");
    const std::string mode = args["mode"].as<std::string>();
    const double seconds = args["seconds"].as<double>();
    if (seconds <= 0) throw maas::UsageError("--seconds must be > 0");
    if (mode == "inference") {
      if (!args.count("run")) throw maas::UsageError("--run DIR is required");
      maas::InferenceBenchOptions o;
      o.run_dir = args["run"].as<std::string>();
      o.batch_sizes = args["batches"].as<std::vector<int64_t>>();
      o.seconds_per_case = seconds;
      if (args.count("threads")) {
        const auto threads = args["threads"].as<std::vector<int64_t>>();
        if (threads.size() != 1) throw maas::UsageError("inference takes one --threads value");
        o.threads = threads[0];
      }
      for (auto b : o.batch_sizes)
        if (b < 1) throw maas::UsageError("batch sizes must be >= 1");
      maas::run_inference_bench(o, std::cout);
    } else if (mode == "artifacts") {
      maas::ArtifactBenchOptions o;
      if (!args.count("artifacts")) throw maas::UsageError("--artifacts A.pt,B.pt,... is required");
      o.artifacts = args["artifacts"].as<std::vector<std::string>>();
      if (args.count("threads")) o.threads = args["threads"].as<std::vector<int64_t>>();
      for (auto t : o.threads)
        if (t < 1 || t > 256) throw maas::UsageError("thread counts must be in 1..256");
      o.seconds_per_case = seconds;
      maas::run_artifact_bench(o, std::cout);
    } else if (mode == "serve") {
      maas::LoadBenchOptions o;
      o.url = args["url"].as<std::string>();
      o.model = args["model"].as<std::string>();
      if (args.count("in-process")) o.artifact = args["in-process"].as<std::string>();
      o.concurrency = args["concurrency"].as<std::vector<int64_t>>();
      o.protocols = args["protocols"].as<std::vector<std::string>>();
      o.seconds = seconds;
      o.images_per_request = args["images-per-request"].as<std::vector<int64_t>>();
      for (auto c : o.concurrency)
        if (c < 1 || c > 1024) throw maas::UsageError("concurrency must be in 1..1024");
      if (o.concurrency.empty() || o.images_per_request.empty() || o.protocols.empty())
        throw maas::UsageError("--concurrency, --images-per-request and --protocols need at least one value");
      for (auto n : o.images_per_request)
        if (n < 1 || n > 1024) throw maas::UsageError("images per request must be in 1..1024");
      maas::run_load_bench(o, std::cout);
    } else if (mode == "explain") {
      maas::ExplainBenchOptions o;
      if (!args.count("image")) throw maas::UsageError("--image FILE is required");
      o.image = args["image"].as<std::string>();
      if (args.count("in-process")) o.artifact = args["in-process"].as<std::string>();
      if (args.count("url")) o.url = args["url"].as<std::string>();  // served only when asked
      if (o.artifact.empty() && o.url.empty()) throw maas::UsageError("say where to measure: --in-process FILE and/or --url URL");
      o.model = args["model"].as<std::string>();
      o.steps = args["steps"].as<std::vector<int64_t>>();
      o.seconds = seconds;
      for (auto n : o.steps)
        if (n < 1 || n > 4096) throw maas::UsageError("steps must be in 1..4096");
      maas::run_explain_bench(o, std::cout);
    } else {
      throw maas::UsageError("unknown mode '" + mode + "' (inference, artifacts, serve, explain)");
    }
    return 0;
  });
}
