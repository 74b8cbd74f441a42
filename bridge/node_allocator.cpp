#include "node_allocator.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

// Freed blocks are poisoned for AddressSanitizer, so that a use after
// cb_free is caught though the memory stays in a slab.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define CB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef CB_POISON
#define CB_POISON(p, n) ((void)(p), (void)(n))
#define CB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace cb {

namespace {

struct FreeBlock {
    FreeBlock *next;
};

constexpr size_t kMaxRegion = size_t(4) << 20;

// A large object's block: malloc's 16-byte alignment, the header 8 in.
constexpr size_t kLargeLead = 8;

char *align_up(char *p, size_t to) {
    return reinterpret_cast<char *>((reinterpret_cast<uintptr_t>(p) + to - 1) & ~uintptr_t(to - 1));
}

}  // namespace

struct NodeAllocator::Slab {
    Slab *next = nullptr;   // in with_room_ while listed
    Slab *prev = nullptr;
    FreeBlock *free = nullptr;   // freed blocks (their object part holds the link)
    char *bump = nullptr;        // blocks from here on were never handed out
    uint32_t stride = 0;
    uint32_t size_class = 0;
    uint32_t live = 0;
    uint32_t emptied_at = 0;   // the epoch it became empty in
    bool listed = false;

    char *end() { return reinterpret_cast<char *>(this) + kSlabSize; }
    bool has_room() { return free || bump + stride <= end(); }
};

NodeAllocator::~NodeAllocator() {
    if (leak_) return;
    for (void *region : regions_) std::free(region);
}

Header *NodeAllocator::allocate(size_t size) {
    if (size > kLargestBlock - sizeof(Header)) {
        auto *base = static_cast<char *>(std::calloc(1, kLargeLead + sizeof(Header) + size));
        if (!base) return nullptr;
        auto *h = reinterpret_cast<Header *>(base + kLargeLead);
        h->meta = Header::kLargeBlock;
        return h;
    }
    uint32_t size_class = uint32_t((sizeof(Header) + size + kGranule - 1) / kGranule) - 1;
    Slab *s = with_room_[size_class];
    if (!s && !(s = new_slab(size_class))) return nullptr;
    char *block;
    if (s->free) {
        char *object = reinterpret_cast<char *>(s->free);
        CB_UNPOISON(object, s->stride - sizeof(Header));
        s->free = s->free->next;
        block = object - sizeof(Header);
    } else {
        block = s->bump;
        s->bump += s->stride;
    }
    CB_UNPOISON(block, s->stride);
    std::memset(block, 0, s->stride);
    ++s->live;
    if (!s->has_room()) unlist(s);
    return reinterpret_cast<Header *>(block);
}

void NodeAllocator::release(Header *h) {
    if (h->has(Header::kLargeBlock)) {
        std::free(reinterpret_cast<char *>(h) - kLargeLead);
        return;
    }
    auto *s = reinterpret_cast<Slab *>(reinterpret_cast<uintptr_t>(h) & ~uintptr_t(kSlabSize - 1));
    auto *link = reinterpret_cast<FreeBlock *>(reinterpret_cast<char *>(h) + sizeof(Header));
    link->next = s->free;
    s->free = link;
    CB_POISON(link, s->stride - sizeof(Header));
    if (--s->live == 0) {
        if (s->listed) unlist(s);
        s->emptied_at = epoch_;
        empty_.push_back(s);
        return;
    }
    if (!s->listed) list(s);
}

size_t NodeAllocator::capacity(const Header *h) const {
    if (h->has(Header::kLargeBlock))
        return malloc_usable_size(reinterpret_cast<char *>(const_cast<Header *>(h)) - kLargeLead) - kLargeLead -
               sizeof(Header);
    auto *s = reinterpret_cast<const Slab *>(reinterpret_cast<uintptr_t>(h) & ~uintptr_t(kSlabSize - 1));
    return s->stride - sizeof(Header);
}

NodeAllocator::Slab *NodeAllocator::new_slab(uint32_t size_class) {
    static_assert(sizeof(Slab) <= kFirstBlock);
    static_assert(kFirstBlock % 16 == 8, "headers sit 8 past a multiple of 16");
    void *memory;
    if (!empty_.empty()) {
        memory = empty_.back();
        empty_.pop_back();
        trimmed_ = std::min(trimmed_, empty_.size());
    } else if (!(memory = carve_slab())) {
        return nullptr;
    }
    CB_UNPOISON(memory, kSlabSize);
    auto *s = new (memory) Slab;
    s->stride = uint32_t((size_class + 1) * kGranule);
    s->size_class = size_class;
    s->bump = reinterpret_cast<char *>(s) + kFirstBlock;
    list(s);
    return s;
}

void NodeAllocator::trim() {
    // empty_ is in epoch order: the untrimmed old ones follow the trimmed.
    // The slab's bookkeeping is written afresh when it is used again.
    while (trimmed_ < empty_.size() && empty_[trimmed_]->emptied_at < epoch_)
        madvise(empty_[trimmed_++], kSlabSize, MADV_DONTNEED);
    ++epoch_;
}

char *NodeAllocator::carve_slab() {
    if (!carve_next_ || carve_next_ + kSlabSize > carve_end_) {
        auto *region = static_cast<char *>(std::malloc(next_region_size_));
        if (!region) return nullptr;
        regions_.push_back(region);
        carve_next_ = align_up(region, kSlabSize);
        carve_end_ = region + next_region_size_;
        if (next_region_size_ < kMaxRegion) next_region_size_ *= 2;
    }
    char *slab = carve_next_;
    carve_next_ += kSlabSize;
    return slab;
}

void NodeAllocator::list(Slab *s) {
    Slab *&head = with_room_[s->size_class];
    s->prev = nullptr;
    s->next = head;
    if (head) head->prev = s;
    head = s;
    s->listed = true;
}

void NodeAllocator::unlist(Slab *s) {
    if (s->prev) s->prev->next = s->next;
    else with_room_[s->size_class] = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = nullptr;
    s->listed = false;
}

}  // namespace cb
