// maas-serve settings: one struct with commented defaults, loadable from YAML like maas-train's.
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "config.h"
#include "model_runner.h"

namespace maas {

// POST /explanations (explainer.h).
struct ExplainOptions {
  // Integrated gradients' steps per explanation at most; beyond: 400. Each step is an image of
  // forward and backward in the job's one batch (see ModelRunner::explain for its queue cost).
  int64_t max_steps = 128;
};

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback only unless asked otherwise
  int64_t port = 8000;             // 0 = any free port
  std::string models_dir;          // repository: DIR/<name>/<version>/model.pt ("" = none)
  // Connection limits (see http_transport.h for what each does at the limit).
  int64_t max_body_bytes = 64 << 20;  // a body on the wire and after decompression; beyond: 413
  int64_t max_header_bytes = 64 << 10;  // request line + headers; beyond: 431
  int64_t max_inflight_body_bytes = int64_t{1} << 30;  // all bodies held at once; beyond: 503
  int64_t max_connections = 2048;  // open connections; beyond: 503 and close
  double request_timeout_s = 30;   // a request's line, headers and body must arrive within this; else 408
  double idle_timeout_s = 10;      // an idle keep-alive connection is closed after this
  double write_timeout_s = 10;     // a client that accepts no response bytes for this long is dropped
  // Epoll threads serve small requests (v2 inference, GETs) without a thread per connection, and run
  // their batches themselves; false = a thread per connection for everything (see
  // TransportOptions::event_loop_threads).
  bool event_loops = true;
  int64_t event_loop_threads = 0;  // 0 = one per core
  int64_t max_image_pixels = 4096 * 4096;  // an uploaded image may declare at most this many pixels; else 400
  double drain_seconds = 30;       // on SIGTERM, in-flight requests get this long; then maas-serve exits
  double load_timeout_s = 120;     // loading (vetting) and warming up one model version must finish within this
  // "" = model control endpoints off; else the Bearer token they require. Prefer admin_token_file
  // or $MAAS_ADMIN_TOKEN: a --set on the command line is visible to every local user (ps).
  std::string admin_token;
  // A file holding the admin token (trailing newline ignored), readable by its owner only (mode
  // 0600 or 0400, like ssh's keys); "" = none. Read by load_serve_options into admin_token.
  std::string admin_token_file;
  bool access_log = false;         // one line per request on stderr
  BatchingOptions batching;        // per model (see model_runner.h)
  ExplainOptions explain;
};

// The fields of ServeOptions under their YAML keys (server.*, batching.*, explain.*).
std::vector<ConfigField> fields_of(ServeOptions& options);

// The environment variable that may hold the admin token (instead of server.admin_token).
constexpr const char kAdminTokenVariable[] = "MAAS_ADMIN_TOKEN";

// Defaults, then the YAML file (if `path` is not empty), then "key=value" overrides; then the
// admin token from server.admin_token_file or `token_from_environment` (the value of
// $MAAS_ADMIN_TOKEN by default; nullptr = unset). Throws ConfigError naming the key and where it
// came from, or the token file and what is wrong with it (unreadable, empty, readable by group
// or others), or that the token was given more than one way.
ServeOptions load_serve_options(const std::string& path, const std::vector<std::string>& overrides,
                                const char* token_from_environment = std::getenv(kAdminTokenVariable));

}  // namespace maas
