// The model registry: every architecture maas can train, export and serve, created by name.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace maas {

// What a model is built for; comes from the data set, never hard-coded per architecture.
struct ModelSpec {
  int64_t channels = 3;
  int64_t height = 32;
  int64_t width = 32;
  int64_t classes = 10;
};

// A classifier: normalized float32 images [N, C, H, W] -> logits float32 [N, classes].
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor images) = 0;
  // The same computation as forward() in TorchScript: the source of a method
  // `classify(self, x: Tensor) -> Tensor`. Each layer is a submodule named as in this module
  // ("conv1") with a method w() giving its float weight and an attribute `bias`; see artifact.cpp.
  virtual std::string torchscript_classify() const = 0;
};

// The seed CNN: Conv(C->32,3x3) ReLU MaxPool2, Conv(32->64,3x3) ReLU MaxPool2, Conv(64->64,3x3)
// ReLU, Flatten, Linear(->64) ReLU, Linear(64->classes). 122,570 parameters for CIFAR-10.
class CnnImpl : public ClassifierImpl {
 public:
  // Throws std::invalid_argument when the input is too small for the three valid convolutions.
  explicit CnnImpl(const ModelSpec& spec);
  torch::Tensor forward(torch::Tensor images) override;
  std::string torchscript_classify() const override;

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Cnn);

// Builds the named architecture with freshly initialized weights (uses torch's global RNG).
// Throws std::invalid_argument for an unknown name or a spec the architecture cannot take.
std::shared_ptr<ClassifierImpl> make_model(const std::string& name, const ModelSpec& spec);
bool has_model(const std::string& name);
std::vector<std::string> model_names();

int64_t parameter_count(const torch::nn::Module& model);

// A table of layers (name, output shape, parameters) for a batch-1 input; ends with the total.
std::string model_summary(ClassifierImpl& model, const ModelSpec& spec);

}  // namespace maas
