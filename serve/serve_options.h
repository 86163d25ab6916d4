// maas-serve settings: one struct with commented defaults, loadable from YAML like maas-train's.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "model_runner.h"

namespace maas {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback only unless asked otherwise
  int64_t port = 8000;             // 0 = any free port
  std::string models_dir;          // repository: DIR/<name>/<version>/model.pt ("" = none)
  int64_t max_body_bytes = 64 << 20;  // larger request bodies get 413
  int64_t http_threads = 256;      // connections served at once; a keep-alive client holds one
  std::string admin_token;         // "" = model control endpoints off; else Bearer token they require
  bool access_log = false;         // one line per request on stderr
  BatchingOptions batching;        // per model (see model_runner.h)
};

// The fields of ServeOptions under their YAML keys (server.*, batching.*).
std::vector<ConfigField> fields_of(ServeOptions& options);

// Defaults, then the YAML file (if `path` is not empty), then "key=value" overrides.
// Throws ConfigError naming the key and where it came from.
ServeOptions load_serve_options(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace maas
