// ServeOptions' key table and the admin token's sources.
#include "serve_options.h"

#include <sys/stat.h>

#include <cstdio>

#include "files.h"

namespace maas {
namespace {

constexpr uint64_t kMaxTokenFileBytes = 4096;

// The token in `path`: refused (like ssh refuses a private key) when group or others may read or
// write it, since anyone who can read it controls which models are served.
std::string read_token_file(const std::string& path) {
  const std::string key = "server.admin_token_file=" + path + ": ";
  std::string text;
  try {
    RegularFile file(path);
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw FileError(path + ": cannot stat");
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      throw ConfigError(key + "permissions " + mode + " are too open: the token must be readable by its owner only (chmod 600 " + path + ")");
    }
    if (file.size() > kMaxTokenFileBytes)
      throw ConfigError(key + "more than " + std::to_string(kMaxTokenFileBytes) + " bytes; it should hold just the token");
    text = file.read(kMaxTokenFileBytes);
  } catch (const FileError& e) {
    throw ConfigError("server.admin_token_file: " + std::string(e.what()));
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
    text.pop_back();
  if (text.empty()) throw ConfigError(key + "the file is empty");
  if (text.find_first_of("\r\n") != std::string::npos) throw ConfigError(key + "holds more than one line");
  return text;
}

}  // namespace

std::vector<ConfigField> fields_of(ServeOptions& o) {
  auto at_least = [](const int64_t* v, int64_t min) {
    return [v, min]() -> std::string { return *v >= min ? "" : "must be >= " + std::to_string(min); };
  };
  auto in_range = [](const int64_t* v, int64_t min, int64_t max) {
    return [v, min, max]() -> std::string {
      return *v >= min && *v <= max ? "" : "must be in " + std::to_string(min) + ".." + std::to_string(max);
    };
  };
  // Seconds: positive, and at most a day (beyond, a typo more likely than an intent).
  auto seconds = [](const double* v) {
    return [v]() -> std::string { return *v > 0 && *v <= 86400 ? "" : "must be in (0, 86400] seconds"; };
  };
  auto any = [] { return std::string(); };
  return {
      {"server.host", &o.host, [&o]() -> std::string { return o.host.empty() ? "must not be empty" : ""; }},
      {"server.port", &o.port,
       [&o]() -> std::string { return o.port >= 0 && o.port <= 65535 ? "" : "must be in 0..65535"; }},
      {"server.models_dir", &o.models_dir, any},
      {"server.max_body_bytes", &o.max_body_bytes, in_range(&o.max_body_bytes, 1024, int64_t{1} << 34)},
      {"server.max_header_bytes", &o.max_header_bytes, in_range(&o.max_header_bytes, 1024, int64_t{1} << 24)},
      {"server.max_inflight_body_bytes", &o.max_inflight_body_bytes,
       [&o]() -> std::string {
         return o.max_inflight_body_bytes >= o.max_body_bytes ? "" : "must be >= server.max_body_bytes";
       }},
      {"server.max_connections", &o.max_connections, in_range(&o.max_connections, 2, 100000)},
      {"server.request_timeout_s", &o.request_timeout_s, seconds(&o.request_timeout_s)},
      {"server.idle_timeout_s", &o.idle_timeout_s, seconds(&o.idle_timeout_s)},
      {"server.write_timeout_s", &o.write_timeout_s, seconds(&o.write_timeout_s)},
      {"server.event_loops", &o.event_loops, any},
      {"server.event_loop_threads", &o.event_loop_threads, in_range(&o.event_loop_threads, 0, 64)},
      {"server.max_image_pixels", &o.max_image_pixels, in_range(&o.max_image_pixels, 1, int64_t{1} << 30)},
      {"server.drain_seconds", &o.drain_seconds, seconds(&o.drain_seconds)},
      {"server.load_timeout_s", &o.load_timeout_s, seconds(&o.load_timeout_s)},
      {"server.admin_token", &o.admin_token, any},
      {"server.admin_token_file", &o.admin_token_file, any},
      {"server.access_log", &o.access_log, any},
      {"batching.max_batch_size", &o.batching.max_batch_size, at_least(&o.batching.max_batch_size, 1)},
      {"batching.max_queue_delay_us", &o.batching.max_queue_delay_us, at_least(&o.batching.max_queue_delay_us, 0)},
      {"batching.max_queue_images", &o.batching.max_queue_images,
       [&o]() -> std::string {
         return o.batching.max_queue_images >= o.batching.max_batch_size ? "" : "must be >= batching.max_batch_size";
       }},
      {"batching.instances", &o.batching.instances, at_least(&o.batching.instances, 0)},
      {"batching.threads_per_instance", &o.batching.threads_per_instance,
       at_least(&o.batching.threads_per_instance, 0)},
      {"batching.idle_spin_us", &o.batching.idle_spin_us, in_range(&o.batching.idle_spin_us, 0, 1000000)},
      // An explanation of max_steps runs max_steps + 2 images and must fit in the queue.
      {"explain.max_steps", &o.explain.max_steps,
       [&o]() -> std::string {
         return o.explain.max_steps >= 1 && o.explain.max_steps + 2 <= o.batching.max_queue_images
                    ? ""
                    : "must be in 1..batching.max_queue_images - 2";
       }},
  };
}

ServeOptions load_serve_options(const std::string& path, const std::vector<std::string>& overrides,
                                const char* token_from_environment) {
  ServeOptions options;
  apply_config_file(path, overrides, fields_of(options));
  const bool from_environment = token_from_environment != nullptr && *token_from_environment != '\0';
  const int sources = !options.admin_token.empty() + !options.admin_token_file.empty() + from_environment;
  if (sources > 1)
    throw ConfigError("the admin token is given more than one way (server.admin_token, server.admin_token_file, $" +
                      std::string(kAdminTokenVariable) + "): give it one way, preferably the file or the variable");
  if (!options.admin_token_file.empty()) options.admin_token = read_token_file(options.admin_token_file);
  if (from_environment) options.admin_token = token_from_environment;
  return options;
}

}  // namespace maas
