// Route table, the one exception-to-status wrapper, and the handlers.
#include "http_server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <iostream>
#include <nlohmann/json.hpp>

#include "image.h"
#include "protocol.h"
#include "web_page.h"

namespace maas {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Errors that carry their own status.
struct HttpError : std::runtime_error {
  HttpError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

// Runs a handler; turns exceptions into {"error": ...} with the matching status code.
template <typename Handler>
void guarded(httplib::Response& res, Handler&& handler) {
  try {
    handler();
  } catch (const HttpError& e) {
    send_error(res, e.status, e.what());
  } catch (const NotFound& e) {
    send_error(res, 404, e.what());
  } catch (const Unavailable& e) {
    res.set_header("Retry-After", "1");
    send_error(res, 503, e.what());
  } catch (const std::invalid_argument& e) {
    send_error(res, 400, e.what());
  } catch (const ArtifactError& e) {
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  }
}

int64_t version_of(const httplib::Request& req, size_t group) {
  if (req.matches.size() <= group || req.matches[group].length() == 0) return 0;
  const std::string v = req.matches[group];
  if (v.size() > 9) throw NotFound("no version " + v);
  return std::stoll(v);
}

json model_metadata(const ModelRepository& repository, const ModelRunner& runner) {
  const auto& info = runner.info();
  json versions = json::array();
  for (const auto& s : repository.index())
    if (s.name == runner.name()) versions.push_back(std::to_string(s.version));
  const int64_t classes = static_cast<int64_t>(info.classes.size());
  return {{"name", runner.name()},
          {"versions", versions},
          {"platform", "pytorch_torchscript"},
          {"inputs", {{{"name", "image"},
                       {"datatype", "UINT8"},
                       {"shape", {-1, info.channels, info.height, info.width}},
                       {"parameters", {{"accepted_datatypes", {"UINT8", "FP32"}}, {"range", {0, 255}}}}}}},
          {"outputs", {{{"name", "logits"}, {"datatype", "FP32"}, {"shape", {-1, classes}}},
                       {{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, classes}}}}},
          {"parameters", {{"classes", info.classes}, {"model", info.model_name}}}};
}

json model_config(const ModelRunner& runner) {
  const auto& info = runner.info();
  const auto& b = runner.options();
  const int64_t classes = static_cast<int64_t>(info.classes.size());
  return {{"name", runner.name()},
          {"platform", "pytorch_torchscript"},
          {"max_batch_size", b.max_batch_size},
          {"input", {{{"name", "image"}, {"data_type", "TYPE_UINT8"}, {"dims", {info.channels, info.height, info.width}}}}},
          {"output", {{{"name", "logits"}, {"data_type", "TYPE_FP32"}, {"dims", {classes}}},
                      {{"name", "probabilities"}, {"data_type", "TYPE_FP32"}, {"dims", {classes}}}}},
          // max_queue_images is maas's own: the queue's capacity in images (beyond it, 503).
          {"dynamic_batching", {{"max_queue_delay_microseconds", b.max_queue_delay_us},
                                {"max_queue_images", b.max_queue_images}}},
          // threads_per_instance is maas's own: LibTorch intra-op threads of each instance.
          {"instance_group", {{{"count", runner.instances()},
                               {"kind", "KIND_CPU"},
                               {"threads_per_instance", runner.threads_per_instance()}}}}};
}

// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

thread_local Clock::time_point request_started;

}  // namespace

HttpServer::HttpServer(const ServeOptions& options, ModelRepository& repository)
    : options_(options), repository_(repository), http_(std::make_unique<httplib::Server>()) {
  const size_t threads = static_cast<size_t>(options_.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  // Small request/response pairs: without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms each.
  http_->set_tcp_nodelay(true);
  // Keep connections open across many requests (httplib's default closes after 5).
  http_->set_keep_alive_max_count(1 << 20);
  // httplib's default options add SO_REUSEPORT, with which a second server on the same port starts
  // without error and silently takes half the connections. SO_REUSEADDR alone still allows a quick
  // restart. The socket is remembered so bind() can enlarge its backlog.
  http_->set_socket_options([this](int socket) {
    const int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket_ = socket;
  });
  http_->set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_started = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses produced by httplib itself (no route, 413, ...) get the same JSON error body.
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, 404, "no route " + req.method + " " + req.path);
    else if (res.status == 413 && req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")
      send_error(res, 413, "form-encoded bodies are limited to 8 KiB: send JSON with Content-Type: application/json");
    else if (res.status == 413) send_error(res, 413, "request body over the limit (server.max_body_bytes)");
    else send_error(res, res.status, "HTTP status " + std::to_string(res.status));
  });
  http_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, 500, "internal error");
  });
  if (options_.access_log) {
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - request_started).count();
      std::cerr << req.method << " " << req.path << " " << res.status << " " << ms << " ms\n";
    });
  }
  add_routes();
}

HttpServer::~HttpServer() {
  if (listen_socket_ >= 0 && !listened_) ::close(listen_socket_);  // bound but never served
}

void HttpServer::add_routes() {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  const std::string model = "/v2/models/([A-Za-z0-9_.-]+)(?:/versions/([0-9]+))?";

  // An inference route: resolves the model, announces the request to its batcher, and counts
  // the outcome in the metrics.
  using InferenceHandler = std::function<void(Req, Res, ModelRunner&, ModelRunner::Arrival&)>;
  auto inference = [this](const InferenceHandler& handler) {
    return [this, handler](Req req, Res res) {
      std::string name = "(unknown)";  // unknown names must not create label series
      guarded(res, [&] {
        const auto runner = repository_.get(req.matches[1], version_of(req, 2));
        name = runner->name();
        ModelRunner::Arrival arrival(*runner);
        handler(req, res, *runner, arrival);
      });
      metrics_.observe_request(name, res.status,
                               std::chrono::duration<double>(Clock::now() - request_started).count());
    };
  };
  auto admin = [this](const std::function<void(Req, Res)>& handler) {
    return [this, handler](Req req, Res res) {
      guarded(res, [&] {
        if (options_.admin_token.empty())
          throw HttpError(403, "model control is disabled; start maas-serve with server.admin_token set");
        const std::string auth = req.get_header_value("Authorization");
        if (auth.rfind("Bearer ", 0) != 0 || !same_secret(auth.substr(7), options_.admin_token)) {
          res.set_header("WWW-Authenticate", "Bearer");
          throw HttpError(401, "missing or wrong admin token (Authorization: Bearer TOKEN)");
        }
        handler(req, res);
      });
    };
  };

  struct Route {
    std::vector<std::string> methods;  // those it serves; the others get 405
    std::string pattern;
    httplib::Server::Handler handler;
  };
  const std::vector<Route> routes = {
      {{"GET"}, "/", [](Req, Res res) { res.set_content(kWebPage, "text/html; charset=utf-8"); }},
      {{"GET"}, "/metrics",
       [this](Req, Res res) {
         guarded(res, [&] {
           std::map<std::string, int64_t> queued;  // per model, all versions together
           for (const auto& s : repository_.index()) {
             try {
               queued[s.name] += repository_.get(s.name, s.version)->queued_images();
             } catch (const NotFound&) {
               // unloaded since index(): nothing to report
             }
           }
           for (const auto& [name, images] : queued) metrics_.set_queue_depth(name, images);
           res.set_content(metrics_.scrape(), "text/plain; version=0.0.4");
         });
       }},
      {{"GET"}, "/v2/health/live", [](Req, Res res) { send_json(res, {{"live", true}}); }},
      {{"GET"}, "/v2/health/ready", [this](Req, Res res) { send_json(res, {{"ready", ready_.load()}}, ready_ ? 200 : 503); }},
      {{"GET"}, "/v2",
       [](Req, Res res) {
         send_json(res, {{"name", "maas"},
                         {"version", MAAS_VERSION},
                         {"extensions", {"classification", "binary_tensor_data", "model_repository"}}});
       }},
      {{"GET"}, "/models",
       [this](Req, Res res) {
         json models = json::array();
         for (const auto& s : repository_.index()) models.push_back({{"name", s.name}, {"version", std::to_string(s.version)}});
         send_json(res, {{"models", models}});
       }},
      {{"GET"}, model,
       [this](Req req, Res res) {
         guarded(res, [&] { send_json(res, model_metadata(repository_, *repository_.get(req.matches[1], version_of(req, 2)))); });
       }},
      {{"GET"}, model + "/ready",
       [this](Req req, Res res) {
         guarded(res, [&] {
           repository_.get(req.matches[1], version_of(req, 2));
           send_json(res, {{"name", std::string(req.matches[1])}, {"ready", ready_.load()}}, ready_ ? 200 : 503);
         });
       }},
      {{"GET"}, model + "/config",
       [this](Req req, Res res) {
         guarded(res, [&] { send_json(res, model_config(*repository_.get(req.matches[1], version_of(req, 2)))); });
       }},
      {{"POST"}, model + "/infer", inference([this](Req req, Res res, ModelRunner& runner, ModelRunner::Arrival& arrival) {
         std::optional<size_t> json_length;
         if (req.has_header("Inference-Header-Content-Length")) {
           const std::string v = req.get_header_value("Inference-Header-Content-Length");
           if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
             throw std::invalid_argument("Inference-Header-Content-Length must be a byte count");
           json_length = std::stoull(v);
         }
         const InferRequest request = parse_infer_request(req.body, json_length);
         InferTiming timing;
         const auto logits = runner.infer(request.images, &timing, &arrival);
         metrics_.observe_inference(runner.name(), timing);
         const InferResponse response =
             write_infer_response(request, runner.name(), runner.version(), logits, runner.info().classes);
         if (response.json_length) {
           res.set_header("Inference-Header-Content-Length", std::to_string(*response.json_length));
           res.set_content(response.body, "application/octet-stream");
         } else {
           res.set_content(response.body, "application/json");
         }
       })},
      // TorchServe clients upload with PUT (curl -T image.jpg URL) as well as POST.
      {{"POST", "PUT"}, "/predictions/([A-Za-z0-9_.-]+)(?:/([0-9]+))?",
       inference([this](Req req, Res res, ModelRunner& runner, ModelRunner::Arrival& arrival) {
         std::string field;  // the image of a multipart upload; a raw body is used where it lies
         if (req.is_multipart_form_data()) {
           if (req.has_file("data")) field = req.get_file_value("data").content;
           else if (req.has_file("file")) field = req.get_file_value("file").content;
           else throw std::invalid_argument("multipart upload needs a field named 'data' or 'file'");
         }
         const std::string& bytes = req.is_multipart_form_data() ? field : req.body;
         if (bytes.empty()) throw std::invalid_argument("empty body: send the image bytes (curl -T image.jpg URL)");
         int64_t k = 5;
         if (req.has_param("topk")) {
           const std::string v = req.get_param_value("topk");
           if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos || std::stoll(v) < 1)
             throw std::invalid_argument("topk must be a positive integer");
           k = std::stoll(v);
         }
         const auto& info = runner.info();
         const auto images = decode_image(bytes, info.channels, info.height, info.width);
         InferTiming timing;
         const auto logits = runner.infer(images, &timing, &arrival);
         metrics_.observe_inference(runner.name(), timing);
         res.set_content(write_topk_json(logits, info.classes, k), "application/json");
       })},
      {{"POST"}, "/v2/repository/index", admin([this](Req, Res res) {
         json models = json::array();
         for (const auto& s : repository_.index())
           models.push_back({{"name", s.name}, {"version", std::to_string(s.version)}, {"state", "READY"}});
         send_json(res, models);
       })},
      {{"POST"}, "/v2/repository/models/([A-Za-z0-9_.-]+)/load", admin([this](Req req, Res res) {
         repository_.load(req.matches[1]);
         send_json(res, json::object());
       })},
      {{"POST"}, "/v2/repository/models/([A-Za-z0-9_.-]+)/unload", admin([this](Req req, Res res) {
         repository_.unload(req.matches[1]);
         send_json(res, json::object());
       })},
  };

  using Register = httplib::Server& (httplib::Server::*)(const std::string&, httplib::Server::Handler);
  const std::vector<std::pair<std::string, Register>> methods = {
      {"GET", &httplib::Server::Get},     {"POST", &httplib::Server::Post},   {"PUT", &httplib::Server::Put},
      {"DELETE", &httplib::Server::Delete}, {"PATCH", &httplib::Server::Patch}};
  const httplib::Server::Handler wrong_method = [](Req req, Res res) {
    send_error(res, 405, "method " + req.method + " not allowed on " + req.path);
  };
  // httplib tries a method's patterns in order of registration: the real handlers first, so a
  // request matches no 405 pattern on its way to its own.
  for (const bool serving : {true, false})
    for (const auto& r : routes)
      for (const auto& [method, add] : methods)
        if (serving == (std::find(r.methods.begin(), r.methods.end(), method) != r.methods.end()))
          (http_.get()->*add)(r.pattern, serving ? r.handler : wrong_method);
}

int HttpServer::bind() {
  const int port = options_.port == 0 ? http_->bind_to_any_port(options_.host)
                                      : (http_->bind_to_port(options_.host, static_cast<int>(options_.port))
                                             ? static_cast<int>(options_.port)
                                             : -1);
  if (port < 0) {
    listen_socket_ = -1;  // httplib closed it
    throw std::runtime_error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                             " (address in use or not available): is another server running there? choose "
                             "another --port");
  }
  // httplib listens with a backlog of 5: a burst of new connections (64 clients starting at once)
  // overflows it, and the dropped SYNs are retried only after a second. Listening again on the
  // bound socket raises the backlog.
  if (::listen(listen_socket_, SOMAXCONN) != 0) {
    ::close(listen_socket_);
    listen_socket_ = -1;
    throw std::runtime_error("cannot listen on " + options_.host + ":" + std::to_string(port));
  }
  return port;
}

void HttpServer::listen() {
  listened_ = true;  // from here on httplib owns (and closes) the socket
  listening_ = true;
  const bool ok = stopping_ || http_->listen_after_bind();
  listening_ = false;
  if (!ok && !stopping_)
    throw std::runtime_error(std::string("accepting connections failed: ") + std::strerror(errno));
}

void HttpServer::stop() {
  stopping_ = true;
  ready_ = false;
  repository_.stop_accepting();
  // httplib's stop() does nothing before its accept loop runs: if listen() is on its way there,
  // wait until it runs (or listen() gave up).
  while (listening_ && !http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

bool HttpServer::running() const { return http_->is_running(); }

}  // namespace maas
