// Run reports and run comparisons as self-contained HTML pages, with line charts drawn as inline SVG.
#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "cli.h"
#include "files.h"
#include "models.h"

namespace maas {
namespace {

// ---- Text: every byte that comes from data goes through html() ----

const char* const kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// The length of the well-formed UTF-8 sequence that starts at s[i] (Unicode table 3-7: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
size_t utf8_sequence_length(const std::string& s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;
  }
  if (i + length > s.size() || byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (size_t k = 2; k < length; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return length;
}

// `bytes` as HTML text, safe in element content and in quoted attribute values: & < > " '
// escaped; each byte that is not part of valid UTF-8, and each control character other than tab,
// newline and carriage return, becomes U+FFFD.
std::string html(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 8);
  for (size_t i = 0; i < bytes.size();) {
    const size_t length = utf8_sequence_length(bytes, i);
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (length == 0) {
      out += kReplacementCharacter;
      ++i;
      continue;
    }
    if (length == 1) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default:
          if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
            out += kReplacementCharacter;
          else
            out += static_cast<char>(c);
      }
    } else if (length == 2 && c == 0xC2 && static_cast<unsigned char>(bytes[i + 1]) < 0xA0) {
      out += kReplacementCharacter;  // C1 control character U+0080..U+009F
    } else {
      out.append(bytes, i, length);
    }
    i += length;
  }
  return out;
}

// Code points in `text` (invalid bytes count one each, as html() replaces them one each).
size_t display_length(const std::string& text) {
  size_t count = 0;
  for (size_t i = 0; i < text.size(); ++count) i += std::max<size_t>(1, utf8_sequence_length(text, i));
  return count;
}

// The first `max_chars` code points of `text`, with "…" when cut.
std::string shortened(const std::string& text, size_t max_chars) {
  size_t i = 0;
  for (size_t count = 0; i < text.size() && count < max_chars; ++count)
    i += std::max<size_t>(1, utf8_sequence_length(text, i));
  return i >= text.size() ? text : text.substr(0, i) + "\xE2\x80\xA6";
}

// ---- Numbers ----

std::string formatted(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// `value` with `decimals` digits after the point; "nan", "inf" or "-inf" when not finite.
std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string percent(double fraction) { return std::isfinite(fraction) ? fixed(100 * fraction, 2) + "%" : fixed(fraction, 0); }

// A learning rate: 4 significant digits (0.001, 3.125e-05).
std::string rate(double value) { return formatted("%.4g", value); }

// ---- Line charts ----

// A scale's range and tick spacing, rounded to 1, 2 or 5 times a power of ten.
struct Axis {
  double lo = 0, hi = 1, step = 0.25;  // step 0: no ticks (degenerate data)
  int decimals = 2;                    // digits after the point in tick labels
};

// An axis covering [lo, hi] with about `target_ticks` ticks; `integer` keeps ticks on whole
// numbers (epochs). A single value gets some room around it.
Axis nice_axis(double lo, double hi, int target_ticks, bool integer) {
  if (!(hi - lo > std::abs(hi) * 1e-9)) {
    const double pad = integer ? 1 : (lo == 0 ? 1 : std::abs(lo) * 0.1);
    lo -= pad;
    hi += pad;
  }
  Axis axis;
  const double raw = (hi - lo) / target_ticks;
  if (!std::isfinite(raw) || raw <= 0) {
    axis.lo = lo;
    axis.hi = hi;
    axis.step = 0;
    return axis;
  }
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double residual = raw / magnitude;
  axis.step = (residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10) * magnitude;
  if (integer) axis.step = std::max(1.0, std::round(axis.step));
  axis.lo = std::floor(lo / axis.step) * axis.step;
  axis.hi = std::ceil(hi / axis.step) * axis.step;
  axis.decimals = std::clamp(static_cast<int>(-std::floor(std::log10(axis.step) + 1e-9)), 0, 12);
  if (!std::isfinite(axis.lo) || !std::isfinite(axis.hi) || !(axis.hi > axis.lo) ||
      (axis.hi - axis.lo) / axis.step > 50) {
    axis.lo = lo;
    axis.hi = hi;
    axis.step = 0;
  }
  return axis;
}

std::string tick_label(double value, int decimals) {
  if (std::abs(value) >= 1e7 || decimals > 6) return formatted("%g", value);
  return fixed(value, decimals);
}

struct Series {
  std::string name;
  std::string colour;
  bool dashed = false;
  std::vector<double> x, y;  // one point per epoch; points with a non-finite coordinate are skipped
};

struct LegendEntry {
  std::string name;
  std::string colour;
  bool dashed = false;
};

struct Chart {
  std::string id;       // the <svg>'s id
  std::string title;
  std::string y_label;
  bool y_from_zero = false;  // the y axis includes 0 (losses, learning rates)
  double y_max = INFINITY;   // the y axis never goes above (accuracy: 100%)
  std::vector<Series> series;
  std::vector<LegendEntry> legend;  // empty: one entry per series
};

// Chart geometry, in SVG user units.
constexpr double kChartWidth = 640, kPlotLeft = 72, kPlotRight = 620, kPlotTop = 38, kPlotBottom = 238;
constexpr double kLegendTop = 286, kLegendRowHeight = 18;
constexpr size_t kMaxMarkers = 60;  // series with more points get no per-point markers

std::string coordinate(double v) { return formatted("%.1f", v); }

std::string dash_attribute(bool dashed) { return dashed ? " stroke-dasharray=\"6 4\"" : ""; }

// The legend laid out in rows under the plot: (x, row) of each entry, and the number of rows.
std::vector<std::pair<double, int>> legend_layout(const std::vector<LegendEntry>& legend, int& rows) {
  std::vector<std::pair<double, int>> places;
  double x = kPlotLeft;
  int row = 0;
  for (const auto& entry : legend) {
    const double width = 30 + 6.5 * static_cast<double>(display_length(shortened(entry.name, 70))) + 18;
    if (x > kPlotLeft && x + width > kChartWidth) {
      x = kPlotLeft;
      ++row;
    }
    places.emplace_back(x, row);
    x += width;
  }
  rows = legend.empty() ? 0 : row + 1;
  return places;
}

// One <svg class="chart">: title, axes with ticks and labels, a grid, one <polyline class="series">
// per series that has a finite point (markers with the value as tooltip when not too many), and
// the legend. Points with a non-finite value are skipped; a chart without any says "no data".
std::string svg_line_chart(const Chart& chart) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& s : chart.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  const bool has_data = x_lo <= x_hi;
  if (!has_data) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (chart.y_from_zero) y_lo = std::min(y_lo, 0.0), y_hi = std::max(y_hi, 0.0);
  const Axis x_axis = nice_axis(x_lo, x_hi, 8, true);
  Axis y_axis = nice_axis(y_lo, y_hi, 5, false);
  if (y_axis.step > 0 && y_axis.hi > chart.y_max && y_hi <= chart.y_max) y_axis.hi = chart.y_max;

  std::vector<LegendEntry> legend = chart.legend;
  if (legend.empty())
    for (const auto& s : chart.series) legend.push_back({s.name, s.colour, s.dashed});
  int legend_rows = 0;
  const auto places = legend_layout(legend, legend_rows);
  const double height = kLegendTop + legend_rows * kLegendRowHeight + 6;

  auto px = [&](double x) { return kPlotLeft + (x - x_axis.lo) / (x_axis.hi - x_axis.lo) * (kPlotRight - kPlotLeft); };
  auto py = [&](double y) { return kPlotBottom - (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * (kPlotBottom - kPlotTop); };

  std::string svg = "<svg class=\"chart\" id=\"" + html(chart.id) + "\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
                    coordinate(kChartWidth) + " " + coordinate(height) + "\" width=\"" + coordinate(kChartWidth) +
                    "\" height=\"" + coordinate(height) + "\" role=\"img\" aria-label=\"" + html(chart.title) + "\">\n";
  svg += "<title>" + html(chart.title) + "</title>\n";
  svg += "<text class=\"chart-title\" x=\"" + coordinate(kPlotLeft) + "\" y=\"22\">" + html(chart.title) + "</text>\n";

  // Grid, ticks and tick labels.
  svg += "<g class=\"axis y-axis\">\n";
  if (y_axis.step > 0) {
    const int ticks = static_cast<int>(std::round((y_axis.hi - y_axis.lo) / y_axis.step));
    for (int i = 0; i <= ticks; ++i) {
      double value = std::min(y_axis.lo + i * y_axis.step, y_axis.hi);
      if (std::abs(value) < y_axis.step * 1e-6) value = 0;  // not "-0.00" from rounding
      const std::string y = coordinate(py(value));
      svg += "<line class=\"grid\" x1=\"" + coordinate(kPlotLeft) + "\" x2=\"" + coordinate(kPlotRight) + "\" y1=\"" +
             y + "\" y2=\"" + y + "\" stroke=\"#e5e5e5\"/>";
      svg += "<text class=\"tick\" x=\"" + coordinate(kPlotLeft - 6) + "\" y=\"" + y +
             "\" text-anchor=\"end\" dominant-baseline=\"middle\">" + tick_label(value, y_axis.decimals) + "</text>\n";
    }
  }
  svg += "<text class=\"axis-label\" transform=\"translate(16 " + coordinate((kPlotTop + kPlotBottom) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + html(chart.y_label) + "</text>\n</g>\n";
  svg += "<g class=\"axis x-axis\">\n";
  if (x_axis.step > 0) {
    const int ticks = static_cast<int>(std::round((x_axis.hi - x_axis.lo) / x_axis.step));
    for (int i = 0; i <= ticks; ++i) {
      const double value = x_axis.lo + i * x_axis.step;
      const std::string x = coordinate(px(value));
      svg += "<line x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + coordinate(kPlotBottom) + "\" y2=\"" +
             coordinate(kPlotBottom + 5) + "\" stroke=\"#555\"/>";
      svg += "<text class=\"tick\" x=\"" + x + "\" y=\"" + coordinate(kPlotBottom + 18) + "\" text-anchor=\"middle\">" +
             tick_label(value, 0) + "</text>\n";
    }
  }
  svg += "<text class=\"axis-label\" x=\"" + coordinate((kPlotLeft + kPlotRight) / 2) + "\" y=\"" +
         coordinate(kPlotBottom + 38) + "\" text-anchor=\"middle\">epoch</text>\n";
  svg += "<path d=\"M" + coordinate(kPlotLeft) + " " + coordinate(kPlotTop) + "V" + coordinate(kPlotBottom) + "H" +
         coordinate(kPlotRight) + "\" fill=\"none\" stroke=\"#555\"/>\n</g>\n";

  if (!has_data)
    svg += "<text class=\"no-data\" x=\"" + coordinate((kPlotLeft + kPlotRight) / 2) + "\" y=\"" +
           coordinate((kPlotTop + kPlotBottom) / 2) + "\" text-anchor=\"middle\">no data</text>\n";

  for (const auto& s : chart.series) {
    std::string points, markers;
    size_t count = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || !std::isfinite(x) || !std::isfinite(y)) continue;
      points += (count++ ? " " : "") + coordinate(x) + "," + coordinate(y);
      markers += "<circle cx=\"" + coordinate(x) + "\" cy=\"" + coordinate(y) + "\" r=\"3\" fill=\"" + s.colour +
                 "\"><title>" + html(s.name) + ", epoch " + tick_label(s.x[i], 0) + ": " +
                 formatted("%.6g", s.y[i]) + "</title></circle>";
    }
    if (count == 0) continue;
    svg += "<g class=\"series-group\">\n<polyline class=\"series\" data-series=\"" + html(s.name) + "\" points=\"" +
           points + "\" fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"2\" stroke-linejoin=\"round\"" +
           dash_attribute(s.dashed) + "/>\n";
    if (count <= kMaxMarkers) svg += "<g class=\"markers\">" + markers + "</g>\n";
    svg += "</g>\n";
  }

  svg += "<g class=\"legend\">\n";
  for (size_t i = 0; i < legend.size(); ++i) {
    const double x = places[i].first, y = kLegendTop + places[i].second * kLegendRowHeight;
    svg += "<g class=\"legend-entry\"><title>" + html(legend[i].name) + "</title><line x1=\"" + coordinate(x) +
           "\" x2=\"" + coordinate(x + 24) + "\" y1=\"" + coordinate(y) + "\" y2=\"" + coordinate(y) + "\" stroke=\"" +
           legend[i].colour + "\" stroke-width=\"2\"" + dash_attribute(legend[i].dashed) + "/><text x=\"" +
           coordinate(x + 30) + "\" y=\"" + coordinate(y) + "\" dominant-baseline=\"middle\">" +
           html(shortened(legend[i].name, 70)) + "</text></g>\n";
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

// ---- Pages ----

constexpr const char* kTrainColour = "#1f77b4";
constexpr const char* kTestColour = "#ff7f0e";
constexpr const char* kRateColour = "#2ca02c";

// The colour of the i-th run in a comparison: Tableau's ten, then hues a golden angle apart.
std::string run_colour(size_t i) {
  static const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (i < 10) return kPalette[i];
  return "hsl(" + std::to_string(static_cast<int>(std::fmod(i * 137.508, 360.0))) + ",65%,42%)";
}

const char* const kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1340px;margin:20px auto;padding:0 16px}
h1{font-size:20px;overflow-wrap:anywhere}
h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.summary{font-size:15px}
.note{color:#666}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{max-width:100%;height:auto;border:1px solid #eee;background:#fff}
svg.chart text{font:11px system-ui,sans-serif;fill:#333}
svg.chart text.chart-title{font-size:13px;font-weight:600}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:right}
th{background:#f5f5f5;font-weight:600}
th.name,td.name{text-align:left;max-width:24em;overflow-wrap:anywhere}
caption{caption-side:bottom;text-align:left;color:#666;font-size:12px;padding-top:4px}
table.confusion td{text-align:center;min-width:2.6em}
tr.best td{font-weight:600}
.bar{display:inline-block;height:.7em;background:#1f77b4;vertical-align:middle;margin-right:6px}
.swatch{display:inline-block;width:1.6em;height:.25em;vertical-align:middle}
pre{background:#f6f6f6;padding:8px 10px;overflow:auto;border:1px solid #eee}
footer{margin-top:32px;color:#888;font-size:12px}
)";

// The page around `body`: UTF-8, the style above, and a Content-Security-Policy that lets the
// page load nothing (no script, no image, no font, no stylesheet besides its own).
std::string page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         html(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n" + body +
         "<footer>written by maas " MAAS_VERSION "</footer>\n</body>\n</html>\n";
}

// The row of the best epoch: the one numbered best_epoch, else (older records) the highest finite
// test accuracy; nullptr when there is none.
const EpochMetrics* best_row(const RunReport& run) {
  for (const auto& m : run.history)
    if (run.best_epoch > 0 && m.epoch == run.best_epoch) return &m;
  const EpochMetrics* best = nullptr;
  for (const auto& m : run.history)
    if (std::isfinite(m.test_acc) && (!best || m.test_acc > best->test_acc)) best = &m;
  return best;
}

double total_seconds(const RunReport& run) {
  double total = 0;
  for (const auto& m : run.history)
    if (std::isfinite(m.seconds)) total += m.seconds;
  return total;
}

// Mean of the epochs' training images per second (NaN when no epoch has a finite one).
double mean_images_per_s(const RunReport& run) {
  double sum = 0;
  int count = 0;
  for (const auto& m : run.history)
    if (std::isfinite(m.images_per_s)) sum += m.images_per_s, ++count;
  return count ? sum / count : NAN;
}

// One series per epoch of `run`: x = epoch, y = value(row).
template <typename Value>
Series epoch_series(const RunReport& run, std::string name, std::string colour, bool dashed, Value value) {
  Series s{std::move(name), std::move(colour), dashed, {}, {}};
  for (const auto& m : run.history) {
    s.x.push_back(static_cast<double>(m.epoch));
    s.y.push_back(value(m));
  }
  return s;
}

std::string summary_line(const RunReport& run) {
  if (run.history.empty()) return "<p class=\"summary\">No epoch completed yet.</p>\n";
  std::string line = "<p class=\"summary\">";
  if (const EpochMetrics* best = best_row(run))
    line += "Best test accuracy <b>" + percent(best->test_acc) + "</b> at epoch " + std::to_string(best->epoch) + " · ";
  line += std::to_string(run.history.size()) + (run.history.size() == 1 ? " epoch" : " epochs") + " · " +
          fixed(total_seconds(run), 1) + " s in total · " + fixed(mean_images_per_s(run), 0) +
          " training images/s on average</p>\n";
  return line;
}

// The confusion matrix (cells shaded by their share of the row) and the per-class accuracy.
std::string confusion_section(const RunReport& run) {
  const size_t n = run.classes.size();
  std::string out = "<h2>Best checkpoint" +
                    (run.best_epoch > 0 ? " (epoch " + std::to_string(run.best_epoch) + ")" : std::string()) + "</h2>\n";
  if (run.best_confusion.empty()) return out + "<p class=\"note\">No confusion matrix recorded yet.</p>\n";
  if (n == 0 || run.best_confusion.size() != n * n)
    return out + "<p class=\"note\">Confusion matrix unavailable: " + std::to_string(run.best_confusion.size()) +
           " counts for " + std::to_string(n) + " classes.</p>\n";
  auto count = [&](size_t row, size_t col) { return run.best_confusion[row * n + col]; };
  std::vector<int64_t> row_totals(n, 0);
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < n; ++c) row_totals[r] += count(r, c);

  out += "<h3>Confusion matrix</h3>\n<table class=\"confusion\">\n"
         "<caption>Rows: true class; columns: predicted class. Shade: share of the true class's test images.</caption>\n"
         "<thead><tr><th class=\"name\">true \\ predicted</th>";
  for (const auto& name : run.classes) out += "<th scope=\"col\" class=\"name\">" + html(name) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (size_t r = 0; r < n; ++r) {
    out += "<tr><th scope=\"row\" class=\"name\">" + html(run.classes[r]) + "</th>";
    for (size_t c = 0; c < n; ++c) {
      const double share =
          row_totals[r] > 0 ? std::clamp(static_cast<double>(count(r, c)) / static_cast<double>(row_totals[r]), 0.0, 1.0) : 0;
      const auto channel = [&](int from, int to) { return std::to_string(static_cast<int>(std::lround(from + (to - from) * share))); };
      out += "<td style=\"background:rgb(" + channel(255, 8) + "," + channel(255, 81) + "," + channel(255, 156) +
             ");color:" + (share > 0.5 ? "#fff" : "#222") + "\" title=\"" + html(run.classes[r]) + " predicted as " +
             html(run.classes[c]) + ": " + std::to_string(count(r, c)) + " (" + fixed(100 * share, 1) + "% of " +
             html(run.classes[r]) + ")\">" + std::to_string(count(r, c)) + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n";

  out += "<h3>Per-class accuracy</h3>\n<table class=\"per-class\">\n<thead><tr><th class=\"name\">class</th>"
         "<th>correct</th><th>test images</th><th class=\"name\">accuracy</th></tr></thead>\n<tbody>\n";
  int64_t correct_total = 0, images_total = 0;
  for (size_t r = 0; r < n; ++r) {
    correct_total += count(r, r);
    images_total += row_totals[r];
    const double accuracy = row_totals[r] > 0 ? static_cast<double>(count(r, r)) / static_cast<double>(row_totals[r]) : NAN;
    out += "<tr><td class=\"name\">" + html(run.classes[r]) + "</td><td>" + std::to_string(count(r, r)) + "</td><td>" +
           std::to_string(row_totals[r]) + "</td><td class=\"name\">";
    if (std::isfinite(accuracy))
      out += "<span class=\"bar\" style=\"width:" + fixed(std::clamp(accuracy, 0.0, 1.0) * 120, 0) + "px\"></span>" +
             percent(accuracy);
    else
      out += "–";
    out += "</td></tr>\n";
  }
  out += "</tbody>\n<tfoot><tr><th class=\"name\">all</th><th>" + std::to_string(correct_total) + "</th><th>" +
         std::to_string(images_total) + "</th><th class=\"name\">" +
         (images_total > 0 ? percent(static_cast<double>(correct_total) / static_cast<double>(images_total)) : "–") +
         "</th></tr></tfoot>\n</table>\n";
  return out;
}

std::string epochs_table(const RunReport& run) {
  const EpochMetrics* best = best_row(run);
  std::string out = "<h2>Epochs and timings</h2>\n<table class=\"epochs\">\n<thead><tr><th>epoch</th><th>train loss</th>"
                    "<th>train acc</th><th>test loss</th><th>test acc</th><th>learning rate</th><th>seconds</th>"
                    "<th>train img/s</th></tr></thead>\n<tbody>\n";
  for (const auto& m : run.history) {
    out += std::string(&m == best ? "<tr class=\"best\">" : "<tr>") + "<td>" + std::to_string(m.epoch) + "</td><td>" +
           fixed(m.train_loss, 4) + "</td><td>" + percent(m.train_acc) + "</td><td>" + fixed(m.test_loss, 4) +
           "</td><td>" + percent(m.test_acc) + "</td><td>" + rate(m.lr) + "</td><td>" + fixed(m.seconds, 1) +
           "</td><td>" + fixed(m.images_per_s, 0) + "</td></tr>\n";
  }
  out += "</tbody>\n<tfoot><tr><th>total</th><th></th><th></th><th></th><th></th><th></th><th>" +
         fixed(total_seconds(run), 1) + "</th><th>" + fixed(mean_images_per_s(run), 0) +
         " (mean)</th></tr></tfoot>\n</table>\n";
  return out;
}

// A <pre> with `text`, or a note when it is empty.
std::string text_block(const std::string& id, const std::string& text, const std::string& missing) {
  if (text.empty()) return "<p class=\"note\" id=\"" + id + "\">" + missing + "</p>\n";
  return "<pre id=\"" + id + "\">" + html(text) + "</pre>\n";
}

}  // namespace

std::string render_run_report(const RunReport& run) {
  std::string body = "<h1>" + html(run.run_dir) + "</h1>\n" + summary_line(run);
  if (!run.history.empty()) {
    Chart loss{"chart-loss", "Loss", "cross-entropy loss", true, INFINITY, {}, {}};
    loss.series.push_back(epoch_series(run, "train loss", kTrainColour, false, [](const EpochMetrics& m) { return m.train_loss; }));
    loss.series.push_back(epoch_series(run, "test loss", kTestColour, false, [](const EpochMetrics& m) { return m.test_loss; }));
    Chart accuracy{"chart-accuracy", "Accuracy", "accuracy (%)", false, 100, {}, {}};
    accuracy.series.push_back(
        epoch_series(run, "train accuracy", kTrainColour, false, [](const EpochMetrics& m) { return 100 * m.train_acc; }));
    accuracy.series.push_back(
        epoch_series(run, "test accuracy", kTestColour, false, [](const EpochMetrics& m) { return 100 * m.test_acc; }));
    Chart lr{"chart-lr", "Learning rate", "learning rate", true, INFINITY, {}, {}};
    lr.series.push_back(epoch_series(run, "learning rate", kRateColour, false, [](const EpochMetrics& m) { return m.lr; }));
    body += "<h2>Curves</h2>\n<div class=\"charts\">\n" + svg_line_chart(loss) + svg_line_chart(accuracy) +
            svg_line_chart(lr) + "</div>\n";
  }
  body += confusion_section(run);
  if (!run.history.empty()) body += epochs_table(run);
  body += "<h2>Config</h2>\n" + text_block("config", run.config_yaml, "No config recorded.");
  body += "<h2>Model</h2>\n" + text_block("model-summary", run.model_summary, "No model summary recorded.");
  return page("maas run " + run.run_dir, body);
}

std::string render_comparison(const std::vector<RunReport>& runs) {
  std::string body = "<h1>" + std::to_string(runs.size()) + (runs.size() == 1 ? " run" : " runs") + " compared</h1>\n";
  body += "<table class=\"runs\">\n<thead><tr><th class=\"name\">run</th><th>epochs</th><th>best test acc</th>"
          "<th>at epoch</th><th>seconds</th><th>train img/s (mean)</th></tr></thead>\n<tbody>\n";
  Chart accuracy{"chart-test-accuracy", "Test accuracy", "test accuracy (%)", false, 100, {}, {}};
  Chart loss{"chart-loss", "Loss (dashed: train, solid: test)", "cross-entropy loss", true, INFINITY, {}, {}};
  Chart lr{"chart-lr", "Learning rate", "learning rate", true, INFINITY, {}, {}};
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunReport& run = runs[i];
    const std::string colour = run_colour(i);
    const EpochMetrics* best = best_row(run);
    body += "<tr><td class=\"name\"><span class=\"swatch\" style=\"background:" + colour + "\"></span> " +
            html(run.run_dir) + "</td><td>" + std::to_string(run.history.size()) + "</td><td>" +
            (best ? percent(best->test_acc) : "–") + "</td><td>" + (best ? std::to_string(best->epoch) : "–") +
            "</td><td>" + fixed(total_seconds(run), 1) + "</td><td>" +
            (run.history.empty() ? "–" : fixed(mean_images_per_s(run), 0)) + "</td></tr>\n";
    accuracy.series.push_back(
        epoch_series(run, run.run_dir, colour, false, [](const EpochMetrics& m) { return 100 * m.test_acc; }));
    loss.series.push_back(
        epoch_series(run, run.run_dir + " train loss", colour, true, [](const EpochMetrics& m) { return m.train_loss; }));
    loss.series.push_back(
        epoch_series(run, run.run_dir + " test loss", colour, false, [](const EpochMetrics& m) { return m.test_loss; }));
    loss.legend.push_back({run.run_dir, colour, false});
    lr.series.push_back(epoch_series(run, run.run_dir, colour, false, [](const EpochMetrics& m) { return m.lr; }));
  }
  body += "</tbody>\n</table>\n";
  loss.legend.push_back({"train", "#555", true});
  loss.legend.push_back({"test", "#555", false});
  body += "<div class=\"charts\">\n" + svg_line_chart(accuracy) + svg_line_chart(loss) + svg_line_chart(lr) + "</div>\n";
  return page("maas: " + std::to_string(runs.size()) + " runs compared", body);
}

RunReport read_run_report(const std::string& run_dir) {
  std::error_code ignored;
  const bool has_config = std::filesystem::is_regular_file(run_config_path(run_dir), ignored);
  const bool has_checkpoint = std::filesystem::is_regular_file(last_checkpoint_path(run_dir), ignored);
  if (!has_config && !has_checkpoint)
    throw CheckpointError(run_dir + " is not a maas-train run directory (it has no config.yaml and no last.pt)");
  const std::string config_yaml = has_config ? read_text(run_config_path(run_dir)) : "";
  if (!has_checkpoint) {
    RunReport report;
    report.run_dir = run_dir;
    report.config_yaml = config_yaml;
    return report;
  }
  const CheckpointReader checkpoint(last_checkpoint_path(run_dir));
  const CheckpointMeta& meta = checkpoint.meta();
  return run_report_of(run_dir, meta, config_yaml, model_summary(*checkpoint.load_model(), meta.spec));
}

RunReport run_report_of(const std::string& run_dir, const CheckpointMeta& meta, std::string config_yaml,
                        std::string model_summary) {
  RunReport report;
  report.run_dir = run_dir;
  report.history = meta.history;
  report.classes = meta.classes;
  report.best_epoch = meta.best_epoch;
  report.best_confusion = meta.best_confusion;
  report.config_yaml = std::move(config_yaml);
  report.model_summary = std::move(model_summary);
  return report;
}

std::string run_report_path(const std::string& run_dir) { return run_dir + "/report.html"; }

std::string write_report(const std::vector<std::string>& run_dirs, const std::string& out) {
  if (run_dirs.empty()) throw UsageError("name at least one run directory: maas-train report RUN... [--out FILE]");
  if (run_dirs.size() == 1) {
    const std::string path = out.empty() ? run_report_path(run_dirs[0]) : out;
    write_text_atomically(path, render_run_report(read_run_report(run_dirs[0])));
    return path;
  }
  if (out.empty())
    throw UsageError("comparing " + std::to_string(run_dirs.size()) + " runs needs --out FILE for the page");
  std::vector<RunReport> runs;
  for (const auto& dir : run_dirs) runs.push_back(read_run_report(dir));
  write_text_atomically(out, render_comparison(runs));
  return out;
}

}  // namespace maas
