// maas-serve's HTTP layer: KServe v2 REST, TorchServe-style image upload and explanations,
// metrics, model control and the web page. Parses and validates requests into plain structs (protocol.h) before
// any model is touched; connections run through HttpTransport (deadlines, limits, connection cap).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "metrics.h"
#include "repository.h"
#include "serve_options.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace maas {

class HttpTransport;

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
  // Readiness off, new inference refused (503), idle and still-arriving requests cut, requests
  // being handled finish, then listen() returns (or, called before listen(), makes it return at
  // once). Callable from any thread. It does not wait for a request that never finishes: the
  // caller bounds the drain (maas-serve: server.drain_seconds).
  void stop();
  bool running() const;
  int64_t open_connections() const;
  int64_t inflight_body_bytes() const;  // declared or received request bodies, all connections

  // /v2/health/ready reports this (set after models are loaded and warmed up).
  void set_ready(bool ready) { ready_ = ready; }

 private:
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  using Handler = void (HttpServer::*)(Req, Res);
  void add_routes();

  // Route handlers, one per endpoint (the table in add_routes() lists them).
  void page(Req, Res);
  void metrics(Req, Res);
  void live(Req, Res);
  void ready(Req, Res);
  void ping(Req, Res);
  void server_metadata(Req, Res);
  void list_models(Req, Res);
  void model_metadata(Req, Res);
  void model_ready(Req, Res);
  void model_config(Req, Res);
  void all_model_stats(Req, Res);
  void model_stats(Req, Res);
  void infer(Req, Res);
  void predictions(Req, Res);
  void explanations(Req, Res);
  void repository_index(Req, Res);
  void repository_load(Req, Res);
  void repository_unload(Req, Res);
  void wrong_method(Req, Res);

  // The runner of the model (and version) the request's path names; throws NotFound.
  std::shared_ptr<ModelRunner> runner_for(Req req) const;
  // The image bytes of a TorchServe-style upload: the raw body (decompressed into `inflated` if
  // needed) or the multipart field `data` or `file`. Throws std::invalid_argument when empty or missing.
  const std::string& uploaded_image(Req req, std::string& inflated) const;
  // The request's ModelRunner::Arrival, or nullptr when it will not be announced (see the .cpp).
  static std::shared_ptr<ModelRunner::Arrival> announce(ModelRunner& runner);
  // Builds the answer of an inference request from its logits (runs on a model's worker when deferred).
  using Respond = std::function<void(const torch::Tensor& logits, httplib::Response& res)>;
  // Runs `images` and answers with `respond`. On an event loop's thread the answer is deferred
  // (HttpTransport::defer: the loop goes on, the batch's worker answers and observes the
  // request's metrics); elsewhere it blocks. Requires: the last thing the handler does.
  void run_inference(Req req, Res res, std::shared_ptr<ModelRunner> runner,
                     std::shared_ptr<ModelRunner::Arrival> arrival, torch::Tensor images, Respond respond);
  // Refuses model control without the admin token (403 when disabled, 401 when wrong).
  void require_admin(Req req, Res res) const;

  const ServeOptions options_;
  ModelRepository& repository_;
  // Shared with inference completions, which may run on a model's worker after a client left.
  std::shared_ptr<ServeMetrics> metrics_ = std::make_shared<ServeMetrics>();
  std::unique_ptr<HttpTransport> http_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> listening_{false};  // inside listen()
  int listen_socket_ = -1;  // set by httplib's socket-options callback during bind()
  bool listened_ = false;
};

}  // namespace maas
