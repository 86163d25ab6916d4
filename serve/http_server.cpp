// The route table, the one exception-to-status wrapper, and one named handler per endpoint.
#include "http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "config.h"
#include "http_transport.h"
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

// Model and version segments of the v2 paths. Names are checked for length in runner_for().
const std::string kModelPath = "/v2/models/([A-Za-z0-9_.-]+)(?:/versions/([0-9]+))?";
constexpr size_t kMaxModelNameLength = 255;

// Client bytes (paths, names, ids) reach error messages: invalid UTF-8 is replaced, never
// thrown on (nlohmann's default dump() throws, which used to end the process).
std::string dump(const json& body) { return body.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  if (status == 503) res.set_header("Retry-After", "1");
  send_json(res, {{"error", message}}, status);
}

// Runs a handler; turns exceptions into {"error": ...} with the matching status code.
template <typename Handler>
void guarded(httplib::Response& res, Handler&& handler) {
  try {
    handler();
  } catch (const HttpError& e) {
    send_error(res, e.status, e.what());
  } catch (const RequestRefused& e) {
    send_error(res, e.status, e.what());
  } catch (const NotFound& e) {
    send_error(res, 404, e.what());
  } catch (const Unavailable& e) {
    send_error(res, 503, e.what());
  } catch (const std::invalid_argument& e) {
    send_error(res, 400, e.what());
  } catch (const ArtifactError& e) {
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  }
}

// A path for a log line: printable ASCII kept, anything else as \xNN (no terminal escapes).
std::string printable(const std::string& s) {
  std::string out;
  for (const unsigned char c : s.substr(0, 512)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The parameters of the URL's query alone: httplib adds the fields of a form-encoded body to
// req.params too, and curl --data-binary labels the image bytes it sends as a form.
httplib::Params url_query(const httplib::Request& req) {
  httplib::Params params;
  const auto question = req.target.find('?');
  if (question != std::string::npos) httplib::detail::parse_query_text(req.target.substr(question + 1), params);
  return params;
}

thread_local Clock::time_point request_started;

TransportOptions transport_options(const ServeOptions& o) {
  TransportOptions t;
  t.max_connections = o.max_connections;
  t.request_timeout_s = o.request_timeout_s;
  t.idle_timeout_s = o.idle_timeout_s;
  t.write_timeout_s = o.write_timeout_s;
  t.max_header_bytes = o.max_header_bytes;
  t.max_body_bytes = o.max_body_bytes;
  t.max_inflight_body_bytes = o.max_inflight_body_bytes;
  t.event_loop_threads = o.event_loops ? (o.event_loop_threads > 0 ? o.event_loop_threads : core_count()) : 0;
  t.idle_spin_us = o.batching.idle_spin_us;
  t.gather_us = o.batching.max_queue_delay_us;
  return t;
}

}  // namespace

HttpServer::HttpServer(const ServeOptions& options, ModelRepository& repository)
    : options_(options),
      repository_(repository),
      http_(std::make_unique<HttpTransport>(transport_options(options))) {
  // Small request/response pairs: without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms each.
  http_->set_tcp_nodelay(true);
  // httplib's default options add SO_REUSEPORT, with which a second server on the same port starts
  // without error and silently takes half the connections. SO_REUSEADDR alone still allows a quick
  // restart. The socket is remembered so bind() can enlarge its backlog.
  http_->set_socket_options([this](int socket) {
    const int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket_ = socket;
  });
  // Runs after the headers, before the body is read: what the transport refused is answered here,
  // so a refused body is never read.
  http_->set_pre_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    request_started = Clock::now();
    const Refusal refusal = HttpTransport::current_refusal();
    if (refusal == Refusal::kNone) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, refusal_status(refusal), refusal_message(refusal, http_->options()));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses produced by httplib itself (no route, 413, a body cut by the transport, ...) get the
  // same JSON error body.
  http_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    const Refusal refusal = HttpTransport::refusal_for_error_response();
    if (refusal != Refusal::kNone) res.set_header("Connection", "close");  // the transport closes it
    if (refusal == Refusal::kMalformed) {
      res.body.clear();
      send_error(res, res.status == 414 ? 414 : 400, refusal_message(refusal, http_->options()));
      return;
    }
    if (refusal != Refusal::kNone && refusal_status(refusal) != res.status) {
      res.body.clear();
      send_error(res, refusal_status(refusal), refusal_message(refusal, http_->options()));
      return;
    }
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, 404, "no route " + req.method + " " + req.path);
    else if (res.status == 413 && req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")
      send_error(res, 413, "form-encoded bodies are limited to 8 KiB: send JSON with Content-Type: application/json");
    else if (res.status == 413) send_error(res, 413, refusal_message(Refusal::kBodyTooLarge, http_->options()));
    else send_error(res, res.status, "HTTP status " + std::to_string(res.status));
  });
  http_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, 500, "internal error");
  });
  if (options_.access_log) {
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      if (HttpTransport::current_deferred()) return;  // logged when answered (run_inference)
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - request_started).count();
      std::cerr << printable(req.method) << " " << printable(req.path) << " " << res.status << " " << ms << " ms\n";
    });
  }
  add_routes();
  // Event loops run what answers at once or defers: every GET, and v2 inference (parsing is
  // bounded by the 64 KiB body). The rest goes to a connection thread: model control and
  // explanations take seconds, and an image upload's decoding grows with the pixels it declares
  // (up to server.max_image_pixels), which would stall every connection of a loop. Routed by the
  // raw target: httplib decodes %XX before matching, so a target with one goes to a thread too.
  // A prefix and suffix suffice (no regex on every request): no blocking handler's path has them.
  http_->set_loop_route([](std::string_view method, std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    const auto starts = [&](std::string_view p) { return path.substr(0, p.size()) == p; };
    if (path.find('%') != std::string_view::npos) return false;
    if (method == "GET" || method == "HEAD") return true;
    return method == "POST" && starts("/v2/models/") && path.size() > 6 && path.substr(path.size() - 6) == "/infer";
  });
}

HttpServer::~HttpServer() {
  if (listen_socket_ >= 0 && !listened_) ::close(listen_socket_);  // bound but never served
}

void HttpServer::add_routes() {
  struct Route {
    std::vector<std::string> methods;  // those it serves; the others get 405
    std::string pattern;
    Handler handler;
  };
  // Specific paths before the patterns that would also match them (/v2/models/stats).
  const std::vector<Route> routes = {
      {{"GET"}, "/", &HttpServer::page},
      {{"GET"}, "/metrics", &HttpServer::metrics},
      {{"GET"}, "/v2/health/live", &HttpServer::live},
      {{"GET"}, "/v2/health/ready", &HttpServer::ready},
      {{"GET"}, "/ping", &HttpServer::ping},
      {{"GET"}, "/v2", &HttpServer::server_metadata},
      {{"GET"}, "/models", &HttpServer::list_models},
      {{"GET"}, "/v2/models/stats", &HttpServer::all_model_stats},
      {{"GET"}, kModelPath, &HttpServer::model_metadata},
      {{"GET"}, kModelPath + "/ready", &HttpServer::model_ready},
      {{"GET"}, kModelPath + "/config", &HttpServer::model_config},
      {{"GET"}, kModelPath + "/stats", &HttpServer::model_stats},
      {{"POST"}, kModelPath + "/infer", &HttpServer::infer},
      // TorchServe clients upload with PUT (curl -T image.jpg URL) as well as POST.
      {{"POST", "PUT"}, "/predictions/([A-Za-z0-9_.-]+)(?:/([0-9]+))?", &HttpServer::predictions},
      {{"POST", "PUT"}, "/explanations/([A-Za-z0-9_.-]+)(?:/([0-9]+))?", &HttpServer::explanations},
      {{"POST"}, "/v2/repository/index", &HttpServer::repository_index},
      {{"POST"}, "/v2/repository/models/([A-Za-z0-9_.-]+)/load", &HttpServer::repository_load},
      {{"POST"}, "/v2/repository/models/([A-Za-z0-9_.-]+)/unload", &HttpServer::repository_unload},
  };

  using Register = httplib::Server& (httplib::Server::*)(const std::string&, httplib::Server::Handler);
  const std::vector<std::pair<std::string, Register>> methods = {
      {"GET", &httplib::Server::Get},     {"POST", &httplib::Server::Post},   {"PUT", &httplib::Server::Put},
      {"DELETE", &httplib::Server::Delete}, {"PATCH", &httplib::Server::Patch}};
  // httplib tries a method's patterns in order of registration: the real handlers first, so a
  // request matches no 405 pattern on its way to its own.
  for (const bool serving : {true, false})
    for (const auto& r : routes)
      for (const auto& [method, add] : methods)
        if (serving == (std::find(r.methods.begin(), r.methods.end(), method) != r.methods.end())) {
          const Handler handler = serving ? r.handler : &HttpServer::wrong_method;
          (http_.get()->*add)(r.pattern, [this, handler](Req req, Res res) { (this->*handler)(req, res); });
        }
}

std::shared_ptr<ModelRunner> HttpServer::runner_for(Req req) const {
  const std::string name = req.matches[1];
  if (name.size() > kMaxModelNameLength)
    throw NotFound("no model with a name that long (" + std::to_string(name.size()) + " characters)");
  int64_t version = 0;  // 0 = newest
  if (req.matches.size() > 2 && req.matches[2].length() > 0) {
    const std::string v = req.matches[2];
    // Versions are positive: /versions/0 is not "the newest" (that is the path without a version).
    if (v.size() > 9 || std::stoll(v) < 1) throw NotFound("model '" + name + "' has no version " + v);
    version = std::stoll(v);
  }
  return repository_.get(name, version);
}

void HttpServer::require_admin(Req req, Res res) const {
  if (options_.admin_token.empty())
    throw HttpError(403, "model control is disabled; start maas-serve with an admin token (server.admin_token_file or $MAAS_ADMIN_TOKEN)");
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) != 0 || !same_secret(auth.substr(7), options_.admin_token)) {
    res.set_header("WWW-Authenticate", "Bearer");
    throw HttpError(401, "missing or wrong admin token (Authorization: Bearer TOKEN)");
  }
}

void HttpServer::page(Req, Res res) { res.set_content(kWebPage, "text/html; charset=utf-8"); }

void HttpServer::metrics(Req, Res res) {
  guarded(res, [&] {
    std::map<std::string, int64_t> queued;  // per model, all versions together
    for (const auto& s : repository_.index()) {
      try {
        queued[s.name] += repository_.get(s.name, s.version)->queued_images();
      } catch (const NotFound&) {
        // unloaded since index(): nothing to report
      }
    }
    for (const auto& [name, images] : queued) metrics_->set_queue_depth(name, images);
    res.set_content(metrics_->scrape(), "text/plain; version=0.0.4");
  });
}

void HttpServer::live(Req, Res res) { send_json(res, {{"live", true}}); }

void HttpServer::ready(Req, Res res) { send_json(res, {{"ready", ready_.load()}}, ready_ ? 200 : 503); }

// TorchServe's health check.
void HttpServer::ping(Req, Res res) {
  send_json(res, {{"status", ready_ ? "Healthy" : "Unhealthy"}}, ready_ ? 200 : 503);
}

void HttpServer::server_metadata(Req, Res res) {
  send_json(res, {{"name", "maas"},
                  {"version", MAAS_VERSION},
                  {"extensions", {"classification", "binary_tensor_data", "model_repository", "statistics"}}});
}

void HttpServer::list_models(Req, Res res) {
  json models = json::array();
  for (const auto& s : repository_.index()) models.push_back({{"name", s.name}, {"version", std::to_string(s.version)}});
  send_json(res, {{"models", models}});
}

void HttpServer::model_metadata(Req req, Res res) {
  guarded(res, [&] {
    const auto runner = runner_for(req);
    std::vector<int64_t> versions;
    for (const auto& s : repository_.index())
      if (s.name == runner->name()) versions.push_back(s.version);
    res.set_content(write_model_metadata(runner->name(), versions, runner->info()), "application/json");
  });
}

void HttpServer::model_ready(Req req, Res res) {
  guarded(res, [&] {
    const auto runner = runner_for(req);
    send_json(res, {{"name", runner->name()}, {"ready", ready_.load()}}, ready_ ? 200 : 503);
  });
}

void HttpServer::model_config(Req req, Res res) {
  guarded(res, [&] {
    const auto runner = runner_for(req);
    res.set_content(write_model_config(runner->name(), runner->info(), runner->options(), runner->instances(),
                                       runner->threads_per_instance()),
                    "application/json");
  });
}

void HttpServer::all_model_stats(Req, Res res) {
  guarded(res, [&] {
    std::vector<VersionStats> all;
    for (const auto& s : repository_.index()) {
      try {
        all.push_back({s.name, s.version, repository_.get(s.name, s.version)->stats()});
      } catch (const NotFound&) {
        // unloaded since index()
      }
    }
    res.set_content(write_statistics(all), "application/json");
  });
}

void HttpServer::model_stats(Req req, Res res) {
  guarded(res, [&] {
    const auto runner = runner_for(req);
    res.set_content(write_statistics({{runner->name(), runner->version(), runner->stats()}}), "application/json");
  });
}

void HttpServer::infer(Req req, Res res) {
  std::string name = "(unknown)";  // unknown names must not create label series
  guarded(res, [&] {
    auto runner = runner_for(req);
    name = runner->name();
    auto arrival = announce(*runner);
    std::optional<size_t> json_length;
    if (req.has_header("Inference-Header-Content-Length")) {
      const std::string v = req.get_header_value("Inference-Header-Content-Length");
      if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument("Inference-Header-Content-Length must be a byte count");
      json_length = std::stoull(v);
    }
    std::string inflated;
    auto request = std::make_shared<InferRequest>(parse_infer_request(
        http_->request_body(req, inflated), json_length, [&runner](const auto& shape) { runner->check_shape(shape); }));
    torch::Tensor images = std::move(request->images);
    const auto respond = [request, name = runner->name(), version = runner->version(),
                          classes = runner->info().classes](const torch::Tensor& logits, httplib::Response& res) {
      const InferResponse response = write_infer_response(*request, name, version, logits, classes);
      if (response.json_length) {
        res.set_header("Inference-Header-Content-Length", std::to_string(*response.json_length));
        res.set_content(response.body, "application/octet-stream");
      } else {
        res.set_content(response.body, "application/json");
      }
    };
    run_inference(req, res, std::move(runner), std::move(arrival), std::move(images), respond);
  });
  if (HttpTransport::current_deferred()) return;  // observed when answered
  metrics_->observe_request(name, res.status, std::chrono::duration<double>(Clock::now() - request_started).count());
}

void HttpServer::predictions(Req req, Res res) {
  std::string name = "(unknown)";
  guarded(res, [&] {
    auto runner = runner_for(req);
    name = runner->name();
    auto arrival = announce(*runner);
    std::string inflated;
    const std::string& bytes = uploaded_image(req, inflated);
    const int64_t k = req.has_param("topk") ? parse_positive_integer("topk", req.get_param_value("topk"), 1 << 20) : 5;
    const auto& info = runner->info();
    auto images = decode_image(bytes, info.channels, info.height, info.width, options_.max_image_pixels);
    const auto respond = [k, classes = info.classes](const torch::Tensor& logits, httplib::Response& res) {
      res.set_content(write_topk_json(logits, classes, k), "application/json");
    };
    run_inference(req, res, std::move(runner), std::move(arrival), std::move(images), respond);
  });
  if (HttpTransport::current_deferred()) return;
  metrics_->observe_request(name, res.status, std::chrono::duration<double>(Clock::now() - request_started).count());
}

// On a connection thread the request is announced while it is parsed, so a forming batch waits
// for it; an event loop submits its round's requests together, and announcing them would only
// make other loops' batches wait.
std::shared_ptr<ModelRunner::Arrival> HttpServer::announce(ModelRunner& runner) {
  if (HttpTransport::can_defer()) return nullptr;
  return std::make_shared<ModelRunner::Arrival>(runner);
}

void HttpServer::run_inference(Req req, Res res, std::shared_ptr<ModelRunner> runner,
                               std::shared_ptr<ModelRunner::Arrival> arrival, torch::Tensor images, Respond respond) {
  // What the answer needs, captured by value: it may be built after the handler returned.
  struct Answer {
    std::shared_ptr<ServeMetrics> metrics;
    std::string model;
    Respond respond;
    Clock::time_point started;
    std::string log_line;  // "METHOD PATH" when access_log is on
    void operator()(Reply& reply, const torch::Tensor& logits, const InferTiming* timing, std::exception_ptr error) const {
      httplib::Response res;
      guarded(res, [&] {
        if (error) std::rethrow_exception(error);
        metrics->observe_inference(model, *timing);
        respond(logits, res);
      });
      if (res.status < 0) res.status = 200;
      const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      metrics->observe_request(model, res.status, seconds);
      if (!log_line.empty()) std::cerr << log_line << " " << res.status << " " << seconds * 1000 << " ms\n";
      reply.send(std::move(res));
    }
  };
  // Shared, not copied, by the closures below (a copy would copy the response builder's captures).
  const auto answer = std::make_shared<const Answer>(
      Answer{metrics_, runner->name(), std::move(respond), request_started,
             options_.access_log ? printable(req.method) + " " + printable(req.path) : ""});
  // Deferred: the loop's requests of one round are all queued, then the loop's thread runs their
  // batch itself (no hand-off to a worker and back).
  const bool deferred = HttpTransport::defer([runner, arrival, images, answer](Reply reply) -> HttpTransport::AfterRound {
    try {
      runner->submit(
          images,
          [reply, answer](torch::Tensor logits, const InferTiming& timing, std::exception_ptr error) mutable {
            (*answer)(reply, logits, &timing, error);
          },
          arrival.get(), ModelRunner::RunOn::kCaller);
    } catch (...) {
      (*answer)(reply, {}, nullptr, std::current_exception());  // refused before queueing (queue full, stopping)
      return nullptr;
    }
    return [runner] { runner->run_queued(); };
  });
  if (deferred) return;
  InferTiming timing;
  const auto logits = runner->infer(images, &timing, arrival.get());
  metrics_->observe_inference(runner->name(), timing);
  answer->respond(logits, res);
}

// Explanations run on the model's workers like inference but announce no Arrival: they are never
// batched with other requests, so a forming batch must not wait for them.
void HttpServer::explanations(Req req, Res res) {
  std::string name = "(unknown)";
  guarded(res, [&] {
    const auto runner = runner_for(req);
    name = runner->name();
    const auto& info = runner->info();
    ExplainQuery query = parse_explain_query(url_query(req), info.classes, options_.explain.max_steps);
    std::string inflated;
    const std::string& bytes = uploaded_image(req, inflated);
    query.request.image = decode_image(bytes, info.channels, info.height, info.width, options_.max_image_pixels);
    const Explanation explanation = runner->explain(query.request);
    if (query.png) res.set_content(write_explanation_png(query.request.image, explanation), "image/png");
    else res.set_content(write_explanation_json(runner->name(), runner->version(), query.request, explanation),
                         "application/json");
  });
  metrics_->observe_explanation(name, res.status,
                               std::chrono::duration<double>(Clock::now() - request_started).count());
}

const std::string& HttpServer::uploaded_image(Req req, std::string& inflated) const {
  const std::string* bytes = nullptr;
  if (!req.is_multipart_form_data()) bytes = &http_->request_body(req, inflated);
  else if (req.has_file("data")) bytes = &req.files.find("data")->second.content;
  else if (req.has_file("file")) bytes = &req.files.find("file")->second.content;
  else throw std::invalid_argument("multipart upload needs a field named 'data' or 'file'");
  if (bytes->empty()) throw std::invalid_argument("empty body: send the image bytes (curl -T image.jpg URL)");
  return *bytes;
}

void HttpServer::repository_index(Req req, Res res) {
  guarded(res, [&] {
    require_admin(req, res);
    json models = json::array();
    for (const auto& s : repository_.index())
      models.push_back({{"name", s.name}, {"version", std::to_string(s.version)}, {"state", "READY"}});
    send_json(res, models);
  });
}

void HttpServer::repository_load(Req req, Res res) {
  guarded(res, [&] {
    require_admin(req, res);
    if (req.matches[1].length() > static_cast<std::ptrdiff_t>(kMaxModelNameLength))
      throw std::invalid_argument("model names are at most 255 characters");
    repository_.load(req.matches[1]);
    send_json(res, json::object());
  });
}

void HttpServer::repository_unload(Req req, Res res) {
  guarded(res, [&] {
    require_admin(req, res);
    repository_.unload(req.matches[1]);
    send_json(res, json::object());
  });
}

void HttpServer::wrong_method(Req req, Res res) {
  send_error(res, 405, "method " + req.method + " not allowed on " + req.path);
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
  const bool ok = stopping_ || http_->serve();
  listening_ = false;
  if (!ok && !stopping_)
    throw std::runtime_error(std::string("accepting connections failed: ") + std::strerror(errno));
}

void HttpServer::stop() {
  stopping_ = true;
  ready_ = false;
  repository_.stop_accepting();
  http_->begin_shutdown();
  // httplib's stop() does nothing before its accept loop runs: if listen() is on its way there,
  // wait until it runs (or listen() gave up).
  while (listening_ && !http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

bool HttpServer::running() const { return http_->is_running(); }

int64_t HttpServer::open_connections() const { return http_->open_connections(); }

int64_t HttpServer::inflight_body_bytes() const { return http_->inflight_body_bytes(); }

}  // namespace maas
