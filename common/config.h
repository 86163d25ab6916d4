// Run configuration for maas-train: plain structs with defaults, loaded from YAML plus --set overrides.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "model_options.h"

namespace maas {

// Thrown for any invalid configuration; the message names the key and where its value came from.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One configurable key of an options struct: where its value lives and what is allowed.
// Options structs list their fields once; loading, validation and writing all use that list.
struct ConfigField {
  std::string key;  // dotted, "section.name"
  std::variant<std::string*, int64_t*, double*, bool*, std::vector<int64_t>*> target;  // vector: a YAML list
  std::function<std::string()> check;  // "" when the current value is valid, else what is wrong
  bool resume_may_change = false;       // a resumed run may take a new value (same run; at most rounding differs)
};

// Sets `fields` from YAML text (nested mappings), then from "key=value" overrides (value parsed
// as YAML). Throws ConfigError naming the key and "origin:line" or "--set ...": unknown key,
// wrong type, or a value its check rejects. Keys not mentioned keep their current values.
void apply_config(const std::string& yaml_text, const std::string& origin, const std::vector<std::string>& overrides,
                  const std::vector<ConfigField>& fields);

// apply_config on a file; an empty path applies only the overrides.
void apply_config_file(const std::string& path, const std::vector<std::string>& overrides,
                       const std::vector<ConfigField>& fields);

// All fields as nested YAML; apply_config reads it back to the same values.
std::string fields_to_yaml(const std::vector<ConfigField>& fields);

struct DataOptions {
  std::string dataset = "cifar10";               // "cifar10" or "fashion-mnist"
  std::string root = "data/cifar-10-batches-bin";  // folder holding the data set's files
  int64_t train_limit = 0;                       // use the first N training images; 0 = all
  int64_t test_limit = 0;                        // use the first N test images; 0 = all
};

// Augmentation of training batches (uint8, in C++; see train/batch_source.h). All off by default.
struct AugmentOptions {
  int64_t translate = 0;            // shift each image by up to N pixels each way (a random crop of the padded image); 0 = off
  std::string padding = "reflect";  // what fills the border a shift uncovers: "reflect" or "zeros"
  std::string flip = "none";        // horizontal flip: "none"; "random" (each image, p = 1/2); "alternating"
                                    // (random in epoch 1, then each image flips every other epoch)
  int64_t cutout = 0;               // side of a square set to the data set's mean colour at a random place; 0 = off
};

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 500;  // evaluation only; does not change results
  double lr = 1e-3;               // base learning rate (the schedule multiplies it per step)
  int64_t seed = 0;               // seeds weight init, shuffling and augmentation: same seed, same run
  int64_t threads = 0;            // LibTorch intra-op threads; 0 = all cores
  bool channels_last = true;      // NHWC memory format: faster oneDNN convolutions, same maths
  std::string precision = "auto";  // "float32"; "bfloat16" (CPU autocast: bf16 convolutions and matrix
                                   // products, float32 weights, optimizer and BatchNorm statistics); "auto" =
                                   // bfloat16 where the CPU has avx512_bf16 or AMX, else float32

  // Optimizer.
  std::string optimizer = "adam";       // "adam", "adamw" or "sgd"
  double momentum = 0.9;                // sgd: momentum; adam/adamw: beta1
  bool nesterov = false;                // sgd: Nesterov momentum
  double weight_decay = 0;              // adam: L2 added to the gradient; adamw: decoupled; sgd: see below
  bool decoupled_weight_decay = false;  // sgd: shrink weights by lr * weight_decay per step, outside the momentum (SGDW)
  bool decay_norm_and_bias = true;      // false: BatchNorm parameters and biases get no weight decay
  double norm_lr_multiplier = 1;        // learning rate of BatchNorm parameters, times this (airbench: 64)
  double bias_lr_multiplier = 1;        // learning rate of other biases, times this
  bool train_norm_weights = true;       // false: BatchNorm scales stay at 1, only their shifts train (airbench)
  bool data_init = false;               // let the architecture initialize from training images (airbench: whitening stem, frozen)
  int64_t stem_epochs = 0;              // train the first layer only in the first N epochs, then freeze it; 0 = always

  // Learning-rate schedule, per step: lr * factor(step).
  std::string schedule = "constant";  // "constant", "step", "cosine" or "onecycle" (linear up, then linear down)
  double warmup = 0;                  // cosine/onecycle: fraction of all steps spent rising from lr_start_factor to 1
  double lr_start_factor = 0;         // cosine/onecycle: factor at step 0 (with warmup > 0)
  double lr_end_factor = 0;           // cosine/onecycle: factor at the last step
  int64_t step_epochs = 0;            // step: multiply by step_gamma every N epochs
  double step_gamma = 0.1;

  // Loss, gradients and weight averaging.
  double label_smoothing = 0;   // cross-entropy against (1 - s) one-hot + s / classes
  double clip_grad_norm = 0;    // clip the gradients' global L2 norm to this; 0 = off
  double ema_decay = 0;         // exponential moving average of weights and BatchNorm statistics; 0 = off.
                                // When on, evaluation, best.pt and export use the average.
  int64_t ema_every = 1;        // update the average every N steps
  double ema_warmup_power = 0;  // decay used = ema_decay * (step / all steps)^power; 0 = constant decay
  bool lookahead = false;       // after each average update, the trained weights restart from the average
};

struct EvalOptions {
  std::string tta = "none";  // test-time augmentation: "none", "flip", "flip_translate" (6 views; common/tta.h)
  int64_t every = 1;         // evaluate after every N epochs, and always after the last; 0 = only after the last
};

// Knowledge distillation: a teacher artifact's softened predictions join the loss (train/distill.h).
struct DistillOptions {
  std::string teacher;       // a maas artifact (any export trained on the same classes); "" = off
  double temperature = 4;    // T: both distributions are softmax(logits / T)
  double alpha = 0.5;        // loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy
};

// Structured pruning: start from another run's network made narrower, whole channels at a time
// (train/prune.h); the run then fine-tunes it with the train.* recipe.
struct PruneOptions {
  std::string from;               // a maas-train run directory (its best.pt) or checkpoint; "" = off
  double macs = 0.5;              // keep at most this fraction of the source's multiply-accumulates per image
  std::string criterion = "l1";   // which channels stay: "l1" (filter L1 norms) or "bn_scale" (|BatchNorm scale|)
};

// Data-parallel training (several processes launched by torchrun, PyTorchJob or SLURM; docs/training.md).
struct DistributedOptions {
  double timeout_s = 120;  // forming the group, and each collective: a rank silent this long is taken as lost
};

struct RunConfig {
  DataOptions data;
  AugmentOptions augment;
  ModelOptions model;
  TrainOptions train;
  EvalOptions eval;
  DistillOptions distill;
  PruneOptions prune;
  DistributedOptions distributed;
};

// Loads `path` (YAML), then applies each "key=value" of `overrides` (value parsed as YAML).
// Requires: keys are dotted ("train.epochs"). Guarantees: every key is known, every value has
// the right type and range; otherwise throws ConfigError naming the key and "file:line" or
// "--set". An empty `path` starts from the defaults.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// Parses YAML text (what `to_yaml` writes); `origin` names it in errors.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin,
                           const std::vector<std::string>& overrides = {});

// The full resolved configuration as YAML, every key present; parse_run_config reads it back.
std::string to_yaml(const RunConfig& config);

// The keys a resume may not change whose values differ between `saved` (the run's config.yaml)
// and `requested` (the command's config), one line each, e.g.
// "train.batch_size: 32 in the run, 64 now". Empty when the run may be resumed with `requested`.
// Keys that do not alter results (ConfigField::resume_may_change: epochs, threads, data.root,
// eval batch size, memory format, evaluation, model.init) may differ; train.epochs may not when
// the schedule or the EMA warmup spans the run; train.precision may be "auto" on either side
// (the run's own), but two different explicit precisions conflict.
std::vector<std::string> resume_conflicts(const RunConfig& saved, const RunConfig& requested);

// Every dotted key a run config knows ("data.dataset", ..., "distributed.timeout_s"), in the order
// configs list them; what `--set key=value` and YAML files may name.
std::vector<std::string> run_config_keys();

// The value of one field as YAML text ("32", "[64, 128]", "cnn").
std::string field_value_yaml(const ConfigField& field);

// The machine's cores (at least 1), and a thread-count setting resolved: 0 = all cores.
int64_t core_count();
int64_t resolve_threads(int64_t threads);

}  // namespace maas
