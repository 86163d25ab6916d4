// ONNX export steps: convert the traced graph, check it, run it in ONNX Runtime, save it.
#include "onnx_exporter.h"

#include <iomanip>
#include <sstream>

#include "files.h"
#include "onnx_builder.h"
#include "onnx_runtime.h"

namespace maas {
namespace {

using nlohmann::json;

int64_t count_op(const onnx::ModelProto& model, const std::string& op_type) {
  int64_t n = 0;
  for (const auto& node : model.graph().node()) n += node.op_type() == op_type;
  return n;
}

// Rows where the top class differs, ignoring ties: rows whose two best expected logits are
// closer than `tolerance` may swap within the allowed difference.
int64_t top1_mismatches(const torch::Tensor& expected, const torch::Tensor& got, double tolerance) {
  const auto top2 = std::get<0>(expected.topk(std::min<int64_t>(2, expected.size(1)), 1));
  const auto margin = expected.size(1) > 1 ? (top2.select(1, 0) - top2.select(1, 1)) : top2.select(1, 0).abs() + 1;
  const auto differs = expected.argmax(1).ne(got.argmax(1)).logical_and(margin.gt(tolerance));
  return differs.sum().item<int64_t>();
}

struct OrtVerification {
  torch::Tensor expected, got;  // [test images + 1 + 7, classes]
  std::string version;
};

// The whole test set at the run's eval batch size, then batches of 1 and 7 (the dynamic batch),
// through the trained model and through ONNX Runtime.
OrtVerification run_both(const OnnxExport& w, const std::string& model_bytes) {
  const ImageSet& set = w.test_set;
  std::vector<int64_t> batches;
  std::vector<torch::Tensor> images, expected;
  const int64_t step = std::max<int64_t>(1, w.eval_batch);
  for (int64_t begin = 0; begin < set.size(); begin += step) {
    const auto pixels = set.images.slice(0, begin, std::min(set.size(), begin + step));
    batches.push_back(pixels.size(0));
    images.push_back(pixels);
    expected.push_back(w.trained_logits(pixels));
  }
  for (const int64_t b : {int64_t{1}, int64_t{7}}) {
    const auto pixels = set.images.slice(0, 0, std::min(b, set.size()));
    batches.push_back(pixels.size(0));
    images.push_back(pixels);
    expected.push_back(w.trained_logits(pixels));
  }
  OrtVerification v;
  v.expected = torch::cat(expected);
  try {
    auto result = run_onnx_runtime(model_bytes, torch::cat(images), batches, w.options.onnx_runtime);
    v.got = result.logits;
    v.version = result.version;
  } catch (const std::exception& e) {
    throw ArtifactError("verification failed: ONNX Runtime cannot run the converted model: " + std::string(e.what()) +
                        "; nothing written");
  }
  if (v.got.sizes() != v.expected.sizes())
    throw ArtifactError("verification failed: ONNX Runtime returned logits of another shape; nothing written");
  return v;
}

std::string percent(double fraction) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << 100 * fraction << "%";
  return out.str();
}

}  // namespace

std::vector<std::pair<std::string, std::string>> onnx_metadata_props(const json& metadata) {
  std::vector<std::pair<std::string, std::string>> props{
      {"maas.metadata", metadata.dump()},
      {"maas_version", metadata.at("maas_version").get<std::string>()},
      {"architecture", metadata.at("model").at("name").get<std::string>()},
      {"widths", metadata.at("model").at("widths").dump()},
      {"classes", metadata.at("classes").dump()},
      {"normalization", metadata.at("normalization").dump()},
      {"tta", metadata.at("tta").get<std::string>()},
      {"dataset", metadata.at("dataset").get<std::string>()},
      {"input", metadata.at("input").dump()},
  };
  if (metadata.contains("verification")) {
    const auto& v = metadata.at("verification");
    props.emplace_back("test_accuracy", json(v.at("trained_test_acc")).dump());
    if (v.contains("artifact_test_acc")) props.emplace_back("onnxruntime_test_accuracy", json(v.at("artifact_test_acc")).dump());
  }
  return props;
}

ExportReport export_onnx(OnnxExport& w, StagedWrites& outputs, StepLog& step) {
  ExportReport report;
  const ModelSpec& spec = w.meta.spec;

  step.begin("convert");
  const auto graph = onnx_ready_graph(w.module, spec);
  onnx::ModelProto model = graph_to_onnx(*graph, spec);
  report.onnx_nodes = model.graph().node_size();
  step.end(std::to_string(report.onnx_nodes) + " ONNX nodes (opset " + std::to_string(kOnnxOpset) + ", IR version " +
           std::to_string(kOnnxIrVersion) + ") from the frozen traced graph: " +
           std::to_string(count_op(model, "Conv")) + " Conv (BatchNorm folded in where it follows one), " +
           std::to_string(count_op(model, "BatchNormalization")) + " BatchNormalization (after pooling)");

  step.begin("check");
  check_onnx_model(model, spec);
  step.end("onnx::checker (full check) and strict shape inference: uint8 [N, " + std::to_string(spec.channels) + ", " +
           std::to_string(spec.height) + ", " + std::to_string(spec.width) + "] -> float32 [N, " +
           std::to_string(spec.classes) + "]");

  step.begin("verify");
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw ArtifactError("the ONNX model cannot be serialized (over 2 GB?)");
  const std::string unavailable = onnx_runtime_unavailable(w.options.onnx_runtime);
  json verification;
  if (unavailable.empty()) {
    const OrtVerification v = run_both(w, bytes);
    const int64_t n = w.test_set.size();
    report.verified_images = v.got.size(0);
    report.max_abs_diff = (v.expected - v.got).abs().max().item<double>();
    report.argmax_mismatches = top1_mismatches(v.expected, v.got, w.options.max_abs_diff);
    report.trained_test_acc = accuracy(v.expected.slice(0, 0, n), w.test_set.labels);
    report.artifact_test_acc = accuracy(v.got.slice(0, 0, n), w.test_set.labels);
    report.onnx_runtime = v.version;
    std::ostringstream summary;
    summary << "ONNX Runtime " << v.version << " on " << n << " test images (batches of " << w.eval_batch
            << ", then 1 and 7): max |logit diff| " << std::setprecision(3) << report.max_abs_diff
            << ", top-1 mismatches " << report.argmax_mismatches << "; test accuracy trained "
            << percent(report.trained_test_acc) << ", ONNX " << percent(report.artifact_test_acc)
            << (w.tta == TtaMode::kNone ? "" : " (both with " + tta_mode_name(w.tta) + " TTA)");
    step.end(summary.str());
    if (report.max_abs_diff > w.options.max_abs_diff || report.argmax_mismatches > 0)
      throw ArtifactError("verification failed: ONNX Runtime's logits differ from the trained model's (max |diff| " +
                          std::to_string(report.max_abs_diff) + " > " + std::to_string(w.options.max_abs_diff) +
                          " or top-1 mismatches); nothing written");
    verification = {{"runtime", "onnxruntime-node " + v.version},
                    {"images", report.verified_images},
                    {"max_abs_diff", report.max_abs_diff},
                    {"argmax_mismatches", report.argmax_mismatches},
                    {"trained_test_acc", report.trained_test_acc},
                    {"artifact_test_acc", report.artifact_test_acc}};
  } else {
    report.onnx_runtime_skipped = unavailable;
    report.trained_test_acc = accuracy(logits_on(w.test_set, w.eval_batch, w.trained_logits), w.test_set.labels);
    step.end("ONNX Runtime check skipped: " + unavailable + " (the checker passed; the logits are unverified)");
    verification = {{"runtime", "skipped: " + unavailable}, {"trained_test_acc", report.trained_test_acc}};
  }

  step.begin("save");
  w.metadata["format"] = "onnx";
  w.metadata["input"]["dtype"] = "uint8";  // the ONNX input is typed: uint8 only (TorchScript takes float32 too)
  w.metadata["onnx"] = {{"opset", kOnnxOpset}, {"ir_version", kOnnxIrVersion}, {"nodes", report.onnx_nodes}};
  w.metadata["verification"] = verification;
  for (const auto& [key, value] : onnx_metadata_props(w.metadata)) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  bytes.clear();
  if (!model.SerializeToString(&bytes)) throw ArtifactError("the ONNX model cannot be serialized (over 2 GB?)");
  outputs.stage(w.options.out, bytes);
  report.file_bytes = static_cast<int64_t>(bytes.size());
  step.end(w.options.out + ", " + std::to_string(report.file_bytes) + " bytes");
  return report;
}

}  // namespace maas
