// Data-parallel training across processes: the launcher's environment, and a process group on
// c10d's TCPStore and ProcessGroupGloo (PyTorch's own engine) with the collectives the trainer uses.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace c10d {
class ProcessGroupGloo;
class Store;
}  // namespace c10d

namespace maas {

// A collective failed or the group could not form: a rank died, hung or is unreachable. The
// message names this rank, what it was doing and what c10d/Gloo said.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Who this process is in a launch (torchrun, Kubeflow's PyTorchJob, SLURM).
struct LaunchInfo {
  int64_t rank = 0;
  int64_t world_size = 1;        // 1 = not launched as a group: train alone
  int64_t local_rank = 0;        // rank among the processes on this host
  int64_t local_world_size = 1;  // processes on this host (they share its cores)
  std::string master_addr;       // rank 0's host, where the TCPStore listens
  int64_t master_port = 0;
  // torchrun's agent already serves a TCPStore at MASTER_ADDR:MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): every rank connects to it under this key prefix
  // ("/worker/attempt_<TORCHELASTIC_RESTART_COUNT>", as PyTorch's own workers do); "" = rank 0 serves.
  std::string agent_store_prefix;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun and
// PyTorchJob set them), else SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE
// (with MASTER_ADDR/MASTER_PORT still required beyond one process), and torchrun's
// TORCHELASTIC_USE_AGENT_STORE / TORCHELASTIC_RESTART_COUNT. Unset WORLD_SIZE and
// SLURM_NTASKS, or a world of 1, is a single process. Throws DistributedError naming the variable
// for a value that is not a number, out of range, or missing when the world has several ranks.
// `getenv` is injectable for tests.
LaunchInfo launch_info_from_environment(const std::function<const char*(const char*)>& getenv = ::getenv);

// A group of `world_size` processes that train one model. All collectives are blocking, must be
// called by every rank in the same order, and throw DistributedError when a peer is gone or the
// collective does not complete within the timeout. Not thread-safe (one training thread uses it).
class DataParallelGroup {
 public:
  // Joins the group: rank 0 (or torchrun's agent) listens at MASTER_ADDR:MASTER_PORT, the others
  // connect to it; waits up to `timeout` for every rank. Gloo's transport binds to GLOO_SOCKET_IFNAME when set (as
  // torchrun's processes do), to 127.0.0.1 when MASTER_ADDR is a loopback address, else to the
  // address this host's name resolves to. Throws DistributedError when the group cannot form.
  DataParallelGroup(const LaunchInfo& launch, std::chrono::milliseconds timeout);
  ~DataParallelGroup();
  DataParallelGroup(const DataParallelGroup&) = delete;
  DataParallelGroup& operator=(const DataParallelGroup&) = delete;

  int64_t rank() const { return launch_.rank; }
  int64_t size() const { return launch_.world_size; }
  const LaunchInfo& launch() const { return launch_; }

  // Overwrites `tensors` (same shapes and dtypes on every rank) with rank 0's values.
  void broadcast_from_rank0(const std::vector<torch::Tensor>& tensors, const std::string& what);
  // Replaces each tensor by its sum over the ranks, in place. Tensors of one dtype are flattened
  // into buckets of at most `bucket_bytes` (one collective each, all in flight together).
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors, const std::string& what,
                      int64_t bucket_bytes = 8 << 20);
  // Throws DistributedError unless `digest` is the same on every rank.
  void check_same_on_all_ranks(int64_t digest, const std::string& what);

 private:
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const;

  LaunchInfo launch_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

// A digest of tensors' exact bytes (order-sensitive): equal digests on every rank show the
// replicas hold bitwise-identical weights; any changed bit changes it (with overwhelming odds).
int64_t bitwise_digest(const std::vector<torch::Tensor>& tensors);

}  // namespace maas
