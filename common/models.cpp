// Architectures and the registry that creates them by name.
#include "models.h"

#include <functional>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

namespace maas {
namespace {

using Factory = std::function<std::shared_ptr<ClassifierImpl>(const ModelSpec&)>;

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> models = {
      {"cnn", [](const ModelSpec& s) { return std::make_shared<CnnImpl>(s); }},
  };
  return models;
}

// Side after a valid 3x3 convolution followed (optionally) by 2x2 max pooling.
int64_t conv3(int64_t side) { return side - 2; }
int64_t pool2(int64_t side) { return side / 2; }

}  // namespace

CnnImpl::CnnImpl(const ModelSpec& spec) {
  const int64_t h = conv3(pool2(conv3(pool2(conv3(spec.height)))));
  const int64_t w = conv3(pool2(conv3(pool2(conv3(spec.width)))));
  if (h < 1 || w < 1)
    throw std::invalid_argument("model 'cnn' needs images of at least 18x18 pixels, got " +
                                std::to_string(spec.height) + "x" + std::to_string(spec.width));
  if (spec.channels < 1 || spec.classes < 2)
    throw std::invalid_argument("model 'cnn' needs >= 1 channel and >= 2 classes");
  conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.channels, 32, 3)));
  conv2_ = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)));
  conv3_ = register_module("conv3", torch::nn::Conv2d(torch::nn::Conv2dOptions(64, 64, 3)));
  fc1_ = register_module("fc1", torch::nn::Linear(64 * h * w, 64));
  fc2_ = register_module("fc2", torch::nn::Linear(64, spec.classes));
}

torch::Tensor CnnImpl::forward(torch::Tensor x) {
  // Pooling before ReLU gives the same values and gradients as ReLU before pooling (ReLU is
  // monotonic) while the ReLU touches a quarter of the elements.
  x = torch::max_pool2d(conv1_->forward(x), 2).relu_();
  x = torch::max_pool2d(conv2_->forward(x), 2).relu_();
  x = conv3_->forward(x).relu_();
  // fc1 and fc2 are Linear layers computed as convolutions that cover the whole feature map:
  // the same sums, but run by oneDNN instead of the system BLAS (Debian's reference BLAS makes
  // the plain Linear ~5x slower). A [64, 64*h*w] weight viewed as [64, 64, h, w] reads the
  // features in NCHW flatten order, exactly as Linear(flatten(x)) would.
  x = torch::conv2d(x, fc1_->weight.view({fc1_->weight.size(0), x.size(1), x.size(2), x.size(3)}), fc1_->bias).relu_();
  x = torch::conv2d(x, fc2_->weight.view({fc2_->weight.size(0), fc2_->weight.size(1), 1, 1}), fc2_->bias);
  return x.flatten(1);
}

// Keep in step with CnnImpl::forward; the golden test (tests/export_test.cpp) compares the two.
std::string CnnImpl::torchscript_classify() const {
  return R"(
def classify(self, x: Tensor) -> Tensor:
    x = torch.relu(torch.max_pool2d(torch.conv2d(x, self.conv1.w(), self.conv1.bias), 2))
    x = torch.relu(torch.max_pool2d(torch.conv2d(x, self.conv2.w(), self.conv2.bias), 2))
    x = torch.relu(torch.conv2d(x, self.conv3.w(), self.conv3.bias))
    w1 = self.fc1.w()
    x = torch.relu(torch.conv2d(x, w1.view(w1.size(0), x.size(1), x.size(2), x.size(3)), self.fc1.bias))
    w2 = self.fc2.w()
    return torch.flatten(torch.conv2d(x, w2.view(w2.size(0), w2.size(1), 1, 1), self.fc2.bias), 1)
)";
}

std::shared_ptr<ClassifierImpl> make_model(const std::string& name, const ModelSpec& spec) {
  auto it = registry().find(name);
  if (it == registry().end()) throw std::invalid_argument("unknown model '" + name + "'");
  return it->second(spec);
}

bool has_model(const std::string& name) { return registry().count(name) > 0; }

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

int64_t parameter_count(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

std::string model_summary(ClassifierImpl& model, const ModelSpec& spec) {
  std::ostringstream out;
  out << std::left << std::setw(12) << "layer" << std::setw(34) << "type" << std::right << std::setw(12)
      << "parameters\n";
  for (const auto& item : model.named_children()) {
    int64_t n = parameter_count(*item.value());
    std::ostringstream type;
    item.value()->pretty_print(type);
    out << std::left << std::setw(12) << item.key() << std::setw(34) << type.str().substr(0, 33) << std::right
        << std::setw(11) << n << "\n";
  }
  out << std::left << std::setw(46) << "total (input " + std::to_string(spec.channels) + "x" +
                                           std::to_string(spec.height) + "x" + std::to_string(spec.width) + ")"
      << std::right << std::setw(11) << parameter_count(model) << "\n";
  return out.str();
}

}  // namespace maas
