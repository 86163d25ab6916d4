// maas-serve: loads artifacts, reports ready, serves until SIGINT/SIGTERM, then drains and exits 0.
#include <cxxopts.hpp>

#include <csignal>
#include <iostream>
#include <thread>

#include "cli.h"
#include "http_server.h"

namespace {

maas::HttpServer* g_server = nullptr;  // for the signal watcher thread only

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

    // Block the signals in every thread; one watcher thread waits for them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    maas::ModelRepository repository(serve.models_dir, serve.batching);
    repository.load_all();
    for (const auto& f : files) {
      const auto eq = f.find('=');
      if (eq == std::string::npos || eq == 0) throw maas::UsageError("--model takes NAME=FILE, got '" + f + "'");
      repository.add_file(f.substr(0, eq), f.substr(eq + 1));
    }
    maas::HttpServer server(serve, repository);
    const int port = server.bind();
    g_server = &server;
    std::thread watcher([&signals] {
      int sig = 0;
      sigwait(&signals, &sig);
      std::cerr << "maas-serve: signal " << sig << ", finishing in-flight requests\n";
      g_server->stop();
    });
    watcher.detach();
    for (const auto& s : repository.index())
      std::cerr << "maas-serve: model " << s.name << " version " << s.version << " loaded\n";
    server.set_ready(true);
    std::cerr << "maas-serve: ready on http://" << serve.host << ":" << port << "/\n";
    server.listen();
    std::cerr << "maas-serve: stopped\n";
    return 0;
  });
}
