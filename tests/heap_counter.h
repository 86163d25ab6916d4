// Test helper: the process's heap bytes in use and their high-water mark, counted by malloc
// wrappers linked into the test binary (every malloc, operator new and c10 tensor allocation).
#pragma once

#include <cstdint>

namespace maas::testing {

// Bytes currently allocated through malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign
// (usable sizes), in all threads.
int64_t heap_bytes_in_use();
// The highest heap_bytes_in_use() since the last reset_heap_peak() (or the start).
int64_t heap_peak_bytes();
// Starts a new high-water mark at the current use.
void reset_heap_peak();

}  // namespace maas::testing
