// Anonymous mappings that grow without a copy: the memory of the heap's
// arrays (node_array.hpp, refs_array.hpp).
#pragma once

#include <cstddef>

namespace cb {

// Grows the mapping at `block` of `bytes` (a new one when block is null)
// to at least `at_least` bytes, and to half again its size at least, so an
// array that grows a little at a time is not remapped each time; rounded
// to pages. The kernel moves the pages (mremap), the contents kept; new
// pages are zero and are faulted in only when touched. Returns the block
// and sets `bytes` to its size. Throws std::bad_alloc when memory is
// short, the old mapping unchanged.
void *grow_mapping(void *block, size_t &bytes, size_t at_least);
void release_mapping(void *block, size_t bytes);

}  // namespace cb
