// The registry of architectures, their options, and what a model costs (parameters, MACs).
#include "models.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "config.h"
#include "models/airbench.h"
#include "models/cnn.h"
#include "models/resnet9.h"
#include "tracing.h"

namespace maas {
namespace {

// An architecture with one activation (the registry checked `activation` is it).
template <typename Net>
std::shared_ptr<ClassifierImpl> make(const ModelSpec& spec, const std::vector<int64_t>& widths, const std::string&) {
  return std::make_shared<Net>(spec, widths);
}

std::shared_ptr<ClassifierImpl> make_airbench(const ModelSpec& spec, const std::vector<int64_t>& widths,
                                              const std::string& activation) {
  return std::make_shared<AirbenchImpl>(spec, widths, activation == "relu" ? AirbenchActivation::kRelu
                                                                           : AirbenchActivation::kGelu);
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string join(const std::vector<int64_t>& values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return "[" + out + "]";
}

}  // namespace

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> table = {
      {"airbench",
       "airbench-style: 2x2 stem, three conv groups (conv, pool, BN, GELU, conv, BN, GELU); model.activation "
       "relu: conv, BN, ReLU, pool (int8 end to end)",
       {64, 256, 256}, make_airbench, {"gelu", "relu"}},
      {"cnn", "the seed CNN: three 3x3 convolutions, two fully connected layers, no BatchNorm", {32, 64, 64, 64},
       make<CnnImpl>, {"relu"}},
      {"resnet9", "Myrtle's ResNet-9: conv-BN-ReLU, widths 64-128-256-512, two residual blocks",
       {64, 128, 256, 512}, make<ResNet9Impl>, {"relu"}},
  };
  return table;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const auto& a : architectures()) names.push_back(a.name);
  return names;
}

const Architecture* find_architecture(const std::string& name) {
  for (const auto& a : architectures())
    if (a.name == name) return &a;
  return nullptr;
}

void check_model_options(const ModelOptions& options) {
  const Architecture* arch = find_architecture(options.name);
  if (!arch) {
    throw ConfigError("key 'model.name': unknown model '" + options.name + "'; known models: " +
                      join_names(architecture_names()));
  }
  if (!options.widths.empty()) {
    if (options.widths.size() != arch->default_widths.size())
      throw ConfigError("key 'model.widths': model '" + options.name + "' takes " +
                        std::to_string(arch->default_widths.size()) + " widths (default " +
                        join(arch->default_widths) + "), got " + join(options.widths));
    for (int64_t w : options.widths)
      if (w < 1 || w > kMaxModelWidth)
        throw ConfigError("key 'model.widths': " + join(options.widths) + ": each width must be in 1.." +
                          std::to_string(kMaxModelWidth));
  }
  if (!options.activation.empty() &&
      std::find(arch->activations.begin(), arch->activations.end(), options.activation) == arch->activations.end())
    throw ConfigError("key 'model.activation': model '" + options.name + "' takes " + join_names(arch->activations) +
                      " (\"\" = " + arch->activations.front() + "), got '" + options.activation + "'");
  if (!(options.width > 0) || options.width > kMaxWidthMultiplier)
    throw ConfigError("key 'model.width': " + std::to_string(options.width) + " must be in (0, 16]");
  for (int64_t w : resolved_widths(options))
    if (w > kMaxModelWidth)
      throw ConfigError("key 'model.width': scales a width to " + std::to_string(w) + ", more than " +
                        std::to_string(kMaxModelWidth));
}

std::vector<int64_t> resolved_widths(const ModelOptions& options) {
  const Architecture* arch = find_architecture(options.name);
  if (!arch) throw ConfigError("key 'model.name': unknown model '" + options.name + "'");
  std::vector<int64_t> widths = options.widths.empty() ? arch->default_widths : options.widths;
  for (int64_t& w : widths) w = std::max<int64_t>(1, std::llround(static_cast<double>(w) * options.width));
  return widths;
}

std::string resolved_activation(const ModelOptions& options) {
  const Architecture* arch = find_architecture(options.name);
  if (!arch) throw ConfigError("key 'model.name': unknown model '" + options.name + "'");
  return options.activation.empty() ? arch->activations.front() : options.activation;
}

bool same_network(const ModelOptions& a, const ModelOptions& b) {
  if (a.name != b.name || !find_architecture(a.name)) return a == b;
  return resolved_widths(a) == resolved_widths(b) && resolved_activation(a) == resolved_activation(b);
}

std::shared_ptr<ClassifierImpl> make_model(const ModelOptions& options, const ModelSpec& spec) {
  check_model_options(options);
  if (spec.channels < 1 || spec.classes < 2)
    throw std::invalid_argument("model '" + options.name + "' needs >= 1 channel and >= 2 classes");
  return find_architecture(options.name)->make(spec, resolved_widths(options), resolved_activation(options));
}

int64_t parameter_count(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

int64_t macs_per_image(ClassifierImpl& model, const ModelSpec& spec) {
  torch::NoGradGuard no_grad;
  auto mirror = mirror_module(model, std::make_shared<torch::jit::CompilationUnit>());
  const bool was_training = model.is_training();
  model.eval();  // so tracing leaves BatchNorm statistics alone
  try {
    add_traced_method(mirror, "forward", [&](const torch::Tensor& x) { return model.forward(x); },
                      torch::zeros({1, spec.channels, spec.height, spec.width}));
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  auto graph = mirror.get_method("forward").graph();
  const auto attributes = attribute_values(*graph, mirror);
  auto sizes = [&](const torch::jit::Value* v) -> std::vector<int64_t> {
    const auto attribute = attributes.find(v);  // a weight read from the module: its tensor's shape
    if (attribute != attributes.end() && attribute->second.isTensor()) return attribute->second.toTensor().sizes().vec();
    const auto type = v->type()->cast<c10::TensorType>();
    auto concrete = type ? type->sizes().concrete_sizes() : c10::nullopt;
    return concrete ? *concrete : std::vector<int64_t>{};
  };
  auto product = [](const std::vector<int64_t>& s, size_t from) {
    int64_t n = 1;
    for (size_t i = from; i < s.size(); ++i) n *= s[i];
    return n;
  };
  int64_t macs = 0;
  for (const torch::jit::Node* node : graph->nodes()) {
    const auto kind = node->kind();
    if (kind == c10::aten::_convolution || kind == c10::aten::conv2d) {
      // every output element sums in_channels/groups * kh * kw products: the weight's [1:] numel
      macs += product(sizes(node->output()), 0) * product(sizes(node->input(1)), 1);
    } else if (kind == c10::aten::linear) {
      const auto weight = sizes(node->input(1));
      if (weight.size() == 2) macs += product(sizes(node->output()), 0) * weight[1];
    } else if (kind == c10::aten::matmul || kind == c10::aten::mm ||
               kind == c10::aten::addmm) {
      const auto left = sizes(node->input(kind == c10::aten::addmm ? 1 : 0));
      if (!left.empty()) macs += product(sizes(node->output()), 0) * left.back();
    }
  }
  return macs;
}

std::string model_summary(ClassifierImpl& model, const ModelSpec& spec) {
  std::ostringstream out;
  out << std::left << std::setw(12) << "layer" << std::setw(34) << "type" << std::right << std::setw(12)
      << "parameters\n";
  for (const auto& item : model.named_children()) {
    std::ostringstream type;
    item.value()->pretty_print(type);
    out << std::left << std::setw(12) << item.key() << std::setw(34) << type.str().substr(0, 33) << std::right
        << std::setw(11) << parameter_count(*item.value()) << "\n";
  }
  const std::string input =
      std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" + std::to_string(spec.width);
  out << std::left << std::setw(46) << "total" << std::right << std::setw(11) << parameter_count(model) << "\n";
  out << std::left << std::setw(46) << "multiply-accumulates per " + input + " image" << std::right << std::setw(11)
      << macs_per_image(model, spec) << "\n";
  return out.str();
}

}  // namespace maas
