#include "refs_array.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace cb {

namespace {
constexpr size_t kPageBytes = size_t(4) << 10;
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

void RefsArray::cover(size_t n) {
    used_ = true;
    if (n <= size_) return;
    // Half again as much as asked: a set that grows a little from one
    // collection to the next does not remap the block each time.
    size_t bytes = round_up(std::max(n * sizeof(uint32_t), bytes_ + bytes_ / 2), kPageBytes);
    void *block = data_ ? mremap(data_, bytes_, bytes, MREMAP_MAYMOVE)
                        : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<uint32_t *>(block);
    bytes_ = bytes;
    size_ = bytes / sizeof(uint32_t);
}

void RefsArray::collection_ended(bool full) {
    if (!full) return;
    if (used_) unused_intervals_ = 0;
    else if (++unused_intervals_ >= kKeepIntervals) release();
    used_ = false;
}

void RefsArray::release() {
    if (!data_) return;
    munmap(data_, bytes_);
    data_ = nullptr;
    size_ = bytes_ = 0;
    unused_intervals_ = 0;
}

}  // namespace cb
