// The Boehm GC host's state, shared by its parts:
//
//   objects.cpp    host objects: layout, slots, holds, the registry of those
//                  that hold nodes
//   marking.cpp    inside a Boehm collection: the prologue in the root
//                  push, the mark procedure, the retention at mark end
//   teardown.cpp   after it: the bridge's teardown, run as a Boehm
//                  finalizer, and the release of dead objects' nodes
//   host.cpp       attach, detach, statistics
//
// One collection, as Boehm runs it (docs/boehm.md tells it step by step):
//
//   mark start    a marking the bridge took part in and Boehm gave up is
//                 abandoned
//   root push     cb_hd_prologue: trial deletion; the host objects that
//                 rooted nodes reach become roots
//   marking       the mark procedure of a host object hands the nodes in its
//                 slots to the bridge, which pushes the host objects they
//                 reach on Boehm's mark stack
//   mark end      cb_hd_retain: what unmarked nodes refer to, and dead host
//                 objects that hold nodes, are marked so that they outlive
//                 the sweep; Boehm collections are held off
//   finalization  the retainer, a finalizable object nothing refers to, is
//                 queued
//   (unlocked)    the retainer's finalizer runs cb_hd_epilogue, then
//                 releases the nodes dead host objects held; collections
//                 resume. The kept host objects die in the next collection.
#pragma once

#include <cyclebridge/boehm.h>
#include <gc/gc.h>
#include <gc/gc_inline.h>
#include <gc/gc_mark.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace cbgc {

// A host object's memory. Word 0 is Boehm's free-list link while the object
// is free, and unused; a free object is zeroed past it, so its mark
// procedure sees no slots.
struct Object {
    uintptr_t reserved;
    uint32_t slots;
    uint32_t flags;        // kRegistered | the epoch of the marking that last saw it
    uintptr_t twin;        // a node, tagged, or 0
    uintptr_t slot[];      // 0, a Boehm object, or a node | kNodeTag

    static constexpr uint32_t kRegistered = 1;   // in Host::registry
    static constexpr uint32_t kEpochShift = 8;

    uint32_t epoch() const { return flags >> kEpochShift; }
    void set_epoch(uint32_t e) { flags = (flags & ((1u << kEpochShift) - 1)) | (e << kEpochShift); }
};
constexpr uintptr_t kNodeTag = 1;

inline bool is_node(uintptr_t word) { return (word & kNodeTag) != 0; }
inline void *node_of(uintptr_t word) { return reinterpret_cast<void *>(word & ~kNodeTag); }

enum class Phase {
    kIdle,       // between collections
    kPrologue,   // inside cb_hd_prologue: found host objects become roots
    kMarking,    // Boehm marks: found host objects go on its mark stack
    kRetain,     // mark end: found host objects are kept for the teardown
    kPending,    // the collection is over, its teardown not yet run
    kTeardown,   // cb_hd_epilogue runs: found host objects are traced
};

struct Host {
    cb_heap *heap = nullptr;
    int kind = -1;                 // Boehm object kind of host objects
    Phase phase = Phase::kIdle;

    // Root push (marking.cpp).
    std::vector<void *> roots;          // host objects rooted nodes reach
    std::vector<void *> held_roots;     // holds, flattened for Boehm to scan
    std::unordered_map<void *, size_t> holds;

    // Host objects that hold nodes; their death must release them.
    std::vector<Object *> registry;
    // Dead host objects kept for the teardown, whose nodes it releases.
    std::vector<Object *> zombies;
    // Teardown tracing: what resurrected nodes reach.
    std::vector<void *> found;
    std::unordered_set<void *> resurrected;

    // The finalizable object whose finalizer runs the teardown. Hidden, so
    // that no scan of this memory finds it.
    uintptr_t retainer_hidden = 0;

    // The mark procedure runs on Boehm's marker threads; the bridge is
    // entered by one at a time.
    std::mutex bridge_lock;

    // Marking (marking.cpp). Whether marker threads run, read at the root
    // push (they cannot start during a collection). With one marker, the
    // mark procedure counts the registered objects it sees, once each (the
    // epoch tells), so that mark end can skip the registry when none died.
    bool parallel = false;
    uint32_t mark_epoch = 0;   // 24 bits, never 0 while marking
    size_t registered_seen = 0;

    cbgc_stats stats{};
    std::atomic<uint64_t> mark_threads{0};
    uint64_t serial = 0;   // which attach this is (mark_threads counts per attach)

    GC_push_other_roots_proc previous_push_other_roots = nullptr;
    GC_on_collection_event_proc previous_on_event = nullptr;
};

// The one host (Boehm's heap is one per process); nullptr when detached.
extern Host *host;

// What one Boehm object refers to, as Boehm's own scan would see it: exact
// in host objects (Boehm objects to on_object, nodes, twin first, to
// on_node), conservative in other kinds, nothing in pointer-free ones. For
// the adapter's marking outside Boehm's (mark end, teardown).
template <class OnObject, class OnNode>
void scan_contents(const Host &h, void *base, OnObject on_object, OnNode on_node) {
    size_t size = 0;
    int kind = GC_get_kind_and_size(base, &size);
    if (kind == h.kind) {
        auto *o = static_cast<Object *>(base);
        if (o->twin) on_node(o->twin);
        for (uint32_t i = 0; i < o->slots; ++i) {
            uintptr_t word = o->slot[i];
            if (is_node(word))
                on_node(word);
            else if (word)
                on_object(reinterpret_cast<void *>(word));
        }
    } else if (kind != GC_I_PTRFREE) {
        auto *words = static_cast<void **>(base);
        for (size_t i = 0; i < size / sizeof(void *); ++i)
            if (words[i]) on_object(words[i]);
    }
}

// objects.cpp
Object *as_object(const void *p);   // nullptr if p is not a host object
void register_holder(Object *o);
void release_nodes(Object *o);      // lets go of every node o holds
size_t object_bytes(size_t slots, size_t data_bytes);

// marking.cpp
int make_kind();
void install_hooks(Host &h);
void remove_hooks(Host &h);
void on_mark_host(void *ctx, cb_host_ref ref);

// teardown.cpp
void *make_retainer();
void drop_retainer(Host &h);
cb_status run_teardown(Host &h);
void trace_resurrected(Host &h, bool from_store);

}  // namespace cbgc
