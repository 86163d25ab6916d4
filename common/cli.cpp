// Exception-to-exit-code mapping shared by the mains.
#include "cli.h"

#include <cxxopts.hpp>

#include <iostream>

#include "config.h"

namespace maas {

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
