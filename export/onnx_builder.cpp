// TorchScript graph -> ONNX: graph preparation, one conversion per operator, checker.
#include "onnx_builder.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/fuse_linear.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "artifact.h"

namespace maas {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The operator's name as TorchScript prints it, e.g. "aten::conv2d".
std::string kind_of(const Node* node) { return node->kind().toQualString(); }

// Replaces the input's dim() and size(1..3) by the spec's (the ONNX input's static dimensions),
// in `block` and the blocks nested in it (the shape assertion's `and` chain nests its tests).
void substitute_input_dimensions(torch::jit::Graph& graph, torch::jit::Block* block, const Value* images,
                                 const ModelSpec& spec) {
  static const auto dim = c10::Symbol::fromQualString("aten::dim");
  static const auto size = c10::Symbol::fromQualString("aten::size");
  const int64_t dims[] = {-1, spec.channels, spec.height, spec.width};
  for (Node* node : block->nodes()) {
    for (torch::jit::Block* inner : node->blocks()) substitute_input_dimensions(graph, inner, images, spec);
    if (node->inputs().empty() || node->input(0) != images || node->outputs().size() != 1) continue;
    torch::jit::WithInsertPoint here(node);
    if (node->kind() == dim && node->inputs().size() == 1) {
      node->output()->replaceAllUsesWith(graph.insertConstant(int64_t{4}));
    } else if (node->kind() == size && node->inputs().size() == 2) {
      const auto axis = torch::jit::constant_as<int64_t>(node->input(1));
      if (!axis) continue;
      const int64_t a = *axis < 0 ? *axis + 4 : *axis;
      if (a >= 1 && a <= 3) node->output()->replaceAllUsesWith(graph.insertConstant(dims[a]));
    }
  }
}

// ---- ONNX protobuf helpers ----

int32_t onnx_type_of(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float: return onnx::TensorProto::FLOAT;
    case c10::ScalarType::Long: return onnx::TensorProto::INT64;
    case c10::ScalarType::Byte: return onnx::TensorProto::UINT8;
    default: return onnx::TensorProto::UNDEFINED;
  }
}

void add_ints_attribute(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const int64_t v : values) a->add_ints(v);
}

void add_int_attribute(onnx::NodeProto& node, const std::string& name, int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void add_float_attribute(onnx::NodeProto& node, const std::string& name, float value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void add_string_attribute(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

// Builds the GraphProto: names for the graph's values, initializers for its constants, nodes.
class Converter {
 public:
  Converter(onnx::GraphProto& graph, const Value* output) : graph_(graph), output_(output) {}

  // The ONNX name of tensor value `v`: its producer's output, or an initializer for a constant.
  std::string tensor(const Value* v, const Node* user) {
    const auto found = names_.find(v);
    if (found != names_.end()) return found->second;
    const auto constant = torch::jit::toIValue(v);
    if (!constant || !constant->isTensor())
      throw OnnxConversionError(kind_of(user) + " reads a value that is neither a tensor computed by the graph nor a "
                                "constant tensor (" + kind_of(v->node()) + ")");
    auto t = constant->toTensor();
    // A number wrapped as a 0-d double tensor computes in the other operand's float32 (type promotion).
    if (t.dim() == 0 && t.scalar_type() == torch::kDouble) t = t.to(torch::kFloat32);
    const std::string name = initializer(t, "const_" + v->debugName(), user);
    names_.emplace(v, name);
    return name;
  }

  // The constant argument `v` of `user` (int, float, list, None...); refuses one computed at run time.
  c10::IValue constant(const Value* v, const Node* user, const char* what) const {
    const auto constant = torch::jit::toIValue(v);
    if (!constant)
      throw OnnxConversionError(kind_of(user) + " with a " + what + " computed at run time (only constants convert)");
    return *constant;
  }
  std::vector<int64_t> ints(const Value* v, const Node* user, const char* what) const {
    const auto value = constant(v, user, what);
    if (value.isInt()) return {value.toInt()};
    if (!value.isIntList()) throw OnnxConversionError(kind_of(user) + ": its " + what + " is not a list of ints");
    return value.toIntVector();
  }
  int64_t int_of(const Value* v, const Node* user, const char* what) const {
    const auto value = constant(v, user, what);
    if (!value.isInt()) throw OnnxConversionError(kind_of(user) + ": its " + what + " is not an int");
    return value.toInt();
  }
  double number(const Value* v, const Node* user, const char* what) const {
    const auto value = constant(v, user, what);
    if (value.isDouble()) return value.toDouble();
    if (value.isInt()) return static_cast<double>(value.toInt());
    if (value.isBool()) return value.toBool() ? 1 : 0;
    throw OnnxConversionError(kind_of(user) + ": its " + what + " is not a number");
  }
  bool is_none(const Value* v) const {
    const auto value = torch::jit::toIValue(v);
    return value && value->isNone();
  }
  bool is_tensor(const Value* v) const {
    if (names_.count(v)) return true;
    const auto value = torch::jit::toIValue(v);
    return value && value->isTensor();
  }

  // A tensor initializer holding `t` (float32, int64 or uint8); returns its name.
  std::string initializer(const torch::Tensor& t, const std::string& base, const Node* user) {
    const int32_t type = onnx_type_of(t.scalar_type());
    if (type == onnx::TensorProto::UNDEFINED)
      throw OnnxConversionError(kind_of(user) + " reads a constant of type " + std::string(c10::toString(t.scalar_type())) +
                                " (float32, int64 and uint8 convert)");
    const auto dense = t.contiguous().cpu();
    std::string raw(static_cast<const char*>(dense.data_ptr()), dense.nbytes());  // little-endian, as x86
    // One initializer per distinct tensor: TTA traces the network once per view, and freezing
    // gives each view its own copy of the same weights.
    std::string key = std::to_string(type) + ":";
    for (const int64_t d : dense.sizes()) key += std::to_string(d) + ",";
    key += ":" + raw;
    const auto known = initializers_.find(key);
    if (known != initializers_.end()) return known->second;
    auto* proto = graph_.add_initializer();
    proto->set_name(fresh(base));
    proto->set_data_type(type);
    for (const int64_t d : dense.sizes()) proto->add_dims(d);
    proto->set_raw_data(std::move(raw));
    initializers_.emplace(std::move(key), proto->name());
    return proto->name();
  }
  std::string float_scalar(double value, const std::string& base, const Node* user) {
    return initializer(torch::tensor(static_cast<float>(value)), base, user);
  }
  std::string int64s(const std::vector<int64_t>& values, const std::string& base, const Node* user) {
    return initializer(torch::tensor(values, torch::kInt64), base, user);
  }

  // A new ONNX node; `outputs` are names (from fresh() or output_name()).
  onnx::NodeProto& add(const std::string& op_type, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& outputs) {
    auto* node = graph_.add_node();
    node->set_op_type(op_type);
    node->set_name(fresh(op_type + "_" + outputs.at(0)));
    for (const auto& i : inputs) node->add_input(i);
    for (const auto& o : outputs) node->add_output(o);
    return *node;
  }

  // The name `node`'s (only) output gets: "logits" for the graph's output, else from its debug name.
  std::string output_name(const Node* node) {
    const Value* v = node->output();
    const std::string name = v == output_ ? "logits" : fresh(v->debugName());
    names_[v] = name;
    return name;
  }
  // A name for an intermediate tensor of a multi-node conversion.
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; !used_.insert(name).second; ++i) name = base + "_" + std::to_string(i);
    return name;
  }
  void name_input(const Value* v, const std::string& name) {
    names_[v] = name;
    used_.insert(name);
  }
  // `node`'s output is its input's tensor (contiguous, clone, ...): no ONNX node, except for the graph's output.
  void alias(const Node* node) {
    const std::string input = tensor(node->input(0), node);
    if (node->output() == output_)
      add("Identity", {input}, {output_name(node)});
    else
      names_[node->output()] = input;
  }

 private:
  onnx::GraphProto& graph_;
  const Value* output_;
  std::unordered_map<const Value*, std::string> names_;
  std::unordered_set<std::string> used_;
  std::unordered_map<std::string, std::string> initializers_;  // type, dims and bytes -> name
};

using Conversion = std::function<void(Converter&, const Node*)>;

// ---- the conversions, one per TorchScript operator ----

// Two-element list from torch's one-or-two-element int lists (kernel 2 means 2x2).
std::vector<int64_t> pair_of(std::vector<int64_t> v, const Node* node, const char* what) {
  if (v.size() == 1) v.push_back(v[0]);
  if (v.size() != 2) throw OnnxConversionError(kind_of(node) + ": " + what + " has " + std::to_string(v.size()) +
                                               " entries (2-d operators convert)");
  return v;
}

void convert_convolution(Converter& c, const Node* node) {
  // aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
  // aten::conv2d(input, weight, bias, stride, padding, dilation, groups)
  const bool underscore = node->kind() == c10::Symbol::fromQualString("aten::_convolution");
  if (underscore && c.constant(node->input(6), node, "transposed flag").toBool())
    throw OnnxConversionError("aten::_convolution transposed (ConvTranspose) has no conversion");
  const auto padding_value = c.constant(node->input(4), node, "padding");
  if (padding_value.isString())
    throw OnnxConversionError(kind_of(node) + " with padding '" + padding_value.toStringRef() +
                              "' (numeric padding converts)");
  const auto weight = torch::jit::toIValue(node->input(1));
  if (!weight || !weight->isTensor() || weight->toTensor().dim() != 4)
    throw OnnxConversionError(kind_of(node) + " with a weight that is not a constant 4-d tensor");
  std::vector<std::string> inputs{c.tensor(node->input(0), node), c.tensor(node->input(1), node)};
  if (!c.is_none(node->input(2))) inputs.push_back(c.tensor(node->input(2), node));
  const auto stride = pair_of(c.ints(node->input(3), node, "stride"), node, "stride");
  const auto padding = pair_of(c.ints(node->input(4), node, "padding"), node, "padding");
  const auto dilation = pair_of(c.ints(node->input(5), node, "dilation"), node, "dilation");
  const int64_t groups = c.int_of(node->input(underscore ? 8 : 6), node, "groups");
  auto& conv = c.add("Conv", inputs, {c.output_name(node)});
  const auto w = weight->toTensor();
  add_ints_attribute(conv, "kernel_shape", {w.size(2), w.size(3)});
  add_ints_attribute(conv, "strides", stride);
  add_ints_attribute(conv, "pads", {padding[0], padding[1], padding[0], padding[1]});
  add_ints_attribute(conv, "dilations", dilation);
  add_int_attribute(conv, "group", groups);
}

void convert_batch_norm(Converter& c, const Node* node) {
  // aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
  if (c.constant(node->input(5), node, "training flag").toBool())
    throw OnnxConversionError("aten::batch_norm in training mode has no conversion");
  const auto mean = torch::jit::toIValue(node->input(3));
  if (!mean || !mean->isTensor()) throw OnnxConversionError("aten::batch_norm without constant running statistics");
  const int64_t channels = mean->toTensor().numel();
  auto param = [&](size_t index, float fill, const char* base) {
    return c.is_none(node->input(index)) ? c.initializer(torch::full({channels}, fill), base, node)
                                         : c.tensor(node->input(index), node);
  };
  auto& bn = c.add("BatchNormalization",
                   {c.tensor(node->input(0), node), param(1, 1.f, "bn_scale"), param(2, 0.f, "bn_shift"),
                    c.tensor(node->input(3), node), c.tensor(node->input(4), node)},
                   {c.output_name(node)});
  add_float_attribute(bn, "epsilon", static_cast<float>(c.number(node->input(7), node, "eps")));
}

void convert_gelu(Converter& c, const Node* node) {
  // Opset 17 has no Gelu: x * 0.5 * (1 + erf(x / sqrt(2))), as ATen computes it (approximate="none").
  if (node->inputs().size() > 1) {
    const auto approximate = c.constant(node->input(1), node, "approximate");
    if (!approximate.isString() || approximate.toStringRef() != "none")
      throw OnnxConversionError("aten::gelu with approximate='" +
                                (approximate.isString() ? approximate.toStringRef() : std::string("?")) +
                                "' has no conversion (approximate='none' converts)");
  }
  const std::string x = c.tensor(node->input(0), node);
  const std::string scaled = c.fresh(x + "/gelu_scaled"), erf = c.fresh(x + "/gelu_erf"),
                    plus_one = c.fresh(x + "/gelu_plus_one"), half = c.fresh(x + "/gelu_half");
  c.add("Mul", {x, c.float_scalar(M_SQRT1_2, "sqrt1_2", node)}, {scaled});
  c.add("Erf", {scaled}, {erf});
  c.add("Add", {erf, c.float_scalar(1.0, "one", node)}, {plus_one});
  c.add("Mul", {x, c.float_scalar(0.5, "half", node)}, {half});
  c.add("Mul", {half, plus_one}, {c.output_name(node)});
}

void convert_max_pool(Converter& c, const Node* node) {
  // aten::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
  const auto kernel = pair_of(c.ints(node->input(1), node, "kernel_size"), node, "kernel_size");
  auto stride_list = c.ints(node->input(2), node, "stride");
  const auto stride = stride_list.empty() ? kernel : pair_of(stride_list, node, "stride");  // empty: the kernel
  const auto padding = pair_of(c.ints(node->input(3), node, "padding"), node, "padding");
  const auto dilation = pair_of(c.ints(node->input(4), node, "dilation"), node, "dilation");
  auto& pool = c.add("MaxPool", {c.tensor(node->input(0), node)}, {c.output_name(node)});
  add_ints_attribute(pool, "kernel_shape", kernel);
  add_ints_attribute(pool, "strides", stride);
  add_ints_attribute(pool, "pads", {padding[0], padding[1], padding[0], padding[1]});
  add_ints_attribute(pool, "dilations", dilation);
  add_int_attribute(pool, "ceil_mode", c.constant(node->input(5), node, "ceil_mode").toBool() ? 1 : 0);
}

void convert_amax(Converter& c, const Node* node) {
  // aten::amax(input, dim, keepdim): global max-pooling over H and W. Opset 17 keeps axes an attribute.
  const auto axes = c.ints(node->input(1), node, "dim");
  if (axes.empty()) throw OnnxConversionError("aten::amax over all dimensions (an empty dim list) has no conversion");
  auto& reduce = c.add("ReduceMax", {c.tensor(node->input(0), node)}, {c.output_name(node)});
  add_ints_attribute(reduce, "axes", axes);
  add_int_attribute(reduce, "keepdims", c.constant(node->input(2), node, "keepdim").toBool() ? 1 : 0);
}

void convert_linear(Converter& c, const Node* node) {
  // aten::linear(input, weight [out, in], bias?) = input @ weight^T + bias. Gemm for the usual
  // 2-d input; MatMul (+ Add) when the rank is not known to be 2.
  const std::string x = c.tensor(node->input(0), node);
  const auto type = node->input(0)->type()->cast<c10::TensorType>();
  const bool has_bias = !c.is_none(node->input(2));
  if (type && type->dim() && *type->dim() == 2) {
    std::vector<std::string> inputs{x, c.tensor(node->input(1), node)};
    if (has_bias) inputs.push_back(c.tensor(node->input(2), node));
    add_int_attribute(c.add("Gemm", inputs, {c.output_name(node)}), "transB", 1);
    return;
  }
  const auto weight = torch::jit::toIValue(node->input(1));
  if (!weight || !weight->isTensor() || weight->toTensor().dim() != 2)
    throw OnnxConversionError("aten::linear with a weight that is not a constant 2-d tensor");
  const std::string transposed = c.initializer(weight->toTensor().t(), "linear_weight_t", node);
  if (!has_bias) {
    c.add("MatMul", {x, transposed}, {c.output_name(node)});
    return;
  }
  const std::string product = c.fresh(x + "/matmul");
  c.add("MatMul", {x, transposed}, {product});
  c.add("Add", {product, c.tensor(node->input(2), node)}, {c.output_name(node)});
}

void convert_flatten(Converter& c, const Node* node) {
  // aten::flatten(input, start_dim, end_dim): [N, ...] -> [N, rest] is ONNX's Flatten(axis=1).
  const int64_t start = c.int_of(node->input(1), node, "start_dim"), end = c.int_of(node->input(2), node, "end_dim");
  const auto type = node->input(0)->type()->cast<c10::TensorType>();
  const bool to_last = end == -1 || (type && type->dim() && end == static_cast<int64_t>(*type->dim()) - 1);
  if (start != 1 || !to_last)
    throw OnnxConversionError("aten::flatten(start_dim=" + std::to_string(start) + ", end_dim=" + std::to_string(end) +
                              ") has no conversion (flatten(1) converts)");
  add_int_attribute(c.add("Flatten", {c.tensor(node->input(0), node)}, {c.output_name(node)}), "axis", 1);
}

// aten::add / sub / mul / div: tensor op tensor or tensor op number; add and sub with alpha 1.
Conversion elementwise(const std::string& op_type, bool has_alpha) {
  return [op_type, has_alpha](Converter& c, const Node* node) {
    if (has_alpha && node->inputs().size() > 2 && c.number(node->input(2), node, "alpha") != 1)
      throw OnnxConversionError(kind_of(node) + " with alpha other than 1 has no conversion");
    if (node->inputs().size() > 2 && !has_alpha)
      throw OnnxConversionError(kind_of(node) + " with a rounding mode has no conversion");
    auto operand = [&](const Value* v, const char* base) {
      return c.is_tensor(v) ? c.tensor(v, node) : c.float_scalar(c.number(v, node, "operand"), base, node);
    };
    c.add(op_type, {operand(node->input(0), "lhs"), operand(node->input(1), "rhs")}, {c.output_name(node)});
  };
}

void convert_addcmul(Converter& c, const Node* node) {
  // aten::addcmul(self, t1, t2, value) = self + value * t1 * t2: the pixel normalization.
  const double value = c.number(node->input(3), node, "value");
  std::string product = c.fresh(node->output()->debugName() + "/product");
  c.add("Mul", {c.tensor(node->input(1), node), c.tensor(node->input(2), node)}, {product});
  if (value != 1) {
    const std::string scaled = c.fresh(product + "_scaled");
    c.add("Mul", {product, c.float_scalar(value, "addcmul_value", node)}, {scaled});
    product = scaled;
  }
  c.add("Add", {c.tensor(node->input(0), node), product}, {c.output_name(node)});
}

void convert_to(Converter& c, const Node* node) {
  // aten::to(input, dtype, ...): images.float(). Only the dtype overloads, only to float32.
  const Value* dtype = nullptr;
  for (size_t i = 0; i < node->inputs().size(); ++i)
    if (node->schema().arguments().at(i).name() == "dtype") dtype = node->input(i);
  if (!dtype) throw OnnxConversionError("aten::to without a dtype (device or tensor overloads) has no conversion");
  const auto target = static_cast<c10::ScalarType>(c.int_of(dtype, node, "dtype"));
  if (target != c10::ScalarType::Float)
    throw OnnxConversionError(std::string("aten::to(dtype=") + c10::toString(target) +
                              ") has no conversion (float32 converts)");
  add_int_attribute(c.add("Cast", {c.tensor(node->input(0), node)}, {c.output_name(node)}), "to",
                    onnx::TensorProto::FLOAT);
}

void convert_flip(Converter& c, const Node* node) {
  // aten::flip(input, dims): a Slice that walks each axis backwards (ONNX has no Flip).
  const auto axes = c.ints(node->input(1), node, "dims");
  const std::vector<int64_t> starts(axes.size(), -1), ends(axes.size(), std::numeric_limits<int64_t>::min()),
      steps(axes.size(), -1);
  c.add("Slice",
        {c.tensor(node->input(0), node), c.int64s(starts, "flip_starts", node), c.int64s(ends, "flip_ends", node),
         c.int64s(axes, "flip_axes", node), c.int64s(steps, "flip_steps", node)},
        {c.output_name(node)});
}

void convert_reflection_pad(Converter& c, const Node* node) {
  // aten::reflection_pad2d(input, [left, right, top, bottom]) -> Pad(mode=reflect) over [N, C, H, W].
  const auto p = c.ints(node->input(1), node, "padding");
  if (p.size() != 4) throw OnnxConversionError("aten::reflection_pad2d with " + std::to_string(p.size()) + " paddings");
  auto& pad = c.add("Pad",
                    {c.tensor(node->input(0), node), c.int64s({0, 0, p[2], p[0], 0, 0, p[3], p[1]}, "pads", node)},
                    {c.output_name(node)});
  add_string_attribute(pad, "mode", "reflect");
}

void convert_slice(Converter& c, const Node* node) {
  // aten::slice(input, dim, start, end, step): None means the whole axis.
  const int64_t axis = c.int_of(node->input(1), node, "dim");
  const int64_t start = c.is_none(node->input(2)) ? 0 : c.int_of(node->input(2), node, "start");
  const int64_t end =
      c.is_none(node->input(3)) ? std::numeric_limits<int64_t>::max() : c.int_of(node->input(3), node, "end");
  const int64_t step = c.int_of(node->input(4), node, "step");
  c.add("Slice",
        {c.tensor(node->input(0), node), c.int64s({start}, "slice_starts", node), c.int64s({end}, "slice_ends", node),
         c.int64s({axis}, "slice_axes", node), c.int64s({step}, "slice_steps", node)},
        {c.output_name(node)});
}

void convert_narrow(Converter& c, const Node* node) {
  // aten::narrow(input, dim, start, length)
  const int64_t axis = c.int_of(node->input(1), node, "dim"), start = c.int_of(node->input(2), node, "start"),
                length = c.int_of(node->input(3), node, "length");
  if (start < 0) throw OnnxConversionError("aten::narrow with a negative start has no conversion");
  c.add("Slice",
        {c.tensor(node->input(0), node), c.int64s({start}, "narrow_starts", node),
         c.int64s({start + length}, "narrow_ends", node), c.int64s({axis}, "narrow_axes", node)},
        {c.output_name(node)});
}

void convert_dropout(Converter& c, const Node* node) {
  if (c.constant(node->input(2), node, "train flag").toBool())
    throw OnnxConversionError("aten::dropout in training mode has no conversion");
  c.alias(node);
}

const std::map<std::string, Conversion>& conversions() {
  static const std::map<std::string, Conversion> table = {
      {"aten::_convolution", convert_convolution},
      {"aten::conv2d", convert_convolution},
      {"aten::batch_norm", convert_batch_norm},
      {"aten::relu", [](Converter& c, const Node* n) { c.add("Relu", {c.tensor(n->input(0), n)}, {c.output_name(n)}); }},
      {"aten::relu_", [](Converter& c, const Node* n) { c.add("Relu", {c.tensor(n->input(0), n)}, {c.output_name(n)}); }},
      {"aten::gelu", convert_gelu},
      {"aten::max_pool2d", convert_max_pool},
      {"aten::amax", convert_amax},
      {"aten::linear", convert_linear},
      {"aten::flatten", convert_flatten},
      {"aten::add", elementwise("Add", true)},
      {"aten::add_", elementwise("Add", true)},
      {"aten::sub", elementwise("Sub", true)},
      {"aten::mul", elementwise("Mul", false)},
      {"aten::mul_", elementwise("Mul", false)},
      {"aten::div", elementwise("Div", false)},
      {"aten::addcmul", convert_addcmul},
      {"aten::to", convert_to},
      {"aten::flip", convert_flip},
      {"aten::reflection_pad2d", convert_reflection_pad},
      {"aten::slice", convert_slice},
      {"aten::narrow", convert_narrow},
      {"aten::contiguous", [](Converter& c, const Node* n) { c.alias(n); }},
      {"aten::clone", [](Converter& c, const Node* n) { c.alias(n); }},
      {"aten::detach", [](Converter& c, const Node* n) { c.alias(n); }},
      {"aten::dropout", convert_dropout},
  };
  return table;
}

void add_tensor_value_info(onnx::ValueInfoProto& info, const std::string& name, int32_t type,
                           const std::vector<int64_t>& dims) {
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(type);
  for (const int64_t d : dims) {
    auto* dim = tensor->mutable_shape()->add_dim();
    if (d < 0)
      dim->set_dim_param("N");  // the batch: any size
    else
      dim->set_dim_value(d);
  }
}

}  // namespace

std::shared_ptr<torch::jit::Graph> onnx_ready_graph(const torch::jit::Module& artifact_module, const ModelSpec& spec) {
  torch::jit::Module frozen;
  try {
    torch::jit::Module copy = artifact_module.clone();
    copy.eval();
    for (auto& method : copy.get_methods()) {
      auto graph = method.graph();
      torch::jit::FuseLinear(graph);
    }
    frozen = torch::jit::freeze(copy);
  } catch (const std::exception& e) {
    throw ArtifactError("freezing the module for ONNX failed: " + std::string(e.what()).substr(0, 600));
  }
  auto graph = frozen.get_method("forward").graph()->copy();
  substitute_input_dimensions(*graph, graph->block(), graph->inputs().back(), spec);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
  return graph;
}

onnx::ModelProto graph_to_onnx(const torch::jit::Graph& graph, const ModelSpec& spec,
                               const std::vector<std::pair<std::string, std::string>>& metadata) {
  if (graph.outputs().size() != 1) throw OnnxConversionError("a forward with several outputs has no conversion");
  const Value* images = graph.inputs().back();
  for (const Value* input : graph.inputs())
    if (input != images && !input->uses().empty())
      throw OnnxConversionError("a forward that reads module attributes at run time (not frozen) has no conversion");

  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  model.set_producer_name("maas-export");
  model.set_producer_version(MAAS_VERSION);
  auto& g = *model.mutable_graph();
  g.set_name("maas_classifier");
  add_tensor_value_info(*g.add_input(), "images", onnx::TensorProto::UINT8, {-1, spec.channels, spec.height, spec.width});
  add_tensor_value_info(*g.add_output(), "logits", onnx::TensorProto::FLOAT, {-1, spec.classes});

  Converter converter(g, graph.outputs()[0]);
  converter.name_input(images, "images");
  for (const Node* node : graph.nodes()) {
    if (node->kind() == c10::prim::Constant) continue;  // read where used: attributes or initializers
    const auto conversion = conversions().find(kind_of(node));
    if (conversion == conversions().end()) {
      std::string known;
      for (const auto& name : onnx_convertible_operators()) known += (known.empty() ? "" : ", ") + name;
      throw OnnxConversionError("operator " + kind_of(node) + " has no ONNX conversion (maas converts " + known + ")");
    }
    if (node->outputs().size() != 1)
      throw OnnxConversionError(kind_of(node) + " with " + std::to_string(node->outputs().size()) + " outputs");
    conversion->second(converter, node);
  }
  // The output must come from a node (a forward returning its input or a constant has none).
  if (converter.tensor(graph.outputs()[0], graph.outputs()[0]->node()) != "logits")
    throw OnnxConversionError("a forward whose output is its input or a constant has no conversion");
  for (const auto& [key, value] : metadata) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  return model;
}

std::vector<std::string> onnx_convertible_operators() {
  std::vector<std::string> names;
  for (const auto& entry : conversions()) names.push_back(entry.first);
  return names;
}

void check_onnx_model(const onnx::ModelProto& model, const ModelSpec& spec) {
  onnx::ModelProto inferred = model;
  try {
    onnx::checker::check_model(model);
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
  } catch (const std::exception& e) {
    throw ArtifactError("the ONNX checker refuses the converted model: " + std::string(e.what()).substr(0, 600));
  }
  const auto& shape = inferred.graph().output(0).type().tensor_type().shape();
  if (shape.dim_size() != 2 || shape.dim(0).dim_param() != "N" || shape.dim(1).dim_value() != spec.classes)
    throw ArtifactError("the ONNX model's output is not [N, " + std::to_string(spec.classes) + "] logits");
}

}  // namespace maas
