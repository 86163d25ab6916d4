// Building an artifact's TorchScript module from a trained C++ classifier, by tracing its forward.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "dataset.h"
#include "models.h"
#include "tta.h"

namespace maas {

// The TorchScript module of an artifact (artifact.h states its contract):
//   classify(x)     tta_logits(model.forward, x, tta) (tta.h) traced in eval mode (tracing.h): with
//                   kNone just model.forward; otherwise the views and their weighted mean are in the
//                   graph, model.forward recorded once per view. Submodules, parameters and buffers
//                   named as in the C++ module, so its state_dict matches the checkpoint's;
//   forward(images) checks the shape, normalizes pixels 0..255 (pixel_scale, pixel_shift buffers),
//                   calls classify;
//   classes         the class names in output order; `training` attributes, so eval(), freeze()
//                   and optimize_for_inference() work.
// The module holds copies of the tensors: `model` may change afterwards. int8 artifacts are
// made from this module by quantize_static (quantize.h).
// Requires: no architecture branches on input values (models.h). `model` is left in the
// training mode it came in. Throws ArtifactError when classes do not match spec, or tracing fails.
// `tta` defaults to kNone: forward returns the model's plain logits.
// `dtype` kBFloat16 makes the bf16 form: classify's parameters and buffers are bfloat16, forward
// normalizes in float32, casts once to bfloat16, and returns the logits cast back to float32 (so
// the artifact contract holds). Other dtypes than kFloat32 and kBFloat16 throw ArtifactError.
torch::jit::Module build_torchscript(ClassifierImpl& model, const std::string& model_name, const ModelSpec& spec,
                                     const Normalization& normalization, const std::vector<std::string>& classes,
                                     TtaMode tta = TtaMode::kNone, torch::Dtype dtype = torch::kFloat32);

}  // namespace maas
