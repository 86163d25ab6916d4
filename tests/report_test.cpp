// The run report and the run comparison: charts, tables, escaping, edge cases, the command, and the page in Chromium.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "checkpoint.h"
#include "cli.h"
#include "files.h"
#include "models.h"
#include "report.h"
#include "test_util.h"

namespace maas {
namespace {

using testing::TempDir;
using testing::run_command;

// A run of `epochs` epochs with smooth, distinct curves.
RunReport sample_run(int64_t epochs, const std::vector<std::string>& classes = {"cat", "dog", "bird"}) {
  RunReport run;
  run.run_dir = "runs/sample";
  run.classes = classes;
  for (int64_t e = 1; e <= epochs; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.train_loss = 2.0 / static_cast<double>(e);
    m.test_loss = 2.2 / static_cast<double>(e);
    m.train_acc = 0.5 + 0.05 * static_cast<double>(e);
    m.test_acc = 0.45 + 0.05 * static_cast<double>(e);
    m.lr = 0.001 / static_cast<double>(e);
    m.images_per_s = 1000 + 2 * static_cast<double>(e);
    m.seconds = 10;
    run.history.push_back(m);
  }
  run.best_epoch = epochs;
  run.config_yaml = "model:\n  name: cnn\ntrain:\n  epochs: " + std::to_string(epochs) + "\n";
  run.model_summary = "layer       type                               parameters\ntotal 122570\n";
  return run;
}

// The <svg> element with this id, or "" when the page has none.
std::string chart(const std::string& page, const std::string& id) {
  const size_t id_at = page.find("id=\"" + id + "\"");
  if (id_at == std::string::npos) return "";
  const size_t start = page.rfind("<svg", id_at);
  return page.substr(start, page.find("</svg>", id_at) + 6 - start);
}

// Each polyline's data-series name and its number of points, in document order.
std::vector<std::pair<std::string, int>> polylines(const std::string& svg) {
  std::vector<std::pair<std::string, int>> found;
  static const std::regex polyline("<polyline class=\"series\" data-series=\"([^\"]*)\" points=\"([^\"]*)\"");
  for (std::sregex_iterator it(svg.begin(), svg.end(), polyline), end; it != end; ++it) {
    const std::string points = (*it)[2];
    static const std::regex point("-?[0-9.]+,-?[0-9.]+");
    found.emplace_back((*it)[1], static_cast<int>(std::distance(
                                     std::sregex_iterator(points.begin(), points.end(), point), std::sregex_iterator())));
  }
  return found;
}

int count_of(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++count;
  return count;
}

// The element from the first `<tag class="klass"` to its closing tag (no nesting of the same tag).
std::string element(const std::string& page, const std::string& tag, const std::string& klass) {
  const size_t start = page.find("<" + tag + " class=\"" + klass + "\"");
  if (start == std::string::npos) return "";
  return page.substr(start, page.find("</" + tag + ">", start) + tag.size() + 3 - start);
}

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool is_valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || (extra > 0 && i + extra >= s.size())) return false;
    uint32_t code = extra == 0 ? c : c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static const uint32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

TEST(ReportPage, EachChartHasAPolylinePerSeriesWithAPointPerEpoch) {
  const std::string page = render_run_report(sample_run(4));
  ASSERT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count_of(page, "<svg class=\"chart\""), 3);
  using Lines = std::vector<std::pair<std::string, int>>;
  EXPECT_EQ(polylines(chart(page, "chart-loss")), (Lines{{"train loss", 4}, {"test loss", 4}}));
  EXPECT_EQ(polylines(chart(page, "chart-accuracy")), (Lines{{"train accuracy", 4}, {"test accuracy", 4}}));
  EXPECT_EQ(polylines(chart(page, "chart-lr")), (Lines{{"learning rate", 4}}));
  for (const std::string id : {"chart-loss", "chart-accuracy", "chart-lr"}) {
    const std::string svg = chart(page, id);
    EXPECT_GE(count_of(svg, "class=\"tick\""), 4) << id;  // ticks on both axes
    EXPECT_EQ(count_of(svg, "class=\"legend-entry\""), count_of(svg, "<polyline")) << id;
    EXPECT_NE(svg.find(">epoch</text>"), std::string::npos) << id;
  }
  // Accuracy is drawn in percent: the best test accuracy (65%) sits inside the 0..100 axis.
  EXPECT_NE(chart(page, "chart-accuracy").find(">65</text>"), std::string::npos) << chart(page, "chart-accuracy");
  // The summary line: best accuracy and its epoch, epochs, seconds, throughput.
  EXPECT_NE(page.find("Best test accuracy <b>65.00%</b> at epoch 4 · 4 epochs · 40.0 s in total · 1005 training "
                      "images/s on average"),
            std::string::npos);
  // The per-epoch table: one row per epoch, seconds and img/s among the cells.
  const std::string epochs = element(page, "table", "epochs");
  EXPECT_EQ(count_of(epochs, "<tr"), 1 + 4 + 1);
  EXPECT_NE(epochs.find("<td>10.0</td><td>1008</td>"), std::string::npos) << epochs;
  EXPECT_NE(page.find("<pre id=\"config\">model:\n  name: cnn\ntrain:\n  epochs: 4\n</pre>"), std::string::npos);
  EXPECT_NE(page.find("<pre id=\"model-summary\">layer"), std::string::npos);
  // Self-contained: nothing to fetch, no script.
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos);
  EXPECT_EQ(page.find("href="), std::string::npos);
  EXPECT_NE(page.find("Content-Security-Policy\" content=\"default-src 'none'"), std::string::npos);
}

TEST(ReportPage, ConfusionCellsHoldTheCountsAndPerClassAccuracyFollows) {
  RunReport run = sample_run(2);
  run.best_confusion = {5, 1, 0,  //
                        2, 7, 1,  //
                        0, 0, 9};
  const std::string page = render_run_report(run);
  const std::string table = element(page, "table", "confusion");
  ASSERT_FALSE(table.empty()) << page;
  std::vector<int64_t> cells;
  static const std::regex cell("<td[^>]*>([0-9]+)</td>");
  for (std::sregex_iterator it(table.begin(), table.end(), cell), end; it != end; ++it)
    cells.push_back(std::stoll((*it)[1]));
  EXPECT_EQ(cells, run.best_confusion);
  EXPECT_EQ(count_of(table, "<th scope=\"col\""), 3);
  EXPECT_EQ(count_of(table, "<th scope=\"row\""), 3);
  // The diagonal of a well-learned class is shaded darkest (white text); an empty cell stays white.
  EXPECT_NE(table.find("background:rgb(8,81,156);color:#fff\" title=\"bird predicted as bird: 9 (100.0% of bird)\""),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("background:rgb(255,255,255);color:#222\" title=\"cat predicted as bird: 0"), std::string::npos);

  const std::string per_class = element(page, "table", "per-class");
  EXPECT_NE(per_class.find("<td class=\"name\">cat</td><td>5</td><td>6</td>"), std::string::npos) << per_class;
  EXPECT_NE(per_class.find("83.33%"), std::string::npos);  // 5 of 6
  EXPECT_NE(per_class.find("70.00%"), std::string::npos);  // 7 of 10
  EXPECT_NE(per_class.find("100.00%"), std::string::npos);
  EXPECT_NE(per_class.find("<th>21</th><th>25</th><th class=\"name\">84.00%</th>"), std::string::npos) << per_class;
  EXPECT_NE(page.find("<h2>Best checkpoint (epoch 2)</h2>"), std::string::npos);
}

TEST(ReportPage, AConfusionMatrixOfTheWrongSizeIsReportedNotDrawn) {
  RunReport run = sample_run(1);
  run.best_confusion = {1, 2, 3, 4};  // 3 classes need 9
  const std::string page = render_run_report(run);
  EXPECT_EQ(page.find("class=\"confusion\""), std::string::npos);
  EXPECT_NE(page.find("Confusion matrix unavailable: 4 counts for 3 classes."), std::string::npos);
  run.best_confusion.clear();
  EXPECT_NE(render_run_report(run).find("No confusion matrix recorded yet."), std::string::npos);
}

TEST(ReportPage, TextFromDataIsEscaped) {
  RunReport run = sample_run(2, {"<script>alert(1)</script>", "a & \"b\"", "it's"});
  run.best_confusion = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  run.run_dir = "runs/<img src=x onerror=alert(2)>";
  run.config_yaml = "data:\n  root: </pre><script>alert(3)</script>\n";
  run.model_summary = "<b>not bold</b>";
  const std::string page = render_run_report(run);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<b>not"), std::string::npos);
  EXPECT_NE(page.find("<th scope=\"col\" class=\"name\">&lt;script&gt;alert(1)&lt;/script&gt;</th>"), std::string::npos);
  EXPECT_NE(page.find("<th scope=\"col\" class=\"name\">a &amp; &quot;b&quot;</th>"), std::string::npos);
  EXPECT_NE(page.find("it&#39;s predicted as a &amp; &quot;b&quot;: 0"), std::string::npos);  // inside title="..."
  EXPECT_NE(page.find("<h1>runs/&lt;img src=x onerror=alert(2)&gt;</h1>"), std::string::npos);
  EXPECT_NE(page.find("<title>maas run runs/&lt;img"), std::string::npos);
  EXPECT_NE(page.find("root: &lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;"), std::string::npos);

  std::vector<RunReport> runs = {run, sample_run(1)};
  runs[1].run_dir = "b\" onmouseover=\"x";
  const std::string comparison = render_comparison(runs);
  EXPECT_EQ(comparison.find("<img"), std::string::npos);
  EXPECT_EQ(comparison.find("\" onmouseover"), std::string::npos);
  EXPECT_NE(comparison.find("data-series=\"b&quot; onmouseover=&quot;x\""), std::string::npos);
}

TEST(ReportPage, InvalidUtf8InClassNamesBecomesValidUtf8) {
  const std::vector<std::string> classes = {
      std::string("caf\xc3\xa9 \xe7\x8c\xab"),  // café 猫: valid, kept
      std::string("bad\xff\xfe"),               // bytes that never occur in UTF-8
      std::string("cut\xe7\x8c"),               // a sequence cut short
      std::string("over\xc0\xaf") + std::string("sur\xed\xa0\x80") + std::string("big\xf4\x90\x80\x80"),
      std::string("nul\0bell\a\x7f", 10)};
  RunReport run = sample_run(1, classes);
  run.best_confusion.assign(classes.size() * classes.size(), 1);
  run.config_yaml = "root: /data/\xff\n";
  run.run_dir = "runs/\x80";
  const std::string page = render_run_report(run);
  EXPECT_TRUE(is_valid_utf8(page));
  EXPECT_EQ(page.find('\0'), std::string::npos);
  EXPECT_NE(page.find(">caf\xc3\xa9 \xe7\x8c\xab</th>"), std::string::npos);
  EXPECT_NE(page.find(">bad\xef\xbf\xbd\xef\xbf\xbd</th>"), std::string::npos);
  EXPECT_NE(page.find(">cut\xef\xbf\xbd\xef\xbf\xbd</th>"), std::string::npos);
  EXPECT_NE(page.find(">nul\xef\xbf\xbd" "bell\xef\xbf\xbd\xef\xbf\xbd</th>"), std::string::npos);
  EXPECT_NE(page.find("root: /data/\xef\xbf\xbd\n"), std::string::npos);

  RunReport other = sample_run(1);
  other.run_dir = "runs/\xfe";
  EXPECT_TRUE(is_valid_utf8(render_comparison({run, other})));
}

TEST(ReportPage, NonFiniteValuesAreLeftOutOfTheCharts) {
  RunReport run = sample_run(3);
  run.history[1].test_loss = NAN;
  run.history[2].train_loss = INFINITY;
  run.history[0].test_acc = -INFINITY;
  for (auto& m : run.history) m.lr = NAN;
  const std::string page = render_run_report(run);
  using Lines = std::vector<std::pair<std::string, int>>;
  EXPECT_EQ(polylines(chart(page, "chart-loss")), (Lines{{"train loss", 2}, {"test loss", 2}}));
  EXPECT_EQ(polylines(chart(page, "chart-accuracy")), (Lines{{"train accuracy", 3}, {"test accuracy", 2}}));
  EXPECT_EQ(polylines(chart(page, "chart-lr")), Lines{});  // no finite learning rate: no line
  EXPECT_NE(chart(page, "chart-lr").find(">no data</text>"), std::string::npos);
  static const std::regex non_finite("\\b(nan|inf)\\b", std::regex::icase);  // not "dominant"
  for (const std::string id : {"chart-loss", "chart-accuracy", "chart-lr"})
    EXPECT_FALSE(std::regex_search(chart(page, id), non_finite)) << chart(page, id);
  EXPECT_NE(element(page, "table", "epochs").find("<td>nan</td>"), std::string::npos);  // the table tells
}

TEST(ReportPage, OneEpochIsASinglePointWithAMarker) {
  const std::string page = render_run_report(sample_run(1));
  using Lines = std::vector<std::pair<std::string, int>>;
  EXPECT_EQ(polylines(chart(page, "chart-loss")), (Lines{{"train loss", 1}, {"test loss", 1}}));
  EXPECT_EQ(polylines(chart(page, "chart-lr")), (Lines{{"learning rate", 1}}));
  EXPECT_EQ(count_of(chart(page, "chart-lr"), "<circle"), 1);  // a lone point is visible as its marker
  EXPECT_NE(page.find("1 epoch · 10.0 s in total"), std::string::npos);
  static const std::regex non_finite("\\b(nan|inf)\\b", std::regex::icase);  // not "dominant"
  EXPECT_FALSE(std::regex_search(page, non_finite));
}

TEST(ReportPage, EmptyHistorySaysNoEpochYet) {
  RunReport run;
  run.run_dir = "runs/new";
  const std::string page = render_run_report(run);
  EXPECT_NE(page.find("No epoch completed yet."), std::string::npos);
  EXPECT_EQ(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("No confusion matrix recorded yet."), std::string::npos);
  EXPECT_NE(page.find("No config recorded."), std::string::npos);
  EXPECT_EQ(page.substr(page.size() - 8), "</html>\n");
}

TEST(ReportComparison, EachRunIsOneSeriesInItsOwnColour) {
  std::vector<RunReport> runs = {sample_run(4), sample_run(2), sample_run(3), RunReport{}};
  for (size_t i = 0; i < runs.size(); ++i) runs[i].run_dir = "runs/r" + std::to_string(i);
  runs[1].history[1].test_acc = 0.99;
  runs[1].best_epoch = 2;
  const std::string page = render_comparison(runs);
  using Lines = std::vector<std::pair<std::string, int>>;
  EXPECT_EQ(polylines(chart(page, "chart-test-accuracy")), (Lines{{"runs/r0", 4}, {"runs/r1", 2}, {"runs/r2", 3}}));
  EXPECT_EQ(polylines(chart(page, "chart-loss")),
            (Lines{{"runs/r0 train loss", 4}, {"runs/r0 test loss", 4}, {"runs/r1 train loss", 2},
                   {"runs/r1 test loss", 2}, {"runs/r2 train loss", 3}, {"runs/r2 test loss", 3}}));
  EXPECT_EQ(polylines(chart(page, "chart-lr")), (Lines{{"runs/r0", 4}, {"runs/r1", 2}, {"runs/r2", 3}}));
  // Every run is in the legend, the one without epochs too; loss adds the train/test line styles.
  EXPECT_EQ(count_of(chart(page, "chart-test-accuracy"), "class=\"legend-entry\""), 4);
  EXPECT_EQ(count_of(chart(page, "chart-loss"), "class=\"legend-entry\""), 6);
  // One colour per run, the same in every chart.
  static const std::regex stroke("data-series=\"runs/r([0-9])[^\"]*\" points=\"[^\"]*\" fill=\"none\" stroke=\"([^\"]+)\"");
  std::map<std::string, std::set<std::string>> colours;  // run -> strokes used
  for (std::sregex_iterator it(page.begin(), page.end(), stroke), end; it != end; ++it)
    colours[(*it)[1]].insert((*it)[2]);
  ASSERT_EQ(colours.size(), 3u);
  std::set<std::string> distinct;
  for (const auto& [run, strokes] : colours) {
    EXPECT_EQ(strokes.size(), 1u) << run;
    distinct.insert(*strokes.begin());
  }
  EXPECT_EQ(distinct.size(), 3u);
  // The table: each run's best accuracy and its epoch, epochs, seconds.
  const std::string table = element(page, "table", "runs");
  EXPECT_EQ(count_of(table, "<tr>"), 1 + 4);
  EXPECT_NE(table.find("runs/r0</td><td>4</td><td>65.00%</td><td>4</td><td>40.0</td>"), std::string::npos) << table;
  EXPECT_NE(table.find("runs/r1</td><td>2</td><td>99.00%</td><td>2</td><td>20.0</td>"), std::string::npos) << table;
  EXPECT_NE(table.find("runs/r3</td><td>0</td><td>–</td><td>–</td>"), std::string::npos) << table;
}

// A run directory as maas-train leaves it, without training: config.yaml and last.pt.
void write_run(const std::string& run_dir, const RunReport& run) {
  std::filesystem::create_directories(run_dir);
  write_text_atomically(run_config_path(run_dir), run.config_yaml);
  CheckpointMeta meta;
  meta.model.name = "cnn";
  meta.spec.classes = static_cast<int64_t>(run.classes.size());
  meta.classes = run.classes;
  meta.normalization = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  meta.epoch = static_cast<int64_t>(run.history.size());
  meta.history = run.history;
  meta.best_epoch = run.best_epoch;
  meta.best_confusion = run.best_confusion;
  torch::manual_seed(1);
  auto model = make_model(meta.model, meta.spec);
  save_checkpoint(last_checkpoint_path(run_dir), meta, *model, nullptr);
}

TEST(ReportRead, ReadsConfigHistoryConfusionAndModelFromARunDirectory) {
  TempDir dir;
  RunReport expected = sample_run(3);
  expected.best_epoch = 2;
  expected.best_confusion = {3, 0, 0, 0, 3, 0, 1, 1, 1};
  write_run(dir.file("run"), expected);
  const RunReport read = read_run_report(dir.file("run"));
  EXPECT_EQ(read.run_dir, dir.file("run"));
  EXPECT_EQ(read.config_yaml, expected.config_yaml);
  EXPECT_EQ(read.classes, expected.classes);
  EXPECT_EQ(read.best_epoch, 2);
  EXPECT_EQ(read.best_confusion, expected.best_confusion);
  ASSERT_EQ(read.history.size(), 3u);
  EXPECT_EQ(read.history[2].epoch, 3);
  EXPECT_DOUBLE_EQ(read.history[2].test_acc, expected.history[2].test_acc);
  EXPECT_EQ(read.model_summary, model_summary(*make_model("cnn", ModelSpec{3, 32, 32, 3}), ModelSpec{3, 32, 32, 3}));
}

TEST(ReportRead, ADirectoryWithoutARunIsRefusedByName) {
  TempDir dir;
  EXPECT_THROW(read_run_report(dir.path()), CheckpointError);
  EXPECT_NE(testing::error_of([&] { read_run_report(dir.path()); }).find(dir.path() + " is not a maas-train run"),
            std::string::npos);
  // A run stopped before its first checkpoint is still a run: its config and no epoch yet.
  write_text_atomically(run_config_path(dir.path()), "train:\n  epochs: 1\n");
  const RunReport fresh = read_run_report(dir.path());
  EXPECT_EQ(fresh.config_yaml, "train:\n  epochs: 1\n");
  EXPECT_TRUE(fresh.history.empty());
  // A corrupt checkpoint names its file.
  write_text_atomically(last_checkpoint_path(dir.path()), "not a checkpoint");
  EXPECT_NE(testing::error_of([&] { read_run_report(dir.path()); }).find(last_checkpoint_path(dir.path())),
            std::string::npos);
}

TEST(ReportWrite, OneRunGoesIntoItsDirectoryAndSeveralNeedOut) {
  TempDir dir;
  write_run(dir.file("a"), sample_run(2));
  write_run(dir.file("b"), sample_run(1));
  EXPECT_EQ(write_report({dir.file("a")}, ""), dir.file("a/report.html"));
  EXPECT_EQ(read_text(dir.file("a/report.html")), render_run_report(read_run_report(dir.file("a"))));
  EXPECT_THROW(write_report({dir.file("a"), dir.file("b")}, ""), UsageError);
  EXPECT_THROW(write_report({}, ""), UsageError);
  EXPECT_EQ(write_report({dir.file("a"), dir.file("b")}, dir.file("both.html")), dir.file("both.html"));
  EXPECT_EQ(count_of(chart(read_text(dir.file("both.html")), "chart-test-accuracy"), "<polyline"), 2);
  EXPECT_THROW(write_report({dir.file("a"), dir.file("nope")}, dir.file("x.html")), CheckpointError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.html")));
}

// The pages in Debian's headless Chromium (driven by playwright-core): the charts and their
// series, the tables and the config are there, and the console shows no error (the page's
// Content-Security-Policy reports any resource it would load as one).
TEST(ReportBrowser, PagesShowChartsAndTablesInChromiumWithoutConsoleErrors) {
  const std::string web = std::string(MAAS_SOURCE_DIR) + "/tests/web";
  if (const std::string missing = testing::missing_browser_tools(); !missing.empty()) GTEST_SKIP() << missing;
  TempDir dir;
  const std::vector<std::string> classes = {"cat", "<script>alert(1)</script>", "bird & \"fish\""};
  RunReport run = sample_run(4, classes);
  run.best_confusion = {5, 1, 0, 2, 7, 1, 0, 0, 9};
  RunReport other = sample_run(2, classes);
  other.run_dir = "runs/other";
  write_text_atomically(dir.file("report.html"), render_run_report(run));
  write_text_atomically(dir.file("comparison.html"), render_comparison({run, other}));
  const nlohmann::json spec = {
      {"pages",
       {{{"file", dir.file("report.html")},
         {"charts", {{"chart-loss", {4, 4}}, {"chart-accuracy", {4, 4}}, {"chart-lr", {4}}}},
         {"classes", classes}},
        {{"file", dir.file("comparison.html")},
         {"charts", {{"chart-test-accuracy", {4, 2}}, {"chart-loss", {4, 4, 2, 2}}, {"chart-lr", {4, 2}}}},
         {"runs", 2}}}}};
  write_text_atomically(dir.file("spec.json"), spec.dump());
  const std::string command = "node " + web + "/report_test.mjs " + dir.file("spec.json");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

TEST(ReportCli, ReportsATinyRealRunAndComparesRuns) {
  TempDir data, dir;
  testing::write_tiny_cifar(data.path(), 20, 100);
  testing::write_bytes(dir.file("cfg.yaml"), "data:\n  root: " + data.path() +
                                                 "\nmodel:\n  name: cnn\ntrain:\n  epochs: 2\n  batch_size: 32\n"
                                                 "  threads: 1\n  eval_batch_size: 100\n");
  const std::string binary = std::string(MAAS_BINARY_DIR) + "/maas-train";
  const std::string log = dir.file("log.txt");
  ASSERT_EQ(run_command(binary + " --config " + dir.file("cfg.yaml") + " --out " + dir.file("run"), log), 0)
      << read_text(log);

  ASSERT_EQ(run_command(binary + " report " + dir.file("run"), log), 0) << read_text(log);
  EXPECT_NE(read_text(log).find("wrote " + dir.file("run/report.html")), std::string::npos) << read_text(log);
  const std::string page = read_text(dir.file("run/report.html"));
  EXPECT_EQ(polylines(chart(page, "chart-accuracy")).size(), 2u);
  EXPECT_EQ(polylines(chart(page, "chart-accuracy"))[0].second, 2);
  EXPECT_NE(page.find("<pre id=\"config\">"), std::string::npos);
  EXPECT_NE(page.find("multiply-accumulates per 3x32x32 image"), std::string::npos);  // the model summary
  EXPECT_NE(page.find("Best test accuracy"), std::string::npos);

  std::filesystem::copy(dir.file("run"), dir.file("copy"), std::filesystem::copy_options::recursive);
  ASSERT_EQ(run_command(binary + " report " + dir.file("run") + " " + dir.file("copy") + " --out " +
                            dir.file("both.html"),
                        log),
            0)
      << read_text(log);
  EXPECT_EQ(polylines(chart(read_text(dir.file("both.html")), "chart-test-accuracy")).size(), 2u);

  // Mistakes: one line naming the problem; usage errors exit 2, a directory that is no run 1.
  EXPECT_EQ(run_command(binary + " report", log), 2);
  EXPECT_NE(read_text(log).find("maas-train report: name at least one run directory"), std::string::npos)
      << read_text(log);
  EXPECT_EQ(run_command(binary + " report " + dir.file("run") + " " + dir.file("copy"), log), 2);
  EXPECT_NE(read_text(log).find("comparing 2 runs needs --out FILE"), std::string::npos) << read_text(log);
  EXPECT_EQ(run_command(binary + " report " + data.path(), log), 1);
  EXPECT_EQ(read_text(log), "maas-train report: error: " + data.path() +
                                " is not a maas-train run directory (it has no config.yaml and no last.pt)\n");
  EXPECT_EQ(run_command(binary + " report --bogus", log), 2);
  EXPECT_EQ(run_command(binary + " report --help", log), 0);
  EXPECT_NE(read_text(log).find("required with several runs"), std::string::npos) << read_text(log);
}

}  // namespace
}  // namespace maas
