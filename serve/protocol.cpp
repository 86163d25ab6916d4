// v2 JSON handling with nlohmann-json; every field checked before a tensor is made.
#include "protocol.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "image.h"

namespace maas {
namespace {

using nlohmann::json;

void bad(const std::string& message) { throw std::invalid_argument(message); }

// Bounds on the JSON tree of a request, beside the pixel data (which goes into a vector): a
// request needs a few dozen values and depth 7 (with [N][C][H][W] nested pixel arrays).
constexpr int kMaxJsonDepth = 16;
constexpr int64_t kMaxJsonValues = 10000;

// Client strings (ids) are echoed: invalid UTF-8 is replaced, never thrown on.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The numbers of an input's JSON "data", as float (exact for every valid pixel, 0..255 integers
// included) in blocks of 64 Ki values: 4 bytes a value and no doubling copies, where a tree
// would spend 16 or more. Range and integrality are recorded as they arrive, checked later
// against the datatype.
class PixelValues {
 public:
  void add(double v) {
    if (!(v >= 0 && v <= 255)) out_of_range_ = true;
    else if (v != std::floor(v)) fractional_ = true;
    if (blocks_.empty() || blocks_.back().size() == kBlock) {
      blocks_.emplace_back();
      blocks_.back().reserve(kBlock);
    }
    blocks_.back().push_back(static_cast<float>(v));
    ++size_;
  }
  void clear() { *this = PixelValues(); }
  int64_t size() const { return size_; }
  bool out_of_range() const { return out_of_range_; }
  bool fractional() const { return fractional_; }
  // The values as a tensor of `dtype` (kUInt8 or kFloat32) and `shape` (size() elements).
  torch::Tensor to_tensor(const std::vector<int64_t>& shape, torch::Dtype dtype) const {
    torch::Tensor out = torch::empty(shape, dtype);
    int64_t at = 0;
    for (const auto& block : blocks_) {
      const auto n = static_cast<int64_t>(block.size());
      out.view(-1).slice(0, at, at + n).copy_(torch::from_blob(const_cast<float*>(block.data()), {n}, torch::kFloat32));
      at += n;
    }
    return out;
  }

 private:
  static constexpr size_t kBlock = 64 << 10;
  std::vector<std::vector<float>> blocks_;
  int64_t size_ = 0;
  bool out_of_range_ = false, fractional_ = false;
};

// SAX handler for the JSON header: builds the tree (bounded in values and depth) of everything
// but inputs[*].data, whose numbers go straight into PixelValues and never become tree nodes:
// a request then costs a small multiple of its body in memory, also when it declares far more
// images than the server takes (refused only after parsing). The tree keeps an empty "data" array.
class RequestSax {
 public:
  RequestSax(json& root, PixelValues& pixels) : dom_(root), pixels_(pixels) {}

  bool null() { return scalar("null", [&] { return dom_.null(); }); }
  bool boolean(bool v) { return scalar("boolean", [&] { return dom_.boolean(v); }); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v), [&] { return dom_.number_integer(v); }); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v), [&] { return dom_.number_unsigned(v); }); }
  bool number_float(json::number_float_t v, const std::string& text) {
    return number(v, [&] { return dom_.number_float(v, text); });
  }
  bool string(std::string& v) { return scalar("string", [&] { return dom_.string(v); }); }
  bool binary(json::binary_t& v) { return scalar("binary", [&] { return dom_.binary(v); }); }

  bool start_object(size_t n) {
    enter();
    if (data_arrays_ > 0 || data_next_) bad("input 'data' must hold only numbers, found object");
    count_kept();
    return dom_.start_object(n);
  }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool key(std::string& k) {
    count_kept();
    if (depth_ == 1) section_ = k;
    data_next_ = depth_ == 3 && section_ == "inputs" && k == "data";
    // A repeated key replaces the earlier value in the tree; so must it here.
    if (data_next_ || (depth_ == 1 && section_ == "inputs")) pixels_.clear();
    return dom_.key(k);
  }
  bool start_array(size_t n) {
    enter();
    if (data_arrays_ > 0) {
      ++data_arrays_;
      return true;
    }
    if (data_next_) {
      data_next_ = false;
      data_arrays_ = 1;
      return dom_.start_array(0);  // the tree's empty placeholder
    }
    count_kept();
    return dom_.start_array(n);
  }
  bool end_array() {
    --depth_;
    if (data_arrays_ > 0 && --data_arrays_ > 0) return true;
    if (data_arrays_ == 0) data_arrays_ = -1;
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(size_t, const std::string&, const Exception& e) {  // syntax, or a number out of range
    bad(std::string("malformed JSON: ") + e.what());
    return false;
  }

 private:
  void enter() {
    if (++depth_ > kMaxJsonDepth) bad("request JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  void count_kept() {
    if (++kept_ > kMaxJsonValues)
      bad("request JSON has more than " + std::to_string(kMaxJsonValues) + " values outside input 'data'");
  }
  template <typename Forward>
  bool scalar(const char* type, Forward&& forward) {
    if (data_arrays_ > 0 || data_next_) bad(std::string("input 'data' must hold only numbers, found ") + type);
    count_kept();
    return forward();
  }
  template <typename Forward>
  bool number(double v, Forward&& forward) {
    if (data_arrays_ > 0) {
      pixels_.add(v);
      return true;
    }
    if (data_next_) {  // "data": 7, a single number: kept in the tree as before, and counted
      data_next_ = false;
      pixels_.add(v);
      return forward();
    }
    count_kept();
    return forward();
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  PixelValues& pixels_;
  int depth_ = 0;
  std::string section_;    // the top-level key being parsed ("inputs", "outputs", ...)
  int data_arrays_ = -1;   // open arrays inside an input's "data"; -1 = not in one
  bool data_next_ = false;  // the next value is an input's "data"
  int64_t kept_ = 0;        // values kept in the tree (pixels excluded): bounded, so is its memory
};

json parse_header(const std::string& body, size_t header_size, PixelValues& pixels) {
  json root;
  RequestSax sax(root, pixels);
  json::sax_parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(header_size), &sax);
  return root;
}

json output_tensor(const std::string& name, const torch::Tensor& values) {
  const auto flat = values.contiguous();
  std::vector<float> data(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  return {{"name", name}, {"datatype", "FP32"}, {"shape", values.sizes().vec()}, {"data", data}};
}

}  // namespace

InferRequest parse_infer_request(const std::string& body, std::optional<size_t> json_length,
                                 const std::function<void(const std::vector<int64_t>&)>& check_shape) {
  if (body.empty()) bad("empty request body");
  const size_t header_size = json_length.value_or(body.size());
  if (header_size > body.size())
    bad("Inference-Header-Content-Length " + std::to_string(header_size) + " exceeds the body size " +
        std::to_string(body.size()));
  PixelValues values;  // the input's JSON pixel values, if any
  json j = parse_header(body, header_size, values);
  if (!j.is_object()) bad("request must be a JSON object");
  InferRequest request;
  if (j.contains("id")) {
    if (!j["id"].is_string()) bad("'id' must be a string");
    request.id = j["id"].get<std::string>();
  }
  if (!j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].size() != 1)
    bad("'inputs' must be a list with exactly one tensor (named \"image\")");
  const json& input = j["inputs"][0];
  if (!input.is_object()) bad("each input must be an object");
  for (const char* key : {"name", "shape", "datatype"})
    if (!input.contains(key)) bad(std::string("input is missing '") + key + "'");
  if (!input["name"].is_string()) bad("input 'name' must be a string");
  request.input_name = input["name"].get<std::string>();
  if (request.input_name != "image" && request.input_name != "images")
    bad("unknown input '" + request.input_name + "' (the model's input is \"image\")");
  if (!input["datatype"].is_string()) bad("input 'datatype' must be a string");
  const std::string datatype = input["datatype"].get<std::string>();
  if (datatype != "UINT8" && datatype != "FP32") bad("datatype " + datatype + " not supported; use UINT8 or FP32");
  const json& shape_json = input["shape"];
  if (!shape_json.is_array() || shape_json.size() != 4)
    bad("input 'shape' must be [N, C, H, W]");
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (const auto& d : shape_json) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > (1 << 20))
      bad("input 'shape' must hold positive integers");
    shape.push_back(d.get<int64_t>());
    count *= shape.back();
    if (count > (int64_t{1} << 31)) bad("input is too large");
  }
  if (check_shape) check_shape(shape);
  const size_t element_size = datatype == "UINT8" ? 1 : 4;
  const auto dtype = datatype == "UINT8" ? torch::kUInt8 : torch::kFloat32;

  const json* params = input.contains("parameters") ? &input["parameters"] : nullptr;
  if (params && params->contains("binary_data_size")) {
    const json& size = (*params)["binary_data_size"];
    if (!size.is_number_integer() || size.get<int64_t>() < 0) bad("binary_data_size must be a non-negative integer");
    const auto expected = static_cast<size_t>(count) * element_size;
    if (static_cast<size_t>(size.get<int64_t>()) != expected)
      bad("binary_data_size " + std::to_string(size.get<int64_t>()) + " does not match shape and datatype (" +
          std::to_string(expected) + " bytes)");
    if (body.size() - header_size != expected)
      bad("binary data is " + std::to_string(body.size() - header_size) + " bytes, expected " +
          std::to_string(expected));
    request.images = torch::empty(shape, dtype);
    std::memcpy(request.images.data_ptr(), body.data() + header_size, expected);
    if (dtype == torch::kFloat32) {  // the JSON path checks the same: NaN or 1e30 is no pixel
      const float* v = request.images.data_ptr<float>();
      for (int64_t i = 0; i < count; ++i)
        if (!(v[i] >= 0.0f && v[i] <= 255.0f))
          bad("FP32 pixel values must be in 0..255 (element " + std::to_string(i) + " is " + std::to_string(v[i]) + ")");
    }
  } else {
    if (!input.contains("data")) bad("input has no 'data' (or binary_data_size)");
    if (body.size() != header_size) bad("binary data sent but the input has no binary_data_size parameter");
    if (values.size() != count)
      bad("input has " + std::to_string(values.size()) + " values but shape needs " + std::to_string(count));
    if (values.out_of_range() || (datatype == "UINT8" && values.fractional()))
      bad("pixel values must be " + std::string(datatype == "UINT8" ? "integers " : "") + "in 0..255");
    request.images = values.to_tensor(shape, dtype);
  }

  if (j.contains("parameters")) {
    const json& p = j["parameters"];
    if (!p.is_object()) bad("request 'parameters' must be an object");
    if (p.contains("binary_data_output")) {
      if (!p["binary_data_output"].is_boolean()) bad("'binary_data_output' must be true or false");
      request.binary_data_output = p["binary_data_output"].get<bool>();
    }
  }
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) bad("'outputs' must be a list");
    if (j["outputs"].size() > 2) bad("'outputs' lists at most the two outputs, logits and probabilities");
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) bad("each output needs a 'name'");
      OutputSpec spec{o["name"].get<std::string>()};
      spec.binary = request.binary_data_output;
      if (spec.name != "logits" && spec.name != "probabilities")
        bad("unknown output '" + spec.name + "' (outputs: logits, probabilities)");
      for (const auto& earlier : request.outputs)
        if (earlier.name == spec.name) bad("output '" + spec.name + "' is requested twice");
      if (o.contains("parameters")) {
        const json& p = o["parameters"];
        if (!p.is_object()) bad("output 'parameters' must be an object");
        if (p.contains("classification")) {
          if (!p["classification"].is_number_integer() || p["classification"].get<int64_t>() < 1)
            bad("'classification' must be a positive integer");
          spec.classification = p["classification"].get<int64_t>();
        }
        if (p.contains("binary_data")) {
          if (!p["binary_data"].is_boolean()) bad("'binary_data' must be true or false");
          spec.binary = p["binary_data"].get<bool>();
        }
      }
      request.outputs.push_back(spec);
    }
  }
  return request;
}

InferResponse write_infer_response(const InferRequest& request, const std::string& model, int64_t version,
                                   const torch::Tensor& logits, const std::vector<std::string>& classes) {
  std::vector<OutputSpec> outputs = request.outputs;
  if (outputs.empty()) {
    outputs = {{"logits"}, {"probabilities"}};
    for (auto& o : outputs) o.binary = request.binary_data_output;
  }
  json response = {{"model_name", model}, {"model_version", std::to_string(version)}, {"outputs", json::array()}};
  if (request.id) response["id"] = *request.id;
  std::string binary;
  for (const auto& spec : outputs) {
    const torch::Tensor values = spec.name == "logits" ? logits : torch::softmax(logits, 1);
    json output;
    if (spec.classification > 0) {
      const int64_t k = std::min<int64_t>(spec.classification, logits.size(1));
      const auto top = values.topk(k, 1);
      const auto scores = std::get<0>(top).accessor<float, 2>();
      const auto indices = std::get<1>(top).accessor<int64_t, 2>();
      std::vector<std::string> strings;
      for (int64_t i = 0; i < logits.size(0); ++i)
        for (int64_t j = 0; j < k; ++j)
          strings.push_back(std::to_string(scores[i][j]) + ":" + std::to_string(indices[i][j]) + ":" +
                            classes.at(static_cast<size_t>(indices[i][j])));
      output = {{"name", spec.name}, {"datatype", "BYTES"}, {"shape", {logits.size(0), k}}};
      if (spec.binary) {
        // The binary extension's BYTES layout: each element a 4-byte little-endian length, then it.
        const size_t before = binary.size();
        for (const auto& text : strings) {
          const auto n = static_cast<uint32_t>(text.size());
          const char length[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                                  static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
          binary.append(length, 4);
          binary += text;
        }
        output["parameters"] = {{"binary_data_size", binary.size() - before}};
      } else {
        output["data"] = strings;
      }
    } else if (spec.binary) {
      const auto flat = values.contiguous();
      const size_t bytes = static_cast<size_t>(flat.numel()) * sizeof(float);
      binary.append(static_cast<const char*>(flat.data_ptr()), bytes);
      output = {{"name", spec.name},
                {"datatype", "FP32"},
                {"shape", values.sizes().vec()},
                {"parameters", {{"binary_data_size", bytes}}}};
    } else {
      output = output_tensor(spec.name, values);
    }
    response["outputs"].push_back(std::move(output));
  }
  InferResponse out;
  out.body = dump(response);
  if (!binary.empty()) {
    out.json_length = out.body.size();
    out.body += binary;
  }
  return out;
}

std::string write_model_metadata(const std::string& name, const std::vector<int64_t>& versions,
                                 const ArtifactInfo& info) {
  json version_names = json::array();
  for (const int64_t v : versions) version_names.push_back(std::to_string(v));
  const int64_t classes = static_cast<int64_t>(info.classes.size());
  return dump({{"name", name},
               {"versions", version_names},
               {"platform", "pytorch_torchscript"},
               {"inputs", {{{"name", "image"},
                            {"datatype", "UINT8"},
                            {"shape", {-1, info.channels, info.height, info.width}},
                            {"parameters", {{"accepted_datatypes", {"UINT8", "FP32"}}, {"range", {0, 255}}}}}}},
               {"outputs", {{{"name", "logits"}, {"datatype", "FP32"}, {"shape", {-1, classes}}},
                            {{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, classes}}}}},
               {"parameters", {{"classes", info.classes},
                               {"model", info.model_name},
                               {"tta", info.tta},
                               // parsed when the artifact was loaded
                               {"metadata", info.metadata_json.empty() ? json() : json::parse(info.metadata_json)}}}});
}

std::string write_model_config(const std::string& name, const ArtifactInfo& info, const BatchingOptions& b,
                               int64_t instances, int64_t threads_per_instance) {
  const int64_t classes = static_cast<int64_t>(info.classes.size());
  return dump({{"name", name},
               {"platform", "pytorch_torchscript"},
               {"max_batch_size", b.max_batch_size},
               {"input", {{{"name", "image"}, {"data_type", "TYPE_UINT8"}, {"dims", {info.channels, info.height, info.width}}}}},
               {"output", {{{"name", "logits"}, {"data_type", "TYPE_FP32"}, {"dims", {classes}}},
                           {{"name", "probabilities"}, {"data_type", "TYPE_FP32"}, {"dims", {classes}}}}},
               // max_queue_images is maas's own: the queue's capacity in images (beyond it, 503).
               {"dynamic_batching", {{"max_queue_delay_microseconds", b.max_queue_delay_us},
                                     {"max_queue_images", b.max_queue_images}}},
               // threads_per_instance is maas's own: LibTorch intra-op threads of each instance.
               {"instance_group", {{{"count", instances},
                                    {"kind", "KIND_CPU"},
                                    {"threads_per_instance", threads_per_instance}}}}});
}

namespace {
json duration(const DurationStat& d) { return {{"count", d.count}, {"ns", d.ns}}; }
}  // namespace

std::string write_statistics(const std::vector<VersionStats>& models) {
  json list = json::array();
  for (const auto& m : models) {
    const RunnerStats& s = m.stats;
    json batches = json::array();
    for (const auto& [size, b] : s.batches)
      batches.push_back({{"batch_size", size},
                         {"compute_input", duration(b.compute_input)},
                         {"compute_infer", duration(b.compute_infer)},
                         {"compute_output", duration(b.compute_output)}});
    list.push_back({{"name", m.name},
                    {"version", std::to_string(m.version)},
                    {"last_inference", s.last_inference_ms},
                    {"inference_count", s.inference_count},
                    {"execution_count", s.execution_count},
                    {"inference_stats", {{"success", duration(s.success)},
                                         {"fail", duration(s.fail)},
                                         {"queue", duration(s.queue)},
                                         {"compute_input", duration(s.compute_input)},
                                         {"compute_infer", duration(s.compute_infer)},
                                         {"compute_output", duration(s.compute_output)},
                                         {"cache_hit", duration({})},
                                         {"cache_miss", duration({})}}},
                    {"batch_stats", batches}});
  }
  return dump({{"model_stats", list}});
}

std::string write_topk_json(const torch::Tensor& logits, const std::vector<std::string>& classes, int64_t k) {
  const auto probabilities = torch::softmax(logits, 1)[0];
  const auto top = probabilities.topk(std::min<int64_t>(k, probabilities.size(0)));
  nlohmann::ordered_json out = nlohmann::ordered_json::object();  // most probable first
  for (int64_t i = 0; i < std::get<0>(top).size(0); ++i)
    out[classes.at(static_cast<size_t>(std::get<1>(top)[i].item<int64_t>()))] = std::get<0>(top)[i].item<float>();
  return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

int64_t parse_positive_integer(const std::string& what, const std::string& v, int64_t max) {
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos || std::stoll(v) < 1 ||
      std::stoll(v) > max)
    bad(what + " must be an integer in 1.." + std::to_string(max));
  return std::stoll(v);
}

namespace {

// Client text inside an error message: at most 64 bytes, control characters as '?' (a NUL would
// end the exception's message; dump() replaces invalid UTF-8).
std::string quoted(const std::string& text) {
  std::string shown = text.size() > 64 ? text.substr(0, 64) + "..." : text;
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return "'" + shown + "'";
}

}  // namespace

ExplainQuery parse_explain_query(const std::multimap<std::string, std::string>& params,
                                 const std::vector<std::string>& classes, int64_t max_steps) {
  static const std::vector<std::string> known = {"target", "method", "steps", "baseline", "format"};
  for (const auto& [key, value] : params) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      bad("unknown query parameter " + quoted(key) + " (known: target, method, steps, baseline, format)");
    if (params.count(key) > 1) bad("query parameter '" + key + "' is given more than once");
  }
  const auto param = [&](const std::string& key) -> std::optional<std::string> {
    const auto it = params.find(key);
    return it == params.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  ExplainQuery q;
  if (const auto method = param("method")) {
    if (*method == "integrated_gradients") q.request.method = ExplainMethod::kIntegratedGradients;
    else if (*method == "gradient") q.request.method = ExplainMethod::kGradientTimesInput;
    else bad("method " + quoted(*method) + " unknown (integrated_gradients or gradient)");
  }
  const bool integrated = q.request.method == ExplainMethod::kIntegratedGradients;
  if (const auto target = param("target")) {
    const int64_t n = static_cast<int64_t>(classes.size());
    const auto label = std::find(classes.begin(), classes.end(), *target);
    if (label != classes.end()) q.request.target = label - classes.begin();
    else if (!target->empty() && target->size() <= 9 && target->find_first_not_of("0123456789") == std::string::npos &&
             std::stoll(*target) < n)
      q.request.target = std::stoll(*target);
    else bad("target " + quoted(*target) + " is neither a class index in 0.." + std::to_string(n - 1) + " nor a label");
  }
  if (const auto steps = param("steps")) {
    if (!integrated) bad("steps is a parameter of method=integrated_gradients");
    q.request.steps = parse_positive_integer("steps", *steps, max_steps);
  }
  if (const auto baseline = param("baseline")) {
    if (!integrated) bad("baseline is a parameter of method=integrated_gradients");
    size_t used = 0;
    double value = -1;
    try {
      value = baseline->size() <= 32 ? std::stod(*baseline, &used) : -1;
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != baseline->size() || !(value >= 0 && value <= 255))
      bad("baseline must be a pixel value in 0..255 (the uniform baseline image; 0 = black)");
    q.request.baseline = value;
  }
  if (const auto format = param("format")) {
    if (*format != "json" && *format != "png") bad("format " + quoted(*format) + " unknown (json or png)");
    q.png = *format == "png";
  }
  return q;
}

std::string write_explanation_json(const std::string& model, int64_t version, const ExplainRequest& request,
                                   const Explanation& e) {
  const auto a = e.attribution.to(torch::kFloat32).contiguous();
  const auto values = a.accessor<float, 3>();
  json attribution = json::array();
  for (int64_t c = 0; c < a.size(0); ++c) {
    json rows = json::array();
    for (int64_t y = 0; y < a.size(1); ++y) {
      std::vector<float> row(a.size(2));
      for (int64_t x = 0; x < a.size(2); ++x) row[x] = values[c][y][x];
      rows.push_back(std::move(row));
    }
    attribution.push_back(std::move(rows));
  }
  json parameters = json::object();
  json completeness = nullptr;
  if (e.completeness) {
    parameters = {{"steps", request.steps}, {"baseline", request.baseline}, {"rule", "riemann_midpoint"}};
    const Completeness& c = *e.completeness;
    const auto relative = c.relative_error();
    completeness = {{"attribution_sum", c.attribution_sum},
                    {"logit_input", c.logit_input},
                    {"logit_baseline", c.logit_baseline},
                    {"delta", c.delta()},
                    {"relative_error", relative ? json(*relative) : json(nullptr)}};
  }
  return dump({{"model_name", model},
               {"model_version", std::to_string(version)},
               {"method", method_name(request.method)},
               {"parameters", parameters},
               {"target", e.target},
               {"label", e.label},
               {"probability", e.probability},
               {"completeness", completeness},
               {"attribution", attribution}});
}

std::string write_explanation_png(const torch::Tensor& image, const Explanation& explanation) {
  return encode_png(heatmap_overlay(image[0], explanation.attribution));
}

}  // namespace maas
