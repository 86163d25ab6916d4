// The edge of every maas binary: exceptions in, one error line and an exit code out.
#pragma once

#include <cxxopts.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

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

}  // namespace maas
