// Batch formation: wait for the first request, gather more until the batch is full or the oldest
// request has waited max_queue_delay_us, run one forward, hand each request its rows.
#include "model_runner.h"

#include <ATen/Parallel.h>
#include "config.h"
#include "torchscript_loader.h"
#include <pthread.h>

#include <algorithm>

namespace maas {

using Clock = std::chrono::steady_clock;

namespace {

// Busy-waits until `ready()` or `microseconds` passed (see BatchingOptions::idle_spin_us).
template <typename Ready>
void poll_until(int64_t microseconds, Ready ready) {
  const auto until = Clock::now() + std::chrono::microseconds(microseconds);
  while (!ready() && Clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

}  // namespace

torch::jit::Module serving_module(const Artifact& artifact) {
  torch::jit::Module module = artifact.module;
  // int8 artifacts run as exported: the quantization passes froze them, and
  // optimize_for_inference has no rewrite for quantized::* kernels (it would only freeze again).
  return artifact.info.quantization_engine.empty() ? torch::jit::optimize_for_inference(module) : module;
}

ModelRunner::ModelRunner(std::string name, int64_t version, Artifact artifact, BatchingOptions options)
    : name_(std::move(name)),
      version_(version),
      info_(artifact.info),
      options_(options),
      // A deep copy: optimize_for_inference rewrites an already frozen module in place.
      explainer_(artifact.module.clone(), artifact.info) {
  if (options_.max_batch_size < 1 || options_.instances < 0 || options_.max_queue_delay_us < 0 ||
      options_.max_queue_images < options_.max_batch_size || options_.threads_per_instance < 0)
    throw std::invalid_argument("invalid batching options for model '" + name_ + "'");
  torch::NoGradGuard no_grad;
  module_ = serving_module(artifact);
  // Warm-up: oneDNN builds its primitives per shape on first use, and the graph executor profiles
  // and optimizes the explainer's graph on its first runs.
  const auto zeros = torch::zeros({1, info_.channels, info_.height, info_.width}, torch::kUInt8);
  for (int64_t b = 1; b <= options_.max_batch_size; b *= 2)
    module_.forward({torch::zeros({b, info_.channels, info_.height, info_.width}, torch::kUInt8)});
  try {
    for (int i = 0; i < 2; ++i) explainer_.explain({zeros});
  } catch (const std::exception& e) {
    // Predictions need not suffer for a model that cannot be explained (int8, or a graph autograd
    // cannot differentiate): explain() says why.
    explainer_error_ = interpreter_error_cause(e.what());
  }
  const int64_t cores = core_count();
  const int64_t instances = options_.instances > 0 ? options_.instances : cores;
  threads_per_instance_ = options_.threads_per_instance > 0 ? options_.threads_per_instance
                                                           : std::max<int64_t>(1, cores / instances);
  // Polling needs a core to spare: none on one core; a lone request's poll also none when one
  // worker's forward already uses every core.
  poll_for_work_ = options_.idle_spin_us > 0 && cores >= 2;
  poll_for_results_ = poll_for_work_ && threads_per_instance_ < cores;
  for (int64_t i = 0; i < instances; ++i) workers_.emplace_back([this] { worker_loop(); });
  // Workers are waiting for work when the constructor returns: a request submitted to run on the
  // caller (RunOn::kCaller) is then not taken by a worker that was still starting.
  std::unique_lock<std::mutex> lock(mutex_);
  workers_started_.wait(lock, [&] { return waiting_workers_ == instances; });
}

ModelRunner::~ModelRunner() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    accepting_ = false;
    stopping_ = true;
  }
  stop_polling_ = true;
  idle_.notify_all();
  batch_ready_.notify_all();
  for (auto& w : workers_) w.join();
}

void ModelRunner::stop_accepting() {
  std::lock_guard<std::mutex> lock(mutex_);
  accepting_ = false;
}

int64_t ModelRunner::queued_images() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_images_;
}

RunnerStats ModelRunner::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

ModelRunner::Arrival::Arrival(ModelRunner& runner) : runner_(runner) {
  std::lock_guard<std::mutex> lock(runner_.mutex_);
  ++runner_.arriving_;
}

ModelRunner::Arrival::~Arrival() { runner_.withdraw(*this); }

void ModelRunner::withdraw(Arrival& arrival) {
  bool batch_ready = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!arrival.pending_) return;
    arrival.pending_ = false;
    --arriving_;
    batch_ready = gathering_ && arriving_ == 0;  // the forming batch was waiting for this request
  }
  if (batch_ready) batch_ready_.notify_one();
}

void ModelRunner::check_shape(const std::vector<int64_t>& shape) const {
  if (shape.size() != 4 || shape[1] != info_.channels || shape[2] != info_.height || shape[3] != info_.width ||
      shape[0] < 1)
    throw std::invalid_argument("model '" + name_ + "' expects images of shape [N, " +
                                std::to_string(info_.channels) + ", " + std::to_string(info_.height) + ", " +
                                std::to_string(info_.width) + "] with N >= 1");
  if (shape[0] > options_.max_batch_size)
    throw std::invalid_argument("a request of " + std::to_string(shape[0]) + " images exceeds model '" + name_ +
                                "''s batching.max_batch_size (" + std::to_string(options_.max_batch_size) +
                                "): send at most that many per request");
}

void ModelRunner::check_images(const torch::Tensor& images) const {
  check_shape(images.sizes().vec());
  if (images.scalar_type() != torch::kUInt8 && images.scalar_type() != torch::kFloat32)
    throw std::invalid_argument("images must be uint8 or float32");
}

void ModelRunner::submit(const torch::Tensor& images, Completion done, Arrival* arrival, RunOn run_on) {
  if (arrival && &arrival->runner_ != this) throw std::logic_error("Arrival belongs to another ModelRunner");
  if (!done) throw std::logic_error("submit() needs a completion");
  check_images(images);
  Request request;
  request.images = images;
  request.queued_images = images.size(0);
  request.done = std::move(done);
  enqueue(std::move(request), arrival, run_on == RunOn::kWorker);
}

void ModelRunner::run_queued() {
  torch::NoGradGuard no_grad;
  // OpenMP's thread count is per thread: a caller's forward must use a worker's count (2 OpenMP
  // threads at batch 1 run far slower than 1 while the other core is busy).
  thread_local int64_t threads_set = 0;
  if (threads_set != threads_per_instance_) {
    at::set_num_threads(static_cast<int>(threads_per_instance_));
    threads_set = threads_per_instance_;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  // A lone request in an idle runner goes to a worker, as infer()'s would: measured at one
  // client, its forward ran ~1.3x slower on the caller's thread (a VM's halting vCPUs; the worker
  // polls after a batch and stays warm), and the caller goes on serving meanwhile.
  // Announced requests (being parsed on connection threads) are waited for, as ever: a worker
  // forms that batch (up to max_queue_delay_us).
  const bool announced = arriving_ > 0;
  if (!gathering_ && !queue_.empty() && !queue_.front().explanation &&
      (announced || (poll_for_work_ && queue_.size() == 1 && (spinning_ || running_batches_ == 0)))) {
    const bool wake = !spinning_;  // a polling worker sees the queue itself
    lock.unlock();
    if (wake) idle_.notify_one();
    return;
  }
  while (!queue_.empty() && !gathering_ && !queue_.front().explanation) {
    gathering_ = true;
    std::vector<Request> batch = take_batch();
    gathering_ = false;
    ++running_batches_;
    lock.unlock();
    run_batch(batch);
    lock.lock();
    --running_batches_;
  }
  if (!queue_.empty() && !gathering_) {
    lock.unlock();
    idle_.notify_one();  // an explanation (workers run those), or a request queued meanwhile
  } else if (gathering_) {
    lock.unlock();
    batch_ready_.notify_one();  // the worker forming a batch takes ours too, at once
  }
}

torch::Tensor ModelRunner::infer(const torch::Tensor& images, InferTiming* timing, Arrival* arrival) {
  // submit() with a completion that fulfils a promise. Shared with the completion: this thread may
  // return (and would destroy a local promise) while set_value is still running on the worker.
  auto result = std::make_shared<std::promise<torch::Tensor>>();
  auto future = result->get_future();
  // Only a request alone in the runner polls for its result: with company, the cores are busy anyway
  // and polling threads would take them from the forward.
  const InFlight in_flight(requests_in_flight_);
  submit(
      images,
      [result, timing](torch::Tensor logits, const InferTiming& measured, std::exception_ptr error) {
        if (error) return result->set_exception(error);
        if (timing) *timing = measured;
        result->set_value(std::move(logits));
      },
      arrival);
  if (in_flight.alone && poll_for_results_)
    poll_until(options_.idle_spin_us, [&] { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
  return future.get();
}

Explanation ModelRunner::explain(const ExplainRequest& explanation, InferTiming* timing) {
  if (!explainer_error_.empty())
    throw std::invalid_argument("model '" + name_ + "' cannot be explained: " + explainer_error_);
  explainer_.check(explanation);
  const int64_t images = explain_batch_images(explanation);
  if (images > options_.max_queue_images)
    throw std::invalid_argument("an explanation of " + std::to_string(images) + " images exceeds model '" + name_ +
                                "''s batching.max_queue_images (" + std::to_string(options_.max_queue_images) +
                                "): ask for fewer steps");
  Request request;
  request.timing = timing;
  request.queued_images = images;
  request.explanation = explanation;
  auto result = request.explained.get_future();
  const InFlight in_flight(requests_in_flight_);  // a lone infer() beside it must not poll
  enqueue(std::move(request), nullptr);
  return result.get();
}

void ModelRunner::enqueue(Request request, Arrival* arrival, bool wake_workers) {
  bool wake_idle = false, batch_ready = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!accepting_) throw Unavailable("model '" + name_ + "' is shutting down");
    if (queued_images_ + request.queued_images > options_.max_queue_images)
      throw Unavailable("model '" + name_ + "' queue is full");
    request.enqueued = Clock::now();
    queued_images_ += request.queued_images;
    queue_.push_back(std::move(request));
    queued_requests_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    if (arrival && arrival->pending_) {
      arrival->pending_ = false;
      --arriving_;
    }
    // Wake only whom this request concerns: an idle worker, or the one forming a batch once it is
    // full or nobody else is on the way (waking every worker per request costs context switches).
    wake_idle = wake_workers && !gathering_ && !spinning_;  // a polling worker sees the queue itself
    batch_ready = wake_workers && gathering_ && (queued_images_ >= options_.max_batch_size || arriving_ == 0);
  }
  if (wake_idle) idle_.notify_one();
  if (batch_ready) batch_ready_.notify_one();
}

void ModelRunner::worker_loop() {
  pthread_setname_np(pthread_self(), "maas-worker");  // shows in top -H, perf and gdb
  at::set_num_threads(static_cast<int>(threads_per_instance_));
  torch::NoGradGuard no_grad;
  const auto max_delay = std::chrono::microseconds(options_.max_queue_delay_us);
  std::unique_lock<std::mutex> lock(mutex_);
  bool started = false;
  while (true) {
    // Only when the runner is otherwise idle: with another batch running, requests keep coming and
    // a polling worker would take a core from it and from the connections.
    if (poll_for_work_ && queue_.empty() && !stopping_ && !gathering_ && !spinning_ &&
        running_batches_ == 0) {
      spinning_ = true;
      lock.unlock();
      poll_until(options_.idle_spin_us, [this] {
        return queued_requests_.load(std::memory_order_relaxed) > 0 || stop_polling_.load(std::memory_order_relaxed);
      });
      lock.lock();
      spinning_ = false;
    }
    // One worker at a time forms a batch from the front of the queue; the others wait their turn.
    if (!started) {
      started = true;
      ++waiting_workers_;
      workers_started_.notify_all();
    }
    idle_.wait(lock, [&] { return !gathering_ && (stopping_ || !queue_.empty()); });
    if (queue_.empty()) return;  // stopping and drained
    gathering_ = true;
    // An explanation runs alone; inference waits for announced requests until the batch is full
    // or the oldest request's delay is used up, and stops at an explanation.
    const bool explanation = queue_.front().explanation.has_value();
    if (!explanation) {
      const auto deadline = queue_.front().enqueued + max_delay;
      batch_ready_.wait_until(lock, deadline, [&] {
        return stopping_ || queued_images_ >= options_.max_batch_size || arriving_ == 0;
      });
    }
    std::vector<Request> batch = take_batch();
    gathering_ = false;
    if (stopping_) idle_.notify_all();             // let the others drain and exit
    else if (!queue_.empty()) idle_.notify_one();  // the rest is the next batch
    ++running_batches_;
    lock.unlock();
    if (explanation) run_explanation(batch[0]);
    else run_batch(batch);
    lock.lock();
    --running_batches_;
  }
}

std::vector<ModelRunner::Request> ModelRunner::take_batch() {
  const bool explanation = queue_.front().explanation.has_value();
  std::vector<Request> batch;
  int64_t images = 0;
  while (!queue_.empty() &&
         (batch.empty() || (!explanation && !queue_.front().explanation &&
                            images + queue_.front().queued_images <= options_.max_batch_size))) {
    images += queue_.front().queued_images;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queued_images_ -= images;
  queued_requests_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
  return batch;
}

void ModelRunner::run_batch(std::vector<Request>& batch) {
  const auto ns = [](Clock::duration d) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  };
  const auto start = Clock::now();
  Clock::time_point inferred = start, done = start;
  int64_t images = 0;
  for (const auto& r : batch) images += r.images.size(0);
  bool ok = false;
  try {
    std::vector<torch::Tensor> parts;
    const bool all_uint8 = std::all_of(batch.begin(), batch.end(),
                                       [](const Request& r) { return r.images.scalar_type() == torch::kUInt8; });
    for (auto& r : batch) parts.push_back(all_uint8 ? r.images : r.images.to(torch::kFloat32));
    const auto input = parts.size() == 1 ? parts[0] : torch::cat(parts);
    const auto gathered = Clock::now();
    const auto logits = module_.forward({input}).toTensor();
    inferred = Clock::now();
    const double compute_us = std::chrono::duration<double, std::micro>(inferred - start).count();
    std::vector<torch::Tensor> rows;
    int64_t row = 0;
    for (auto& r : batch) {
      rows.push_back(logits.slice(0, row, row + r.images.size(0)).clone());
      row += r.images.size(0);
    }
    done = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& b = stats_.batches[images];
      const uint64_t input_ns = ns(gathered - start), infer_ns = ns(inferred - gathered), output_ns = ns(done - inferred);
      b.compute_input.count++, b.compute_input.ns += input_ns;
      b.compute_infer.count++, b.compute_infer.ns += infer_ns;
      b.compute_output.count++, b.compute_output.ns += output_ns;
      stats_.execution_count++;
      stats_.inference_count += static_cast<uint64_t>(images);
      stats_.last_inference_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
      for (const auto& r : batch) {
        stats_.success.count++, stats_.success.ns += ns(done - r.enqueued);
        stats_.queue.count++, stats_.queue.ns += ns(start - r.enqueued);
        stats_.compute_input.count++, stats_.compute_input.ns += input_ns;
        stats_.compute_infer.count++, stats_.compute_infer.ns += infer_ns;
        stats_.compute_output.count++, stats_.compute_output.ns += output_ns;
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& r = batch[i];
      const InferTiming timing{std::chrono::duration<double, std::micro>(start - r.enqueued).count(), compute_us,
                               logits.size(0)};
      complete(r, std::move(rows[i]), timing, nullptr);
    }
    ok = true;
  } catch (...) {
    for (auto& r : batch) complete(r, {}, {}, std::current_exception());  // those not answered yet
  }
  if (!ok) {
    const auto failed = Clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& r : batch) stats_.fail.count++, stats_.fail.ns += ns(failed - r.enqueued);
  }
}

void ModelRunner::complete(Request& request, torch::Tensor logits, const InferTiming& timing,
                           std::exception_ptr error) {
  Completion done = std::move(request.done);  // called once: a later failure of the batch skips it
  if (!done) return;
  try {
    done(std::move(logits), timing, error);
  } catch (...) {
    // Completions must not throw (see submit()); one that does must not fail the other requests.
  }
}

void ModelRunner::run_explanation(Request& job) {
  const auto start = Clock::now();
  try {
    Explanation explanation = explainer_.explain(*job.explanation);
    if (job.timing)
      *job.timing = {std::chrono::duration<double, std::micro>(start - job.enqueued).count(),
                     std::chrono::duration<double, std::micro>(Clock::now() - start).count(), job.queued_images};
    job.explained.set_value(std::move(explanation));
  } catch (...) {
    job.explained.set_exception(std::current_exception());
  }
}

}  // namespace maas
