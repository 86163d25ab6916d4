// The admin token from a file or the environment, never needing the command line (where every
// local user can read it in /proc/PID/cmdline).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "serve_options.h"
#include "test_util.h"

namespace maas {
namespace {

using testing::error_of;
using testing::TempDir;

// Sets an environment variable for one test, restoring its absence after.
struct ScopedEnvironment {
  ScopedEnvironment(const char* name, const char* value) : name(name) { ::setenv(name, value, 1); }
  ~ScopedEnvironment() { ::unsetenv(name); }
  const char* name;
};

std::string token_file(const TempDir& dir, const std::string& text, mode_t mode) {
  const std::string path = dir.file("token");
  testing::write_bytes(path, text);
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(AdminToken, IsReadFromAFileOnlyItsOwnerCanRead) {
  TempDir dir;
  const std::string path = token_file(dir, "s3cret\n", 0600);
  EXPECT_EQ(load_serve_options("", {"server.admin_token_file=" + path}).admin_token, "s3cret");
  ::chmod(path.c_str(), 0400);
  EXPECT_EQ(load_serve_options("", {"server.admin_token_file=" + path}).admin_token, "s3cret");
  for (const mode_t open_mode : {0644, 0640, 0604, 0620}) {
    ::chmod(path.c_str(), open_mode);
    const std::string e = error_of([&] { load_serve_options("", {"server.admin_token_file=" + path}); });
    EXPECT_NE(e.find("too open"), std::string::npos) << e;
    EXPECT_NE(e.find("chmod 600"), std::string::npos) << e;
  }
}

TEST(AdminToken, AnEmptyMissingOrSpecialTokenFileIsAClearError) {
  TempDir dir;
  const std::string empty = token_file(dir, "\n", 0600);
  EXPECT_NE(error_of([&] { load_serve_options("", {"server.admin_token_file=" + empty}); }).find("empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_serve_options("", {"server.admin_token_file=" + dir.file("nope")}); }).find("nope"),
            std::string::npos);
  testing::make_fifo(dir.file("fifo"));
  const std::string e = testing::error_within_deadline(
      dir.file("fifo"), [&] { load_serve_options("", {"server.admin_token_file=" + dir.file("fifo")}); });
  EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
}

TEST(AdminToken, IsReadFromTheEnvironmentAndGivenOneWayOnly) {
  const ScopedEnvironment variable("MAAS_ADMIN_TOKEN", "from-env");
  EXPECT_EQ(load_serve_options("", {}).admin_token, "from-env");
  const std::string e = error_of([] { load_serve_options("", {"server.admin_token=other"}); });
  EXPECT_NE(e.find("more than one way"), std::string::npos) << e;
}

}  // namespace
}  // namespace maas
