// Terminal progress for training: a redrawn bar on a TTY, nothing in between epochs otherwise.
#pragma once

#include <chrono>
#include <ostream>
#include <string>

namespace maas {

class ProgressBar {
 public:
  // out may be nullptr (silent). `redraw` enables the in-place bar; otherwise update() prints nothing.
  ProgressBar(std::ostream* out, bool redraw) : out_(out), redraw_(redraw) {}

  // Starts an epoch of `total` batches, of which `done` are already done (resume).
  void start(const std::string& label, int64_t total, int64_t done);
  // Redraws at most ~10 times a second.
  void update(int64_t done, double loss, double acc, double images_per_s);
  // Clears the bar and prints `line` in its place.
  void finish(const std::string& line);

 private:
  std::ostream* out_;
  bool redraw_;
  std::string label_;
  int64_t total_ = 0, first_ = 0;
  std::chrono::steady_clock::time_point started_, last_draw_;
};

}  // namespace maas
