// maas-serve: loads artifacts, reports ready, serves until SIGINT/SIGTERM, then drains and exits 0.
#include <cxxopts.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli.h"
#include "http_server.h"

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

    // Block the signals in every thread; one watcher thread waits for them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    for (const auto& f : files)
      if (f.find('=') == std::string::npos || f.find('=') == 0)
        throw maas::UsageError("--model takes NAME=FILE, got '" + f + "'");

    maas::ModelRepository repository(serve.models_dir, serve.batching);
    maas::HttpServer server(serve, repository);
    // Bound before loading: a taken port fails at once, and clients that connect while models
    // load wait in the backlog and are answered once the server is ready.
    const int port = server.bind();
    std::atomic<bool> loaded{false};
    std::thread watcher([&signals, &server, &loaded] {
      int sig = 0;
      sigwait(&signals, &sig);
      if (!loaded) {  // nothing served yet, nothing to finish
        std::cerr << "maas-serve: signal " << sig << " while loading models, exiting\n";
        std::_Exit(128 + sig);
      }
      std::cerr << "maas-serve: signal " << sig << ", finishing in-flight requests\n";
      while (!server.running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stop() needs a running server
      server.stop();
    });
    watcher.detach();
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
