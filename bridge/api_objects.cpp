// C entry points for heaps, types, objects, counts and weakrefs. Each one
// checks its arguments, reports misuse, and changes nothing on error.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

#include "collection.hpp"
#include "heap.hpp"

using cb::Header;

extern "C" {

const char *cb_status_name(cb_status status) {
    switch (status) {
    case CB_OK: return "ok";
    case CB_ERR_NULL_ARGUMENT: return "null argument";
    case CB_ERR_NOT_A_NODE: return "not a live object of this heap";
    case CB_ERR_NOT_TRACKED: return "not tracked";
    case CB_ERR_ALREADY_TRACKED: return "already tracked";
    case CB_ERR_UNDERFLOW: return "count underflow";
    case CB_ERR_OVERFLOW: return "count overflow";
    case CB_ERR_BUSY: return "a collection is running";
    case CB_ERR_WRONG_MODE: return "wrong drive mode";
    case CB_ERR_WRONG_PHASE: return "wrong phase";
    case CB_ERR_BAD_ARGUMENT: return "bad argument";
    case CB_ERR_NO_MEMORY: return "out of memory";
    case CB_ERR_CALLBACK_FAILED: return "a callback failed";
    }
    return "unknown status";
}

cb_heap *cb_heap_new(const cb_heap_options *options) {
    cb_heap_options defaults{};
    return new (std::nothrow) cb_heap(options ? *options : defaults);
}

void cb_heap_destroy(cb_heap *heap) {
    if (!heap) return;
    // Between host-driven steps or incremental slices the collection is
    // simply abandoned; inside a collection's callbacks the heap is in use.
    bool between_steps = (heap->host_driven && !heap->in_host_step) || (heap->incremental && !heap->in_slice);
    if (heap->running && !between_steps) {
        heap->misuse(CB_ERR_BUSY, nullptr, "cb_heap_destroy during a collection (ignored)");
        return;
    }
    // An incremental teardown under way cannot be undone (some garbage is
    // cleared already): it is finished first.
    if (heap->incremental && heap->incremental->tearing_down()) cb_collect_slice(heap, 0, nullptr, nullptr);
    delete heap;
}

void cb_set_report_handler(cb_heap *heap, cb_report_fn handler, void *ctx) {
    if (!heap) return;
    heap->report_handler = handler;
    heap->report_ctx = handler ? ctx : nullptr;
}

uint64_t cb_report_count(const cb_heap *heap) { return heap ? heap->reports : 0; }

static void deliver_formatted(cb_heap *heap, cb_report_kind kind, cb_status status, const void *object,
                              const char *type_name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    heap->deliver(kind, status, object, type_name, fmt, ap);
    va_end(ap);
}

void cb_report_issue(cb_heap *heap, cb_report_kind kind, cb_status status, const void *object,
                     const char *type_name, const char *message) {
    if (!heap) return;
    deliver_formatted(heap, kind, status, object, type_name, "%s", message ? message : "");
}

cb_status cb_type_register(cb_heap *heap, const cb_type_spec *spec, cb_type **out) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!spec || !out || !spec->traverse) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_type_register");
    // A C caller may store any int in the enum field: read it as one.
    int kind;
    static_assert(sizeof kind == sizeof spec->kind);
    std::memcpy(&kind, &spec->kind, sizeof kind);
    if (kind != CB_KIND_REFCOUNTED && kind != CB_KIND_HANDLE_MANAGED)
        return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_type_register: unknown kind");
    if (spec->count_offset < 0 && (!spec->get_count || !spec->set_count))
        return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr,
                            "cb_type_register: a negative count_offset needs get_count and set_count");
    if (spec->count_offset >= 0 && spec->count_offset % alignof(intptr_t) != 0)
        return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_type_register: count_offset is misaligned");
    if (heap->types.size() > Header::kTypeMask)
        return heap->misuse(CB_ERR_OVERFLOW, nullptr, "cb_type_register: too many types");
    auto type = std::make_unique<cb_type>();
    type->id = static_cast<uint32_t>(heap->types.size());
    type->name = spec->name ? spec->name : "<unnamed>";
    type->spec = *spec;
    type->spec.name = type->name.c_str();
    *out = type.get();
    heap->types.push_back(std::move(type));
    return CB_OK;
}

const char *cb_type_name(const cb_type *type) { return type ? type->name.c_str() : nullptr; }

static uint32_t initial_meta(const cb_type *type) {
    uint32_t meta = type->id | (uint32_t(cb::kUntracked) << Header::kPlaceShift);
    if (type->handle_managed()) meta |= Header::kHandleManaged;
    return meta;
}

static bool owns_type(const cb_heap *heap, const cb_type *type) {
    return type && type->id < heap->types.size() && heap->types[type->id].get() == type;
}

cb_status cb_collect_if_due(cb_heap *heap);

void *cb_alloc(cb_heap *heap, const cb_type *type, size_t size) {
    if (!heap) return nullptr;
    if (heap->workers_running) {
        heap->misuse(CB_ERR_BUSY, nullptr, "cb_alloc from a traverse while threads count or mark");
        return nullptr;
    }
    if (!owns_type(heap, type)) {
        heap->misuse(type ? CB_ERR_BAD_ARGUMENT : CB_ERR_NULL_ARGUMENT, nullptr,
                     "cb_alloc: type not registered with this heap");
        return nullptr;
    }
    if (type->spec.count_offset >= 0 && size_t(type->spec.count_offset) + sizeof(intptr_t) > size) {
        heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_alloc: object too small for its count");
        return nullptr;
    }
    if (heap->automatic && !heap->running) cb_collect_if_due(heap);
    if (size > SIZE_MAX / 2) {
        heap->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_alloc");
        return nullptr;
    }
    static_assert(alignof(std::max_align_t) >= 16, "large blocks rely on malloc's 16-byte alignment");
    Header *h = heap->blocks.allocate(size);
    if (!h) {
        heap->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_alloc");
        return nullptr;
    }
    h->meta |= initial_meta(type);
    void *obj = cb::object_of(h);
    heap->ever_intrusive = true;
    heap->live_allocations++;
    if (heap->verify()) heap->live_objects.insert(obj);
    type->set_count(obj, 1);
    return obj;
}

void *cb_realloc(cb_heap *heap, void *obj, size_t new_size) {
    if (!heap) return nullptr;
    Header *h = heap->checked_header(obj, "cb_realloc");
    if (!h) return nullptr;
    if (h->has(Header::kExternal)) {
        heap->misuse_node(CB_ERR_BAD_ARGUMENT, h, "cb_realloc of an object tracked with cb_track_external");
        return nullptr;
    }
    if (h->tracked()) {
        heap->misuse_node(CB_ERR_ALREADY_TRACKED, h, "cb_realloc of a tracked object");
        return nullptr;
    }
    if (h->has(Header::kHasWeakrefs)) {
        heap->misuse_node(CB_ERR_BAD_ARGUMENT, h, "cb_realloc of an object with weak references");
        return nullptr;
    }
    if (new_size <= heap->blocks.capacity(h)) return obj;   // shrinking keeps the block
    Header *moved = new_size > SIZE_MAX / 2 ? nullptr : heap->blocks.allocate(new_size);
    if (!moved) {
        heap->misuse(CB_ERR_NO_MEMORY, obj, "cb_realloc");
        return nullptr;
    }
    void *now = cb::object_of(moved);
    std::memcpy(now, obj, heap->blocks.capacity(h));
    moved->meta |= h->meta & ~Header::kLargeBlock;
    if (h->has(Header::kHostHeld)) {
        heap->set_host_refs(moved, heap->host_refs(h));
        heap->set_host_refs(h, 0);
    }
    heap->blocks.release(h);
    if (heap->verify() && now != obj) {
        heap->live_objects.erase(obj);
        heap->live_objects.insert(now);
    }
    return now;
}

cb_status cb_free(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_free");
    if (!h) return heap->no_header_status(obj);
    if (h->has(Header::kExternal)) return heap->misuse_node(CB_ERR_BAD_ARGUMENT, h, "cb_free of an external object");
    if (h->tracked()) return heap->misuse_node(CB_ERR_ALREADY_TRACKED, h, "cb_free of a tracked object");
    // Weakrefs must not outlive their target's memory.
    if (h->has(Header::kHasWeakrefs)) cb::clear_weakrefs(*heap, obj, /*run_callbacks=*/false);
    heap->free_memory(h);
    return CB_OK;
}

cb_status cb_track_external(cb_heap *heap, const cb_type *type, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!obj || !type) return heap->misuse(CB_ERR_NULL_ARGUMENT, obj, "cb_track_external");
    if (!owns_type(heap, type))
        return heap->misuse(CB_ERR_BAD_ARGUMENT, obj, "cb_track_external: type not registered with this heap");
    if (heap->externals.count(obj)) return heap->misuse(CB_ERR_ALREADY_TRACKED, obj, "cb_track_external");
    if (heap->verify() && heap->live_objects.count(obj))
        return heap->misuse(CB_ERR_BAD_ARGUMENT, obj, "cb_track_external of an object from cb_alloc");
    auto *record = new (std::nothrow) cb::ExternalRecord{};
    if (!record) return heap->misuse(CB_ERR_NO_MEMORY, obj, "cb_track_external");
    record->object = obj;
    record->header.meta = initial_meta(type) | Header::kExternal;
    try {
        heap->externals.emplace(obj, record);
        if (heap->verify()) heap->live_objects.insert(obj);
        heap->append(&record->header, cb::kGen0);
    } catch (const std::bad_alloc &) {
        heap->externals.erase(obj);
        heap->live_objects.erase(obj);
        delete record;
        return heap->misuse(CB_ERR_NO_MEMORY, obj, "cb_track_external");
    }
    heap->counts[0]++;
    return CB_OK;
}

cb_status cb_track(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_track");
    if (!h) return heap->no_header_status(obj);
    if (h->tracked()) return heap->misuse_node(CB_ERR_ALREADY_TRACKED, h, "cb_track");
    try {
        heap->append(h, cb::kGen0);
    } catch (const std::bad_alloc &) {   // the generation could not grow: the node stays untracked
        return heap->misuse_node(CB_ERR_NO_MEMORY, h, "cb_track");
    }
    heap->counts[0]++;
    return CB_OK;
}

cb_status cb_untrack(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_untrack");
    if (!h) return heap->no_header_status(obj);
    if (!h->tracked()) return heap->misuse_node(CB_ERR_NOT_TRACKED, h, "cb_untrack");
    heap->remove(h);
    h->clear(Header::kMarked | Header::kInCollectedSet | Header::kForcedRoot);
    if (heap->counts[0] > 0) heap->counts[0]--;
    if (h->has(Header::kExternal)) {
        // An untracked external object is forgotten: nothing can find its header.
        if (h->has(Header::kHasWeakrefs)) cb::clear_weakrefs(*heap, obj, /*run_callbacks=*/false);
        heap->externals.erase(obj);
        if (heap->verify()) heap->live_objects.erase(obj);
        delete reinterpret_cast<cb::ExternalRecord *>(h);
    }
    return CB_OK;
}

int cb_is_tracked(const cb_heap *heap, const void *obj) {
    if (!heap) return 0;
    Header *h = const_cast<cb_heap *>(heap)->quiet_header(obj);
    return h && h->tracked();
}

int cb_is_finalized(const cb_heap *heap, const void *obj) {
    if (!heap) return 0;
    Header *h = const_cast<cb_heap *>(heap)->quiet_header(obj);
    return h && h->has(Header::kFinalized);
}

cb_status cb_mark_finalized(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_mark_finalized");
    if (!h) return heap->no_header_status(obj);
    h->set(Header::kFinalized);
    return CB_OK;
}

const cb_type *cb_type_of(const cb_heap *heap, const void *obj) {
    if (!heap) return nullptr;
    Header *h = const_cast<cb_heap *>(heap)->quiet_header(obj);
    return h ? heap->types[h->type_id()].get() : nullptr;
}

cb_status cb_incref(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_incref");
    if (!h) return heap->no_header_status(obj);
    intptr_t c = heap->count(h);
    if (c == INTPTR_MAX) return heap->misuse_node(CB_ERR_OVERFLOW, h, "cb_incref");
    heap->set_count(h, c + 1);
    return CB_OK;
}

cb_status cb_decref(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_decref");
    if (!h) return heap->no_header_status(obj);
    intptr_t c = heap->count(h);
    if (c <= 0) return heap->misuse_node(CB_ERR_UNDERFLOW, h, "cb_decref");
    heap->release(h);
    return CB_OK;
}

intptr_t cb_count(const cb_heap *heap, const void *obj) {
    if (!heap) return 0;
    Header *h = const_cast<cb_heap *>(heap)->quiet_header(obj);
    return h ? const_cast<cb_heap *>(heap)->count(h) : 0;
}

cb_status cb_host_acquire(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_host_acquire");
    if (!h) return heap->no_header_status(obj);
    uint32_t host_refs = heap->host_refs(h);
    if (host_refs == UINT32_MAX) return heap->misuse_node(CB_ERR_OVERFLOW, h, "cb_host_acquire");
    if (!h->handle_managed()) {
        intptr_t c = heap->count(h);
        if (c == INTPTR_MAX) return heap->misuse_node(CB_ERR_OVERFLOW, h, "cb_host_acquire");
        heap->set_count(h, c + 1);
    }
    heap->set_host_refs(h, host_refs + 1);
    // A live host object took garbage during teardown: it is resurrected.
    if (heap->running && h->place() == cb::kGarbage) h->set(Header::kForcedRoot);
    // Between an incremental collection's slices, the holder may have been
    // traced already: the store is its own write barrier (design.md §6b).
    if (heap->incremental && !heap->in_slice) heap->incremental->note_edge(h);
    return CB_OK;
}

cb_status cb_host_release(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_host_release");
    if (!h) return heap->no_header_status(obj);
    uint32_t host_refs = heap->host_refs(h);
    if (host_refs == 0) return heap->misuse_node(CB_ERR_UNDERFLOW, h, "cb_host_release without cb_host_acquire");
    if (!h->handle_managed() && heap->count(h) <= 0)
        return heap->misuse_node(CB_ERR_UNDERFLOW, h, "cb_host_release");
    heap->set_host_refs(h, host_refs - 1);
    if (!h->handle_managed()) heap->release(h);
    else if (host_refs == 1 && h->has(Header::kCondemned) && heap->count(h) <= 0) heap->deallocate(h);
    return CB_OK;
}

cb_status cb_weakref_new(cb_heap *heap, void *target, void *holder, cb_weakref_callback callback, void *data,
                         cb_weakref **out) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!out) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_weakref_new");
    Header *h = heap->checked_header(target, "cb_weakref_new");
    if (!h) return heap->no_header_status(target);
    // The holder's liveness gates the callback: it must be a node too.
    if (holder && !heap->checked_header(holder, "cb_weakref_new (holder)")) return heap->no_header_status(holder);
    auto *ref = new (std::nothrow) cb_weakref{target, holder, callback, data};
    if (!ref) return heap->misuse(CB_ERR_NO_MEMORY, target, "cb_weakref_new");
    heap->weakrefs.add(ref);
    h->set(Header::kHasWeakrefs);
    *out = ref;
    return CB_OK;
}

cb_status cb_weakref_on_clear(cb_heap *heap, cb_weakref *ref, cb_weakref_callback on_clear) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!ref) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_weakref_on_clear");
    if (ref->free_requested) return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_weakref_on_clear on a freed weakref");
    ref->on_clear = on_clear;
    return CB_OK;
}

void *cb_weakref_get(const cb_weakref *ref) { return ref ? ref->target : nullptr; }

cb_status cb_weakref_free(cb_heap *heap, cb_weakref *ref) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!ref) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_weakref_free");
    if (ref->free_requested) return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_weakref_free twice");
    cb::detach_from_target(*heap, ref, /*by_heap=*/false);
    heap->weakrefs.forget(ref);
    if (ref->queued) ref->free_requested = true;   // the running callback loop frees it
    else delete ref;
    return CB_OK;
}

cb_status cb_clear_weakrefs(cb_heap *heap, void *obj) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    Header *h = heap->checked_header(obj, "cb_clear_weakrefs");
    if (!h) return heap->no_header_status(obj);
    cb::clear_weakrefs(*heap, obj, /*run_callbacks=*/true);
    return CB_OK;
}

}  // extern "C"
