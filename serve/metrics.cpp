// Metric families and their buckets.
#include "metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

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
}

ServeMetrics::~ServeMetrics() = default;

void ServeMetrics::observe_request(const std::string& model, const std::string& outcome, double total_seconds) {
  families_->requests->Add({{"model", model}, {"outcome", outcome}}).Increment();
  families_->total_seconds->Add({{"model", model}}, kSecondsBuckets).Observe(total_seconds);
}

void ServeMetrics::observe_inference(const std::string& model, const InferTiming& timing) {
  families_->queue_seconds->Add({{"model", model}}, kSecondsBuckets).Observe(timing.queue_us * 1e-6);
  families_->compute_seconds->Add({{"model", model}}, kSecondsBuckets).Observe(timing.compute_us * 1e-6);
  families_->batch_size->Add({{"model", model}}, kBatchBuckets).Observe(static_cast<double>(timing.batch_images));
}

void ServeMetrics::set_queue_depth(const std::string& model, int64_t images) {
  families_->queue_depth->Add({{"model", model}}).Set(static_cast<double>(images));
}

std::string ServeMetrics::scrape() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

}  // namespace maas
