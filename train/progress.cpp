// Progress bar drawing.
#include "progress.h"

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace maas {

void ProgressBar::start(const std::string& label, int64_t total, int64_t done) {
  label_ = label;
  total_ = total;
  first_ = done;
  started_ = std::chrono::steady_clock::now();
  last_draw_ = {};
}

void ProgressBar::update(int64_t done, double loss, double acc, double images_per_s) {
  if (!out_ || !redraw_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double per_batch = done > first_ ? elapsed / static_cast<double>(done - first_) : 0;
  const int eta = static_cast<int>(per_batch * static_cast<double>(total_ - done));
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  std::ostringstream line;
  line << "\r" << label_ << " [" << std::string(filled, '=') << std::string(kWidth - filled, ' ') << "] " << done
       << "/" << total_ << std::fixed << std::setprecision(4) << "  loss " << loss << std::setprecision(1)
       << "  acc " << 100 * acc << "%  " << std::setprecision(0) << images_per_s << " img/s  ETA " << eta / 60
       << ":" << std::setw(2) << std::setfill('0') << eta % 60 << "\033[K";
  *out_ << line.str() << std::flush;
}

void ProgressBar::finish(const std::string& line) {
  if (!out_) return;
  if (redraw_) *out_ << "\r\033[K";
  *out_ << line << "\n" << std::flush;
}

}  // namespace maas
