// Exception-to-exit-code mapping shared by the mains.
#include "cli.h"

#include <algorithm>
#include <iostream>

#include "config.h"

namespace maas {

std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int argc, char** argv,
                                               const std::string& help_epilogue) {
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << help_epilogue;
    return std::nullopt;
  }
  if (!args.unmatched().empty()) throw UsageError("unexpected argument '" + args.unmatched()[0] + "'");
  return args;
}

int run_cli(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
  } catch (const ConfigError& e) {
    std::cerr << program << ": config error: " << e.what() << "\n";
  } catch (const std::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}

std::vector<std::string> set_overrides(const cxxopts::ParseResult& args, const std::string& option) {
  std::vector<std::string> values;
  if (!args.count(option)) return values;
  auto open_brackets = [](const std::string& s) {
    return std::count(s.begin(), s.end(), '[') - std::count(s.begin(), s.end(), ']');
  };
  for (const auto& piece : args[option].as<std::vector<std::string>>()) {
    if (!values.empty() && open_brackets(values.back()) > 0)
      values.back() += "," + piece;
    else
      values.push_back(piece);
  }
  return values;
}

std::string last_line(const std::string& text, size_t max_chars) {
  const size_t end = text.find_last_not_of("\r\n ");
  if (end == std::string::npos) return "";
  const size_t newline = text.rfind('\n', end);
  const size_t begin = newline == std::string::npos ? 0 : newline + 1;
  return text.substr(begin, std::min(end + 1 - begin, max_chars));
}

}  // namespace maas
