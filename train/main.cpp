// maas-train: command-line entry point; parses flags, handles signals, maps errors to exit codes.
#include <cxxopts.hpp>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "checkpoint.h"
#include "cli.h"
#include "config.h"
#include "cpu_info.h"
#include "dataset.h"
#include "distributed.h"
#include "models.h"
#include "report.h"
#include "trainer.h"

namespace {

std::atomic<bool> g_stop_requested{false};  // set by SIGINT/SIGTERM; the loop stops after the batch

void on_signal(int) {
  g_stop_requested = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills at once
  std::signal(SIGTERM, SIG_DFL);
}

// The registry's architectures for --help: name, default widths, description.
std::string models_help() {
  std::string out = "\nModels (model.name; model.widths sets each stage's channels):\n";
  for (const auto& a : maas::architectures()) {
    std::string widths;
    for (int64_t w : a.default_widths) widths += (widths.empty() ? "" : ", ") + std::to_string(w);
    out += "  " + a.name + std::string(10 - std::min<size_t>(9, a.name.size()), ' ') + "[" + widths + "]  " +
           a.description + "\n";
  }
  return out;
}

// The command line that continues this run: the same arguments, plus --out (when the run
// directory was chosen by default) and --resume.
std::string resume_command(int argc, char** argv, bool has_out, const std::string& run_dir) {
  auto quoted = [](const std::string& arg) {
    if (arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,") ==
        std::string::npos)
      return arg;
    std::string q = "'";
    for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  std::string command;
  bool has_resume = false;
  for (int i = 0; i < argc; ++i) {
    has_resume = has_resume || std::string(argv[i]) == "--resume";
    command += (i ? " " : "") + quoted(argv[i]);
  }
  if (!has_out) command += " --out " + quoted(run_dir);
  return has_resume ? command : command + " --resume";
}

std::string default_run_dir(const maas::RunConfig& config) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + config.model.name + "-" + config.data.dataset + "-" + stamp;
}

// `maas-train report RUN... [--out FILE]`; argv[0] is "report".
int report_main(int argc, char** argv) {
  cxxopts::Options options("maas-train report",
                           "Write a training run's report.html (loss, accuracy and learning-rate curves, the best "
                           "checkpoint's confusion matrix and per-class accuracy, config, model, timings), or one page "
                           "comparing several runs' curves. Pages are self-contained: open them from disk.");
  options.positional_help("RUN...");
  options.add_options()
      ("o,out", "page to write; default with one run: RUN/report.html; required with several runs",
       cxxopts::value<std::string>())
      ("runs", "run directories (the positional arguments)", cxxopts::value<std::vector<std::string>>())
      ("h,help", "show this help");
  options.parse_positional({"runs"});
  return maas::run_cli("maas-train report", [&] {
    const auto parsed = maas::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto runs = args.count("runs") ? args["runs"].as<std::vector<std::string>>() : std::vector<std::string>{};
    const std::string written = maas::write_report(runs, args.count("out") ? args["out"].as<std::string>() : "");
    std::cerr << "wrote " << written << "\n";
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  // Before any ATen kernel runs: ATen reads ATEN_CPU_CAPABILITY once.
  const std::string aten_line = maas::select_aten_cpu_capability(maas::this_cpu(), maas::AtenWorkload::kTraining);
  if (argc > 1 && std::string(argv[1]) == "report") return report_main(argc - 1, argv + 1);
  cxxopts::Options options("maas-train", "Train an image classifier with LibTorch (Adam, cross-entropy).");
  options.add_options()
      ("c,config", "YAML config file (e.g. configs/cifar10_cnn.yaml)", cxxopts::value<std::string>())
      ("set", "override a config key, e.g. --set train.epochs=1 (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("o,out", "run directory (default: runs/<model>-<dataset>-<time>)", cxxopts::value<std::string>())
      ("resume", "continue the run in --out from its last checkpoint (append it to the command that started the run)")
      ("h,help", "show this help");
  return maas::run_cli("maas-train", [&] {
    // Launched as one of several processes (torchrun, PyTorchJob, SLURM)? Only rank 0 checks and
    // writes the run directory; the others read it (on --resume) and write nothing.
    const maas::LaunchInfo launch = maas::launch_info_from_environment();
    const bool rank0 = launch.rank == 0;
    std::string run_dir;
    const auto parsed = maas::parse_args(
        options, argc, argv,
        "\nReports: maas-train report RUN... [--out FILE] (re)writes RUN/report.html, or compares several runs "
        "(see maas-train report --help).\n" +
            models_help() + "\nConfig keys (--set section.key=value) and their defaults:\n" +
            maas::to_yaml(maas::RunConfig{}));
    if (!parsed) return 0;
    const auto& args = *parsed;
    const bool resume = args.count("resume") > 0;
    const auto overrides = maas::set_overrides(args);
    maas::RunConfig config;
    if (resume) {
      // Rerunning the same command with --resume appended continues the run; keys that would
      // change its results are refused (the run's config.yaml is what it was trained with).
      if (!args.count("out")) throw maas::UsageError("--resume needs --out RUN_DIR (the run to continue)");
      run_dir = args["out"].as<std::string>();
      const maas::RunConfig saved = maas::load_run_dir_config(run_dir, {});
      config = args.count("config") ? maas::load_run_config(args["config"].as<std::string>(), overrides)
                                    : maas::load_run_dir_config(run_dir, overrides);
      if (const auto conflicts = maas::resume_conflicts(saved, config); !conflicts.empty()) {
        std::string lines;
        for (const auto& c : conflicts) lines += "\n  " + c;
        throw maas::ConfigError("cannot resume " + run_dir + ": these keys differ from its config.yaml and would change "
                                "its results:" + lines + "\nresume with the run's values, or start a new run with "
                                "another --out");
      }
      if (!std::filesystem::exists(maas::last_checkpoint_path(run_dir)))
        throw maas::CheckpointError(run_dir + " has no checkpoint yet (it stopped before its first one); start it "
                                    "again without --resume");
    } else {
      if (!args.count("config")) throw maas::UsageError("--config FILE is required (see configs/)");
      config = maas::load_run_config(args["config"].as<std::string>(), overrides);
      run_dir = args.count("out") ? args["out"].as<std::string>() : default_run_dir(config);
      if (rank0 && std::filesystem::exists(maas::last_checkpoint_path(run_dir)))
        throw maas::CheckpointError(run_dir + " already holds a run; add --resume to continue it, or pick another --out");
    }
    std::unique_ptr<maas::DataParallelGroup> group;
    if (launch.world_size > 1) {
      if (!args.count("out") && !resume)  // each process would pick its own time-stamped directory
        throw maas::UsageError("a data-parallel run needs --out RUN_DIR (the same for every process)");
      group = std::make_unique<maas::DataParallelGroup>(
          launch, std::chrono::milliseconds(static_cast<int64_t>(config.distributed.timeout_s * 1000)));
    }

    if (rank0) std::cerr << maas::cpu_line(maas::this_cpu()) << "\n" << aten_line << "\n";
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    maas::TrainHooks hooks;
    hooks.should_stop = [] { return g_stop_requested.load(); };
    hooks.log = &std::cerr;
    hooks.progress_bar = ::isatty(STDERR_FILENO) != 0;
    hooks.group = group.get();
    const auto result = maas::train(config, run_dir, resume, hooks);
    if (!rank0) return result.interrupted ? 130 : 0;
    if (result.interrupted) {
      std::cerr << "stopped; continue with: " << resume_command(argc, argv, args.count("out") > 0, run_dir) << "\n";
      return 130;
    }
    std::cerr << "done: best test accuracy " << 100 * result.best_test_acc << "%; run directory " << run_dir << "\n";
    return 0;
  });
}
