// Prometheus metrics of maas-serve (prometheus-cpp registry, text exposition format).
#pragma once

#include <memory>
#include <string>

#include "model_runner.h"

namespace prometheus {
class Registry;
}

namespace maas {

// Thread-safe: every method may be called from any request thread.
class ServeMetrics {
 public:
  ServeMetrics();
  ~ServeMetrics();

  // One finished HTTP request against a model; outcome is "success", "client_error",
  // "unavailable" or "server_error".
  void observe_request(const std::string& model, const std::string& outcome, double total_seconds);
  // Queue and compute time of one request's images and the size of the batch they ran in.
  void observe_inference(const std::string& model, const InferTiming& timing);
  void set_queue_depth(const std::string& model, int64_t images);

  // The Prometheus text format (version 0.0.4).
  std::string scrape() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
};

}  // namespace maas
