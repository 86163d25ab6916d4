// Docs that cannot rot: every maas command line, config file and config key that README.md and
// docs/*.md show is checked against the built binaries' --help, the repository and the config parser.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "config.h"
#include "files.h"
#include "serve_options.h"

namespace maas {
namespace {

namespace fs = std::filesystem;

const std::set<std::string> kTools = {"maas-train", "maas-export", "maas-serve", "maas-bench"};

// A piece of code the docs show: a command of a fenced shell block (backslash continuations
// joined) or an inline `code span`, with where it starts.
struct DocCode {
  std::string file;  // relative to the source tree, e.g. "docs/training.md"
  int line = 0;
  std::string text;
  std::string where() const { return file + ":" + std::to_string(line); }
};

std::vector<std::string> doc_files() {
  std::vector<std::string> files = {"README.md"};
  for (const auto& entry : fs::directory_iterator(fs::path(MAAS_SOURCE_DIR) / "docs"))
    if (entry.path().extension() == ".md") files.push_back("docs/" + entry.path().filename().string());
  std::sort(files.begin() + 1, files.end());
  return files;
}

std::string doc_text(const std::string& file) { return read_text(std::string(MAAS_SOURCE_DIR) + "/" + file); }

bool is_shell_fence(const std::string& language) {
  return language.empty() || language == "sh" || language == "bash" || language == "shell" || language == "console";
}

// Inline code spans of one line of prose (markdown tables escape '|' as "\|"); a span may continue
// on the next lines of its paragraph, so an open span is carried in `open`.
void spans_of_line(const std::string& line, int number, const std::string& file, DocCode& open,
                   std::vector<DocCode>& out) {
  for (char c : line) {
    if (c != '`') {
      if (open.line > 0) open.text += c;
      continue;
    }
    if (open.line == 0) {
      open = {file, number, ""};
    } else {
      out.push_back({open.file, open.line, std::regex_replace(open.text, std::regex(R"(\\\|)"), "|")});
      open = {};
    }
  }
  if (open.line > 0) open.text += ' ';
}

// Every shell command of a fenced block and every inline code span of one markdown file.
std::vector<DocCode> code_of(const std::string& file, const std::string& text) {
  std::vector<DocCode> out;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  bool in_fence = false, shell = false;
  DocCode command, span;  // a command being continued; an inline span still open
  while (std::getline(lines, line)) {
    ++number;
    const auto first = line.find_first_not_of(' ');
    if (first != std::string::npos && line.compare(first, 3, "```") == 0) {
      in_fence = !in_fence;
      shell = in_fence && is_shell_fence(line.substr(first + 3));
      span = {};
      continue;
    }
    if (in_fence) {
      if (!shell) continue;
      if (command.line == 0) command = {file, number, ""};
      const bool continued = !line.empty() && line.back() == '\\';
      command.text += continued ? line.substr(0, line.size() - 1) + " " : line;
      if (!continued) out.push_back(command), command = {};
      continue;
    }
    if (line.find_first_not_of(' ') == std::string::npos) span = {};  // a paragraph ends: no span spans it
    spans_of_line(line, number, file, span, out);
  }
  return out;
}

// Shell words: quotes removed, backslash escapes kept literal.
std::vector<std::string> shell_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool any = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote) quote = 0;
      else word += c;
    } else if (c == '"' || c == '\'') {
      quote = c, any = true;
    } else if (c == ' ' || c == '\t') {
      if (any || !word.empty()) words.push_back(word);
      word.clear(), any = false;
    } else {
      word += c;
    }
  }
  if (any || !word.empty()) words.push_back(word);
  return words;
}

bool ends_command(const std::string& word) {
  return word == "&&" || word == "||" || word == "|" || word == ";" || word == "&" || word == ")" ||
         (!word.empty() && word[0] == '#');
}

// The tool a word runs ("build/bin/maas-train" -> "maas-train"), or "".
std::string tool_of(const std::string& word) {
  const std::string name = word.substr(word.rfind('/') == std::string::npos ? 0 : word.rfind('/') + 1);
  return kTools.count(name) ? name : "";
}

// "[--checkpoint" -> "--checkpoint"; "--out=DIR" -> "--out"; "-c," -> "-c"; not an option -> "".
std::string option_of(std::string word) {
  while (!word.empty() && (word.front() == '[' || word.front() == '(')) word.erase(0, 1);
  if (word.size() < 2 || word[0] != '-' || !std::isalpha(static_cast<unsigned char>(word[word.size() > 2 && word[1] == '-' ? 2 : 1])))
    return "";
  word = word.substr(0, word.find_first_of("=[]),;:|"));
  return word.size() == 2 || word.compare(0, 2, "--") == 0 ? word : "";
}

// What `tool [subcommand] --help` prints, once per pair.
const std::string& help_of(const std::string& tool, const std::string& subcommand) {
  static std::map<std::string, std::string> cache;
  const std::string command = std::string(MAAS_BINARY_DIR) + "/" + tool + (subcommand.empty() ? "" : " " + subcommand) +
                              " --help 2>&1";
  auto [it, inserted] = cache.emplace(command, "");
  if (!inserted) return it->second;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) it->second.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) throw std::runtime_error(command + " exited with status " + std::to_string(status) + ":\n" + it->second);
  return it->second;
}

// The options a help text lists ("-c, --config arg" -> "-c", "--config").
std::set<std::string> options_in(const std::string& help) {
  std::set<std::string> options;
  const std::regex option(R"((^|[\s\[(,])(--?[A-Za-z][A-Za-z0-9-]*))");
  for (std::sregex_iterator it(help.begin(), help.end(), option), end; it != end; ++it) options.insert((*it)[2]);
  return options;
}

std::set<std::string> run_keys() {
  const auto keys = run_config_keys();
  return {keys.begin(), keys.end()};
}

std::set<std::string> serve_keys() {
  ServeOptions options;
  std::set<std::string> keys;
  for (const auto& field : fields_of(options)) keys.insert(field.key);
  return keys;
}

// What is wrong with "--set key=value" on `tool`'s command line ("" for prose: either parser).
std::string set_problem(const std::string& tool, const std::string& assignment) {
  const std::string key = assignment.substr(0, assignment.find('='));
  if (assignment == "key=value") return "";  // the placeholder of a synopsis
  if (assignment.find('=') == std::string::npos) return "--set " + assignment + " is not key=value";
  const bool train_key = run_keys().count(key) > 0, serve_key = serve_keys().count(key) > 0;
  if (tool == "maas-train" ? train_key : tool == "maas-serve" ? serve_key : train_key || serve_key) return "";
  return "--set " + key + ": " + (tool.empty() ? "neither maas-train nor maas-serve" : tool) + " knows no config key '" +
         key + "'";
}

// Every problem of one shell command or code span: unknown options, subcommands and --set keys.
std::vector<std::string> command_problems(const DocCode& code) {
  std::vector<std::string> problems;
  const auto words = shell_words(code.text);
  std::string tool, subcommand;
  bool other_program = false;  // the command runs something else (update-alternatives --set ...)
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (ends_command(word)) { tool.clear(), other_program = false; continue; }
    if (tool.empty() && !other_program && tool_of(word).empty() && !word.empty() && word[0] != '-' && word.find('=') == std::string::npos)
      other_program = true;  // (environment assignments such as CIFAR10_TARBALL=... come before a program)
    if (!tool_of(word).empty()) {
      other_program = false;
      tool = tool_of(word), subcommand.clear();
      if (i + 1 < words.size() && std::regex_match(words[i + 1], std::regex("[a-z][a-z-]*"))) {
        subcommand = words[++i];
        if (help_of(tool, "").find(tool + " " + subcommand) == std::string::npos)
          problems.push_back(code.where() + ": " + tool + " has no subcommand '" + subcommand + "' (see " + tool + " --help)");
      }
      continue;
    }
    if (word == "--set" && i + 1 < words.size() && !other_program) {
      if (auto problem = set_problem(tool, words[i + 1]); !problem.empty()) problems.push_back(code.where() + ": " + problem);
      ++i;
      continue;
    }
    const std::string option = option_of(word);
    if (tool.empty() || option.empty()) continue;
    if (!options_in(help_of(tool, subcommand)).count(option))
      problems.push_back(code.where() + ": " + tool + (subcommand.empty() ? "" : " " + subcommand) + " has no option " +
                         option + " (its --help does not list it)");
  }
  return problems;
}

// A code span that is only a config key ("train.epochs", "model.widths=[64, 128]", "eval.*",
// "train.batch_size: 32 in the run"): what is wrong with it, or "". File names ("model.pt") are not keys.
std::string key_span_problem(const std::string& span) {
  static const std::regex key_span(R"(([a-z]+)\.([a-z0-9_]+|\*)(?:[=:].*)?)");
  static const std::set<std::string> file_extensions = {"pt", "h", "cpp", "json", "yaml", "csv", "html", "png", "py",
                                                        "sh", "md", "txt", "conf", "log"};
  std::smatch m;
  if (!std::regex_match(span, m, key_span) || file_extensions.count(m[2])) return "";
  std::set<std::string> keys = run_keys(), sections;
  for (const auto& key : serve_keys()) keys.insert(key);
  for (const auto& key : keys) sections.insert(key.substr(0, key.find('.')));
  if (!sections.count(m[1])) return "";  // not a config section: some other dotted name
  if (m[2] == "*" || keys.count(m[1].str() + "." + m[2].str())) return "";
  return "config key '" + m[1].str() + "." + m[2].str() + "' is not known to maas-train's or maas-serve's config parser";
}

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
std::string anchor_of(const std::string& heading) {
  std::string anchor;
  for (unsigned char c : heading) {
    if (std::isalnum(c) || c == '-' || c == '_') anchor += static_cast<char>(std::tolower(c));
    else if (c == ' ') anchor += '-';
  }
  return anchor;
}

// The anchors of a markdown file's headings (outside code blocks).
std::set<std::string> anchors_in(const std::string& text) {
  std::set<std::string> anchors;
  std::istringstream lines(text);
  bool in_fence = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("```", 0) == 0) in_fence = !in_fence;
    const auto hashes = line.find_first_not_of('#');
    if (!in_fence && hashes > 0 && hashes != std::string::npos && line[hashes] == ' ')
      anchors.insert(anchor_of(line.substr(hashes + 1)));
  }
  return anchors;
}

// What is wrong with a relative link of `file` ("other.md#anchor", "#anchor", "cat-why.png"), or "".
std::string link_problem(const std::string& file, const std::string& target) {
  if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) return "";
  const std::string path = target.substr(0, target.find('#'));
  const fs::path linked = path.empty() ? fs::path(file) : fs::path(file).parent_path() / path;
  if (!fs::exists(fs::path(MAAS_SOURCE_DIR) / linked)) return "link target " + target + " does not exist";
  if (target.find('#') == std::string::npos) return "";
  const std::string anchor = target.substr(target.find('#') + 1);
  if (!anchors_in(doc_text(linked.lexically_normal().string())).count(anchor))
    return "link target " + target + ": no heading of " + linked.lexically_normal().string() + " has that anchor";
  return "";
}

// Relative links (and their #anchors) and configs/ files the text names must exist.
std::vector<std::string> missing_files(const std::string& file, const std::string& text) {
  std::vector<std::string> problems;
  const fs::path source(MAAS_SOURCE_DIR);
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string where = file + ":" + std::to_string(number) + ": ";
    static const std::regex config(R"(configs/[A-Za-z0-9_.-]+\.(yaml|conf))"), link(R"(\]\(([^)\s]+)\))");
    for (std::sregex_iterator it(line.begin(), line.end(), config), end; it != end; ++it)
      if (!fs::exists(source / it->str())) problems.push_back(where + it->str() + " does not exist");
    for (std::sregex_iterator it(line.begin(), line.end(), link), end; it != end; ++it)
      if (auto problem = link_problem(file, (*it)[1]); !problem.empty()) problems.push_back(where + problem);
  }
  return problems;
}

std::string joined(const std::vector<std::string>& problems) {
  std::string text;
  for (const auto& p : problems) text += p + "\n";
  return text;
}

TEST(DocsTest, EveryCommandLineOptionIsInTheToolsHelp) {
  std::vector<std::string> problems;
  size_t commands = 0;
  for (const auto& file : doc_files())
    for (const auto& code : code_of(file, doc_text(file))) {
      for (const auto& word : shell_words(code.text)) commands += !tool_of(word).empty();
      for (auto& problem : command_problems(code)) problems.push_back(problem);
    }
  EXPECT_GT(commands, 20u) << "the docs show maas commands; did the extraction break?";
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

TEST(DocsTest, EveryConfigKeyInCodeIsKnown) {
  std::vector<std::string> problems;
  size_t keys = 0;
  for (const auto& file : doc_files())
    for (const auto& code : code_of(file, doc_text(file))) {
      if (std::regex_match(code.text, std::regex(R"([a-z]+\.[a-z0-9_*]+([=:].*)?)"))) ++keys;
      if (auto problem = key_span_problem(code.text); !problem.empty()) problems.push_back(code.where() + ": " + problem);
    }
  EXPECT_GT(keys, 20u) << "the docs name config keys; did the extraction break?";
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

TEST(DocsTest, EveryConfigFileAndLinkExists) {
  std::vector<std::string> problems;
  for (const auto& file : doc_files())
    for (auto& problem : missing_files(file, doc_text(file))) problems.push_back(problem);
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

// The checks themselves, on made-up docs: what they must catch, and where they say it is.
TEST(DocsTest, ChecksCatchWrongFlagsKeysAndSubcommands) {
  const std::string doc =
      "Train:\n\n```sh\nbuild/bin/maas-train --config configs/cifar10_cnn.yaml \\\n  --epochs 3 --set train.epochz=1\n```\n\n"
      "Then `maas-bench servee --url U` and `maas-export --run R --out F --tta flip`, `train.lrr`, `eval.tta`, `model.pt`.\n";
  std::vector<std::string> problems;
  for (const auto& code : code_of("docs/x.md", doc)) {
    for (auto& problem : command_problems(code)) problems.push_back(problem);
    if (auto problem = key_span_problem(code.text); !problem.empty()) problems.push_back(code.where() + ": " + problem);
  }
  const std::string all = joined(problems);
  EXPECT_EQ(problems.size(), 4u) << all;
  EXPECT_NE(all.find("docs/x.md:4: maas-train has no option --epochs"), std::string::npos) << all;
  EXPECT_NE(all.find("docs/x.md:4: --set train.epochz: maas-train knows no config key 'train.epochz'"), std::string::npos) << all;
  EXPECT_NE(all.find("docs/x.md:8: maas-bench has no subcommand 'servee'"), std::string::npos) << all;
  EXPECT_NE(all.find("docs/x.md:8: config key 'train.lrr'"), std::string::npos) << all;
}

}  // namespace
}  // namespace maas
