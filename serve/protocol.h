// Open Inference Protocol (KServe v2) request parsing and response writing: JSON and the
// binary tensor data extension in, plain structs out (and back). No HTTP here.
#pragma once

#include <torch/torch.h>

#include "artifact.h"
#include "model_runner.h"

#include <optional>
#include <string>
#include <vector>

namespace maas {

// One requested output: "logits" or "probabilities"; classification > 0 asks for the top-K
// "score:index:label" strings (BYTES) instead of numbers; binary asks for binary tensor data
// (for BYTES: each element as a 4-byte little-endian length and its bytes).
struct OutputSpec {
  std::string name;
  int64_t classification = 0;
  bool binary = false;
};

// A validated inference request. images is uint8 or float32 [N, C, H, W] (shape as sent).
struct InferRequest {
  std::optional<std::string> id;
  std::string input_name;
  torch::Tensor images;
  std::vector<OutputSpec> outputs;  // empty = all outputs (binary if binary_data_output)
  bool binary_data_output = false;  // request "parameters": outputs default to binary data
};

// Parses a v2 infer body (at most two distinct outputs; FP32 pixels must be in 0..255, also
// as binary data; the JSON outside the pixel data is bounded in values and depth). `json_length` is Inference-Header-Content-Length, or the whole body
// when absent; bytes after it hold binary tensor data. Requires exactly one input named
// "image" (or "images") with datatype UINT8 or FP32, a 4-dimensional shape and matching data.
// Throws std::invalid_argument naming the problem (becomes 400).
InferRequest parse_infer_request(const std::string& body, std::optional<size_t> json_length);

struct InferResponse {
  std::string body;
  std::optional<size_t> json_length;  // set when the body carries binary data
};

// Builds the v2 response for `logits` [N, classes] of `model`/`version`.
InferResponse write_infer_response(const InferRequest& request, const std::string& model, int64_t version,
                                   const torch::Tensor& logits, const std::vector<std::string>& classes);

// GET /v2/models/{m}: the v2 model metadata.
std::string write_model_metadata(const std::string& name, const std::vector<int64_t>& versions,
                                 const ArtifactInfo& info);
// GET /v2/models/{m}/config: Triton's model configuration (max_batch_size, dynamic batching).
std::string write_model_config(const std::string& name, const ArtifactInfo& info, const BatchingOptions& batching,
                               int64_t instances, int64_t threads_per_instance);

struct VersionStats {
  std::string name;
  int64_t version = 0;
  RunnerStats stats;
};
// The statistics extension's answer ({"model_stats": [...]}, Triton's format).
std::string write_statistics(const std::vector<VersionStats>& models);

// {"label": probability, ...} of the k most probable classes of one image's logits [1, classes].
std::string write_topk_json(const torch::Tensor& logits, const std::vector<std::string>& classes, int64_t k);

}  // namespace maas
