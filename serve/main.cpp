// maas-serve: loads artifacts, reports ready, serves until SIGINT/SIGTERM, then drains and exits 0.
#include <cxxopts.hpp>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <sys/resource.h>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <iostream>
#include <thread>

#include "cli.h"
#include "cpu_info.h"
#include "http_server.h"

namespace {

// Watches SIGINT and SIGTERM on its own thread; they are blocked in every thread started after
// construction, so only this one sees them. The first runs on_first(sig) and starts the drain
// clock: if the process is still running `drain` later, it exits 1 naming the deadline. A second
// signal exits at once (128 + signal), as users expect of a second Ctrl-C. The destructor wakes
// the thread (SIGUSR1) and joins it, so it never outlives what on_first uses. Construct before
// other threads.
class SignalWatcher {
 public:
  SignalWatcher(std::function<void(int)> on_first, std::chrono::duration<double> drain) {
    sigemptyset(&signals_);
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals_, s);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    thread_ = std::thread([this, on_first = std::move(on_first), drain] {
      int sig = 0;
      sigwait(&signals_, &sig);
      if (sig == SIGUSR1) return;
      on_first(sig);
      const auto deadline = std::chrono::steady_clock::now() + drain;
      while (true) {
        // Recomputed each time: an EINTR waits only for the rest of the deadline.
        const auto left = std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now()).count());
        const timespec timeout{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
        const int second = sigtimedwait(&signals_, nullptr, &timeout);
        if (second == SIGUSR1) return;  // main is done
        if (second == SIGINT || second == SIGTERM) {
          std::cerr << "maas-serve: second signal " << second << ", exiting now\n";
          std::_Exit(128 + second);
        }
        if (second < 0 && errno == EAGAIN) {
          std::cerr << "maas-serve: requests still in flight after server.drain_seconds ("
                    << std::chrono::duration<double>(drain).count() << " s), exiting\n";
          std::_Exit(1);
        }
      }
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

// One descriptor per connection (and a thread for each one on a connection thread): the default
// soft limit of 1024 descriptors would refuse connections (EMFILE) long before
// server.max_connections. Raises it as far as the hard limit allows and warns when that is below
// what the setting needs.
void raise_descriptor_limit(int64_t max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(max_connections) + 256;  // models, logs, the listener
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min(wanted, limit.rlim_max);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < wanted)
    std::cerr << "maas-serve: warning: the open-file limit (" << limit.rlim_cur << ") is below server.max_connections + 256;"
              << " raise it (ulimit -n) or lower server.max_connections\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::cerr << maas::select_aten_cpu_capability(maas::this_cpu(), maas::AtenWorkload::kInference) << "\n";  // before any ATen kernel runs
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
    std::vector<std::string> overrides = maas::set_overrides(args);
    if (args.count("models")) overrides.push_back("server.models_dir=" + args["models"].as<std::string>());
    if (args.count("host")) overrides.push_back("server.host=" + args["host"].as<std::string>());
    if (args.count("port")) overrides.push_back("server.port=" + std::to_string(args["port"].as<int64_t>()));
    const maas::ServeOptions serve = maas::load_serve_options(args.count("config") ? args["config"].as<std::string>() : "", overrides);
    const auto files = args.count("model") ? args["model"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (serve.models_dir.empty() && files.empty()) throw maas::UsageError("give --models DIR or --model NAME=FILE");

    for (const auto& f : files)
      if (f.find('=') == std::string::npos || f.find('=') == 0)
        throw maas::UsageError("--model takes NAME=FILE, got '" + f + "'");

    raise_descriptor_limit(serve.max_connections);
    maas::TorchScriptLoadOptions loading;
    loading.deadline = std::chrono::milliseconds(static_cast<int64_t>(serve.load_timeout_s * 1000));
    maas::ModelRepository repository(serve.models_dir, serve.batching, loading);
    maas::HttpServer server(serve, repository);
    // Bound before loading: a taken port fails at once, and clients that connect while models
    // load wait in the backlog and are answered once the server is ready.
    const int port = server.bind();
    std::atomic<bool> loaded{false};
    const SignalWatcher watcher(
        [&](int sig) {
          if (!loaded) {  // nothing served yet, nothing to finish
            std::cerr << "maas-serve: signal " << sig << " while loading models, exiting\n";
            std::_Exit(128 + sig);
          }
          std::cerr << "maas-serve: signal " << sig << ", finishing in-flight requests (at most "
                    << serve.drain_seconds << " s; a second signal exits at once)\n";
          server.stop();
        },
        std::chrono::duration<double>(serve.drain_seconds));
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
