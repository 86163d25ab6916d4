// File helpers that never leave a half-written file behind.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace maas {

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

// Whole file as bytes; throws std::runtime_error naming the file when it cannot be read.
std::string read_text(const std::string& path);

}  // namespace maas
