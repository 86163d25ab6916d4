// Open Inference Protocol (KServe v2) request parsing and response writing: JSON and the
// binary tensor data extension in, plain structs out (and back). No HTTP here.
#pragma once

#include <torch/torch.h>

#include "artifact.h"
#include "explainer.h"
#include "model_runner.h"

#include <functional>
#include <map>
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
// `check_shape`, when given, sees the declared shape before any tensor is made (and may throw):
// a request declaring more images than the server takes is refused without building them.
// Peak memory: the body, plus 4 bytes per JSON pixel value (at most twice the JSON), plus the tensor.
InferRequest parse_infer_request(const std::string& body, std::optional<size_t> json_length,
                                 const std::function<void(const std::vector<int64_t>&)>& check_shape = {});

struct InferResponse {
  std::string body;
  std::optional<size_t> json_length;  // set when the body carries binary data
};

// Builds the v2 response for `logits` [N, classes] of `model`/`version`.
InferResponse write_infer_response(const InferRequest& request, const std::string& model, int64_t version,
                                   const torch::Tensor& logits, const std::vector<std::string>& classes);

// GET /v2/models/{m}: the v2 model metadata; parameters.metadata is the artifact's metadata.json
// (architecture, parameters, MACs, training config and accuracy, creation date, format: the
// web page's model card).
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

// An integer query parameter or header value `what` = `value` in 1..max; throws
// std::invalid_argument "<what> must be an integer in 1..<max>" otherwise.
int64_t parse_positive_integer(const std::string& what, const std::string& value, int64_t max);

// What POST /explanations asks, from its query parameters: everything of an ExplainRequest but
// the image, and the answer's format.
struct ExplainQuery {
  ExplainRequest request;  // image left empty
  bool png = false;        // format=png: a heatmap image instead of JSON
};

// Parses /explanations' query parameters (`params` as httplib gives them): target (a class index
// or a label of `classes`; default: the predicted class), method (integrated_gradients, the
// default, or gradient), steps (1..max_steps, default kDefaultExplainSteps; integrated gradients
// only), baseline (pixel value 0..255, default 0; integrated gradients only), format (json or png).
// Throws std::invalid_argument naming the parameter for an unknown, repeated or invalid one
// (client text is quoted at most 64 bytes long).
ExplainQuery parse_explain_query(const std::multimap<std::string, std::string>& params,
                                 const std::vector<std::string>& classes, int64_t max_steps);

// The JSON answer: model, model_version, target, label, probability, method, parameters (steps,
// baseline, rule), completeness (integrated gradients), attribution ([C][H][W] nested lists).
std::string write_explanation_json(const std::string& model, int64_t version, const ExplainRequest& request,
                                   const Explanation& explanation);

// The format=png answer: heatmap_overlay() (explainer.h) of `image` (uint8 [1, C, H, W], the
// resized input) and the attribution, as PNG bytes.
std::string write_explanation_png(const torch::Tensor& image, const Explanation& explanation);

}  // namespace maas
