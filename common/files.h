// File helpers that never leave a half-written file behind.
#pragma once

#include <functional>
#include <string>

namespace maas {

// Calls write(tmp_path) to produce the content in a temporary file next to `path`, flushes it to
// disk and renames it over `path`, so readers see the old file or the new one, never a mix.
// Throws std::runtime_error (naming `path`) when writing or renaming fails; the temp file is removed.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

// write_atomically for in-memory text.
void write_text_atomically(const std::string& path, const std::string& text);

// Whole file as bytes; throws std::runtime_error naming the file when it cannot be read.
std::string read_text(const std::string& path);

}  // namespace maas
