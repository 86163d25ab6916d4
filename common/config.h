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

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 500;  // evaluation only; does not change results
  double lr = 1e-3;               // Adam learning rate
  int64_t seed = 0;               // seeds weight init and shuffling: same seed, same run
  int64_t threads = 0;            // LibTorch intra-op threads; 0 = all cores
  bool channels_last = true;      // NHWC memory format: faster oneDNN convolutions, same maths
};

struct RunConfig {
  DataOptions data;
  ModelOptions model;
  TrainOptions train;
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
// eval batch size, memory format) may differ.
std::vector<std::string> resume_conflicts(const RunConfig& saved, const RunConfig& requested);

// The value of one field as YAML text ("32", "[64, 128]", "cnn").
std::string field_value_yaml(const ConfigField& field);

// The machine's cores (at least 1), and a thread-count setting resolved: 0 = all cores.
int64_t core_count();
int64_t resolve_threads(int64_t threads);

}  // namespace maas
