// Closed-loop clients: each sends one request of `images` images at a time on its own keep-alive
// connection and records the latency of each (perf_analyzer's concurrency and -b); in-process,
// one thread per client, over HTTP, one epoll thread for all.
#include "load_bench.h"

#include <httplib.h>
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iomanip>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "artifact.h"
#include "cpu_info.h"
#include "epoll_client.h"
#include "image.h"
#include "latency.h"
#include "model_runner.h"

namespace maas {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Stats {
  double images_per_s = 0, p50 = 0, p90 = 0, p99 = 0;
  std::map<std::string, int64_t> errors;  // failed calls by reason
  int64_t error_count() const {
    int64_t n = 0;
    for (const auto& [reason, count] : errors) n += count;
    return n;
  }
};

struct Ceiling {
  double batch1_p50_ms = 0;  // one forward of one image, no queue, no HTTP
  double images_per_s = 0;   // best in-process sweep throughput (same clients and requests, no HTTP)
};

// Closed-loop clients calling `send` (one request of `images` images; returns "" on success, else
// why it failed) until the deadline; latencies of successful calls.
template <typename Send>
Stats closed_loop(double seconds, int64_t concurrency, int64_t images, Send&& send) {
  std::mutex errors_mutex;
  std::map<std::string, int64_t> errors;
  std::vector<std::vector<double>> latencies(static_cast<size_t>(concurrency));
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> clients;
  for (int64_t t = 0; t < concurrency; ++t) {
    clients.emplace_back([&, t] {
      auto client_send = send();  // per-thread state (e.g. a keep-alive connection)
      while (Clock::now() < deadline) {
        const auto t0 = Clock::now();
        const std::string error = client_send();
        if (!error.empty()) {
          std::lock_guard<std::mutex> lock(errors_mutex);
          ++errors[error];
          continue;
        }
        latencies[static_cast<size_t>(t)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& c : clients) c.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  const LatencySummary l = summarize_latencies(std::move(all), std::chrono::duration<double>(Clock::now() - start).count());
  return {l.calls_per_s() * static_cast<double>(images), l.p50, l.p90, l.p99, std::move(errors)};
}

std::string row(const std::string& protocol, int64_t images, int64_t concurrency, const Stats& s, double ceiling) {
  std::ostringstream out;
  out << "| " << protocol << " | " << images << " | " << concurrency << " | " << std::fixed << std::setprecision(0) << s.images_per_s
      << " | ";
  if (ceiling > 0) out << 100 * s.images_per_s / ceiling << "%";
  else out << "-";
  out << " | " << std::setprecision(3) << s.p50 << " | " << s.p90 << " | " << s.p99 << " | " << s.error_count() << " |\n";
  return out.str();
}

// The server's batching settings, from its Triton-style model config.
BatchingOptions batching_of(const json& config) {
  BatchingOptions b;
  b.max_batch_size = config.at("max_batch_size").get<int64_t>();
  b.max_queue_delay_us = config.at("dynamic_batching").at("max_queue_delay_microseconds").get<int64_t>();
  b.max_queue_images = config.at("dynamic_batching").at("max_queue_images").get<int64_t>();
  b.instances = config.at("instance_group").at(0).at("count").get<int64_t>();
  b.threads_per_instance = config.at("instance_group").at(0).at("threads_per_instance").get<int64_t>();
  return b;
}

// Whether a case fits the queue: closed-loop clients never have more than this many images waiting.
bool fits_queue(const BatchingOptions& b, int64_t images, int64_t concurrency) {
  return images * concurrency <= b.max_queue_images;
}

// The same artifact and load without HTTP: one forward at batch 1, then the same sweep straight
// into a ModelRunner with the server's batching settings.
template <typename Report>
Ceiling measure_in_process(const LoadBenchOptions& o, const BatchingOptions& batching, const torch::Tensor& images,
                           Report&& report) {
  torch::NoGradGuard no_grad;
  Artifact artifact = load_artifact(o.artifact);
  Ceiling c;
  {
    auto module = serving_module(artifact);
    const auto one = images.slice(0, 0, 1);
    // In this thread: LibTorch's main-thread OpenMP team is its fastest configuration here.
    c.batch1_p50_ms = time_calls([&] { module.forward({one}); }, o.seconds).p50;
  }
  ModelRunner runner(o.model, 1, artifact, batching);
  for (int64_t n : o.images_per_request) {
    const auto request = images.slice(0, 0, n);
    for (int64_t concurrency : o.concurrency) {
      if (!fits_queue(batching, n, concurrency)) continue;
      const Stats s = closed_loop(o.seconds, concurrency, n, [&] {
        return [&]() -> std::string {
          try {
            runner.infer(request);
            return "";
          } catch (const std::exception& e) {
            return e.what();
          }
        };
      });
      c.images_per_s = std::max(c.images_per_s, s.images_per_s);
      report("in-process", n, concurrency, s, 0);
    }
  }
  return c;
}

struct Call {
  std::string path, body, content_type;
  httplib::Headers headers;
};

// One request carrying `images` [N, C, H, W] (the image protocol takes N = 1).
Call make_call(const std::string& protocol, const std::string& model, const torch::Tensor& images) {
  const std::string infer = "/v2/models/" + model + "/infer";
  const auto flat = images.contiguous();
  const std::vector<int64_t> shape = images.sizes().vec();
  if (protocol == "json") {
    std::vector<int> data(flat.data_ptr<uint8_t>(), flat.data_ptr<uint8_t>() + flat.numel());
    json body = {{"inputs", {{{"name", "image"}, {"shape", shape}, {"datatype", "UINT8"}, {"data", data}}}},
                 {"outputs", {{{"name", "probabilities"}}}}};
    return {infer, body.dump(), "application/json", {}};
  }
  if (protocol == "binary") {
    const std::string header =
        json{{"inputs", {{{"name", "image"}, {"shape", shape}, {"datatype", "UINT8"},
                          {"parameters", {{"binary_data_size", flat.numel()}}}}}},
             {"outputs", {{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}}}}
            .dump();
    return {infer, header + std::string(static_cast<const char*>(flat.data_ptr()), flat.numel()),
            "application/octet-stream", {{"Inference-Header-Content-Length", std::to_string(header.size())}}};
  }
  if (protocol == "image") return {"/predictions/" + model, encode_png(images[0]), "image/png", {}};
  throw std::invalid_argument("unknown protocol '" + protocol + "' (json, binary, image)");
}

// "http://HOST:PORT" (no path): the host and port.
std::pair<std::string, int> host_and_port(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("--url must be http://HOST:PORT (no TLS), not '" + url + "'");
  std::string rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/') != std::string::npos) return {rest, 80};
  const std::string port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("bad port in --url '" + url + "'");
  std::string host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, std::stoi(port)};
}

// Closed-loop clients on one epoll thread (like wrk): the client's CPU, shared with the server on
// the same machine, stays small next to the server's (16 client threads took a visible share).
Stats run_case(const LoadBenchOptions& o, const Call& call, int64_t images, int64_t concurrency) {
  const auto [host, port] = host_and_port(o.url);
  const std::string host_field = host.find(':') != std::string::npos ? "[" + host + "]" : host;  // IPv6
  std::string request = "POST " + call.path + " HTTP/1.1\r\nHost: " + host_field + ":" + std::to_string(port) +
                        "\r\nContent-Type: " + call.content_type + "\r\nContent-Length: " +
                        std::to_string(call.body.size()) + "\r\n";
  for (const auto& [name, value] : call.headers) request += name + ": " + value + "\r\n";
  request += "\r\n" + call.body;
  EpollLoadResult load = run_epoll_load(host, port, request, concurrency, o.seconds);
  const LatencySummary l = summarize_latencies(std::move(load.latencies_ms), load.seconds);
  return {l.calls_per_s() * static_cast<double>(images), l.p50, l.p90, l.p99, std::move(load.errors)};
}

}  // namespace

void run_load_bench(const LoadBenchOptions& o, std::ostream& out) {
  if (o.concurrency.empty() || o.images_per_request.empty() || o.protocols.empty())
    throw std::invalid_argument("the load benchmark needs concurrency levels, request sizes and protocols");
  httplib::Client probe(o.url);
  auto meta = probe.Get(("/v2/models/" + o.model).c_str());
  if (!meta) throw std::runtime_error("cannot reach maas-serve at " + o.url + " (is it running?)");
  if (meta->status != 200) throw std::runtime_error("server answered " + std::to_string(meta->status) + ": " + meta->body);
  const auto shape = json::parse(meta->body)["inputs"][0]["shape"].get<std::vector<int64_t>>();
  auto config = probe.Get(("/v2/models/" + o.model + "/config").c_str());
  if (!config || config->status != 200) throw std::runtime_error("cannot read the model's config from " + o.url);
  BatchingOptions batching;
  try {
    batching = batching_of(json::parse(config->body));
  } catch (const json::exception& e) {
    throw std::runtime_error("unexpected model config from " + o.url + " (not a maas-serve of this version?): " + e.what());
  }
  torch::manual_seed(0);
  const int64_t most = *std::max_element(o.images_per_request.begin(), o.images_per_request.end());
  const auto images = torch::randint(0, 256, {most, shape[1], shape[2], shape[3]}, torch::kUInt8);

  out << cpu_line(this_cpu()) << "\n\n";  // figures depend on the CPU's kernels: a copied report names it
  out << "| protocol | images/request | concurrency | images/s | % of in-process best | p50 ms | p90 ms | p99 ms | errors |\n"
      << "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" << std::flush;
  std::vector<std::string> failures;  // printed after the table
  auto report = [&](const std::string& protocol, int64_t n, int64_t c, const Stats& s, double ceiling) {
    out << row(protocol, n, c, s, ceiling) << std::flush;
    for (const auto& [reason, count] : s.errors)
      failures.push_back(protocol + ", " + std::to_string(n) + " images/request, concurrency " + std::to_string(c) +
                         ": " + std::to_string(count) + " x " + reason);
  };
  Ceiling ceiling;
  if (!o.artifact.empty()) ceiling = measure_in_process(o, batching, images, report);
  for (const auto& protocol : o.protocols) {
    for (int64_t n : o.images_per_request) {
      if (protocol == "image" && n > 1) continue;  // an upload is one image file
      const Call call = make_call(protocol, o.model, images.slice(0, 0, n));
      for (int64_t c : o.concurrency)
        if (fits_queue(batching, n, c)) report(protocol, n, c, run_case(o, call, n, c), ceiling.images_per_s);
    }
  }
  for (int64_t n : o.images_per_request)
    for (int64_t c : o.concurrency)
      if (!fits_queue(batching, n, c))
        out << "\nSkipped " << n << " images/request at concurrency " << c << ": more than the model's queue holds ("
            << batching.max_queue_images << " images, batching.max_queue_images), so most requests would get 503.\n";
  const bool one_image = std::count(o.images_per_request.begin(), o.images_per_request.end(), 1) > 0;
  if (!one_image && std::count(o.protocols.begin(), o.protocols.end(), "image") > 0)
    out << "\nSkipped the image protocol: an upload carries one image, and 1 is not among --images-per-request.\n";
  if (!failures.empty()) out << "\nErrors:\n";
  for (const auto& f : failures) out << "- " << f << "\n";
  if (!o.artifact.empty())
    out << std::fixed << std::setprecision(3) << "\nIn-process forward of " << o.artifact
        << " (as maas-serve runs it), batch 1: p50 " << ceiling.batch1_p50_ms << " ms\n";
}

}  // namespace maas
