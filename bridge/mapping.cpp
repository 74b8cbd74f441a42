#include "mapping.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace cb {

namespace {
constexpr size_t kPageBytes = size_t(4) << 10;
}

void *grow_mapping(void *block, size_t &bytes, size_t at_least) {
    size_t grown = std::max(at_least, bytes + bytes / 2);
    grown = (grown + kPageBytes - 1) / kPageBytes * kPageBytes;
    void *moved = block ? mremap(block, bytes, grown, MREMAP_MAYMOVE)
                        : mmap(nullptr, grown, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (moved == MAP_FAILED) throw std::bad_alloc();
    bytes = grown;
    return moved;
}

void release_mapping(void *block, size_t bytes) {
    if (block) munmap(block, bytes);
}

}  // namespace cb
