// ServeOptions' key table.
#include "serve_options.h"

namespace maas {

std::vector<ConfigField> fields_of(ServeOptions& o) {
  auto at_least = [](const int64_t* v, int64_t min) {
    return [v, min]() -> std::string { return *v >= min ? "" : "must be >= " + std::to_string(min); };
  };
  auto any = [] { return std::string(); };
  return {
      {"server.host", &o.host, [&o]() -> std::string { return o.host.empty() ? "must not be empty" : ""; }},
      {"server.port", &o.port,
       [&o]() -> std::string { return o.port >= 0 && o.port <= 65535 ? "" : "must be in 0..65535"; }},
      {"server.models_dir", &o.models_dir, any},
      {"server.max_body_bytes", &o.max_body_bytes, at_least(&o.max_body_bytes, 1024)},
      {"server.http_threads", &o.http_threads, at_least(&o.http_threads, 2)},
      {"server.admin_token", &o.admin_token, any},
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
  };
}

ServeOptions load_serve_options(const std::string& path, const std::vector<std::string>& overrides) {
  ServeOptions options;
  apply_config_file(path, overrides, fields_of(options));
  return options;
}

}  // namespace maas
