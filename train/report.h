// A training run's report.html (curves, confusion matrix, config, model, timings) and the page comparing runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint.h"

namespace maas {

// One run as the report shows it. Filled by the trainer (or from a run directory by read_run_report).
struct RunReport {
  std::string run_dir;                  // shown as the title
  std::vector<EpochMetrics> history;    // one row per completed epoch, in order
  std::vector<std::string> classes;
  std::vector<int64_t> best_confusion;  // classes x classes, row-major, row = true class, col = predicted; may be empty
  int64_t best_epoch = 0;               // 0 = none yet
  std::string config_yaml;              // the run's resolved config (config.yaml text)
  std::string model_summary;            // what model_summary() in common/models.h prints
};

// The whole report of one run as a self-contained HTML page (UTF-8, inline CSS and SVG, no script,
// no external resource; a Content-Security-Policy forbids loading any). It shows a summary line
// (best test accuracy and its epoch, epochs done, total seconds, mean img/s), line charts of the
// train/test loss, train/test accuracy and learning rate per epoch, the best checkpoint's confusion
// matrix and per-class accuracy, a per-epoch table (metrics, seconds, img/s), the config and the
// model summary. Every text taken from `run` is HTML-escaped and made valid UTF-8 (invalid bytes and
// control characters become U+FFFD). Non-finite values are left out of the charts. An empty history
// gives a page that says no epoch is done yet; an empty or mis-sized confusion matrix is reported
// as unavailable. Never throws for any content of `run` (only std::bad_alloc).
std::string render_run_report(const RunReport& run);

// The report of a run from its checkpoint record, config text and model summary.
RunReport run_report_of(const std::string& run_dir, const CheckpointMeta& meta, std::string config_yaml,
                        std::string model_summary);

// Several runs' curves on one page: test accuracy, train (dashed) and test (solid) loss, and learning
// rate per epoch, one colour per run (in `runs` order), each chart with a legend; and a table of
// each run's best test accuracy and its epoch, epochs done, total seconds and mean img/s. Escaping
// and non-finite values as in render_run_report.
std::string render_comparison(const std::vector<RunReport>& runs);

// The report of a maas-train run directory: config.yaml's text, and from last.pt's metadata the
// history, classes, best epoch and best confusion matrix, and the summary of the model rebuilt from
// it. A run with config.yaml but no last.pt yet (stopped before its first epoch) gives a report with
// an empty history. Throws CheckpointError naming `run_dir` when it holds neither file (not a run),
// and CheckpointError naming the file when last.pt is unreadable.
RunReport read_run_report(const std::string& run_dir);

// Where a run keeps its report: RUN_DIR/report.html.
std::string run_report_path(const std::string& run_dir);

// `maas-train report RUN... [--out FILE]`: with one run, writes its report to `out`, or to
// run_report_path(run) when `out` is empty; with several, writes their comparison to `out`, which is
// then required. Files are written atomically. Returns the path written. Throws UsageError (cli.h)
// for no run or several runs without `out`, CheckpointError for a directory that is not a run,
// std::runtime_error naming the file when it cannot be written.
std::string write_report(const std::vector<std::string>& run_dirs, const std::string& out);

}  // namespace maas
