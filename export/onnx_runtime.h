// Running an ONNX classifier in ONNX Runtime (npm onnxruntime-node) through export/onnxrt/run.mjs.
//
// Why a Node subprocess and not the C API of the package's libonnxruntime.so: the npm package
// ships the library but not its headers (onnxruntime_c_api.h), so the C API would mean
// re-declaring its function table by hand, and a crash of the runtime would take maas-export
// with it. The subprocess uses the package exactly as its users do, is isolated, and costs
// one Node start (~0.2 s) per verification.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace maas {

// The source tree's export/onnxrt, where `npm ci --ignore-scripts` installs onnxruntime-node.
std::string default_onnx_runtime_dir();

struct OnnxRuntimeOptions {
  std::string node = "node";        // the Node.js executable (searched on PATH when it has no '/')
  std::string package_dir = default_onnx_runtime_dir();  // holds run.mjs and node_modules/onnxruntime-node
                                                       // (`npm ci --ignore-scripts` there)
  int timeout_seconds = 600;        // the whole run; then the process is killed
};

// Why ONNX Runtime cannot run here (Node.js missing, the package not installed), naming what to
// install; "" when it can.
std::string onnx_runtime_unavailable(const OnnxRuntimeOptions& options);

struct OnnxRuntimeResult {
  torch::Tensor logits;  // float32 [sum(batches), classes]
  std::string version;   // ONNX Runtime's, e.g. "1.31.1"
};

// Runs the ONNX model `model_bytes` on `images` (uint8 [M, C, H, W], M = sum of `batches`), one
// session.run per entry of `batches`, in order. Temporary files go into a private folder that
// is removed afterwards. Throws std::runtime_error with the runtime's message (one line) when
// it fails, exits non-zero, times out or returns a wrong shape. Requires
// onnx_runtime_unavailable(options) == "".
OnnxRuntimeResult run_onnx_runtime(const std::string& model_bytes, const torch::Tensor& images,
                                   const std::vector<int64_t>& batches, const OnnxRuntimeOptions& options = {});

}  // namespace maas
