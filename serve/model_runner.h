// Dynamic batching for one loaded model: requests queue, workers run them in batches.
// Inference only: no HTTP or JSON here.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "artifact.h"
#include "explainer.h"

namespace maas {

struct BatchingOptions {
  int64_t max_batch_size = 32;        // images per forward pass at most
  int64_t max_queue_delay_us = 500;   // the oldest request waits at most this long for company
  int64_t max_queue_images = 1024;    // queued images beyond this are refused (QueueFull)
  // Worker threads, each running whole batches; 0 = one per core. Measured on 2 cores: a forward
  // in a worker thread with 2 OpenMP threads takes ~5x longer at batch 1 than with 1 thread, and
  // is no faster at batch 32, so parallelism comes from instances, not intra-op threads.
  int64_t instances = 0;
  int64_t threads_per_instance = 0;   // LibTorch threads per worker; 0 = max(1, cores / instances)
  // After a batch, one idle worker polls the queue for this long before it sleeps, and a request
  // that is alone in the runner polls for its result as long before it sleeps. On a VM whose idle
  // vCPUs halt, a forward that follows a sleep ran at half speed (cold core) and each sleeping
  // hand-off costs a wake-up; polling keeps a lone client's path warm. 0 = sleep at once. Costs at
  // most this much CPU per batch (and per lone request); off on one core, and a lone request does
  // not poll when a worker's forward uses every core (threads_per_instance >= cores).
  int64_t idle_spin_us = 1000;
};

// The queue is full or the runner is stopping: the caller should answer 503 and retry later.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Statistics of one finished request, for metrics and logs.
struct InferTiming {
  double queue_us = 0;    // from enqueue to the start of its batch's forward
  double compute_us = 0;  // its batch's forward pass
  int64_t batch_images = 0;
};

// A count of events and their summed duration.
struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
};
struct BatchSizeStats {
  DurationStat compute_input, compute_infer, compute_output;  // per forward pass of this size
};
// Cumulative statistics of one runner, in the terms of Triton's statistics extension.
struct RunnerStats {
  uint64_t inference_count = 0;   // images inferred
  uint64_t execution_count = 0;   // forward passes (batches)
  int64_t last_inference_ms = 0;  // wall clock (ms since the epoch) of the last finished batch; 0 = none
  // Per request: success/fail from queueing to answer; queue until its batch starts; compute_*
  // of the batch it ran in (input: gathering the batch, infer: forward, output: its rows).
  DurationStat success, fail, queue, compute_input, compute_infer, compute_output;
  std::map<int64_t, BatchSizeStats> batches;  // by batch size in images
};

// The module maas-serve runs for `artifact` (shares its tensors): float32 artifacts frozen and
// optimized for inference (oneDNN layouts, build-specific, so done at load time), int8 artifacts
// as loaded. Throws what optimize_for_inference throws.
torch::jit::Module serving_module(const Artifact& artifact);

// Owns one artifact (optimized for inference at construction), its explainer (a clone of the
// artifact taken before optimizing, since gradients need the unfrozen graph) and its worker threads.
// Thread-safe: infer() and explain() may be called from any number of threads.
class ModelRunner {
 public:
  // Clones the module for explanations, freezes and optimizes a float32 module (int8 ones run as
  // loaded), warms it up at every batch size up to max_batch_size's power of two and the explainer
  // at its default steps (a failure there, e.g. int8 kernels without gradients, only disables
  // explain()), then starts the workers. Throws std::invalid_argument for bad options.
  ModelRunner(std::string name, int64_t version, Artifact artifact, BatchingOptions options);
  // Finishes queued requests, then joins the workers.
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // A request on its way to infer() (received, being parsed). While any are announced, a
  // forming batch waits for them (up to max_queue_delay_us); with none, it runs at once, so a
  // lone client never pays the delay. Destroying an Arrival that infer() did not consume
  // withdraws it.
  class Arrival {
   public:
    explicit Arrival(ModelRunner& runner);
    ~Arrival();
    Arrival(const Arrival&) = delete;
    Arrival& operator=(const Arrival&) = delete;

   private:
    friend class ModelRunner;
    ModelRunner& runner_;
    bool pending_ = true;
  };

  // Runs images (uint8 or float32 [N, C, H, W] matching the model) and returns float32 logits
  // [N, classes]. Blocks until done; fills `timing` if given; consumes `arrival` (if given) as the
  // request enters the queue. Throws std::invalid_argument for a wrong shape or dtype and for
  // N > max_batch_size (a request never fits: like Triton, refused rather than retried),
  // Unavailable when the queue is full or the runner stops (retry later).
  torch::Tensor infer(const torch::Tensor& images, InferTiming* timing = nullptr, Arrival* arrival = nullptr);

  // What submit() calls once: the logits [N, classes] and the timing, or `error` (then logits is
  // undefined). It runs on the thread that ran the batch (a worker, or run_queued()'s caller): it
  // must be quick, must not throw, and must not own this runner (a worker cannot destroy the
  // runner it belongs to).
  using Completion = std::function<void(torch::Tensor logits, const InferTiming& timing, std::exception_ptr error)>;
  // Who runs a submitted request's batch.
  enum class RunOn {
    kWorker,  // a worker thread, woken as by infer()
    kCaller,  // the caller, by run_queued() after its submissions (no worker is woken for it;
              // one polling the queue may still take it)
  };
  // infer() without waiting (infer() is this plus a wait): queues the images and returns; `done`
  // is called when their batch has run (also while the runner stops: queued requests finish).
  // Throws what infer() throws before queueing (then `done` is never called).
  void submit(const torch::Tensor& images, Completion done, Arrival* arrival = nullptr, RunOn run_on = RunOn::kWorker);
  // Runs the queued requests in batches on the calling thread, at once (no queue delay: the caller
  // submitted what it had), until the queue is empty or a worker is forming a batch (which then
  // takes the rest). For event loops: their requests run without a hand-off to a worker and back.
  // A worker runs them instead while other requests are announced (it waits for them, as for
  // infer()), and when the runner is idle and holds one request, if workers poll (idle_spin_us):
  // a polling worker's core is warm, and the caller goes on meanwhile.
  void run_queued();
  // Throws std::invalid_argument (naming the expected shape or batching.max_batch_size) unless
  // `shape` is [N, C, H, W] of this model's image size with 1 <= N <= max_batch_size. For
  // request parsers, before they build the tensor; infer() checks the same.
  void check_shape(const std::vector<int64_t>& shape) const;

  // Explains one image on a worker thread, shared with inference: the job waits in the same queue
  // and counts explain_batch_images(request) images against max_queue_images, but runs alone (its
  // forward and backward are not batched with other requests). Blocks until done; fills `timing`
  // if given (batch_images = the job's images). Throws std::invalid_argument for what
  // Explainer::check() refuses and for a job of more images than max_queue_images (it could never
  // be queued), Unavailable when the queue is full or the runner stops, std::runtime_error when
  // the model's graph could not be differentiated at warm-up (predictions still work).
  Explanation explain(const ExplainRequest& request, InferTiming* timing = nullptr);

  // Stops accepting requests; queued ones still finish.
  void stop_accepting();

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const ArtifactInfo& info() const { return info_; }
  const BatchingOptions& options() const { return options_; }
  int64_t queued_images() const;
  RunnerStats stats() const;
  int64_t instances() const { return static_cast<int64_t>(workers_.size()); }
  int64_t threads_per_instance() const { return threads_per_instance_; }  // LibTorch threads of each worker

 private:
  void withdraw(Arrival& arrival);
  // Checks the images as infer() does; throws std::invalid_argument.
  void check_images(const torch::Tensor& images) const;
  // An inference request (images, done) or an explanation job (explanation, explained, timing).
  struct Request {
    torch::Tensor images;
    Completion done;  // inference: called once with the request's rows (infer() waits on it)
    std::chrono::steady_clock::time_point enqueued;
    InferTiming* timing = nullptr;  // explanations: filled when done
    int64_t queued_images = 0;  // what it counts against max_queue_images
    std::optional<ExplainRequest> explanation;
    std::promise<Explanation> explained;
  };
  // Queues `request` and wakes whom it concerns; consumes `arrival`. Throws Unavailable.
  void enqueue(Request request, Arrival* arrival, bool wake_workers = true);
  // Takes the next batch from the queue's front (an explanation alone). Requires: mutex_ held by
  // `lock`, queue_ not empty, gathering_ set by the caller.
  std::vector<Request> take_batch();
  void worker_loop();
  void run_batch(std::vector<Request>& batch);
  // Calls request.done once (a no-op after that); swallows what it throws.
  static void complete(Request& request, torch::Tensor logits, const InferTiming& timing, std::exception_ptr error);
  void run_explanation(Request& job);

  const std::string name_;
  const int64_t version_;
  const ArtifactInfo info_;
  const BatchingOptions options_;
  torch::jit::Module module_;
  Explainer explainer_;
  std::string explainer_error_;  // why the explainer's warm-up failed ("" = it works)
  int64_t threads_per_instance_ = 1;

  mutable std::mutex mutex_;
  std::condition_variable idle_;         // workers waiting for work (or their turn to form a batch)
  std::condition_variable batch_ready_;  // the one worker forming a batch
  std::condition_variable workers_started_;  // the constructor waits until every worker waits
  int64_t waiting_workers_ = 0;              // workers that reached their first wait
  std::deque<Request> queue_;
  int64_t queued_images_ = 0;
  int64_t arriving_ = 0;  // announced Arrivals not yet queued
  bool gathering_ = false;  // a worker is forming a batch from the front of the queue
  bool spinning_ = false;   // a worker is polling queued_requests_ instead of waiting on idle_
  int64_t running_batches_ = 0;  // batches and explanations being run
  std::atomic<int64_t> queued_requests_{0};  // queue_.size(), readable without the mutex
  std::atomic<int64_t> requests_in_flight_{0};  // infer() and explain() calls between entry and return
  std::atomic<bool> stop_polling_{false};        // set with stopping_: a polling worker ends its poll
  bool poll_for_work_ = false;     // idle_spin_us > 0 and a core to spare (set before the workers start)
  bool poll_for_results_ = false;  // and a lone request's poll leaves the forward its threads
  // Counts infer() and explain() calls in the runner while it lives; `alone`: it was the only one.
  struct InFlight {
    explicit InFlight(std::atomic<int64_t>& count) : count(count), alone(count.fetch_add(1) == 0) {}
    ~InFlight() { count.fetch_sub(1); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    std::atomic<int64_t>& count;
    const bool alone;
  };
  bool accepting_ = true;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  RunnerStats stats_;  // guarded by mutex_
};

}  // namespace maas
