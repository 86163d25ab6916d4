// Building an artifact's TorchScript module from a trained C++ classifier, by tracing its forward.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "dataset.h"
#include "models.h"
#include "tta.h"

namespace maas {

enum class WeightFormat {
  kFloat32,
  kInt8,  // per-output-channel symmetric int8 conv/linear weights, dequantized in the graph; the rest float32
};
inline const char* to_string(WeightFormat format) { return format == WeightFormat::kInt8 ? "int8" : "float32"; }

// The TorchScript module of an artifact (artifact.h states its contract):
//   classify(x)     tta_logits(model.forward, x, tta) (tta.h) traced in eval mode (tracing.h): with
//                   kNone just model.forward; otherwise the views and their weighted mean are in the
//                   graph, model.forward recorded once per view. Submodules, parameters and buffers
//                   named as in the C++ module, so its state_dict matches the checkpoint's;
//   forward(images) checks the shape, normalizes pixels 0..255 (pixel_scale, pixel_shift buffers),
//                   calls classify;
//   classes         the class names in output order; `training` attributes, so eval(), freeze()
//                   and optimize_for_inference() work.
// With kInt8, every conv/linear `weight` is replaced by `weight_int8` and `weight_scale` buffers
// and the graph multiplies them back. Float32 modules hold copies: `model` may change afterwards.
// Requires: no architecture branches on input values (models.h). `model` is left in the
// training mode it came in. Throws ArtifactError when classes do not match spec, or tracing fails.
// `tta` defaults to kNone: forward returns the model's plain logits.
torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     WeightFormat format, TtaMode tta = TtaMode::kNone);

}  // namespace maas
