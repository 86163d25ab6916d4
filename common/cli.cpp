// Exception-to-exit-code mapping shared by the mains.
#include "cli.h"

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

}  // namespace maas
