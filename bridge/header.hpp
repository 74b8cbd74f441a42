// The per-node header: 8 bytes in front of every object from cb_alloc, or
// in a side record for objects tracked with cb_track_external. What a node
// needs only now and then lives beside the heap instead: its count during
// a collection (cb_heap::refs, by position) and its references from host
// objects (cb_heap::host_refs, for the few nodes that have any).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cb {

// Where a node lives. Generations 0..2 and the permanent one are dense
// arrays in Heap; GARBAGE means the node sits in the running collection's
// garbage list; UNTRACKED means it takes no part in collections.
enum Place : uint32_t {
    kGen0 = 0,
    kGen1 = 1,
    kGen2 = 2,
    kPermanent = 3,
    kGarbage = 4,
    kUntracked = 5,
    kFreed = 7,   // poison written by cb_free, to catch visits of freed nodes
};

struct Header {
    // Position in the array of `place` (a generation, or the garbage list).
    uint32_t index;
    // type id (17 bits) | place (3 bits) | flags.
    uint32_t meta;

    static constexpr uint32_t kTypeBits = 17;
    static constexpr uint32_t kTypeMask = (1u << kTypeBits) - 1;
    static constexpr uint32_t kPlaceShift = kTypeBits;
    static constexpr uint32_t kPlaceMask = 7u << kPlaceShift;

    // Flags.
    static constexpr uint32_t kHostHeld = 1u << 20;      // has an entry in cb_heap::host_refs
    static constexpr uint32_t kLargeBlock = 1u << 21;    // its block came from malloc, not a pool
    static constexpr uint32_t kPassed = 1u << 22;        // behind the linear mark's scan (marking.cpp)
    static constexpr uint32_t kFinalized = 1u << 23;     // finalizer has run
    static constexpr uint32_t kMarked = 1u << 24;        // reachable (during a collection)
    static constexpr uint32_t kHandleManaged = 1u << 25; // kind, copied from the type
    static constexpr uint32_t kHasWeakrefs = 1u << 26;
    static constexpr uint32_t kExternal = 1u << 27;      // header lives in a side record
    static constexpr uint32_t kForcedRoot = 1u << 28;    // inconsistent count or host acquire during teardown
    static constexpr uint32_t kHeld = 1u << 29;          // held by the uncollectable list
    static constexpr uint32_t kInCollectedSet = 1u << 30;
    // Handle-managed garbage still held by dead host objects: deallocated
    // when the host's sweep releases the last of them.
    static constexpr uint32_t kCondemned = 1u << 31;

    uint32_t type_id() const { return meta & kTypeMask; }
    Place place() const { return Place((meta & kPlaceMask) >> kPlaceShift); }
    void set_place(Place p) { meta = (meta & ~kPlaceMask) | (uint32_t(p) << kPlaceShift); }
    bool has(uint32_t flag) const { return (meta & flag) != 0; }
    void set(uint32_t flag) { meta |= flag; }
    void clear(uint32_t flag) { meta &= ~flag; }
    bool handle_managed() const { return has(kHandleManaged); }
    bool tracked() const { return place() <= kGarbage; }
};
static_assert(sizeof(Header) == 8, "the header is part of the per-object overhead budget");

// Objects from cb_alloc: the header sits right before the object, at an
// address 8 past a multiple of 16, so that the object is 16-byte aligned
// (node_allocator.hpp lays blocks out that way).
constexpr size_t kHeaderSize = sizeof(Header);

// Objects tracked by cb_track_external: the header and a back pointer.
struct ExternalRecord {
    Header header;
    void *object;
};

inline void *object_of(Header *h) {
    if (h->has(Header::kExternal)) return reinterpret_cast<ExternalRecord *>(h)->object;
    return reinterpret_cast<char *>(h) + kHeaderSize;
}
inline Header *intrusive_header_of(const void *obj) {
    return reinterpret_cast<Header *>(const_cast<char *>(static_cast<const char *>(obj)) - kHeaderSize);
}

// gc_refs saturates here: a node with that many references from outside
// the set is a root whatever is subtracted.
constexpr uint32_t kCountSaturated = UINT32_MAX - 4;

}  // namespace cb
