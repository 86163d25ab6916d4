// ServeOptions' key table.
#include "serve_options.h"

namespace maas {

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
      {"server.max_image_pixels", &o.max_image_pixels, in_range(&o.max_image_pixels, 1, int64_t{1} << 30)},
      {"server.drain_seconds", &o.drain_seconds, seconds(&o.drain_seconds)},
      {"server.load_timeout_s", &o.load_timeout_s, seconds(&o.load_timeout_s)},
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
      // An explanation of max_steps runs max_steps + 2 images and must fit in the queue.
      {"explain.max_steps", &o.explain.max_steps,
       [&o]() -> std::string {
         return o.explain.max_steps >= 1 && o.explain.max_steps + 2 <= o.batching.max_queue_images
                    ? ""
                    : "must be in 1..batching.max_queue_images - 2";
       }},
  };
}

ServeOptions load_serve_options(const std::string& path, const std::vector<std::string>& overrides) {
  ServeOptions options;
  apply_config_file(path, overrides, fields_of(options));
  return options;
}

}  // namespace maas
