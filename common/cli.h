// The edge of every maas binary: exceptions in, one error line and an exit code out.
#pragma once

#include <cxxopts.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace maas {

// A wrong flag or combination of flags.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Runs `body` and returns its exit code. An exception becomes one line on stderr,
// "PROGRAM: [config ]error: message", and exit code 2 for usage/config errors (cxxopts' too,
// UsageError, ConfigError, std::invalid_argument) or 1 for anything else.
int run_cli(const char* program, const std::function<int()>& body);

// Parses argv. With --help, prints the help (and `help_epilogue`) and returns nullopt: the caller
// exits 0. Throws UsageError for leftover positional arguments, cxxopts' exceptions for unknown options.
std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int argc, char** argv,
                                               const std::string& help_epilogue = "");

// The values of a repeatable "--set key=value" option. cxxopts splits option values at commas;
// pieces inside an open "[" are joined back, so "--set model.widths=[64, 128]" stays one value
// (and "--set a=1,b=2" is still two).
std::vector<std::string> set_overrides(const cxxopts::ParseResult& args, const std::string& option = "set");

// The last non-empty line of `text`, at most `max_chars` of it; "" when there is none. What to show
// of a long message whose cause comes last (a TorchScript traceback, a child process's stderr).
std::string last_line(const std::string& text, size_t max_chars);

}  // namespace maas
