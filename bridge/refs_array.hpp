// A side array of trial deletion's gc_refs, by position in one of the
// heap's arrays (cb_heap::refs).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cb {

// One contiguous block, so an access is an index from one pointer (the
// incremental count and marking make one per node and per edge). A
// collection sizes it once, when it begins, to the arrays of its set:
// nodes made later are not in the set and need no entry.
//
// The block is its own mapping, zero when made, grown in place or moved
// by the kernel (mremap, no copy). It is kept from one collection to the
// next, as the node allocator keeps empty slabs: a first touch of a page
// costs a page fault (about 10 us on the machine of docs/performance.md:
// 40 ms for the 16 MiB of a 4M-node set), which a collection in every
// interval would pay again and again. It is released when no collection
// used it for two whole intervals between full collections, so a program
// that mixes an occasional stop-the-world collection into incremental ones
// keeps it.
class RefsArray {
public:
    RefsArray() = default;
    RefsArray(const RefsArray &) = delete;
    RefsArray &operator=(const RefsArray &) = delete;
    ~RefsArray() { release(); }

    uint32_t &operator[](size_t i) { return data_[i]; }
    size_t size() const { return size_; }
    // At least n entries, the old ones kept. Throws std::bad_alloc when
    // memory is short.
    void cover(size_t n);
    // The same growth, for a collection that may need the entries later
    // (not a use: the block may still be released). Pages are not touched.
    void reserve(size_t n);
    // When a collection ends: after a full one, the block goes if no
    // collection covered it in the two intervals that end here.
    void collection_ended(bool full);
    void release();

private:
    uint32_t *data_ = nullptr;
    size_t size_ = 0;
    size_t bytes_ = 0;
    bool used_ = false;
    int unused_intervals_ = 0;
    static constexpr int kKeepIntervals = 2;
};

}  // namespace cb
