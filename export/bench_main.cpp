// maas-bench: benchmarks. Mode "inference" measures a run's model in-process (see inference_bench.h).
#include <cxxopts.hpp>

#include <iostream>

#include "cli.h"
#include "inference_bench.h"

int main(int argc, char** argv) {
  cxxopts::Options options("maas-bench", "Measure maas: `maas-bench inference --run DIR` (in-process forward speed).");
  options.add_options()
      ("mode", "what to measure: inference", cxxopts::value<std::string>())
      ("run", "maas-train run directory (its best.pt)", cxxopts::value<std::string>())
      ("batches", "batch sizes", cxxopts::value<std::vector<int64_t>>()->default_value("1,8,32,128"))
      ("seconds", "measuring time per case", cxxopts::value<double>()->default_value("1.5"))
      ("threads", "LibTorch threads (0 = all cores)", cxxopts::value<int64_t>()->default_value("0"))
      ("h,help", "show this help");
  options.parse_positional({"mode"});
  return maas::run_cli("maas-bench", [&] {
    auto args = options.parse(argc, argv);
    if (args.count("help") || !args.count("mode")) {
      std::cout << options.help();
      return args.count("help") ? 0 : 2;
    }
    if (args["mode"].as<std::string>() != "inference")
      throw maas::UsageError("unknown mode '" + args["mode"].as<std::string>() + "' (known: inference)");
    if (!args.count("run")) throw maas::UsageError("--run DIR is required");
    maas::InferenceBenchOptions o;
    o.run_dir = args["run"].as<std::string>();
    o.batch_sizes = args["batches"].as<std::vector<int64_t>>();
    o.seconds_per_case = args["seconds"].as<double>();
    o.threads = args["threads"].as<int64_t>();
    for (auto b : o.batch_sizes)
      if (b < 1) throw maas::UsageError("batch sizes must be >= 1");
    maas::run_inference_bench(o, std::cout);
    return 0;
  });
}
