// Weights from a checkpoint or an artifact into a fresh model (see fine_tune.h).
#include "fine_tune.h"

#include <map>
#include <sstream>

#include "artifact.h"
#include "checkpoint.h"
#include "config.h"

namespace maas {
namespace {

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// What model.init names: a checkpoint's model, or an artifact's module.
struct Source {
  std::map<std::string, torch::Tensor> tensors;  // name -> tensor, parameters and buffers alike
  std::vector<std::string> classes;              // what its head's outputs mean, in order
};

}  // namespace

std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : module.named_parameters()) tensors[p.key()] = p.value();
  for (const auto& b : module.named_buffers()) tensors[b.key()] = b.value();
  return tensors;
}

namespace {

Source read_source(const std::string& path) {
  Source source;
  try {
    const CheckpointReader reader(path);
    for (const auto& [name, tensor] : named_tensors(*reader.load_model())) source.tensors[name] = tensor.detach();
    source.classes = reader.meta().classes;
    return source;
  } catch (const CheckpointError& checkpoint_error) {
    Artifact artifact;
    try {
      artifact = load_artifact(path);
    } catch (const ArtifactError& artifact_error) {
      throw ConfigError("model.init=" + path + ": neither a maas-train checkpoint (" + checkpoint_error.what() +
                        ") nor a maas artifact (" + artifact_error.what() + ")");
    }
    for (const auto& a : artifact.module.named_attributes(/*recurse=*/true))  // parameters and buffers alike
      if (a.value.isTensor()) source.tensors[a.name] = a.value.toTensor().detach();
    source.classes = artifact.info.classes;
    return source;
  }
}

}  // namespace

std::string init_from_file(const std::string& path, ClassifierImpl& model, const std::vector<std::string>& classes) {
  const Source read = read_source(path);
  const auto& source = read.tensors;
  // Same count, other names: the outputs would mean other classes, so the head starts fresh too.
  const bool same_classes = read.classes == classes;
  const auto params = model.named_parameters();
  const std::string last = params.keys().back();
  const std::string head = last.substr(0, last.rfind('.') + 1);  // "fc." of "fc.weight"
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  std::vector<std::string> fresh;
  auto take = [&](const std::string& name, const torch::Tensor& target) {
    const auto found = source.find(name);
    const bool in_head = name.rfind(head, 0) == 0;
    if (found != source.end() && found->second.sizes().equals(target.sizes()) && (same_classes || !in_head)) {
      copies.emplace_back(target, found->second);
      return;
    }
    if (in_head && found != source.end()) {
      fresh.push_back(name);  // the head of a model for other classes
      return;
    }
    if (found == source.end())
      throw ConfigError("model.init=" + path + ": holds no tensor '" + name +
                        "' (another architecture, or an int8 artifact: fine-tune from a float32 one)");
    throw ConfigError("model.init=" + path + ": tensor '" + name + "' is " + shape_of(found->second) + " there, " +
                      shape_of(target) + " here (another architecture or other model.widths?)");
  };
  for (const auto& p : model.named_parameters()) take(p.key(), p.value());
  for (const auto& b : model.named_buffers()) take(b.key(), b.value());
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);
  std::ostringstream summary;
  summary << "initialized from " << path << ": " << copies.size() << " tensors copied";
  if (!fresh.empty())
    summary << ", head '" << head.substr(0, head.size() - 1) << "' fresh (trained on other classes: "
            << read.classes.size() << " there, " << classes.size() << " here"
            << (read.classes.size() == classes.size() ? ", other names" : "") << ")";
  return summary.str();
}

}  // namespace maas
