// Metric families and their buckets.
#include "metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "model_runner.h"

namespace maas {

namespace {
// 100 us .. ~3 s, roughly x2 apart: covers a batch-1 forward to a long queue wait.
const prometheus::Histogram::BucketBoundaries kSecondsBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
const prometheus::Histogram::BucketBoundaries kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
}  // namespace

struct ServeMetrics::Families {
  prometheus::Family<prometheus::Counter>* requests;
  prometheus::Family<prometheus::Histogram>* queue_seconds;
  prometheus::Family<prometheus::Histogram>* compute_seconds;
  prometheus::Family<prometheus::Histogram>* total_seconds;
  prometheus::Family<prometheus::Histogram>* batch_size;
  prometheus::Family<prometheus::Gauge>* queue_depth;
  prometheus::Family<prometheus::Counter>* explanations;
  prometheus::Family<prometheus::Histogram>* explanation_seconds;
};

ServeMetrics::ServeMetrics()
    : registry_(std::make_shared<prometheus::Registry>()), families_(std::make_unique<Families>()) {
  auto& r = *registry_;
  families_->requests =
      &prometheus::BuildCounter().Name("maas_requests_total").Help("Inference requests by model and outcome").Register(r);
  families_->queue_seconds = &prometheus::BuildHistogram()
                                  .Name("maas_queue_seconds")
                                  .Help("Time a request waited in its model's queue")
                                  .Register(r);
  families_->compute_seconds = &prometheus::BuildHistogram()
                                    .Name("maas_compute_seconds")
                                    .Help("Forward time of the batch a request ran in")
                                    .Register(r);
  families_->total_seconds = &prometheus::BuildHistogram()
                                  .Name("maas_request_seconds")
                                  .Help("Total time from request received to response ready")
                                  .Register(r);
  families_->batch_size =
      &prometheus::BuildHistogram().Name("maas_batch_images").Help("Images in the batch each request ran in").Register(r);
  families_->queue_depth =
      &prometheus::BuildGauge().Name("maas_queue_images").Help("Images waiting in the model's queue").Register(r);
  families_->explanations = &prometheus::BuildCounter()
                                 .Name("maas_explanations_total")
                                 .Help("Explanation requests by model and outcome")
                                 .Register(r);
  families_->explanation_seconds = &prometheus::BuildHistogram()
                                        .Name("maas_explanation_seconds")
                                        .Help("Total time of an explanation request, received to answered")
                                        .Register(r);
}

ServeMetrics::~ServeMetrics() = default;

namespace {
const char* const kOutcomes[] = {"success", "client_error", "unavailable", "server_error"};

size_t outcome_of(int status) {
  if (status < 400) return 0;
  if (status < 500) return 1;
  return status == 503 ? 2 : 3;
}
}  // namespace

struct ServeMetrics::Series {
  prometheus::Counter* requests[4] = {};  // by kOutcomes; made when first counted
  prometheus::Counter* explanations[4] = {};
  prometheus::Histogram* explanation_seconds = nullptr;  // made on the first explanation
  prometheus::Histogram* total_seconds;
  prometheus::Histogram* queue_seconds;
  prometheus::Histogram* compute_seconds;
  prometheus::Histogram* batch_size;
};

ServeMetrics::Series& ServeMetrics::series(const std::string& model) {
  // Callers hold series_mutex_.
  auto& slot = series_[model];
  if (!slot) {
    slot = std::make_unique<Series>();
    slot->total_seconds = &families_->total_seconds->Add({{"model", model}}, kSecondsBuckets);
    slot->queue_seconds = &families_->queue_seconds->Add({{"model", model}}, kSecondsBuckets);
    slot->compute_seconds = &families_->compute_seconds->Add({{"model", model}}, kSecondsBuckets);
    slot->batch_size = &families_->batch_size->Add({{"model", model}}, kBatchBuckets);
  }
  return *slot;
}

void ServeMetrics::observe_request(const std::string& model, int status, double total_seconds) {
  const size_t outcome = outcome_of(status);
  prometheus::Counter* requests;
  prometheus::Histogram* total;
  {
    std::lock_guard<std::mutex> lock(series_mutex_);
    Series& s = series(model);
    if (!s.requests[outcome])
      s.requests[outcome] = &families_->requests->Add({{"model", model}, {"outcome", kOutcomes[outcome]}});
    requests = s.requests[outcome];
    total = s.total_seconds;
  }
  requests->Increment();
  total->Observe(total_seconds);
}

void ServeMetrics::observe_explanation(const std::string& model, int status, double total_seconds) {
  const size_t outcome = outcome_of(status);
  prometheus::Counter* explanations;
  prometheus::Histogram* seconds;
  {
    std::lock_guard<std::mutex> lock(series_mutex_);
    Series& s = series(model);
    if (!s.explanations[outcome])
      s.explanations[outcome] = &families_->explanations->Add({{"model", model}, {"outcome", kOutcomes[outcome]}});
    if (!s.explanation_seconds)
      s.explanation_seconds = &families_->explanation_seconds->Add({{"model", model}}, kSecondsBuckets);
    explanations = s.explanations[outcome];
    seconds = s.explanation_seconds;
  }
  explanations->Increment();
  seconds->Observe(total_seconds);
}

void ServeMetrics::observe_inference(const std::string& model, const InferTiming& timing) {
  Series* s;
  {
    std::lock_guard<std::mutex> lock(series_mutex_);
    s = &series(model);
  }
  s->queue_seconds->Observe(timing.queue_us * 1e-6);
  s->compute_seconds->Observe(timing.compute_us * 1e-6);
  s->batch_size->Observe(static_cast<double>(timing.batch_images));
}

void ServeMetrics::set_queue_depth(const std::string& model, int64_t images) {
  families_->queue_depth->Add({{"model", model}}).Set(static_cast<double>(images));
}

std::string ServeMetrics::scrape() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

}  // namespace maas
