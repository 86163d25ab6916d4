// Static int8 quantization: observers defined in TorchScript from C++, then LibTorch's graph-mode passes.
#include "quantize.h"

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/ir/irparser.h>
#include <torch/csrc/jit/passes/fuse_linear.h>
#include <torch/csrc/jit/passes/graph_rewrite_helper.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/passes/subgraph_rewrite.h>

#include <functional>
#include <limits>

#include "artifact.h"
#include "dataset.h"

namespace maas {
namespace {

using torch::jit::Module;

// The smallest scale the observers hand out (PyTorch's observers use float32's epsilon too):
// a constant activation or an all-zero weight row would otherwise get scale 0.
constexpr const char* kMinScale = "1.1920928955078125e-07";

// The attributes InsertQuantDeQuant reads from every observer (insert_quant_dequant.cpp in
// LibTorch 1.13): `dtype` (a ScalarType, stored as int), `qscheme` (a QScheme, stored as int),
// `ch_axis` for per-channel ones, and calculate_qparams() -> (scale, zero_point).
// InsertObservers calls forward(x) -> x.
// Its class goes into `cu`, the compilation unit of the module it will observe.
Module observer_module(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const std::string& name,
                       c10::ScalarType dtype, c10::QScheme qscheme, int64_t quant_min, int64_t quant_max) {
  Module observer(c10::QualifiedName("__torch__.maas.quantization." + name), cu, /*shouldMangle=*/true);
  observer.register_attribute("training", c10::BoolType::get(), false);
  observer.register_attribute("dtype", c10::IntType::get(), static_cast<int64_t>(dtype));
  observer.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(qscheme));
  observer.register_attribute("quant_min", c10::IntType::get(), quant_min);
  observer.register_attribute("quant_max", c10::IntType::get(), quant_max);
  return observer;
}

// Per-tensor affine quint8 with the range [min, max] seen over all calibration batches (0 always
// included). `nonnegative` (set per instance after InsertObservers) starts the range at 0.
Module activation_observer(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const QuantizeOptions& options) {
  Module observer = observer_module(cu, "ActivationMinMaxObserver", c10::ScalarType::QUInt8, c10::kPerTensorAffine, 0,
                                    options.reduce_range ? 127 : 255);
  observer.register_buffer("min_val", torch::tensor(std::numeric_limits<float>::infinity()));
  observer.register_buffer("max_val", torch::tensor(-std::numeric_limits<float>::infinity()));
  observer.register_attribute("nonnegative", c10::BoolType::get(), false);
  observer.define(std::string(R"(
def forward(self, x: Tensor) -> Tensor:
    values = x.detach()
    self.min_val = torch.minimum(self.min_val, torch.min(values))
    self.max_val = torch.maximum(self.max_val, torch.max(values))
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    low = torch.clamp(self.min_val, max=0.0)
    if self.nonnegative:
        low = torch.zeros_like(low)
    high = torch.clamp(self.max_val, min=0.0)
    scale = torch.clamp((high - low) / float(self.quant_max - self.quant_min), min=)") +
                  kMinScale + R"()
    zero_point = torch.round(low / scale).long().neg() + self.quant_min
    return scale, torch.clamp(zero_point, self.quant_min, self.quant_max)
)");
  return observer;
}

// Per-output-channel symmetric qint8 (zero point 0, as oneDNN requires for weights); axis 0 is
// the output channel of conv [out, in, kh, kw] and linear [out, in] weights.
Module weight_observer(const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  Module observer =
      observer_module(cu, "WeightPerChannelObserver", c10::ScalarType::QInt8, c10::kPerChannelSymmetric, -128, 127);
  observer.register_attribute("ch_axis", c10::IntType::get(), int64_t{0});
  observer.register_buffer("min_val", torch::empty({0}));
  observer.register_buffer("max_val", torch::empty({0}));
  observer.define(std::string(R"(
def forward(self, x: Tensor) -> Tensor:
    rows = x.detach().flatten(1)
    self.min_val = torch.amin(rows, 1)
    self.max_val = torch.amax(rows, 1)
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    bound = torch.maximum(torch.clamp(self.min_val, max=0.0).neg(), torch.clamp(self.max_val, min=0.0))
    scale = torch.clamp(bound / (float(self.quant_max - self.quant_min) / 2.0), min=)") +
                  kMinScale + R"()
    return scale, torch.zeros_like(scale).long()
)");
  return observer;
}

// Whether `value` reaches a ReLU through nothing but max-pooling, each step its only use: then
// its negative values never matter (max-pooling commutes with ReLU), so quantizing it from 0
// spends all levels on what survives.
bool only_feeds_relu(const torch::jit::Value* value) {
  static const auto relu = c10::Symbol::fromQualString("aten::relu");
  static const auto relu_ = c10::Symbol::fromQualString("aten::relu_");
  static const auto max_pool2d = c10::Symbol::fromQualString("aten::max_pool2d");
  while (value->uses().size() == 1 && value->uses()[0].offset == 0) {
    const torch::jit::Node* user = value->uses()[0].user;
    if (user->kind() == relu || user->kind() == relu_) return true;
    if (user->kind() != max_pool2d) return false;
    value = user->output();
  }
  return false;
}

// Sets `nonnegative` on the observers (submodules "_observer_<n>" that InsertObservers added,
// called as prim::CallMethod forward in the graph) of values that only feed a ReLU.
int64_t observe_relu_inputs_from_zero(Module& module) {
  int64_t marked = 0;
  for (torch::jit::Node* node : module.get_method("forward").graph()->nodes()) {
    if (node->kind() != c10::prim::CallMethod || node->s(c10::attr::name) != "forward") continue;
    const torch::jit::Node* owner = node->input(0)->node();
    if (owner->kind() != c10::prim::GetAttr) continue;
    const std::string name = owner->s(c10::attr::name);
    if (name.rfind("_observer_", 0) != 0 || !only_feeds_relu(node->output())) continue;
    Module observer = module.attr(name).toModule();
    if (!observer.hasattr("nonnegative")) continue;  // a weight observer
    observer.setattr("nonnegative", true);
    ++marked;
  }
  return marked;
}

// quantized::conv2d / quantized::linear then ReLU -> quantized::conv2d_relu / linear_relu: one
// kernel, one pass over the output. The same numbers: a quantized ReLU clamps at the zero point,
// as the fused kernels do. (QuantFusion fuses only a ReLU between the op and its quantize; here
// the observer sits on the op's output, since maas's traced graphs have no ReLU modules for
// InsertObservers' conv-ReLU patterns to find.)
void fuse_quantized_relu(std::shared_ptr<torch::jit::Graph>& graph) {
  for (const char* op : {"conv2d", "linear"}) {
    for (const char* relu : {"aten::relu", "aten::relu_"}) {
      torch::jit::SubgraphRewriter rewriter;
      rewriter.RegisterRewritePattern(std::string(R"(
graph(%a, %packed, %scale, %zero_point):
    %r = quantized::)") + op + R"((%a, %packed, %scale, %zero_point)
    %o = )" + relu + R"((%r)
    return (%o))",
                                      std::string(R"(
graph(%a, %packed, %scale, %zero_point):
    %o = quantized::)") + op + R"(_relu(%a, %packed, %scale, %zero_point)
    return (%o))");
      rewriter.runOnGraph(graph);
    }
  }
}

// LibTorch's quantized max_pool2d reads kernel_size, stride, padding and dilation as two-element
// lists, while the float one also takes one element for both sides and an empty stride (= the
// kernel size), which is how torch::max_pool2d(x, 2) records them; spelled out here, so the int8
// graph pools what the float graph pooled.
void spell_out_pooling_arguments(torch::jit::Graph& graph) {
  static const auto max_pool2d = c10::Symbol::fromQualString("aten::max_pool2d");
  for (torch::jit::Node* node : graph.nodes()) {
    if (node->kind() != max_pool2d || node->inputs().size() < 5) continue;
    std::vector<std::vector<int64_t>> lists;
    for (size_t i = 1; i <= 4; ++i) {
      const auto constant = torch::jit::toIValue(node->input(i));
      if (!constant || !constant->isIntList()) break;
      lists.push_back(constant->toIntVector());
    }
    if (lists.size() != 4 || lists[0].empty()) continue;
    if (lists[1].empty()) lists[1] = lists[0];  // stride defaults to the kernel size
    torch::jit::WithInsertPoint here(node);
    for (size_t i = 0; i < lists.size(); ++i) {
      if (lists[i].size() == 1) lists[i] = {lists[i][0], lists[i][0]};
      node->replaceInput(i + 1, graph.insertConstant(c10::IValue(lists[i])));
    }
  }
}

// The input's normalization and its quantization as one vectorized expression:
//   quantize_per_tensor(addcmul(shift, pixels, scale), s, z, quint8)
// becomes
//   _make_per_tensor_quantized_tensor(clamp(round(addcmul(shift / s + z, pixels, scale / s)), 0, 255).to(uint8), s, z)
// The same levels (up to ties of rounding), but LibTorch 1.13 without fbgemm quantizes element by
// element: on the seed CNN at batch 32 that was a quarter of the int8 forward (docs: issue 22).
// Returns how many inputs it rewrote (0 when the graph has another shape).
int64_t quantize_input_in_normalization(torch::jit::Graph& graph) {
  static const auto quantize = c10::Symbol::fromQualString("aten::quantize_per_tensor");
  static const auto addcmul = c10::Symbol::fromQualString("aten::addcmul");
  static const auto make_quantized = c10::Symbol::fromQualString("aten::_make_per_tensor_quantized_tensor");
  int64_t rewritten = 0;
  for (auto it = graph.nodes().begin(); it != graph.nodes().end();) {
    torch::jit::Node* node = *it++;
    if (node->kind() != quantize || node->inputs().size() != 4) continue;
    torch::jit::Node* normalize = node->input(0)->node();
    if (normalize->kind() != addcmul || normalize->output()->uses().size() != 1) continue;
    const auto shift = torch::jit::toIValue(normalize->input(0)), scale = torch::jit::toIValue(normalize->input(2)),
               value = torch::jit::toIValue(normalize->input(3)), s = torch::jit::toIValue(node->input(1)),
               z = torch::jit::toIValue(node->input(2)), dtype = torch::jit::toIValue(node->input(3));
    if (!shift || !shift->isTensor() || !scale || !scale->isTensor() || !value || value->toScalar().toDouble() != 1 ||
        !s || !s->isDouble() || !z || !z->isInt() || !dtype || !dtype->isInt() ||
        dtype->toInt() != static_cast<int64_t>(c10::ScalarType::QUInt8))
      continue;
    const double step = s->toDouble();
    torch::jit::WithInsertPoint here(node);
    auto constant = [&](const c10::IValue& v) { return graph.insertConstant(v); };
    torch::jit::Value* levels = graph.insert(
        addcmul, {constant(shift->toTensor() / step + static_cast<double>(z->toInt())), normalize->input(1),
                  constant(scale->toTensor() / step)});
    levels = graph.insert(c10::aten::round, {levels});
    levels = graph.insert(c10::aten::clamp, {levels, constant(0.0), constant(255.0)});
    levels = graph.insert(c10::aten::to, {levels, constant(static_cast<int64_t>(c10::ScalarType::Byte))});
    torch::jit::Value* quantized = graph.insert(make_quantized, {levels, constant(step), constant(z->toInt())});
    node->output()->replaceAllUsesWith(quantized);
    node->destroy();
    normalize->destroy();
    ++rewritten;
  }
  return rewritten;
}

// The bound on the pixel convolution's int8 weights (see fold_normalization_into_first_convolution):
// 255 * 63 * 2 = 32130 fits the int16 pair sums of CPUs without VNNI, which would saturate with 8-bit
// weights and 8-bit pixels.
constexpr int64_t kPixelConvolutionWeightBound = 63;

// The value `x` after an observer: `x` itself before InsertObservers, the observer's input after.
const torch::jit::Value* unobserved(const torch::jit::Value* value) {
  const torch::jit::Node* node = value->node();
  if (node->kind() == c10::prim::CallMethod && node->s(c10::attr::name) == "forward" && node->inputs().size() == 2)
    return node->input(1);
  return value;
}

// Whether `value` is the graph's input images cast to float32 (`images.float()`).
bool is_cast_images(const torch::jit::Graph& graph, const torch::jit::Value* value) {
  const torch::jit::Node* node = value->node();
  if (node->kind() != c10::aten::to || graph.inputs().size() != 2 || node->input(0) != graph.inputs()[1] ||
      node->inputs().size() < 2)
    return false;
  const auto dtype = torch::jit::toIValue(node->input(1));
  return dtype && dtype->isInt() && dtype->toInt() == static_cast<int64_t>(c10::ScalarType::Float);
}

// addcmul(shift, pixels, scale) feeding a convolution without padding -> that convolution with the
// normalization folded into its weights and bias:
//   conv(W, shift + scale * p) + b = conv(W * scale, p) + (b + sum(W * shift))   (per input channel)
// exact in real arithmetic, since without padding every tap reads a pixel. The convolution then reads
// raw pixels, which int8 represents exactly (scale 1, levels 0..255: pixels_as_quint8), so the input
// needs no normalizing, rounding or clamping pass (on the seed CNN at batch 32 those were a tenth of
// the int8 forward) and loses nothing to quantization. The seed CNN's and airbench's stems qualify;
// ResNet-9's is padded and keeps quantize_input_in_normalization. Returns whether it folded.
bool fold_normalization_into_first_convolution(std::shared_ptr<torch::jit::Graph>& graph) {
  static const auto addcmul = c10::Symbol::fromQualString("aten::addcmul");
  torch::jit::graph_rewrite_helper::replaceConvolutionWithAtenConv(graph);
  for (torch::jit::Node* normalize : graph->nodes()) {
    if (normalize->kind() != addcmul || !is_cast_images(*graph, normalize->input(1)) ||
        normalize->output()->uses().size() != 1)
      continue;
    torch::jit::Node* conv = normalize->output()->uses()[0].user;
    if (conv->kind() != c10::aten::conv2d || normalize->output()->uses()[0].offset != 0) return false;
    const auto shift = torch::jit::toIValue(normalize->input(0)), scale = torch::jit::toIValue(normalize->input(2)),
               value = torch::jit::toIValue(normalize->input(3)), weight = torch::jit::toIValue(conv->input(1)),
               bias = torch::jit::toIValue(conv->input(2)), padding = torch::jit::toIValue(conv->input(4)),
               groups = torch::jit::toIValue(conv->input(6));
    if (!shift || !shift->isTensor() || !scale || !scale->isTensor() || !value || value->toScalar().toDouble() != 1 ||
        !weight || !weight->isTensor() || !bias || !(bias->isTensor() || bias->isNone()) || !padding ||
        !padding->isIntList() || !groups || !groups->isInt() || groups->toInt() != 1)
      return false;
    for (const int64_t side : padding->toIntVector())
      if (side != 0) return false;
    const torch::Tensor w = weight->toTensor();
    if (w.dim() != 4 || shift->toTensor().numel() != w.size(1) || scale->toTensor().numel() != w.size(1))
      return false;  // a normalization per input channel, and nothing else, folds
    const torch::Tensor per_channel_scale = scale->toTensor().reshape({1, -1, 1, 1}).to(w.dtype());
    const torch::Tensor per_channel_shift = shift->toTensor().reshape({1, -1, 1, 1}).to(w.dtype());
    torch::Tensor folded_bias = (w * per_channel_shift).sum({1, 2, 3});
    if (bias->isTensor()) folded_bias += bias->toTensor();
    torch::jit::WithInsertPoint here(conv);
    conv->replaceInput(0, normalize->input(1));
    conv->replaceInput(1, graph->insertConstant(w * per_channel_scale));
    conv->replaceInput(2, graph->insertConstant(folded_bias));
    normalize->destroy();
    return true;
  }
  return false;
}

// The weight observer of the convolution that reads the cast images (after InsertObservers), set to
// kPixelConvolutionWeightBound levels each side. Returns whether it found one.
bool bound_pixel_convolution_weights(Module& module) {
  auto graph = module.get_method("forward").graph();
  for (torch::jit::Node* node : graph->nodes()) {
    if (node->kind() != c10::aten::conv2d || !is_cast_images(*graph, unobserved(node->input(0)))) continue;
    const torch::jit::Node* observe = node->input(1)->node();
    if (observe->kind() != c10::prim::CallMethod || observe->input(0)->node()->kind() != c10::prim::GetAttr) return false;
    Module observer = module.attr(observe->input(0)->node()->s(c10::attr::name)).toModule();
    if (!observer.hasattr("ch_axis")) return false;  // not a weight observer
    observer.setattr("quant_min", -kPixelConvolutionWeightBound);
    observer.setattr("quant_max", kPixelConvolutionWeightBound);
    return true;
  }
  return false;
}

// quantize_per_tensor(images.float(), s, z, quint8) -> the pixels themselves as quint8 (scale 1,
// zero point 0): one copy of a uint8 batch, no arithmetic pass; float32 images are rounded and
// clamped to 0..255 first.
// For graphs whose normalization fold_normalization_into_first_convolution folded. Returns how many
// inputs it rewrote.
int64_t pixels_as_quint8(torch::jit::Graph& graph) {
  static const auto quantize = c10::Symbol::fromQualString("aten::quantize_per_tensor");
  static const char* kPixels = R"IR(
graph(%images : Tensor):
  %uint8 : int = prim::Constant[value=0]()
  %float32 : int = prim::Constant[value=6]()
  %false : bool = prim::Constant[value=0]()
  %none : NoneType = prim::Constant()
  %low : float = prim::Constant[value=0.]()
  %high : float = prim::Constant[value=255.]()
  %one : float = prim::Constant[value=1.]()
  %zero : int = prim::Constant[value=0]()
  %dtype : int = prim::dtype(%images)
  %is_uint8 : bool = aten::eq(%dtype, %uint8)
  %levels : Tensor = prim::If(%is_uint8)
    block0():
      -> (%images)
    block1():
      %as_float : Tensor = aten::to(%images, %float32, %false, %false, %none)
      %rounded : Tensor = aten::round(%as_float)
      %clamped : Tensor = aten::clamp(%rounded, %low, %high)
      %bytes : Tensor = aten::to(%clamped, %uint8, %false, %false, %none)
      -> (%bytes)
  %pixels : Tensor = aten::_make_per_tensor_quantized_tensor(%levels, %one, %zero)
  return (%pixels))IR";
  int64_t rewritten = 0;
  for (auto it = graph.nodes().begin(); it != graph.nodes().end();) {
    torch::jit::Node* node = *it++;
    if (node->kind() != quantize || !is_cast_images(graph, node->input(0))) continue;
    torch::jit::Graph pixels;
    torch::jit::parseIR(kPixels, &pixels);
    torch::jit::WithInsertPoint here(node);
    torch::jit::Value* quantized = torch::jit::insertGraph(graph, pixels, {graph.inputs()[1]}).at(0);
    node->output()->replaceAllUsesWith(quantized);
    node->destroy();
    ++rewritten;
  }
  return rewritten;
}

// max_pool2d then ReLU -> ReLU then max_pool2d: the same values (max-pooling commutes with ReLU),
// but the ReLU now follows the convolution, so it fuses into quantized::conv2d_relu instead of
// running as a pass of its own over the pooled int8 tensor (the seed CNN pools before its ReLUs).
void relu_before_pooling(std::shared_ptr<torch::jit::Graph>& graph) {
  for (const char* relu : {"aten::relu", "aten::relu_"}) {
    torch::jit::SubgraphRewriter rewriter;
    rewriter.RegisterRewritePattern(std::string(R"(
graph(%x, %kernel, %stride, %padding, %dilation, %ceil):
    %pooled = aten::max_pool2d(%x, %kernel, %stride, %padding, %dilation, %ceil)
    %r = )") + relu + R"((%pooled)
    return (%r))",
                                    R"(
graph(%x, %kernel, %stride, %padding, %dilation, %ceil):
    %positive = aten::relu(%x)
    %r = aten::max_pool2d(%positive, %kernel, %stride, %padding, %dilation, %ceil)
    return (%r))");
    rewriter.runOnGraph(graph);
  }
}

void count_in(const torch::jit::Block* block, const c10::Symbol kind, int64_t& count) {
  for (const torch::jit::Node* node : block->nodes()) {
    count += node->kind() == kind;
    for (const torch::jit::Block* inner : node->blocks()) count_in(inner, kind, count);
  }
}

// Runs `step` and turns LibTorch's errors into an ArtifactError naming it.
template <typename Fn>
auto in_step(const std::string& step, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const ArtifactError&) {
    throw;
  } catch (const std::exception& e) {
    throw ArtifactError("int8 quantization failed in " + step + ": " + std::string(e.what()).substr(0, 600));
  }
}

}  // namespace

torch::Tensor calibration_images(const RunConfig& config, int64_t count) {
  return load_dataset(config.data.dataset, config.data.root, Split::kTrain).head(count).images;
}

std::string int8_scheme(const QuantizeOptions& options) {
  return std::string("post-training static: activations per-tensor affine quint8 0..") +
         (options.reduce_range ? "127" : "255") +
         " (min/max over the calibration images), weights per-channel symmetric qint8";
}

int64_t count_nodes(const torch::jit::Module& module, const std::string& kind) {
  int64_t count = 0;
  count_in(module.get_method("forward").graph()->block(), c10::Symbol::fromQualString(kind), count);
  return count;
}

QuantizedModule quantize_static(const torch::jit::Module& float_module, const torch::Tensor& calibration_pixels,
                                const QuantizeOptions& options) {
  if (calibration_pixels.dim() != 4 || calibration_pixels.size(0) < 1)
    throw ArtifactError("int8 quantization needs at least one calibration image [N, C, H, W]");
  use_int8_engine();  // the packed weights are built for the engine current at Finalize
  torch::NoGradGuard no_grad;
  const std::vector<std::string> keep{"classes"};
  const int64_t input_values = calibration_pixels[0].numel();
  const bool fold_input = options.macs_per_image > 0 &&
                          options.macs_per_image < options.fold_input_below_macs_per_value * input_values;
  bool folded = false;
  Module module = in_step("freezing", [&] {
    // Traced linear layers read t(weight) into addmm; freezing would fold t(weight) into a constant
    // that InsertObservers no longer sees as a weight. FuseLinear makes them aten::linear first.
    Module copy = float_module.clone();
    for (auto& method : copy.get_methods()) {
      auto graph = method.graph();
      torch::jit::FuseLinear(graph);
    }
    Module frozen = torch::jit::freeze(copy, keep);
    auto graph = frozen.get_method("forward").graph();
    spell_out_pooling_arguments(*graph);
    relu_before_pooling(graph);
    if (fold_input) folded = fold_normalization_into_first_convolution(graph);
    return frozen;
  });

  const auto cu = module._ivalue()->compilation_unit();
  const auto qconfig = in_step("defining the observers", [&] {
    return torch::jit::QConfigDict{{"", torch::jit::QConfig{activation_observer(cu, options), weight_observer(cu)}}};
  });
  module = in_step("InsertObservers", [&] {
    return torch::jit::InsertObservers(module, "forward", qconfig, /*inplace=*/true, torch::jit::QuantType::STATIC);
  });
  observe_relu_inputs_from_zero(module);
  // Without the bound, 8-bit weights against 8-bit pixels would verify on a VNNI CPU and compute wrong
  // results on one without: a fold whose convolution cannot be bounded is an error, not a fallback.
  if (folded && !bound_pixel_convolution_weights(module))
    throw ArtifactError("int8 quantization failed: the first convolution reads the pixels, but its weight observer "
                        "was not found to hold its weights to 7 bits");
  in_step("calibration", [&] {
    const int64_t batch = std::max<int64_t>(1, options.calibration_batch);
    for (int64_t begin = 0; begin < calibration_pixels.size(0); begin += batch)
      module.forward({calibration_pixels.slice(0, begin, std::min(calibration_pixels.size(0), begin + batch))});
  });
  module = in_step("InsertQuantDeQuant", [&] {
    return torch::jit::InsertQuantDeQuant(module, "forward", /*inplace=*/true, /*debug=*/false,
                                          torch::jit::QuantType::STATIC);
  });
  QuantizedModule result;
  result.module = in_step("Finalize", [&] { return torch::jit::Finalize(module, torch::jit::QuantType::STATIC, keep); });
  auto graph = result.module.get_method("forward").graph();
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
  fuse_quantized_relu(graph);
  if (folded) {
    if (pixels_as_quint8(*graph) != 1)
      throw ArtifactError("int8 quantization failed: the normalization was folded into the first convolution, but its "
                          "input was not quantized where expected");
    result.pixels_input = true;
    torch::jit::EliminateDeadCode(graph);  // the float cast the pixels no longer need
  }
  quantize_input_in_normalization(*graph);
  result.module.eval();
  result.quantized_convolutions =
      count_nodes(result.module, "quantized::conv2d") + count_nodes(result.module, "quantized::conv2d_relu");
  result.quantized_linears =
      count_nodes(result.module, "quantized::linear") + count_nodes(result.module, "quantized::linear_relu");
  result.float_fallbacks = count_nodes(result.module, "aten::dequantize");
  if (result.quantized_convolutions + result.quantized_linears == 0)
    throw ArtifactError("int8 quantization produced no int8 convolution or linear layer (the model's layers are not "
                        "ones LibTorch's graph-mode quantization knows)");
  return result;
}

}  // namespace maas
