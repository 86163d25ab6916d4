// maas-serve: loads artifacts, reports ready, serves until SIGINT/SIGTERM, then drains and exits 0.
#include <cxxopts.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

#include "cli.h"
#include "http_server.h"

namespace {

// Runs on_signal(sig) on its own thread for the first SIGINT or SIGTERM; they are blocked in every
// thread started after construction, so only this one sees them. The destructor wakes the thread
// (SIGUSR1) and joins it, so it never outlives what on_signal uses. Construct before other threads.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal) {
    sigemptyset(&signals_);
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals_, s);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    thread_ = std::thread([this, on_signal = std::move(on_signal)] {
      int sig = 0;
      sigwait(&signals_, &sig);
      if (sig != SIGUSR1) on_signal(sig);
    });
  }
  ~SignalWatcher() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t signals_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("maas-serve", "Serve maas-export artifacts over HTTP (KServe v2, image upload).");
  options.add_options()
      ("models", "model repository DIR/<name>/<version>/model.pt", cxxopts::value<std::string>())
      ("model", "serve one file: NAME=path/to/model.pt (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("host", "bind address", cxxopts::value<std::string>())
      ("port", "port (0 = any free port)", cxxopts::value<int64_t>())
      ("config", "YAML settings (see configs/serve.yaml)", cxxopts::value<std::string>())
      ("set", "override a setting, e.g. --set batching.max_batch_size=64", cxxopts::value<std::vector<std::string>>())
      ("h,help", "show this help");
  return maas::run_cli("maas-serve", [&] {
    const auto parsed = maas::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    std::vector<std::string> overrides = args.count("set") ? args["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (args.count("models")) overrides.push_back("server.models_dir=" + args["models"].as<std::string>());
    if (args.count("host")) overrides.push_back("server.host=" + args["host"].as<std::string>());
    if (args.count("port")) overrides.push_back("server.port=" + std::to_string(args["port"].as<int64_t>()));
    const maas::ServeOptions serve = maas::load_serve_options(args.count("config") ? args["config"].as<std::string>() : "", overrides);
    const auto files = args.count("model") ? args["model"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (serve.models_dir.empty() && files.empty()) throw maas::UsageError("give --models DIR or --model NAME=FILE");

    for (const auto& f : files)
      if (f.find('=') == std::string::npos || f.find('=') == 0)
        throw maas::UsageError("--model takes NAME=FILE, got '" + f + "'");

    maas::ModelRepository repository(serve.models_dir, serve.batching);
    maas::HttpServer server(serve, repository);
    // Bound before loading: a taken port fails at once, and clients that connect while models
    // load wait in the backlog and are answered once the server is ready.
    const int port = server.bind();
    std::atomic<bool> loaded{false};
    const SignalWatcher watcher([&](int sig) {
      if (!loaded) {  // nothing served yet, nothing to finish
        std::cerr << "maas-serve: signal " << sig << " while loading models, exiting\n";
        std::_Exit(128 + sig);
      }
      std::cerr << "maas-serve: signal " << sig << ", finishing in-flight requests\n";
      server.stop();
    });
    repository.load_all();
    for (const auto& f : files) repository.add_file(f.substr(0, f.find('=')), f.substr(f.find('=') + 1));
    loaded = true;
    for (const auto& s : repository.index())
      std::cerr << "maas-serve: model " << s.name << " version " << s.version << " loaded\n";
    server.set_ready(true);
    std::cerr << "maas-serve: ready on http://" << serve.host << ":" << port << "/\n";
    server.listen();
    std::cerr << "maas-serve: stopped\n";
    return 0;
  });
}
