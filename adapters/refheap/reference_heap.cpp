// The reference host heap: a precise mark-sweep heap of slot arrays, the
// smallest host that exercises both ways of driving the bridge.
//
// Marks: an object is marked during a full collection when it is reached;
// objects made while one runs are marked at birth (allocated black) so that
// collection cannot reclaim them. Every full collection starts with all
// marks clear and the sweep clears them again.
#include "cyclebridge/refheap.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <unordered_set>
#include <vector>

#include "heap.hpp"   // for reports through the bridge's handler

namespace {

enum SlotKind : uint8_t { kEmpty = 0, kHostSlot = 1, kNodeSlot = 2 };

struct Slot {
    SlotKind kind;
    void *ptr;
};

struct RefObject {
    uint64_t id;
    size_t nslots;
    size_t index;   // in cb_refheap::objects
    uint32_t roots;
    bool marked;
    Slot *slots() { return reinterpret_cast<Slot *>(this + 1); }
};

constexpr unsigned char kPoison = 0xdb;

}  // namespace

struct cb_refheap {
    cb_refheap(cb_heap *b, cb_drive_mode m) : bridge(b), mode(m) {}
    cb_heap *bridge;
    cb_drive_mode mode;
    std::vector<RefObject *> objects;
    std::unordered_set<const RefObject *> live;
    std::unordered_set<uint64_t> live_ids;
    uint64_t next_id = 1;
    std::vector<RefObject *> mark_stack;
    size_t trace_budget = 0;
    bool marking = false;   // a full collection is marking or tearing down

    RefObject *checked(cb_host_ref ref, const char *what) {
        auto *obj = static_cast<RefObject *>(ref);
        if (!obj || !live.count(obj)) {
            bridge->misuse(obj ? CB_ERR_BAD_ARGUMENT : CB_ERR_NULL_ARGUMENT, ref, what);
            return nullptr;
        }
        return obj;
    }

    void unmark_all() {
        for (RefObject *obj : objects) obj->marked = false;
    }

    // Drops what a slot holds; may deallocate a node, which may run code.
    void drop(Slot slot) {
        if (slot.kind == kNodeSlot) cb_host_release(bridge, slot.ptr);
    }

    void reclaim(RefObject *obj) {
        for (size_t i = 0; i < obj->nslots; ++i) drop(obj->slots()[i]);
        std::memset(obj, kPoison, sizeof(RefObject) + obj->nslots * sizeof(Slot));
        std::free(obj);
    }

    void unlink(RefObject *obj) {
        RefObject *last = objects.back();
        objects[obj->index] = last;
        last->index = obj->index;
        objects.pop_back();
        live.erase(obj);
        live_ids.erase(obj->id);
    }

    void sweep() {
        std::vector<RefObject *> dead;
        for (size_t i = 0; i < objects.size();) {
            RefObject *obj = objects[i];
            if (obj->marked) {
                obj->marked = false;
                ++i;
            } else {
                unlink(obj);   // moves another object into slot i
                dead.push_back(obj);
            }
        }
        marking = false;
        // Releasing node references can run deallocators: the heap is
        // consistent before the first one runs.
        for (RefObject *obj : dead) reclaim(obj);
    }

    void push(RefObject *obj) {
        if (obj->marked) return;
        obj->marked = true;
        mark_stack.push_back(obj);
    }

    // Host-driven marking: trace host objects; foreign references go to
    // the bridge.
    void drain() {
        while (!mark_stack.empty()) {
            RefObject *obj = mark_stack.back();
            mark_stack.pop_back();
            for (size_t i = 0; i < obj->nslots; ++i) {
                Slot s = obj->slots()[i];
                if (s.kind == kHostSlot) push(static_cast<RefObject *>(s.ptr));
                else if (s.kind == kNodeSlot) cb_hd_visit_node(bridge, s.ptr);
            }
        }
    }
};

namespace {

// ---- the bridge-driven host interface ------------------------------------

void host_enumerate_roots(void *ctx, cb_host_visitor *visitor) {
    auto *heap = static_cast<cb_refheap *>(ctx);
    for (RefObject *obj : heap->objects)
        if (obj->roots > 0) cb_host_visit(visitor, obj);
}

void host_trace(void *ctx, cb_host_ref ref, cb_host_visitor *visitor) {
    auto *obj = static_cast<RefObject *>(ref);
    for (size_t i = 0; i < obj->nslots; ++i) {
        Slot s = obj->slots()[i];
        if (s.kind == kHostSlot) cb_host_visit(visitor, s.ptr);
        else if (s.kind == kNodeSlot) cb_host_visit_node(visitor, s.ptr);
    }
}

int host_mark(void *ctx, cb_host_ref ref) {
    auto *obj = static_cast<RefObject *>(ref);
    if (obj->marked) return 0;
    obj->marked = true;
    return 1;
}

void host_sweep(void *ctx) { static_cast<cb_refheap *>(ctx)->sweep(); }

void host_reset_marks(void *ctx) {
    auto *heap = static_cast<cb_refheap *>(ctx);
    heap->unmark_all();
    heap->marking = false;
}

// Full collections begin with clear marks, whoever started them.
void on_collection(void *ctx, cb_collection_event event, const cb_collection_stats *stats) {
    auto *heap = static_cast<cb_refheap *>(ctx);
    if (stats->generation != CB_FULL) return;
    if (event == CB_COLLECTION_START) {
        heap->unmark_all();
        heap->marking = true;
    } else {
        heap->marking = false;
        heap->unmark_all();
    }
}

void hd_mark_host(void *ctx, cb_host_ref ref) {
    static_cast<cb_refheap *>(ctx)->push(static_cast<RefObject *>(ref));
}

}  // namespace

extern "C" {

cb_refheap *cb_refheap_new(cb_heap *bridge, cb_drive_mode mode) {
    if (!bridge) return nullptr;
    if (mode != CB_DRIVE_BRIDGE && mode != CB_DRIVE_HOST) {
        bridge->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_refheap_new: unknown drive mode");
        return nullptr;
    }
    if (bridge->has_host) {
        bridge->misuse(CB_ERR_WRONG_MODE, nullptr, "cb_refheap_new: the bridge heap already has a host");
        return nullptr;
    }
    auto *heap = new (std::nothrow) cb_refheap(bridge, mode);
    if (!heap) return nullptr;
    if (mode == CB_DRIVE_BRIDGE) {
        cb_host_interface host{heap, host_enumerate_roots, host_trace, host_mark, host_sweep, host_reset_marks};
        cb_set_host(bridge, &host);
        cb_add_collection_callback(bridge, on_collection, heap);
    }
    return heap;
}

void cb_refheap_destroy(cb_refheap *heap) {
    if (!heap) return;
    if (heap->mode == CB_DRIVE_BRIDGE) {
        cb_set_host(heap->bridge, nullptr);
        cb_remove_collection_callback(heap->bridge, on_collection, heap);
    }
    std::vector<RefObject *> all;
    all.swap(heap->objects);
    heap->live.clear();
    heap->live_ids.clear();
    for (RefObject *obj : all) heap->reclaim(obj);
    delete heap;
}

cb_drive_mode cb_refheap_mode(const cb_refheap *heap) { return heap->mode; }

cb_host_ref cb_refheap_alloc(cb_refheap *heap, size_t nslots) {
    if (!heap) return nullptr;
    if (nslots > (SIZE_MAX - sizeof(RefObject)) / sizeof(Slot)) {
        heap->bridge->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_refheap_alloc");
        return nullptr;
    }
    auto *obj = static_cast<RefObject *>(std::calloc(1, sizeof(RefObject) + nslots * sizeof(Slot)));
    if (!obj) {
        heap->bridge->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_refheap_alloc");
        return nullptr;
    }
    obj->id = heap->next_id++;
    obj->nslots = nslots;
    obj->index = heap->objects.size();
    obj->marked = heap->marking;   // allocated black during a collection
    heap->objects.push_back(obj);
    heap->live.insert(obj);
    heap->live_ids.insert(obj->id);
    return obj;
}

size_t cb_refheap_slot_count(const cb_refheap *heap, cb_host_ref ref) {
    if (!heap) return 0;
    RefObject *obj = const_cast<cb_refheap *>(heap)->checked(ref, "cb_refheap_slot_count");
    return obj ? obj->nslots : 0;
}

uint64_t cb_refheap_id(const cb_refheap *heap, cb_host_ref ref) {
    if (!heap) return 0;
    RefObject *obj = const_cast<cb_refheap *>(heap)->checked(ref, "cb_refheap_id");
    return obj ? obj->id : 0;
}

int cb_refheap_is_live(const cb_refheap *heap, uint64_t id) { return heap && heap->live_ids.count(id) != 0; }

size_t cb_refheap_live_count(const cb_refheap *heap) { return heap ? heap->objects.size() : 0; }

static Slot *checked_slot(cb_refheap *heap, cb_host_ref ref, size_t slot, const char *what) {
    RefObject *obj = heap->checked(ref, what);
    if (!obj) return nullptr;
    if (slot >= obj->nslots) {
        heap->bridge->misuse(CB_ERR_BAD_ARGUMENT, ref, what);
        return nullptr;
    }
    return &obj->slots()[slot];
}

static cb_status store(cb_refheap *heap, cb_host_ref ref, size_t slot, Slot value, const char *what) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Slot *s = checked_slot(heap, ref, slot, what);
    if (!s) return ref ? CB_ERR_BAD_ARGUMENT : CB_ERR_NULL_ARGUMENT;
    if (value.kind == kHostSlot && !heap->checked(value.ptr, what)) return CB_ERR_BAD_ARGUMENT;
    if (value.kind == kNodeSlot) {
        cb_status st = cb_host_acquire(heap->bridge, value.ptr);
        if (st != CB_OK) return st;
    }
    Slot old = *s;
    *s = value;
    // The reference host's own write barrier: a store into an object the
    // running collection traced already must not hide its target.
    if (value.kind == kHostSlot) cb_write_barrier_host(heap->bridge, value.ptr);
    heap->drop(old);
    return CB_OK;
}

cb_status cb_refheap_set_host(cb_refheap *heap, cb_host_ref obj, size_t slot, cb_host_ref target) {
    if (!target) return cb_refheap_set_empty(heap, obj, slot);
    return store(heap, obj, slot, Slot{kHostSlot, target}, "cb_refheap_set_host");
}

cb_status cb_refheap_set_node(cb_refheap *heap, cb_host_ref obj, size_t slot, void *node) {
    if (!node) return cb_refheap_set_empty(heap, obj, slot);
    return store(heap, obj, slot, Slot{kNodeSlot, node}, "cb_refheap_set_node");
}

cb_status cb_refheap_set_empty(cb_refheap *heap, cb_host_ref obj, size_t slot) {
    return store(heap, obj, slot, Slot{kEmpty, nullptr}, "cb_refheap_set_empty");
}

cb_host_ref cb_refheap_get_host(const cb_refheap *heap, cb_host_ref obj, size_t slot) {
    if (!heap) return nullptr;
    Slot *s = checked_slot(const_cast<cb_refheap *>(heap), obj, slot, "cb_refheap_get_host");
    return s && s->kind == kHostSlot ? s->ptr : nullptr;
}

void *cb_refheap_get_node(const cb_refheap *heap, cb_host_ref obj, size_t slot) {
    if (!heap) return nullptr;
    Slot *s = checked_slot(const_cast<cb_refheap *>(heap), obj, slot, "cb_refheap_get_node");
    return s && s->kind == kNodeSlot ? s->ptr : nullptr;
}

cb_status cb_refheap_add_root(cb_refheap *heap, cb_host_ref ref) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    RefObject *obj = heap->checked(ref, "cb_refheap_add_root");
    if (!obj) return ref ? CB_ERR_BAD_ARGUMENT : CB_ERR_NULL_ARGUMENT;
    obj->roots++;
    return CB_OK;
}

cb_status cb_refheap_remove_root(cb_refheap *heap, cb_host_ref ref) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    RefObject *obj = heap->checked(ref, "cb_refheap_remove_root");
    if (!obj) return ref ? CB_ERR_BAD_ARGUMENT : CB_ERR_NULL_ARGUMENT;
    if (obj->roots == 0) return heap->bridge->misuse(CB_ERR_UNDERFLOW, ref, "cb_refheap_remove_root");
    obj->roots--;
    return CB_OK;
}

void cb_refheap_set_trace_budget(cb_refheap *heap, size_t budget) {
    if (heap) heap->trace_budget = budget;
}

// One full collection as a runtime's collector would drive it: mark the
// host heap, hand foreign references to the bridge, let the bridge trace
// in budgeted steps, repeat until both sides are done; then the bridge
// tears down and, last, the host sweeps.
static cb_status collect_host_driven(cb_refheap *heap) {
    heap->unmark_all();
    heap->marking = true;
    cb_host_hooks hooks{heap, hd_mark_host};
    cb_status status = cb_hd_prologue(heap->bridge, &hooks);
    if (status != CB_OK) {
        heap->marking = false;
        return status;
    }
    for (RefObject *obj : heap->objects)
        if (obj->roots > 0) heap->push(obj);
    for (;;) {
        for (;;) {
            heap->drain();
            int idle = 0;
            cb_hd_trace(heap->bridge, heap->trace_budget, &idle);
            if (idle && heap->mark_stack.empty()) break;
        }
        int finished = 0;
        status = cb_hd_epilogue(heap->bridge, &finished);
        if (finished) break;
    }
    if (status != CB_OK) {
        // Marks may be incomplete: reclaim nothing.
        heap->unmark_all();
        heap->marking = false;
        return status;
    }
    heap->sweep();
    return CB_OK;
}

cb_status cb_refheap_collect(cb_refheap *heap, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->mode == CB_DRIVE_BRIDGE) return cb_collect(heap->bridge, CB_FULL, stats);
    cb_status status = collect_host_driven(heap);
    if (stats && status != CB_ERR_BUSY) cb_last_stats(heap->bridge, stats);
    return status;
}

}  // extern "C"
