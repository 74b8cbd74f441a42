#include "node_array.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace cb {

namespace {
constexpr size_t kPageBytes = size_t(4) << 10;
}

NodeArray::~NodeArray() {
    if (data_) munmap(data_, capacity_ * sizeof(Header *));
}

void NodeArray::grow(size_t at_least) {
    // Half again as much: the copy a vector pays for doubling is gone, and
    // pages beyond the size cost nothing until entries reach them.
    size_t bytes = std::max(at_least * sizeof(Header *), capacity_ * sizeof(Header *) * 3 / 2);
    bytes = (bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
    size_t old_bytes = capacity_ * sizeof(Header *);
    void *block = data_ ? mremap(data_, old_bytes, bytes, MREMAP_MAYMOVE)
                        : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<Header **>(block);
    capacity_ = bytes / sizeof(Header *);
}

void NodeArray::resize(size_t n) {
    reserve(n);
    // Entries past the size may hold what an earlier fill left there.
    if (n > size_) std::memset(data_ + size_, 0, (n - size_) * sizeof(Header *));
    size_ = n;
}

}  // namespace cb
