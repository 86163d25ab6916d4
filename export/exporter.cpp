// Export steps: load, build, verify, optimize, save, each reported with its time.
#include "exporter.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "checkpoint.h"
#include "export_steps.h"
#include "onnx_exporter.h"
#include "config.h"
#include "files.h"
#include "image.h"
#include "models.h"
#include "torchscript_loader.h"
#include "tta.h"

namespace maas {
namespace {

using nlohmann::json;

json yaml_to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    json j = json::object();
    for (const auto& kv : node) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
    return j;
  }
  if (node.IsSequence()) {
    json j = json::array();
    for (const auto& item : node) j.push_back(yaml_to_json(item));
    return j;
  }
  const std::string s = node.Scalar();
  if (s == "true" || s == "false") return s == "true";
  try {
    size_t used = 0;
    const long long i = std::stoll(s, &used);
    if (used == s.size()) return i;
    const double d = std::stod(s, &used);
    if (used == s.size()) return d;
  } catch (const std::exception&) {
  }
  return s;
}

std::string utc_now() {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return stamp;
}

// "(widths [64, 128], width 1)": a model's hyperparameters, for messages.
std::string model_text(const ModelOptions& m) {
  std::string widths;
  for (int64_t w : m.widths) widths += (widths.empty() ? "" : ", ") + std::to_string(w);
  std::ostringstream out;
  out << "(widths [" << widths << "], width " << m.width << (m.activation.empty() ? "" : ", activation " + m.activation)
      << ")";
  return out.str();
}

std::string checkpoint_path(const ExportOptions& o) {
  if (o.checkpoint == "best") return best_checkpoint_path(o.run_dir);
  if (o.checkpoint == "last") return last_checkpoint_path(o.run_dir);
  return o.checkpoint;
}

// Refuses an --out that is one of the run's own files or the checkpoint being exported: writing
// the artifact there would destroy the run (a later --resume or export fails). Compares resolved
// paths, and file identity when both exist, so "RUN/./last.pt" and links are caught too.
void refuse_overwriting_run_files(const ExportOptions& o) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path out = fs::weakly_canonical(o.out, error);
  for (const std::string& own : {run_config_path(o.run_dir), last_checkpoint_path(o.run_dir),
                                 best_checkpoint_path(o.run_dir), metrics_path(o.run_dir), checkpoint_path(o)}) {
    std::error_code ignored;
    const bool same = (!error && out == fs::weakly_canonical(own, ignored)) ||
                      (fs::exists(o.out, ignored) && fs::exists(own, ignored) && fs::equivalent(o.out, own, ignored));
    if (same)
      throw std::invalid_argument("--out '" + o.out + "' would overwrite the run's own " + own +
                                  "; write the artifact to another file (e.g. " + o.run_dir + "/model.pt)");
  }
}

// Refuses, before any work, what the chosen format cannot do.
void check_format_options(const ExportOptions& o) {
  if (o.format != ArtifactFormat::kOnnx) return;
  if (o.weights == WeightFormat::kInt8)
    throw std::invalid_argument(
        "--quantize int8 is not available with --format onnx yet: maas's int8 graph is LibTorch's quantized "
        "operators (oneDNN packed weights), which have no QDQ conversion; export float32 ONNX, or int8 TorchScript");
  if (o.weights == WeightFormat::kBFloat16)
    throw std::invalid_argument(
        "--precision bf16 is not available with --format onnx: the ONNX file is float32 (runtimes choose their own "
        "reduced precision); export float32 ONNX, or bf16 TorchScript");
}

// Refuses outputs that could only fail at the end, after minutes of work: an --out that is a
// directory, FIFO or device, a --samples that is not a directory.
void refuse_unwritable_outputs(const ExportOptions& o) {
  refuse_special_file(o.out);
  std::error_code ignored;
  if (!o.samples_dir.empty() && std::filesystem::exists(o.samples_dir, ignored) &&
      !std::filesystem::is_directory(o.samples_dir, ignored))
    throw FileError("--samples '" + o.samples_dir + "': exists and is not a directory; name a folder for the PNGs");
}

// The save step's note on --samples ("" without it).
std::string samples_note(const ExportOptions& o) {
  return o.samples_dir.empty() ? "" : "; one test image per class in " + o.samples_dir + "/ (PNG)";
}

// bf16 without native bf16 arithmetic runs emulated, slower than float32: refused unless forced.
void refuse_bf16_without_native_support(const ExportOptions& o) {
  const CpuInfo& cpu = o.cpu ? *o.cpu : this_cpu();
  if (o.weights != WeightFormat::kBFloat16 || o.force_bf16 || cpu.has_bf16()) return;
  throw std::invalid_argument(
      "--precision bf16: this CPU has no native bfloat16 arithmetic (avx512_bf16 or amx_bf16), so the bf16 "
      "artifact would run emulated, slower than float32 (" + cpu_line(cpu) + "). Export float32 (the default) or "
      "--quantize int8 here, or pass --force-bf16 to write it anyway (e.g. to serve it on a CPU that has avx512_bf16)");
}

// The bf16 verification: close to float32 relative to the logits' range, the same top class on
// nearly all images, and no more accuracy lost than allowed. Throws ArtifactError naming the failure.
void check_bf16_verification(const ExportOptions& o, const ExportReport& r) {
  std::ostringstream why;
  why << std::setprecision(3);
  const double relative = r.logit_range > 0 ? r.max_abs_diff / r.logit_range : r.max_abs_diff;
  const double agreement = 1 - static_cast<double>(r.argmax_mismatches) / static_cast<double>(r.verified_images);
  if (relative > o.bf16_max_relative_diff)
    why << "max |logit diff| " << r.max_abs_diff << " is " << 100 * relative << "% of the float32 logits' range "
        << r.logit_range << ", more than " << 100 * o.bf16_max_relative_diff << "%";
  else if (agreement < o.bf16_min_top1_agreement)
    why << "the top class differs from float32 on " << r.argmax_mismatches << " of " << r.verified_images
        << " images, more than " << 100 * (1 - o.bf16_min_top1_agreement) << "%";
  else if (r.trained_test_acc - r.artifact_test_acc > o.max_accuracy_drop)
    why << std::fixed << std::setprecision(2) << "bf16 loses " << 100 * (r.trained_test_acc - r.artifact_test_acc)
        << " points of test accuracy (float32 " << 100 * r.trained_test_acc << "%, bf16 " << 100 * r.artifact_test_acc
        << "%), more than the " << 100 * o.max_accuracy_drop << " allowed (--max-accuracy-drop)";
  else
    return;
  throw ArtifactError("verification failed: " + why.str() + "; nothing written. Export float32 (the default)");
}

}  // namespace

const char* to_string(WeightFormat format) {
  switch (format) {
    case WeightFormat::kInt8: return "int8";
    case WeightFormat::kBFloat16: return "bf16";
    case WeightFormat::kFloat32: break;
  }
  return "float32";
}

ExportReport export_run(const ExportOptions& options, std::ostream* log) {
  torch::NoGradGuard no_grad;
  StepLog step(log);
  ExportReport report;
  refuse_bf16_without_native_support(options);

  check_format_options(options);
  step.begin("load");
  if (!std::filesystem::is_directory(options.run_dir)) {
    const std::string kind = special_file_kind(options.run_dir);
    throw CheckpointError(options.run_dir + (std::filesystem::exists(options.run_dir)
                                                 ? ": not a run directory (" + (kind.empty() ? "a file" : kind) + ")"
                                                 : ": run directory not found"));
  }
  refuse_overwriting_run_files(options);
  refuse_unwritable_outputs(options);
  const RunConfig config = load_run_dir_config(options.run_dir, {});
  const TtaMode tta = options.tta.value_or(parse_tta_mode(config.eval.tta));
  const std::string ckpt_file = checkpoint_path(options);
  const CheckpointReader checkpoint(ckpt_file);
  const CheckpointMeta& meta = checkpoint.meta();
  // A pruned run's widths come from its source (prune.from): its config names only the architecture.
  if (config.prune.from.empty() ? !same_network(meta.model, config.model) : meta.model.name != config.model.name)
    throw CheckpointError(ckpt_file + ": holds model '" + meta.model.name + "' " + model_text(meta.model) + " but " +
                          run_config_path(options.run_dir) + " says '" + config.model.name + "' " +
                          model_text(config.model));
  const ImageSet test_set = load_dataset(config.data.dataset, config.data.root, Split::kTest);
  if (test_set.channels() != meta.spec.channels || test_set.height() != meta.spec.height ||
      test_set.width() != meta.spec.width)
    throw CheckpointError(ckpt_file + ": trained on " + std::to_string(meta.spec.channels) + "x" +
                          std::to_string(meta.spec.height) + "x" + std::to_string(meta.spec.width) +
                          " images, but the config's data set has other shapes");
  step.end(ckpt_file + ": model '" + meta.model.name + "', epoch " + std::to_string(meta.epoch) + ", test acc " +
           std::to_string(100 * meta.last_test_acc).substr(0, 5) + "%; " + std::to_string(test_set.size()) +
           " test images");

  step.begin("build");
  auto trained = checkpoint.load_model();
  trained->eval();
  const int64_t parameters = parameter_count(*trained);
  const int64_t macs = macs_per_image(*trained, meta.spec);
  const bool bf16 = options.weights == WeightFormat::kBFloat16;
  auto module = build_torchscript(*trained, meta.model.name, meta.spec, meta.normalization, meta.classes, tta,
                                  bf16 ? torch::kBFloat16 : torch::kFloat32);
  const std::string tta_text = (tta == TtaMode::kNone ? "" : ", " + tta_mode_name(tta) + " test-time augmentation") +
                               std::string(bf16 ? ", bfloat16 weights" : "");
  step.end("TorchScript module traced from the C++ model" + tta_text + ", " + std::to_string(parameters) +
           " parameters, " + std::to_string(macs) + " MACs per image");

  const bool int8 = options.weights == WeightFormat::kInt8;
  QuantizeOptions quantize_options;
  quantize_options.macs_per_image = macs;
  bool pixels_input = false;
  if (int8) {
    step.begin("quantize");
    if (options.calibration_images < 1) throw std::invalid_argument("calibration_images must be >= 1");
    const auto calibration = calibration_images(config, options.calibration_images);
    const QuantizedModule quantized = quantize_static(module, calibration, quantize_options);
    module = quantized.module;
    pixels_input = quantized.pixels_input;
    report.calibration_images = calibration.size(0);
    step.end("static int8 on " + std::string(kInt8Engine) + ", calibrated on " +
             std::to_string(report.calibration_images) + " training images: " +
             std::to_string(quantized.quantized_convolutions) + " int8 convolutions, " +
             std::to_string(quantized.quantized_linears) + " int8 linear layers, " +
             std::to_string(quantized.float_fallbacks) + " dequantize nodes, input " +
             (pixels_input ? "pixels (normalization folded into the first convolution)" : "normalized in float32"));
  }

  json metadata = {
      {"format_version", kArtifactFormatVersion},
      {"maas_version", MAAS_VERSION},
      {"created", utc_now()},
      {"model", {{"name", meta.model.name},
                 {"widths", resolved_widths(meta.model)},
                 {"options", {{"widths", meta.model.widths}, {"width", meta.model.width},
                              {"activation", resolved_activation(meta.model)}}},
                 {"parameters", parameters},
                 {"macs_per_image", macs},
                 {"weights", to_string(options.weights)},
                 {"frozen", options.optimize || int8}}},  // int8: frozen by the quantization passes
      {"dataset", config.data.dataset},
      {"input", {{"name", "images"},
                 {"dtype", {"uint8", "float32"}},
                 {"shape", {-1, meta.spec.channels, meta.spec.height, meta.spec.width}},
                 {"layout", "NCHW"},
                 {"range", {0, 255}}}},
      {"output", {{"name", "logits"}, {"dtype", "float32"}, {"shape", {-1, meta.spec.classes}}}},
      {"tta", tta_mode_name(tta)},  // the logits are averaged over these views (common/tta.h)
      {"classes", meta.classes},
      {"normalization", {{"mean", meta.normalization.mean}, {"std", meta.normalization.std},
                         {"formula", "(pixels / 255 - mean) / std, per channel, inside forward()"}}},
      {"training", {{"config", yaml_to_json(YAML::Load(to_yaml(config)))},
                    {"checkpoint", std::filesystem::path(ckpt_file).filename().string()},
                    {"epoch", meta.epoch},
                    {"precision", meta.precision},  // of training and its evaluation; the weights here are float32
                    {"final_test_acc", meta.last_test_acc},
                    {"best_test_acc", meta.best_test_acc}}},
  };

  // The same TTA around the C++ model, so the comparison is logit for logit.
  auto trained_logits = [&](const torch::Tensor& pixels) {
    return tta_logits([&](const torch::Tensor& x) { return trained->forward(x); }, meta.normalization.apply(pixels),
                      tta);
  };
  if (options.format == ArtifactFormat::kOnnx) {
    metadata["model"]["frozen"] = true;  // the ONNX graph is converted from the frozen module
    OnnxExport onnx{options, module, meta, test_set, config.train.eval_batch_size, tta, metadata, trained_logits};
    StagedWrites outputs;
    report = export_onnx(onnx, outputs, step);
    step.begin("samples");
    if (!options.samples_dir.empty()) stage_class_samples(test_set, meta.classes, options.samples_dir, outputs);
    outputs.commit();  // the ONNX file and the samples together
    if (!options.samples_dir.empty()) step.end(samples_note(options).substr(2));
    return report;
  }

  if (options.optimize && !int8) {
    step.begin("optimize");
    module = torch::jit::freeze(module);
    step.end("frozen (parameters folded into constants)");
  }

  step.begin("verify");
  const std::string bytes = artifact_bytes(module, metadata.dump(2));
  const Artifact reloaded = load_artifact_from_bytes(bytes, options.out);
  auto artifact_logits = [&](const torch::Tensor& pixels) {
    try {
      return reloaded.module.get_method("forward")({pixels}).toTensor();
    } catch (const std::exception& e) {  // e.g. a traced forward that baked in its batch size
      throw ArtifactError("verification failed: the artifact's forward fails on a batch of " +
                          std::to_string(pixels.size(0)) + " images (does the model's forward depend on the batch "
                          "size?); nothing written. " + interpreter_error_cause(e.what()));
    }
  };
  // One pass of each over the test set: the first n images are compared, all are scored.
  const auto trained_all = logits_on(test_set, config.train.eval_batch_size, trained_logits);
  const auto artifact_all = logits_on(test_set, config.train.eval_batch_size, artifact_logits);
  const int64_t n = std::min(test_set.size(), std::max<int64_t>(options.verify_images, 256));
  const auto expected = trained_all.slice(0, 0, n), got = artifact_all.slice(0, 0, n);
  report.verified_images = n;
  report.max_abs_diff = (expected - got).abs().max().item<double>();
  report.logit_range = (expected.max() - expected.min()).item<double>();
  // Batches of 1 and 7 too: the forward was traced at batch 3 (torchscript_builder.cpp), and a
  // forward that recorded its batch size must not pass because the test set's batches agree.
  for (int64_t batch : {1, 7}) {
    const auto pixels = test_set.images.slice(0, 0, std::min(batch, test_set.size()));
    report.max_abs_diff = std::max(
        report.max_abs_diff, (trained_logits(pixels) - artifact_logits(pixels)).abs().max().item<double>());
  }
  report.argmax_mismatches = expected.argmax(1).ne(got.argmax(1)).sum().item<int64_t>();
  report.trained_test_acc = accuracy(trained_all, test_set.labels);
  report.artifact_test_acc = accuracy(artifact_all, test_set.labels);
  std::ostringstream summary;
  summary << std::setprecision(3) << n << " images: max |logit diff| " << report.max_abs_diff << ", top-1 mismatches "
          << report.argmax_mismatches << std::fixed << std::setprecision(2) << "; test accuracy trained "
          << 100 * report.trained_test_acc << "%, artifact " << 100 * report.artifact_test_acc << "%"
          << (tta == TtaMode::kNone ? "" : " (both with " + tta_mode_name(tta) + " TTA)");
  if (bf16)
    summary << "; bf16 max diff " << 100 * report.max_abs_diff / std::max(report.logit_range, 1e-12)
            << "% of the logit range " << report.logit_range;
  step.end(summary.str());
  if (options.weights == WeightFormat::kFloat32 &&
      (report.max_abs_diff > options.max_abs_diff || report.argmax_mismatches > 0))
    throw ArtifactError("verification failed: the artifact differs from the trained model (max |diff| " +
                        std::to_string(report.max_abs_diff) + " > " + std::to_string(options.max_abs_diff) +
                        " or top-1 mismatches); nothing written");
  if (bf16) check_bf16_verification(options, report);
  if (int8 && report.trained_test_acc - report.artifact_test_acc > options.max_accuracy_drop) {
    std::ostringstream loss;
    loss << std::fixed << std::setprecision(2) << "verification failed: int8 loses "
         << 100 * (report.trained_test_acc - report.artifact_test_acc) << " points of test accuracy (float32 "
         << 100 * report.trained_test_acc << "%, int8 " << 100 * report.artifact_test_acc << "%), more than the "
         << 100 * options.max_accuracy_drop << " allowed; nothing written. Export float32, or calibrate on "
         << "more images (--calibration-images), or accept the loss (--max-accuracy-drop)";
    throw ArtifactError(loss.str());
  }

  step.begin("save");
  metadata["verification"] = {{"images", n},
                              {"max_abs_diff", report.max_abs_diff},
                              {"argmax_mismatches", report.argmax_mismatches},
                              {"trained_test_acc", report.trained_test_acc},
                              {"artifact_test_acc", report.artifact_test_acc}};
  if (int8)
    metadata["quantization"] = {{"engine", kInt8Engine},
                                {"scheme", int8_scheme(quantize_options)},
                                {"calibration_images", report.calibration_images},
                                {"input", pixels_input ? "pixels at scale 1 (normalization folded into the first convolution)"
                                                       : "normalized in float32, then quantized"},
                                {"float_test_acc", report.trained_test_acc},
                                {"int8_test_acc", report.artifact_test_acc}};
  if (bf16)
    metadata["precision"] = {
        {"weights", "bf16"},
        {"compute", "bf16 (oneDNN accumulates in float32)"},
        {"input", "pixels normalized in float32, cast to bf16 once"},
        {"output", "float32"},
        {"logit_range", report.logit_range},
        {"max_relative_diff", report.logit_range > 0 ? report.max_abs_diff / report.logit_range : 0.0},
        {"float_test_acc", report.trained_test_acc},
        {"bf16_test_acc", report.artifact_test_acc},
        {"exported_on", cpu_line(options.cpu ? *options.cpu : this_cpu())}};
  // All outputs are staged and renamed into place together: a failure at any point (a --samples
  // that is a file, a full disk) leaves --out and --samples absent or unchanged.
  StagedWrites outputs;
  const std::string artifact = artifact_bytes(module, metadata.dump(2));
  outputs.stage(options.out, artifact);
  report.file_bytes = static_cast<int64_t>(artifact.size());
  if (!options.samples_dir.empty()) stage_class_samples(test_set, meta.classes, options.samples_dir, outputs);
  outputs.commit();
  step.end(options.out + ", " + std::to_string(report.file_bytes) + " bytes" + samples_note(options));
  return report;
}

}  // namespace maas

namespace maas {

void stage_class_samples(const ImageSet& test_set, const std::vector<std::string>& classes, const std::string& dir,
                         StagedWrites& outputs) {
  outputs.make_directory(dir);
  for (size_t c = 0; c < classes.size(); ++c) {
    const auto matches = test_set.labels.eq(static_cast<int64_t>(c)).nonzero();
    if (matches.size(0) == 0) continue;
    std::string file = classes[c];
    for (char& ch : file)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
    outputs.stage(dir + "/" + file + ".png", encode_png(test_set.images[matches[0][0].item<int64_t>()]));
  }
}

}  // namespace maas
