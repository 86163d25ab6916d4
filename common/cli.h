// The edge of every maas binary: exceptions in, one error line and an exit code out.
#pragma once

#include <functional>
#include <stdexcept>

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

}  // namespace maas
