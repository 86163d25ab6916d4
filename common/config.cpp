// Loads, validates and writes RunConfig (YAML via yaml-cpp); one field table drives all three.
#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <variant>

#include "models.h"

namespace maas {
namespace {

std::vector<ConfigField> fields_of(RunConfig& c) {
  auto positive = [](const int64_t* v) { return [v] { return *v > 0 ? "" : "must be > 0"; }; };
  auto non_negative = [](const int64_t* v) { return [v] { return *v >= 0 ? "" : "must be >= 0"; }; };
  auto any = [] { return std::string(); };
  return {
      {"data.dataset", &c.data.dataset,
       [&c]() -> std::string {
         if (c.data.dataset == "cifar10" || c.data.dataset == "fashion-mnist") return "";
         return "must be one of: cifar10, fashion-mnist";
       }},
      {"data.root", &c.data.root,
       [&c]() -> std::string { return c.data.root.empty() ? "must not be empty" : ""; }},
      {"data.train_limit", &c.data.train_limit, non_negative(&c.data.train_limit)},
      {"data.test_limit", &c.data.test_limit, non_negative(&c.data.test_limit)},
      {"model.name", &c.model.name,
       [&c]() -> std::string {
         if (has_model(c.model.name)) return "";
         std::string names;
         for (const auto& n : model_names()) names += (names.empty() ? "" : ", ") + n;
         return "unknown model; known models: " + names;
       }},
      {"train.epochs", &c.train.epochs, positive(&c.train.epochs)},
      {"train.batch_size", &c.train.batch_size, positive(&c.train.batch_size)},
      {"train.eval_batch_size", &c.train.eval_batch_size, positive(&c.train.eval_batch_size)},
      {"train.lr", &c.train.lr,
       [&c]() -> std::string { return c.train.lr > 0 && c.train.lr < 10 ? "" : "must be in (0, 10)"; }},
      {"train.seed", &c.train.seed, non_negative(&c.train.seed)},
      {"train.threads", &c.train.threads, non_negative(&c.train.threads)},
      {"train.channels_last", &c.train.channels_last, any},
  };
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
    YAML::Node value;
    try {
      value = YAML::Load(item.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw ConfigError("--set '" + item + "': value is not valid YAML: " + e.msg);
    }
    leaves[item.substr(0, eq)] = {value, "--set " + item};
  }

  for (const auto& [key, leaf] : leaves) {
    auto field = std::find_if(fields.begin(), fields.end(), [&](const ConfigField& f) { return f.key == key; });
    if (field == fields.end())
      throw ConfigError("unknown key '" + key + "' (" + leaf.origin + "); known keys: " + known_keys(fields));
    if (!leaf.value.IsScalar())
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): expected a single value");
    const std::string text = leaf.value.Scalar();
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
            return "a string";
          },
          field->target);
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): expected " + type + ", got '" + text + "'");
    }
    if (auto problem = field->check(); !problem.empty())
      throw ConfigError("key '" + key + "' (" + leaf.origin + "): '" + text + "' " + problem);
  }
}

}  // namespace

void apply_config(const std::string& yaml_text, const std::string& origin, const std::vector<std::string>& overrides,
                  const std::vector<ConfigField>& fields) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  resolve(root, origin, overrides, fields);
}

void apply_config_file(const std::string& path, const std::vector<std::string>& overrides,
                       const std::vector<ConfigField>& fields) {
  if (path.empty()) return resolve(YAML::Node(), "", overrides, fields);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("cannot read config file '" + path + "'");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  resolve(root, path, overrides, fields);
}

std::string fields_to_yaml(const std::vector<ConfigField>& fields) {
  YAML::Node root;
  for (const auto& f : fields) {
    const auto dot = f.key.find('.');
    std::visit([&](auto* v) { root[f.key.substr(0, dot)][f.key.substr(dot + 1)] = *v; }, f.target);
  }
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << root;
  return std::string(out.c_str()) + "\n";
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  RunConfig config;
  apply_config(yaml_text, origin, overrides, fields_of(config));
  return config;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  RunConfig config;
  apply_config_file(path, overrides, fields_of(config));
  return config;
}

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;
  return fields_to_yaml(fields_of(copy));
}

int64_t core_count() { return std::max<int64_t>(1, std::thread::hardware_concurrency()); }

int64_t resolve_threads(int64_t threads) { return threads > 0 ? threads : core_count(); }

}  // namespace maas
