// Checkpoints as one torch::serialize archive: "meta/*" values, "model" and "optimizer" sub-archives.
#include "checkpoint.h"

#include <filesystem>
#include <sstream>

#include "files.h"
#include "torchscript_loader.h"

namespace maas {
namespace {

// 2: meta/model_widths and meta/model_width (model hyperparameters). Version 1 files are read
// as the architecture's default widths, which is what they were trained with.
constexpr int64_t kFormatVersion = 2;
constexpr size_t kHistoryColumns = 8;  // numbers per EpochMetrics row in meta/history
// Bounds on a checkpoint's image shape and class count (far above any data set maas reads).
constexpr int64_t kMaxChannels = 16, kMaxSide = 4096, kMaxClasses = 100000;

c10::List<std::string> to_list(const std::vector<std::string>& v) {
  c10::List<std::string> list;
  for (const auto& s : v) list.push_back(s);
  return list;
}

c10::List<double> to_list(const std::vector<double>& v) {
  c10::List<double> list;
  for (double d : v) list.push_back(d);
  return list;
}

}  // namespace

std::string run_config_path(const std::string& run_dir) { return run_dir + "/config.yaml"; }
std::string last_checkpoint_path(const std::string& run_dir) { return run_dir + "/last.pt"; }
std::string best_checkpoint_path(const std::string& run_dir) { return run_dir + "/best.pt"; }
std::string metrics_path(const std::string& run_dir) { return run_dir + "/metrics.csv"; }

RunConfig load_run_dir_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  if (!std::filesystem::exists(run_config_path(run_dir)))
    throw CheckpointError(run_dir + ": no config.yaml, so not a maas-train run directory");
  return load_run_config(run_config_path(run_dir), overrides);
}

std::string checkpoint_bytes(const CheckpointMeta& meta, torch::nn::Module& model,
                             torch::optim::Optimizer* optimizer, torch::nn::Module* trained_model) {
  torch::serialize::OutputArchive archive;
  archive.write("meta/format_version", c10::IValue(kFormatVersion));
  archive.write("meta/model_name", c10::IValue(meta.model.name));
  archive.write("meta/model_widths", c10::IValue(c10::List<int64_t>(meta.model.widths)));
  archive.write("meta/model_width", c10::IValue(meta.model.width));
  archive.write("meta/model_activation", c10::IValue(meta.model.activation));
  archive.write("meta/spec", c10::IValue(c10::List<int64_t>(
                                 {meta.spec.channels, meta.spec.height, meta.spec.width, meta.spec.classes})));
  archive.write("meta/classes", c10::IValue(to_list(meta.classes)));
  archive.write("meta/norm_mean", c10::IValue(to_list(meta.normalization.mean)));
  archive.write("meta/norm_std", c10::IValue(to_list(meta.normalization.std)));
  archive.write("meta/epoch", c10::IValue(meta.epoch));
  archive.write("meta/step", c10::IValue(meta.step));
  archive.write("meta/partial_loss_sum", c10::IValue(meta.partial_loss_sum));
  archive.write("meta/partial_seconds", c10::IValue(meta.partial_seconds));
  archive.write("meta/partial_correct", c10::IValue(meta.partial_correct));
  archive.write("meta/partial_seen", c10::IValue(meta.partial_seen));
  archive.write("meta/best_test_acc", c10::IValue(meta.best_test_acc));
  archive.write("meta/last_test_acc", c10::IValue(meta.last_test_acc));
  archive.write("meta/rng_state", meta.rng_state.defined() ? meta.rng_state : torch::empty({0}, torch::kUInt8));
  std::vector<double> history;  // kHistoryColumns numbers per epoch, in EpochMetrics order
  for (const auto& m : meta.history)
    history.insert(history.end(), {static_cast<double>(m.epoch), m.train_loss, m.train_acc, m.test_loss, m.test_acc,
                                   m.lr, m.images_per_s, m.seconds});
  archive.write("meta/history", c10::IValue(to_list(history)));
  archive.write("meta/best_epoch", c10::IValue(meta.best_epoch));
  archive.write("meta/best_confusion", c10::IValue(c10::List<int64_t>(meta.best_confusion)));
  archive.write("meta/precision", c10::IValue(meta.precision));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (trained_model) {
    torch::serialize::OutputArchive trained_archive;
    trained_model->save(trained_archive);
    archive.write("trained_model", trained_archive);
  }
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

void save_checkpoint(const std::string& path, const CheckpointMeta& meta, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, torch::nn::Module* trained_model) {
  write_text_atomically(path, checkpoint_bytes(meta, model, optimizer, trained_model));
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  if (const std::string kind = special_file_kind(path); !kind.empty())
    throw CheckpointError(path + ": not a regular file (" + kind + ")");
  if (!std::filesystem::is_regular_file(path)) throw CheckpointError(path + ": checkpoint file not found");
  archive_ = std::make_shared<torch::serialize::InputArchive>();
  try {
    // A checkpoint is TorchScript too: vet it (data only, no code) through the one loader, then
    // let InputArchive, which cannot take a loaded module, read the same vetted bytes again.
    TorchScriptLoadOptions options;
    options.allow_methods = false;
    const std::string bytes = read_torchscript_file(path, options);
    torch::jit::ExtraFilesMap no_extra_files;
    load_torchscript(bytes, path, no_extra_files, options);
    archive_->load_from(bytes.data(), bytes.size());
  } catch (const NotTorchScript&) {
    throw CheckpointError(path + ": not a readable checkpoint (corrupt or truncated file)");
  } catch (const TorchScriptLoadError& e) {
    throw CheckpointError(e.what());
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": not a readable checkpoint (corrupt or truncated file)");
  }
  try {
    c10::IValue v;
    if (!archive_->try_read("meta/format_version", v))
      throw CheckpointError(path + ": not a maas checkpoint (no meta/format_version)");
    if (v.toInt() != kFormatVersion && v.toInt() != 1)
      throw CheckpointError(path + ": checkpoint format " + std::to_string(v.toInt()) + ", this build reads 1 to " +
                            std::to_string(kFormatVersion) + " (a newer maas wrote it?)");
    auto read = [&](const char* key) {
      c10::IValue value;
      archive_->read(key, value);
      return value;
    };
    meta_.model.name = read("meta/model_name").toStringRef();
    if (v.toInt() >= 2) {
      meta_.model.widths = read("meta/model_widths").toIntVector();
      meta_.model.width = read("meta/model_width").toDouble();
    }
    // Optional: checkpoints written before model.activation existed have the architecture's own.
    if (c10::IValue activation; archive_->try_read("meta/model_activation", activation))
      meta_.model.activation = activation.toStringRef();
    auto spec = read("meta/spec").toIntVector();
    if (spec.size() != 4) throw CheckpointError(path + ": malformed meta/spec");
    meta_.spec = {spec[0], spec[1], spec[2], spec[3]};
    for (const auto& s : read("meta/classes").toListRef()) meta_.classes.push_back(s.toStringRef());
    // A checkpoint is input: bound what the model is built from before anything is allocated.
    const bool plausible = meta_.spec.channels >= 1 && meta_.spec.channels <= kMaxChannels &&
                           meta_.spec.height >= 1 && meta_.spec.height <= kMaxSide && meta_.spec.width >= 1 &&
                           meta_.spec.width <= kMaxSide && meta_.spec.classes >= 2 &&
                           meta_.spec.classes <= kMaxClasses &&
                           meta_.spec.classes == static_cast<int64_t>(meta_.classes.size());
    if (!plausible)
      throw CheckpointError(path + ": implausible meta/spec (" + std::to_string(spec[0]) + "x" +
                            std::to_string(spec[1]) + "x" + std::to_string(spec[2]) + ", " +
                            std::to_string(spec[3]) + " classes, " + std::to_string(meta_.classes.size()) +
                            " class names)");
    meta_.normalization.mean = read("meta/norm_mean").toDoubleVector();
    meta_.normalization.std = read("meta/norm_std").toDoubleVector();
    meta_.epoch = read("meta/epoch").toInt();
    meta_.step = read("meta/step").toInt();
    meta_.partial_loss_sum = read("meta/partial_loss_sum").toDouble();
    meta_.partial_seconds = read("meta/partial_seconds").toDouble();
    meta_.partial_correct = read("meta/partial_correct").toInt();
    meta_.partial_seen = read("meta/partial_seen").toInt();
    meta_.best_test_acc = read("meta/best_test_acc").toDouble();
    meta_.last_test_acc = read("meta/last_test_acc").toDouble();
    archive_->read("meta/rng_state", meta_.rng_state);
    c10::IValue history, best_epoch;  // optional: older checkpoints lack the training record
    if (archive_->try_read("meta/history", history)) {
      const auto h = history.toDoubleVector();
      if (h.size() % kHistoryColumns != 0) throw CheckpointError(path + ": malformed meta/history");
      for (size_t i = 0; i < h.size(); i += kHistoryColumns)
        meta_.history.push_back({static_cast<int64_t>(h[i]), h[i + 1], h[i + 2], h[i + 3], h[i + 4], h[i + 5],
                                 h[i + 6], h[i + 7]});
    }
    if (archive_->try_read("meta/best_epoch", best_epoch)) meta_.best_epoch = best_epoch.toInt();
    c10::IValue confusion;  // optional, like the record above
    if (archive_->try_read("meta/best_confusion", confusion)) {
      meta_.best_confusion = confusion.toIntVector();
      const auto classes = static_cast<size_t>(meta_.spec.classes);
      if (!meta_.best_confusion.empty() && meta_.best_confusion.size() != classes * classes)
        throw CheckpointError(path + ": malformed meta/best_confusion");
    }
    c10::IValue precision;  // optional: float32 before it was recorded
    if (archive_->try_read("meta/precision", precision)) {
      meta_.precision = precision.toStringRef();
      if (meta_.precision != "float32" && meta_.precision != "bfloat16")
        throw CheckpointError(path + ": unknown meta/precision '" + meta_.precision.substr(0, 40) + "'");
    }
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": malformed checkpoint metadata");
  }
}

std::shared_ptr<ClassifierImpl> CheckpointReader::load_model() const {
  std::shared_ptr<ClassifierImpl> model;
  try {
    model = make_model(meta_.model, meta_.spec);
  } catch (const std::exception& e) {  // ConfigError (unknown name, bad widths) or a spec it cannot take
    throw CheckpointError(path_ + ": records model '" + meta_.model.name + "', which this build cannot build (" +
                          e.what() + ")");
  }
  restore_model(*model);
  return model;
}

void CheckpointReader::restore_model(torch::nn::Module& model) const { restore("model", model); }

void CheckpointReader::restore_trained_model(torch::nn::Module& model) const { restore("trained_model", model); }

void CheckpointReader::restore(const char* key, torch::nn::Module& model) const {
  try {
    // Module::load replaces tensors whatever their shape, so compare shapes around it.
    auto shapes = [&] {  // parameters and buffers (BatchNorm statistics), in registration order
      std::vector<std::vector<int64_t>> s;
      for (const auto& t : model.parameters()) s.push_back(t.sizes().vec());
      for (const auto& t : model.buffers()) s.push_back(t.sizes().vec());
      return s;
    };
    const auto expected = shapes();
    torch::serialize::InputArchive model_archive;
    if (!archive_->try_read(key, model_archive))
      throw CheckpointError(path_ + ": holds no " + key + " (written without weight averaging?)");
    model.load(model_archive);
    const bool same = shapes() == expected;
    if (!same) throw std::runtime_error("shape mismatch");
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(path_ + ": weights do not fit model '" + meta_.model.name +
                          "' (different architecture or data shape?)");
  }
}

void CheckpointReader::restore_optimizer(torch::optim::Optimizer& optimizer) const {
  try {
    torch::serialize::InputArchive optimizer_archive;
    archive_->read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
  } catch (const std::exception& e) {
    throw CheckpointError(path_ + ": optimizer state missing or does not fit the model");
  }
}

}  // namespace maas
