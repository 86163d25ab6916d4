// File helpers: reads that never block on a special file, writes that never leave a half-written file.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace maas {

// A path that cannot be read as a regular file: missing, unreadable, or a FIFO, device,
// directory or socket. The message names the path and the problem.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "a FIFO", "a directory", ...: what the file at `path` is when it is not a regular file; ""
// when it is one or does not exist.
std::string special_file_kind(const std::string& path);

// Throws FileError "PATH: not a regular file (a FIFO)" when `path` exists and is not a regular
// file (symlinks followed). For paths handed to code that opens them itself, and for outputs that
// will be replaced (an --out that is a directory or a FIFO). A missing path passes.
void refuse_special_file(const std::string& path);

// An open regular file, for reading. Never blocks on a FIFO or device: the path is stat()ed
// first, opened with O_NONBLOCK, and the descriptor fstat()ed again (a FIFO swapped in between
// is caught). Throws FileError naming the path: missing, no permission, or not a regular file.
// Thread-safety: one object per thread.
class RegularFile {
 public:
  // `follow_symlinks` false opens with O_NOFOLLOW (for already resolved paths).
  explicit RegularFile(const std::string& path, bool follow_symlinks = true);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // at open time
  // At most `max_bytes` bytes from the current position (fewer at the end of the file).
  std::string read(uint64_t max_bytes);

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Whole regular file as bytes, at most `max_bytes` of them (more are not read); throws
// FileError naming the file when it cannot be read or is not a regular file.
std::string read_regular_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

// Calls write(tmp_path) to produce the content in a temporary file next to `path`, flushes it to
// disk and renames it over `path`, so readers see the old file or the new one, never a mix.
// Throws std::runtime_error (naming `path`) when writing or renaming fails; the temp file is removed.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

// Writes `text` (any bytes) to `path` the same way, through write(2), so a failure carries the
// system's reason: throws std::runtime_error "cannot write 'PATH': No space left on device" (or
// whatever errno says); then `path` is untouched and no temp file is left. After it returns, the
// rename is durable (file and directory synced).
void write_text_atomically(const std::string& path, const std::string& text);

// Removes "NAME.tmp.PID" files in `dir` left by processes that no longer run (a crash or kill -9
// between writing and renaming); returns the removed paths. Temp files of live processes stay.
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

// Whole file as bytes; throws FileError (a std::runtime_error) naming the file when it cannot be
// read or is not a regular file.
std::string read_text(const std::string& path);

// Writes several files all or none: stage() writes each to a temporary file next to its path
// (synced); commit() renames them all into place. Destroyed before commit(), it removes the
// temporary files and the directories make_directory() created, so a command that fails leaves
// its outputs absent or unchanged. Thread-safety: one object per thread.
class StagedWrites {
 public:
  StagedWrites() = default;
  ~StagedWrites();
  StagedWrites(const StagedWrites&) = delete;
  StagedWrites& operator=(const StagedWrites&) = delete;

  // Creates `dir` (and missing parents) unless it exists; throws FileError when it exists and is
  // not a directory, or cannot be created.
  void make_directory(const std::string& dir);
  // Throws std::runtime_error naming `path` (as write_text_atomically does) when writing fails.
  void stage(const std::string& path, const std::string& bytes);
  void commit();

 private:
  std::vector<std::pair<std::string, std::string>> staged_;  // temp path, final path
  std::vector<std::string> created_dirs_;                     // innermost first
  bool committed_ = false;
};

}  // namespace maas
