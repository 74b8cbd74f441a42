#include "refs_array.hpp"

#include "mapping.hpp"

namespace cb {

void RefsArray::cover(size_t n) {
    used_ = true;
    reserve(n);
}

void RefsArray::reserve(size_t n) {
    if (n <= size_) return;
    data_ = static_cast<uint32_t *>(grow_mapping(data_, bytes_, n * sizeof(uint32_t)));
    size_ = bytes_ / sizeof(uint32_t);
}

void RefsArray::collection_ended(bool full) {
    if (!full) return;
    if (used_) unused_intervals_ = 0;
    else if (++unused_intervals_ >= kKeepIntervals) release();
    used_ = false;
}

void RefsArray::release() {
    release_mapping(data_, bytes_);
    data_ = nullptr;
    size_ = bytes_ = 0;
    unused_intervals_ = 0;
}

}  // namespace cb
