// Memory for the objects of cb_alloc, in size classes, as CPython's
// pymalloc: a header and its object share one block, and blocks of one
// size fill 64 KiB slabs. Against a malloc per object this saves malloc's
// own chunk header and rounding (8 to 16 bytes an object, about what our
// header costs), and a free is a push on a list.
//
// Layout: a slab starts with its bookkeeping; its first block starts 56
// bytes in, and blocks are multiples of 16 bytes, so every header sits 8
// past a multiple of 16 and every object 16 past it (16-byte aligned, as
// cb_alloc promises). A block's slab is found by rounding its address
// down to 64 KiB. Objects larger than the largest class get a block of
// their own from malloc, marked in the header (kLargeBlock).
//
// Slabs are carved from regions taken from malloc (256 KiB, doubling to
// 4 MiB). A slab left empty serves any class next. One still empty after
// a whole interval between two full collections gives its pages back to
// the system (madvise, trim), so a heap that shrinks returns its memory
// without moving anything, while one that frees and refills between
// collections (the common case) does not pay page faults for it. The
// regions themselves are released with the heap.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "header.hpp"

namespace cb {

class NodeAllocator {
public:
    NodeAllocator() = default;
    ~NodeAllocator();
    NodeAllocator(const NodeAllocator &) = delete;
    NodeAllocator &operator=(const NodeAllocator &) = delete;

    // A zeroed block for a header and `size` bytes of object; returns the
    // header (its meta holds kLargeBlock or nothing), or nullptr when
    // memory runs out.
    Header *allocate(size_t size);
    // The block of h goes back; h's header stays readable until the block
    // is handed out again (a freed header is poisoned, not unmapped).
    void release(Header *h);
    // Bytes the object of h may use: at least what it was allocated with.
    size_t capacity(const Header *h) const;
    // Called at the end of each full collection: slabs empty since before
    // the previous call give their pages back.
    void trim();
    // Keep the regions (and so every object in them) when the heap goes:
    // objects the program still holds stay valid memory, leaked.
    void leak_regions() { leak_ = true; }

    static constexpr size_t kSlabSize = size_t(64) << 10;
    static constexpr size_t kGranule = 16;
    static constexpr size_t kLargestBlock = 2048;   // larger objects: malloc

private:
    struct Slab;
    static constexpr size_t kClasses = kLargestBlock / kGranule;
    static constexpr size_t kFirstBlock = 56;     // 8 past a multiple of 16

    Slab *new_slab(uint32_t size_class);
    char *carve_slab();
    void list(Slab *s);
    void unlist(Slab *s);

    std::array<Slab *, kClasses> with_room_{};   // per class: slabs with a free block
    // Slabs of no class, in the order they emptied (so by epoch); those
    // below `trimmed_` have given their pages back.
    std::vector<Slab *> empty_;
    size_t trimmed_ = 0;
    uint32_t epoch_ = 0;   // trims so far
    std::vector<void *> regions_;
    char *carve_next_ = nullptr;   // the current region's next aligned slab
    char *carve_end_ = nullptr;
    size_t next_region_size_ = size_t(256) << 10;
    bool leak_ = false;
};

}  // namespace cb
