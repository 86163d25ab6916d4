// maas-serve's HTTP layer: KServe v2 REST, TorchServe-style image upload, metrics, model
// control and the web page, on cpp-httplib. Parses and validates requests into plain structs
// (protocol.h) before any model is touched.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "metrics.h"
#include "repository.h"
#include "serve_options.h"

namespace httplib {
class Server;
}

namespace maas {

class HttpServer {
 public:
  // `repository` must outlive the server.
  HttpServer(const ServeOptions& options, ModelRepository& repository);
  ~HttpServer();

  // Binds options.host:options.port (port 0 = any free port). Returns the bound port.
  // Throws std::runtime_error when the address cannot be bound, also when another server
  // (another maas-serve included) already listens on it.
  int bind();
  // Serves until stop(); blocks. Call after bind(). Throws std::runtime_error if accepting
  // connections fails for another reason.
  void listen();
  // Readiness off, new inference refused (503), in-flight requests finish, then listen() returns
  // (or, called before listen(), makes it return at once). Callable from any thread.
  void stop();
  bool running() const;

  // /v2/health/ready reports this (set after models are loaded and warmed up).
  void set_ready(bool ready) { ready_ = ready; }

 private:
  void add_routes();
  const ServeOptions options_;
  ModelRepository& repository_;
  ServeMetrics metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> listening_{false};  // inside listen()
  int listen_socket_ = -1;  // set by httplib's socket-options callback during bind()
  bool listened_ = false;
};

}  // namespace maas
