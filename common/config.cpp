// Loads, validates and writes RunConfig (YAML via yaml-cpp); one field table drives all three.
#include "config.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <variant>

#include "files.h"
#include "models.h"
#include "tta.h"

namespace maas {
namespace {

// Configs are a few hundred bytes; the cap bounds parsing time and memory for any input.
constexpr size_t kMaxYamlBytes = 1 << 20;

// Upper bounds that keep a typo from exhausting the machine: more threads than this only
// oversubscribes (100000 deadlocked LibTorch's pool); one batch of this size already holds all
// of CIFAR-10's 50000 training images.
constexpr int64_t kMaxThreads = 256;
constexpr int64_t kMaxBatchSize = 65536;

std::vector<ConfigField> fields_of(RunConfig& c) {
  auto positive = [](const int64_t* v) { return [v] { return *v > 0 ? "" : "must be > 0"; }; };
  auto non_negative = [](const int64_t* v) { return [v] { return *v >= 0 ? "" : "must be >= 0"; }; };
  auto in_range = [](const int64_t* v, int64_t low, int64_t high) {  // low is 0 or 1
    return [v, low, high]() -> std::string {
      if (*v >= low && *v <= high) return "";
      return std::string(low > 0 ? "must be > 0" : "must be >= 0") + " and at most " + std::to_string(high);
    };
  };
  auto any = [] { return std::string(); };
  auto one_of = [](const std::string* v, std::vector<std::string> names) {
    return [v, names]() -> std::string {
      if (std::find(names.begin(), names.end(), *v) != names.end()) return "";
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      return "must be one of: " + list;
    };
  };
  // [low, high]; low_open / high_open exclude an end; written out in the message.
  auto number_in = [](const double* v, double low, double high, bool low_open = false, bool high_open = false) {
    return [v, low, high, low_open, high_open]() -> std::string {
      if ((low_open ? *v > low : *v >= low) && (high_open ? *v < high : *v <= high)) return "";
      std::ostringstream range;
      range << "must be in " << (low_open ? "(" : "[") << low << ", " << high << (high_open ? ")" : "]");
      return range.str();
    };
  };
  const bool open = true;
  const bool may_change = true;  // resume_may_change
  return {
      {"data.dataset", &c.data.dataset,
       [&c]() -> std::string {
         if (c.data.dataset == "cifar10" || c.data.dataset == "fashion-mnist") return "";
         return "must be one of: cifar10, fashion-mnist";
       }},
      {"data.root", &c.data.root, [&c]() -> std::string { return c.data.root.empty() ? "must not be empty" : ""; },
       may_change},
      {"data.train_limit", &c.data.train_limit, non_negative(&c.data.train_limit)},
      {"data.test_limit", &c.data.test_limit, non_negative(&c.data.test_limit)},
      {"augment.translate", &c.augment.translate, in_range(&c.augment.translate, 0, 64)},
      {"augment.padding", &c.augment.padding, one_of(&c.augment.padding, {"reflect", "zeros"})},
      {"augment.flip", &c.augment.flip, one_of(&c.augment.flip, {"none", "random", "alternating"})},
      {"augment.cutout", &c.augment.cutout, in_range(&c.augment.cutout, 0, 4096)},
      {"model.name", &c.model.name,
       [&c]() -> std::string {
         if (find_architecture(c.model.name)) return "";
         std::string names;
         for (const auto& n : architecture_names()) names += (names.empty() ? "" : ", ") + n;
         return "unknown model; known models: " + names;
       }},
      {"model.widths", &c.model.widths,
       [&c]() -> std::string {
         for (int64_t w : c.model.widths)
           if (w < 1 || w > kMaxModelWidth) return "each width must be in 1.." + std::to_string(kMaxModelWidth);
         return "";
       }},
      {"model.width", &c.model.width, number_in(&c.model.width, 0, kMaxWidthMultiplier, open)},
      {"model.activation", &c.model.activation,
       [&c]() -> std::string {
         const auto& a = c.model.activation;
         return a.empty() || a == "gelu" || a == "relu" ? "" : "must be gelu, relu, or \"\" (the architecture's own)";
       }},
      {"model.init", &c.model.init, any, may_change},
      {"train.epochs", &c.train.epochs, positive(&c.train.epochs), may_change},
      {"train.batch_size", &c.train.batch_size, in_range(&c.train.batch_size, 1, kMaxBatchSize)},
      {"train.eval_batch_size", &c.train.eval_batch_size, in_range(&c.train.eval_batch_size, 1, kMaxBatchSize),
       may_change},
      {"train.lr", &c.train.lr, number_in(&c.train.lr, 0, 10, open, open)},
      {"train.seed", &c.train.seed, non_negative(&c.train.seed)},
      {"train.threads", &c.train.threads, in_range(&c.train.threads, 0, kMaxThreads), may_change},
      {"train.channels_last", &c.train.channels_last, any, may_change},
      {"train.precision", &c.train.precision, one_of(&c.train.precision, {"float32", "bfloat16", "auto"}),
       may_change},  // but see resume_conflicts
      {"train.optimizer", &c.train.optimizer, one_of(&c.train.optimizer, {"adam", "adamw", "sgd"})},
      {"train.momentum", &c.train.momentum, number_in(&c.train.momentum, 0, 0.9999)},
      {"train.nesterov", &c.train.nesterov, any},
      {"train.weight_decay", &c.train.weight_decay, number_in(&c.train.weight_decay, 0, 1)},
      {"train.decoupled_weight_decay", &c.train.decoupled_weight_decay, any},
      {"train.decay_norm_and_bias", &c.train.decay_norm_and_bias, any},
      {"train.norm_lr_multiplier", &c.train.norm_lr_multiplier, number_in(&c.train.norm_lr_multiplier, 0, 1e4, open)},
      {"train.bias_lr_multiplier", &c.train.bias_lr_multiplier, number_in(&c.train.bias_lr_multiplier, 0, 1e4, open)},
      {"train.train_norm_weights", &c.train.train_norm_weights, any},
      {"train.data_init", &c.train.data_init, any},
      {"train.stem_epochs", &c.train.stem_epochs, non_negative(&c.train.stem_epochs)},
      {"train.schedule", &c.train.schedule, one_of(&c.train.schedule, {"constant", "step", "cosine", "onecycle"})},
      {"train.warmup", &c.train.warmup, number_in(&c.train.warmup, 0, 1, !open, open)},
      {"train.lr_start_factor", &c.train.lr_start_factor, number_in(&c.train.lr_start_factor, 0, 1)},
      {"train.lr_end_factor", &c.train.lr_end_factor, number_in(&c.train.lr_end_factor, 0, 1)},
      {"train.step_epochs", &c.train.step_epochs, non_negative(&c.train.step_epochs)},
      {"train.step_gamma", &c.train.step_gamma, number_in(&c.train.step_gamma, 0, 1, open)},
      {"train.label_smoothing", &c.train.label_smoothing, number_in(&c.train.label_smoothing, 0, 1, !open, open)},
      {"train.clip_grad_norm", &c.train.clip_grad_norm, number_in(&c.train.clip_grad_norm, 0, 1e6)},
      {"train.ema_decay", &c.train.ema_decay, number_in(&c.train.ema_decay, 0, 1, !open, open)},
      {"train.ema_every", &c.train.ema_every, in_range(&c.train.ema_every, 1, 1000000)},
      {"train.ema_warmup_power", &c.train.ema_warmup_power, number_in(&c.train.ema_warmup_power, 0, 100)},
      {"train.lookahead", &c.train.lookahead, any},
      {"eval.tta", &c.eval.tta, one_of(&c.eval.tta, tta_mode_names()), may_change},
      {"eval.every", &c.eval.every, non_negative(&c.eval.every), may_change},
      {"distill.teacher", &c.distill.teacher, any},
      {"distill.temperature", &c.distill.temperature, number_in(&c.distill.temperature, 0, 100, open)},
      {"distill.alpha", &c.distill.alpha, number_in(&c.distill.alpha, 0, 1)},
      {"prune.from", &c.prune.from, any},
      {"prune.macs", &c.prune.macs, number_in(&c.prune.macs, 0, 1, open)},
      {"prune.criterion", &c.prune.criterion, one_of(&c.prune.criterion, {"l1", "bn_scale"})},
      {"distributed.timeout_s", &c.distributed.timeout_s, number_in(&c.distributed.timeout_s, 0, 86400, open),
       may_change},
  };
}

// Walks a document's parse events before anything is built from it. yaml-cpp expands aliases into
// copies, so nested anchors grow exponentially (871 bytes took 3.7 GB); configs need neither
// anchors nor aliases, so both are refused here, where they are still unexpanded. yaml-cpp also
// lets a repeated key silently win, so keys are checked per mapping with their lines. The first
// problem is kept, not thrown, so that a syntax error later in the document is reported instead
// (yaml-cpp emits odd events for broken input, e.g. a map for an unclosed "[").
class YamlChecker : public YAML::EventHandler {
 public:
  explicit YamlChecker(std::string origin) : origin_(std::move(origin)) {}
  const std::string& problem() const { return problem_; }  // "" when the document is acceptable

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { node(mark, anchor, "~", true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    fail(at(mark) + ": YAML aliases (*name) are not allowed in configs; write the value out");
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    node(mark, anchor, value, true);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    node(mark, anchor, "", false);
    frames_.emplace_back(false);
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    node(mark, anchor, "", false);
    frames_.emplace_back(true);
  }
  void OnMapEnd() override { pop(); }
  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    fail(at(mark) + ": YAML anchors (&" + name + ") are not allowed in configs; write the value out");
  }

 private:
  struct Frame {
    explicit Frame(bool map) : is_map(map) {}
    bool is_map;
    bool expecting_key = true;
    std::string key;                    // the key whose value comes next (maps)
    std::map<std::string, int> lines;  // keys seen so far, and their lines
  };

  std::string at(const YAML::Mark& mark) const { return origin_ + ":" + std::to_string(mark.line + 1); }
  void fail(const std::string& problem) {
    if (problem_.empty()) problem_ = problem;
  }
  void pop() {
    if (!frames_.empty()) frames_.pop_back();  // guards against unbalanced events from broken input
  }

  // Every node event, in document order: a map's children alternate key, value.
  void node(const YAML::Mark& mark, YAML::anchor_t anchor, const std::string& scalar, bool is_scalar) {
    if (anchor != YAML::NullAnchor)
      fail(at(mark) + ": YAML anchors (&name) are not allowed in configs; write the value out");
    if (frames_.empty() || !frames_.back().is_map) return;
    Frame& map = frames_.back();
    map.expecting_key = !map.expecting_key;
    if (map.expecting_key) return;  // that was a value
    if (!is_scalar) fail(at(mark) + ": a key must be a plain name, not a list or mapping");
    std::string dotted;
    for (const auto& f : frames_)
      if (f.is_map && &f != &map) dotted += f.key + ".";
    dotted += scalar;
    const auto [seen, inserted] = map.lines.emplace(scalar, mark.line + 1);
    if (!inserted)
      fail("duplicate key '" + dotted + "' (" + origin_ + ":" + std::to_string(seen->second) + " and " + at(mark) +
           ")");
    map.key = scalar;
  }

  std::string origin_;
  std::vector<Frame> frames_;
  std::string problem_;
};

// Parses one YAML document after YamlChecker accepted it. Throws ConfigError naming `origin`.
YAML::Node load_checked_yaml(const std::string& text, const std::string& origin) {
  if (text.size() > kMaxYamlBytes)
    throw ConfigError(origin + ": " + std::to_string(text.size()) + " bytes, more than a config may hold (" +
                      std::to_string(kMaxYamlBytes) + ")");
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    YamlChecker checker(origin);
    const bool any = parser.HandleNextDocument(checker);
    if (!checker.problem().empty()) throw ConfigError(checker.problem());
    if (any && parser.HandleNextDocument(checker))
      throw ConfigError(origin + ": holds more than one YAML document (a second '---')");
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {  // its message is just "bad file"
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: nested too deeply");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

// The file's bytes, at most kMaxYamlBytes + 1 of them (enough to refuse a larger file).
std::string read_config_file(const std::string& path) {
  try {
    return read_regular_file(path, kMaxYamlBytes + 1);  // never blocks on a FIFO or device
  } catch (const FileError& e) {
    throw ConfigError("cannot read config file " + std::string(e.what()));
  }
}

struct Leaf {
  YAML::Node value;
  std::string origin;  // "file:line" or "--set key=value"
};

// Flattens nested mappings into dotted keys; rejects anything that is not a mapping of scalars.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
             std::map<std::string, Leaf>& out) {
  for (const auto& item : node) {
    const std::string name = item.first.as<std::string>();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const std::string origin = file + ":" + std::to_string(item.first.Mark().line + 1);
    if (item.second.IsMap()) {
      flatten(item.second, key, file, out);
    } else if (item.second.IsNull() && prefix.empty()) {
      continue;  // an empty section such as "train:" sets nothing
    } else {
      out[key] = {item.second, origin};
    }
  }
}

std::string known_keys(const std::vector<ConfigField>& fields) {
  std::string keys;
  for (const auto& f : fields) keys += (keys.empty() ? "" : ", ") + f.key;
  return keys;
}

void resolve(const YAML::Node& root, const std::string& origin, const std::vector<std::string>& overrides,
             const std::vector<ConfigField>& fields) {
  std::map<std::string, Leaf> leaves;
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) throw ConfigError(origin + ": expected a mapping of sections");
    flatten(root, "", origin, leaves);
  }
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--set '" + item + "': expected key=value, e.g. --set train.epochs=1");
    // A --set value is a YAML document too, so it gets the same checks as a file.
    leaves[item.substr(0, eq)] = {load_checked_yaml(item.substr(eq + 1), "--set '" + item + "'"), "--set " + item};
  }

  for (const auto& [key, leaf] : leaves) {
    auto field = std::find_if(fields.begin(), fields.end(), [&](const ConfigField& f) { return f.key == key; });
    if (field == fields.end())
      throw ConfigError("unknown key '" + key + "' (" + leaf.origin + "); known keys: " + known_keys(fields));
    const bool is_list = std::holds_alternative<std::vector<int64_t>*>(field->target);
    if (is_list ? !leaf.value.IsSequence() : !leaf.value.IsScalar())
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): expected " +
                        (is_list ? "a list such as [64, 128, 256]" : "a single value"));
    const std::string text = is_list ? YAML::Dump(leaf.value) : leaf.value.Scalar();
    try {
      std::visit([&](auto* target) { *target = leaf.value.as<std::remove_pointer_t<decltype(target)>>(); },
                 field->target);
    } catch (const YAML::Exception&) {
      const char* type = std::visit(
          [](auto* t) -> const char* {
            using T = std::remove_pointer_t<decltype(t)>;
            if constexpr (std::is_same_v<T, int64_t>) return "an integer";
            if constexpr (std::is_same_v<T, double>) return "a number";
            if constexpr (std::is_same_v<T, bool>) return "true or false";
            if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "a list of integers";
            return "a string";
          },
          field->target);
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): expected " + type + ", got '" + text + "'");
    }
    if (auto problem = field->check(); !problem.empty())
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): '" + text + "' " + problem);
  }
}

// Keys that are valid alone but not together.
void check_combinations(const RunConfig& c) {
  check_model_options(c.model);  // model.widths' count depends on model.name
  if (c.train.lookahead && c.train.ema_decay == 0)
    throw ConfigError("train.lookahead=true needs a weight average: set train.ema_decay (e.g. 0.77)");
  if (c.train.schedule == "step" && c.train.step_epochs == 0)
    throw ConfigError("train.schedule=step needs train.step_epochs (multiply by train.step_gamma every N epochs)");
  if (c.train.nesterov && (c.train.optimizer != "sgd" || c.train.momentum == 0))
    throw ConfigError("train.nesterov=true needs train.optimizer=sgd and train.momentum > 0");
  if (c.train.decoupled_weight_decay && c.train.optimizer != "sgd")
    throw ConfigError("train.decoupled_weight_decay is for train.optimizer=sgd (adamw always decouples, adam never)");
}

}  // namespace

void apply_config(const std::string& yaml_text, const std::string& origin, const std::vector<std::string>& overrides,
                  const std::vector<ConfigField>& fields) {
  resolve(load_checked_yaml(yaml_text, origin), origin, overrides, fields);
}

void apply_config_file(const std::string& path, const std::vector<std::string>& overrides,
                       const std::vector<ConfigField>& fields) {
  if (path.empty()) return resolve(YAML::Node(), "", overrides, fields);
  resolve(load_checked_yaml(read_config_file(path), path), path, overrides, fields);
}

std::string fields_to_yaml(const std::vector<ConfigField>& fields) {
  YAML::Node root;
  for (const auto& f : fields) {
    const auto dot = f.key.find('.');
    YAML::Node value;
    std::visit([&](auto* v) { value = *v; }, f.target);
    if (value.IsSequence()) value.SetStyle(YAML::EmitterStyle::Flow);  // [64, 128], one line
    root[f.key.substr(0, dot)][f.key.substr(dot + 1)] = value;
  }
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string field_value_yaml(const ConfigField& field) {
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << YAML::Flow;
  std::visit([&](auto* v) { out << *v; }, field.target);
  return out.c_str();
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  RunConfig config;
  apply_config(yaml_text, origin, overrides, fields_of(config));
  check_combinations(config);
  return config;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  RunConfig config;
  apply_config_file(path, overrides, fields_of(config));
  check_combinations(config);
  return config;
}

std::vector<std::string> resume_conflicts(const RunConfig& saved, const RunConfig& requested) {
  RunConfig a = saved, b = requested;
  const auto before = fields_of(a), now = fields_of(b);
  std::vector<std::string> conflicts;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i].resume_may_change) continue;
    // widths written out or scaled differently may still build the same network
    const bool model_key =
        before[i].key == "model.widths" || before[i].key == "model.width" || before[i].key == "model.activation";
    if (model_key && same_network(saved.model, requested.model)) continue;
    const std::string old_value = field_value_yaml(before[i]), new_value = field_value_yaml(now[i]);
    if (old_value != new_value)
      conflicts.push_back(before[i].key + ": " + old_value + " in the run, " + new_value + " now");
  }
  // A run keeps its precision; "auto" on either side means "the run's own" (the trainer checks the
  // checkpoint's), so only two different explicit precisions conflict here.
  if (saved.train.precision != requested.train.precision && saved.train.precision != "auto" &&
      requested.train.precision != "auto")
    conflicts.push_back("train.precision: " + saved.train.precision + " in the run, " + requested.train.precision +
                        " now (a run keeps the precision it started with)");
  // Schedules that span the whole run change with its length: more epochs is another run then.
  const bool spans_run = saved.train.schedule == "cosine" || saved.train.schedule == "onecycle" ||
                         (saved.train.ema_decay > 0 && saved.train.ema_warmup_power > 0);
  if (spans_run && saved.train.epochs != requested.train.epochs)
    conflicts.push_back("train.epochs: " + std::to_string(saved.train.epochs) + " in the run, " +
                        std::to_string(requested.train.epochs) + " now (the " + saved.train.schedule +
                        " schedule or the EMA warmup spans all epochs)");
  return conflicts;
}

std::vector<std::string> run_config_keys() {
  RunConfig config;
  std::vector<std::string> keys;
  for (const auto& field : fields_of(config)) keys.push_back(field.key);
  return keys;
}

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;
  return fields_to_yaml(fields_of(copy));
}

int64_t core_count() { return std::max<int64_t>(1, std::thread::hardware_concurrency()); }

int64_t resolve_threads(int64_t threads) { return threads > 0 ? threads : core_count(); }

}  // namespace maas
