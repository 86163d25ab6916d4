// Prometheus metrics of maas-serve (prometheus-cpp registry, text exposition format).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace prometheus {
class Registry;
}

namespace maas {

struct InferTiming;

// Thread-safe: every method may be called from any request thread.
class ServeMetrics {
 public:
  ServeMetrics();
  ~ServeMetrics();

  // One finished HTTP request against a model, counted by outcome of its HTTP status (success,
  // client_error, unavailable, server_error).
  void observe_request(const std::string& model, int status, double total_seconds);
  // One finished explanation request (POST /explanations), counted apart from inference by the
  // outcome of its HTTP status, with its total time.
  void observe_explanation(const std::string& model, int status, double total_seconds);
  // Queue and compute time of one request's images and the size of the batch they ran in.
  void observe_inference(const std::string& model, const InferTiming& timing);
  void set_queue_depth(const std::string& model, int64_t images);

  // The Prometheus text format (version 0.0.4).
  std::string scrape() const;

 private:
  struct Families;
  struct Series;
  // A model's series, made on first use: requests then touch no label maps or family locks.
  Series& series(const std::string& model);
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  std::mutex series_mutex_;
  std::unordered_map<std::string, std::unique_ptr<Series>> series_;
};

}  // namespace maas
