// Data-parallel process group on c10d (see distributed.h).
#include "distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>


namespace maas {
namespace {

// The variable's integer value, or `fallback` when unset. Throws DistributedError naming it.
int64_t integer_variable(const std::function<const char*(const char*)>& getenv, const char* name,
                         int64_t fallback, int64_t min, int64_t max) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == std::string(text).size() && value >= min && value <= max) return value;
  } catch (const std::exception&) {
    // reported below
  }
  throw DistributedError(std::string("environment variable ") + name + "='" + text + "' must be an integer in " +
                         std::to_string(min) + ".." + std::to_string(max));
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// c10::Error's what() carries a C++ backtrace; people need the first line of the reason.
std::string reason_of(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  if (const auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

}  // namespace

LaunchInfo launch_info_from_environment(const std::function<const char*(const char*)>& getenv) {
  constexpr int64_t kMaxRanks = 1 << 16;
  LaunchInfo info;
  const bool torchrun = getenv("WORLD_SIZE") != nullptr;
  const bool slurm = !torchrun && getenv("SLURM_NTASKS") != nullptr;
  if (!torchrun && !slurm) return info;
  info.world_size = integer_variable(getenv, torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", 1, 1, kMaxRanks);
  if (info.world_size == 1) return LaunchInfo{};
  const char* rank = torchrun ? "RANK" : "SLURM_PROCID";
  if (getenv(rank) == nullptr)
    throw DistributedError(std::string(torchrun ? "WORLD_SIZE" : "SLURM_NTASKS") + "=" +
                           std::to_string(info.world_size) + " but " + rank + " is not set");
  info.rank = integer_variable(getenv, rank, 0, 0, info.world_size - 1);
  info.local_rank = integer_variable(getenv, torchrun ? "LOCAL_RANK" : "SLURM_LOCALID", 0, 0, info.world_size - 1);
  info.local_world_size = integer_variable(getenv, torchrun ? "LOCAL_WORLD_SIZE" : "SLURM_NTASKS_PER_NODE",
                                           info.world_size, 1, info.world_size);
  const char* addr = getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0')
    throw DistributedError("a group of " + std::to_string(info.world_size) +
                           " processes needs MASTER_ADDR (rank 0's host; torchrun sets it)");
  info.master_addr = addr;
  if (getenv("MASTER_PORT") == nullptr)
    throw DistributedError("a group of " + std::to_string(info.world_size) +
                           " processes needs MASTER_PORT (torchrun sets it)");
  info.master_port = integer_variable(getenv, "MASTER_PORT", 0, 1, 65535);
  const char* agent_store = getenv("TORCHELASTIC_USE_AGENT_STORE");
  if (agent_store != nullptr && std::string(agent_store) == "True")
    info.agent_store_prefix =
        "/worker/attempt_" + std::to_string(integer_variable(getenv, "TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 30));
  return info;
}

DataParallelGroup::DataParallelGroup(const LaunchInfo& launch, std::chrono::milliseconds timeout)
    : launch_(launch), timeout_(timeout) {
  const std::string where = launch.master_addr + ":" + std::to_string(launch.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(launch.master_port);
    store_options.isServer = launch.rank == 0 && launch.agent_store_prefix.empty();
    store_options.multiTenant = true;  // as PyTorch's workers: other stores may share the port
    store_options.numWorkers = static_cast<size_t>(launch.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    store_ = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, store_options);
    store_->setTimeout(timeout);
    if (!launch.agent_store_prefix.empty())
      store_ = c10::make_intrusive<c10d::PrefixStore>(launch.agent_store_prefix, store_);
  } catch (const std::exception& e) {
    throw DistributedError("rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) +
                           ": the group did not form at " + where + " within " + std::to_string(timeout.count() / 1000) +
                           " s (distributed.timeout_s): " + reason_of(e));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    if (interface != nullptr && *interface != '\0')
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (is_loopback(launch.master_addr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 1;  // the collectives are issued by one thread, one at a time per bucket
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, static_cast<int>(launch.rank),
                                                         static_cast<int>(launch.world_size), options);
  } catch (const std::exception& e) {
    fail("joining the Gloo group at " + where, e);
  }
}

DataParallelGroup::~DataParallelGroup() = default;

void DataParallelGroup::fail(const std::string& what, const std::exception& e) const {
  throw DistributedError("rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": " + what +
                         " failed: " + reason_of(e) + " (another rank stopped, crashed or is unreachable; waited up to " +
                         std::to_string(timeout_.count() / 1000) + " s, distributed.timeout_s)");
}

void DataParallelGroup::broadcast_from_rank0(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  torch::NoGradGuard no_grad;  // parameters are written in place
  try {
    for (const auto& t : tensors) {
      // Gloo sends contiguous memory; a channels-last weight is copied and copied back.
      std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
      c10d::BroadcastOptions options;
      options.rootRank = 0;
      group_->broadcast(one, options)->wait();
      if (!one[0].is_same(t)) t.copy_(one[0]);
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void DataParallelGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors, const std::string& what,
                                       int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;  // gradients and buffers are written in place
  // Buckets: runs of same-dtype tensors up to bucket_bytes, flattened into one buffer each.
  std::vector<std::vector<torch::Tensor>> buckets;
  int64_t filled = 0;
  for (const auto& t : tensors) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (buckets.empty() || buckets.back().front().scalar_type() != t.scalar_type() || filled + bytes > bucket_bytes) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(t);
    filled += bytes;
  }
  try {
    std::vector<std::vector<torch::Tensor>> flat(buckets.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t b = 0; b < buckets.size(); ++b) {
      std::vector<torch::Tensor> pieces;
      for (const auto& t : buckets[b]) pieces.push_back(t.reshape({-1}));
      flat[b] = {torch::cat(pieces)};
      works.push_back(group_->allreduce(flat[b]));  // all buckets in flight at once
    }
    for (size_t b = 0; b < buckets.size(); ++b) {
      works[b]->wait();
      int64_t offset = 0;
      for (auto& t : buckets[b]) {
        t.copy_(flat[b][0].narrow(0, offset, t.numel()).view_as(t));
        offset += t.numel();
      }
    }
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void DataParallelGroup::check_same_on_all_ranks(int64_t digest, const std::string& what) {
  // max(d) == -max(-d) exactly when every rank holds the same d.
  auto both = torch::tensor({digest, -digest}, torch::kInt64);
  try {
    std::vector<torch::Tensor> one{both};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::MAX;
    group_->allreduce(one, options)->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
  if (both[0].item<int64_t>() != -both[1].item<int64_t>())
    throw DistributedError("rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": " + what +
                           " differ between ranks (a bug: the replicas should be bitwise identical)");
}

int64_t bitwise_digest(const std::vector<torch::Tensor>& tensors) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a, 64 bits
  for (const auto& t : tensors) {
    const auto bytes = t.detach().contiguous();
    const auto* p = static_cast<const uint8_t*>(bytes.data_ptr());
    const size_t n = static_cast<size_t>(bytes.numel()) * bytes.element_size();
    for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  }
  return static_cast<int64_t>(hash >> 1);  // non-negative, so its negation cannot overflow
}

}  // namespace maas
