// maas-export: command-line entry point.
#include <cxxopts.hpp>

#include <iostream>

#include "cli.h"
#include "exporter.h"
#include "tta.h"

namespace {

// "none, flip, flip_translate": the --tta values, for help and errors.
std::string tta_names_text() {
  std::string text;
  for (const auto& name : maas::tta_mode_names()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("maas-export",
                           "Turn a maas-train run into a verified, self-describing TorchScript or ONNX file.");
  options.add_options()
      ("run", "maas-train run directory", cxxopts::value<std::string>())
      ("out", "artifact to write, e.g. model.pt (model.onnx with --format onnx)", cxxopts::value<std::string>())
      ("format", "torchscript (the maas artifact) or onnx (opset 17, checked and run in ONNX Runtime)",
       cxxopts::value<std::string>()->default_value("torchscript"))
      ("onnxruntime-dir", "with --format onnx: the folder with onnxruntime-node installed (npm ci --ignore-scripts)",
       cxxopts::value<std::string>())
      ("checkpoint", "best, last, or a checkpoint path", cxxopts::value<std::string>()->default_value("best"))
      ("optimize", "freeze the module (fold parameters into constants)")
      ("quantize", "int8: static post-training quantization, int8 kernels (only value: int8)",
       cxxopts::value<std::string>())
      ("precision", "float32 (default) or bf16: weights and arithmetic in bfloat16, float32 in and out; "
       "needs a CPU with avx512_bf16", cxxopts::value<std::string>()->default_value("float32"))
      ("force-bf16", "with --precision bf16: export even on a CPU without native bf16 (it runs emulated there)")
      ("calibration-images", "with --quantize int8: training images the observers see",
       cxxopts::value<int64_t>()->default_value("1024"))
      ("max-accuracy-drop", "with --quantize int8 or --precision bf16: refuse the artifact when it loses more test accuracy than this, in points",
       cxxopts::value<double>()->default_value("1"))
      ("tta", "test-time augmentation baked into forward: " + tta_names_text() +
       " (default: the run's eval.tta)", cxxopts::value<std::string>())
      ("verify-images", "test images compared logit by logit (at least 256)",
       cxxopts::value<int64_t>()->default_value("512"))
      ("samples", "also write one test image per class as PNG into this folder", cxxopts::value<std::string>())
      ("h,help", "show this help");
  return maas::run_cli("maas-export", [&] {
    const auto parsed = maas::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    if (!args.count("run") || !args.count("out")) throw maas::UsageError("--run DIR and --out FILE are required");
    maas::ExportOptions o;
    if (args.count("tta")) {
      try {
        o.tta = maas::parse_tta_mode(args["tta"].as<std::string>());
      } catch (const std::invalid_argument&) {
        throw maas::UsageError("--tta takes " + tta_names_text() + ", got '" + args["tta"].as<std::string>() + "'");
      }
    }
    const std::string format = args["format"].as<std::string>();
    if (format == "onnx")
      o.format = maas::ArtifactFormat::kOnnx;
    else if (format != "torchscript")
      throw maas::UsageError("--format takes torchscript or onnx, got '" + format + "'");
    if (args.count("onnxruntime-dir")) {
      if (o.format != maas::ArtifactFormat::kOnnx) throw maas::UsageError("--onnxruntime-dir applies to --format onnx only");
      o.onnx_runtime.package_dir = args["onnxruntime-dir"].as<std::string>();
    }
    o.run_dir = args["run"].as<std::string>();
    o.out = args["out"].as<std::string>();
    o.checkpoint = args["checkpoint"].as<std::string>();
    o.optimize = args.count("optimize") > 0;
    o.verify_images = args["verify-images"].as<int64_t>();
    if (args.count("samples")) o.samples_dir = args["samples"].as<std::string>();
    if (args.count("quantize")) {
      if (args["quantize"].as<std::string>() != "int8")
        throw maas::UsageError("--quantize takes only 'int8', got '" + args["quantize"].as<std::string>() + "'");
      o.weights = maas::WeightFormat::kInt8;
      if (o.format == maas::ArtifactFormat::kOnnx)
        throw maas::UsageError("--quantize int8 with --format onnx is not available yet (maas's int8 graph is "
                               "LibTorch's quantized operators, which have no QDQ conversion); export float32 ONNX");
    }
    const std::string precision = args["precision"].as<std::string>();
    if (precision != "float32" && precision != "bf16")
      throw maas::UsageError("--precision takes float32 or bf16, got '" + precision + "'");
    if (precision == "bf16") {
      if (o.weights == maas::WeightFormat::kInt8)
        throw maas::UsageError("--precision bf16 and --quantize int8 are two forms: choose one");
      o.weights = maas::WeightFormat::kBFloat16;
    }
    o.force_bf16 = args.count("force-bf16") > 0;
    if (o.force_bf16 && o.weights != maas::WeightFormat::kBFloat16)
      throw maas::UsageError("--force-bf16 applies to --precision bf16 only");
    o.calibration_images = args["calibration-images"].as<int64_t>();
    if (o.calibration_images < 1) throw maas::UsageError("--calibration-images must be >= 1");
    const double drop_points = args["max-accuracy-drop"].as<double>();
    if (!(drop_points >= 0 && drop_points <= 100)) throw maas::UsageError("--max-accuracy-drop must be in 0..100 points");
    if (args.count("max-accuracy-drop") && o.weights == maas::WeightFormat::kFloat32)
      throw maas::UsageError("--max-accuracy-drop applies to --quantize int8 and --precision bf16 only");
    o.max_accuracy_drop = drop_points / 100;
    maas::export_run(o, &std::cerr);
    return 0;
  });
}
