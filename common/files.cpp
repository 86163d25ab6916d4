// Non-blocking regular-file reads; atomic writes: temp file + fsync + rename + directory fsync.
#include "files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace maas {
namespace {

const char kTempInfix[] = ".tmp.";

std::string temp_path(const std::string& path) { return path + kTempInfix + std::to_string(::getpid()); }

// Makes a rename in `path`'s directory survive a power loss. Best effort: some file systems
// refuse fsync on directories, and the data itself is already synced.
void sync_parent_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a file";
}

FileError not_regular(const std::string& path, mode_t mode) {
  return FileError(path + ": not a regular file (" + kind_of(mode) + ")");
}

// Writes `text` to a new temporary file next to `path` and syncs it; returns the temp path.
// Throws "cannot write 'PATH': REASON" with no temp file left.
std::string write_synced_temp(const std::string& path, const std::string& text) {
  const std::string tmp = temp_path(path);
  auto fail = [&](int error, int fd) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write '" + path + "': " + std::strerror(error));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(errno, -1);
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(n < 0 ? errno : ENOSPC, fd);  // write(2) returns 0 only when nothing fits
    done += static_cast<size_t>(n);
  }
  // Delayed allocation can report a full disk only here, so both results count.
  if (::fsync(fd) != 0) fail(errno, fd);
  if (::close(fd) != 0) fail(errno, -1);
  return tmp;
}

}  // namespace

std::string special_file_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return "";
  return kind_of(st.st_mode);
}

void refuse_special_file(const std::string& path) {
  const std::string kind = special_file_kind(path);
  if (!kind.empty()) throw FileError(path + ": not a regular file (" + kind + ")");
}

RegularFile::RegularFile(const std::string& path, bool follow_symlinks) : path_(path) {
  // stat() before open(): open() itself blocks on a FIFO until a writer comes.
  struct stat st {};
  const int found = follow_symlinks ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
  if (found != 0) throw FileError(path + ": cannot open (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) throw not_regular(path, st.st_mode);
  // O_NONBLOCK: should a FIFO replace the file after the stat, open() still returns at once.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow_symlinks ? 0 : O_NOFOLLOW));
  if (fd_ < 0) throw FileError(path + ": cannot open (" + std::strerror(errno) + ")");
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    const mode_t mode = st.st_mode;
    ::close(fd_);
    throw not_regular(path, mode);
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
}

RegularFile::~RegularFile() { ::close(fd_); }

std::string RegularFile::read(uint64_t max_bytes) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(std::min(size_, max_bytes)));  // no doubling copies of a large file
  char chunk[64 * 1024];
  while (bytes.size() < max_bytes) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, max_bytes - bytes.size()));
    const ssize_t n = ::read(fd_, chunk, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FileError(path_ + ": cannot read (" + std::strerror(errno) + ")");
    if (n == 0) break;
    bytes.append(chunk, static_cast<size_t>(n));
  }
  return bytes;
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  RegularFile file(path);
  return file.read(max_bytes);
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string tmp = temp_path(path);
  try {
    write(tmp);
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("the temporary file vanished");
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) throw std::runtime_error("fsync failed");
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("rename failed");
  } catch (const std::exception& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::runtime_error("cannot write '" + path + "': " + e.what());
  }
  sync_parent_directory(path);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = write_synced_temp(path, text);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write '" + path + "': " + std::strerror(error));
  }
  sync_parent_directory(path);
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    const size_t infix = name.rfind(kTempInfix);
    if (infix == std::string::npos || infix == 0) continue;
    const std::string pid_text = name.substr(infix + sizeof kTempInfix - 1);
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // kill(pid, 0) fails with ESRCH only when no such process exists: then nobody will rename it.
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (std::filesystem::remove(entry.path(), error)) removed.push_back(entry.path().string());
  }
  return removed;
}

std::string read_text(const std::string& path) { return read_regular_file(path); }

StagedWrites::~StagedWrites() {
  if (committed_) return;
  for (const auto& [tmp, path] : staged_) ::unlink(tmp.c_str());
  std::error_code ignored;
  for (const auto& dir : created_dirs_) std::filesystem::remove(dir, ignored);  // only if empty
}

void StagedWrites::make_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> missing;
  std::error_code error;
  for (fs::path p = fs::absolute(dir); !p.empty() && !fs::exists(p, error); p = p.parent_path()) {
    missing.push_back(p.string());
    if (p == p.parent_path()) break;
  }
  fs::create_directories(dir, error);
  if (error) throw FileError(dir + ": cannot create the directory (" + error.message() + ")");
  if (!fs::is_directory(dir, error)) throw FileError(dir + ": exists and is not a directory");
  created_dirs_.insert(created_dirs_.end(), missing.begin(), missing.end());  // innermost first
}

void StagedWrites::stage(const std::string& path, const std::string& bytes) {
  staged_.emplace_back(write_synced_temp(path, bytes), path);
}

void StagedWrites::commit() {
  for (const auto& [tmp, path] : staged_) {
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    sync_parent_directory(path);
  }
  committed_ = true;
}

}  // namespace maas
