// Host objects: Boehm objects of the host's kind, their slots, the holds
// that root them, and the registry of those that hold nodes (a host object
// that dies must release its nodes, and Boehm would not tell us).
#include <gc/gc_mark.h>

#include <cstring>

#include "host.hpp"

namespace cbgc {

size_t object_bytes(size_t slots, size_t data_bytes) {
    return sizeof(Object) + slots * sizeof(uintptr_t) + data_bytes;
}

Object *as_object(const void *p) {
    if (!host || !p) return nullptr;
    void *base = GC_base(const_cast<void *>(p));
    if (base != p) return nullptr;
    size_t size = 0;
    if (GC_get_kind_and_size(p, &size) != host->kind) return nullptr;
    return static_cast<Object *>(const_cast<void *>(p));
}

void register_holder(Object *o) {
    if (o->flags & Object::kRegistered) return;
    o->flags |= Object::kRegistered;
    host->registry.push_back(o);
}

void release_nodes(Object *o) {
    // Empty each slot before releasing: a release may deallocate, and the
    // deallocator may look at this object again.
    if (o->twin) {
        void *twin = node_of(o->twin);
        o->twin = 0;
        cb_host_release(host->heap, twin);
    }
    for (uint32_t i = 0; i < o->slots; ++i) {
        uintptr_t word = o->slot[i];
        if (!is_node(word)) continue;
        o->slot[i] = 0;
        cb_host_release(host->heap, node_of(word));
    }
}

namespace {

cb_status misuse(cb_status status, const void *object, const char *what) {
    if (host) cb_report_issue(host->heap, CB_REPORT_API_MISUSE, status, object, nullptr, what);
    return status;
}

// Checks obj and slot; reports and returns nullptr when they are bad.
Object *slot_owner(const void *obj, size_t slot, const char *where) {
    if (!host) return nullptr;
    Object *o = as_object(obj);
    if (!o) {
        misuse(CB_ERR_NOT_A_NODE, obj, where);
        return nullptr;
    }
    if (slot >= o->slots) {
        misuse(CB_ERR_BAD_ARGUMENT, obj, where);
        return nullptr;
    }
    return o;
}

// A store into a host object during a teardown may make a dead object (kept
// for the teardown) reachable again: what it reaches must survive.
void store_barrier(void *target) {
    if (host->phase != Phase::kTeardown || !target) return;
    host->found.push_back(target);
    trace_resurrected(*host, /*from_store=*/true);
}

}  // namespace

}  // namespace cbgc

using namespace cbgc;

extern "C" {

void *cbgc_new(size_t slots, size_t data_bytes) {
    if (!host) return nullptr;
    if (slots > UINT32_MAX) {
        misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cbgc_new: too many slots");
        return nullptr;
    }
    auto *o = static_cast<Object *>(GC_generic_malloc(object_bytes(slots, data_bytes), host->kind));
    if (!o) return nullptr;
    o->slots = static_cast<uint32_t>(slots);
    return o;
}

int cbgc_is_object(const void *p) { return as_object(p) != nullptr; }

size_t cbgc_slot_count(const void *obj) {
    Object *o = as_object(obj);
    return o ? o->slots : 0;
}

void *cbgc_data(void *obj) {
    Object *o = as_object(obj);
    return o ? reinterpret_cast<char *>(o->slot + o->slots) : nullptr;
}

cb_status cbgc_set_object(void *obj, size_t slot, void *target) {
    if (!host) return CB_ERR_WRONG_MODE;
    Object *o = slot_owner(obj, slot, "cbgc_set_object: not a host object, or no such slot");
    if (!o) return CB_ERR_BAD_ARGUMENT;
    if (target && !GC_base(target))
        return misuse(CB_ERR_BAD_ARGUMENT, target, "cbgc_set_object: the target is not a Boehm object");
    uintptr_t old = o->slot[slot];
    o->slot[slot] = reinterpret_cast<uintptr_t>(target);
    store_barrier(target);
    if (is_node(old)) cb_host_release(host->heap, node_of(old));
    return CB_OK;
}

cb_status cbgc_set_node(void *obj, size_t slot, void *node) {
    if (!host) return CB_ERR_WRONG_MODE;
    Object *o = slot_owner(obj, slot, "cbgc_set_node: not a host object, or no such slot");
    if (!o) return CB_ERR_BAD_ARGUMENT;
    if (node) {
        cb_status status = cb_host_acquire(host->heap, node);
        if (status != CB_OK) return status;   // reported by the heap
        // During a teardown the node may be garbage: storing it revives it.
        cb_write_barrier(host->heap, node);
        register_holder(o);
    }
    uintptr_t old = o->slot[slot];
    o->slot[slot] = node ? reinterpret_cast<uintptr_t>(node) | kNodeTag : 0;
    if (is_node(old)) cb_host_release(host->heap, node_of(old));
    return CB_OK;
}

void *cbgc_get_object(const void *obj, size_t slot) {
    Object *o = slot_owner(obj, slot, "cbgc_get_object: not a host object, or no such slot");
    if (!o || is_node(o->slot[slot])) return nullptr;
    return reinterpret_cast<void *>(o->slot[slot]);
}

void *cbgc_get_node(const void *obj, size_t slot) {
    Object *o = slot_owner(obj, slot, "cbgc_get_node: not a host object, or no such slot");
    if (!o || !is_node(o->slot[slot])) return nullptr;
    return node_of(o->slot[slot]);
}

cb_status cbgc_hold(void *obj) {
    if (!host) return CB_ERR_WRONG_MODE;
    if (!obj || !GC_base(obj)) return misuse(CB_ERR_BAD_ARGUMENT, obj, "cbgc_hold: not a Boehm object");
    host->holds[obj]++;
    store_barrier(obj);
    return CB_OK;
}

cb_status cbgc_release(void *obj) {
    if (!host) return CB_ERR_WRONG_MODE;
    auto it = host->holds.find(obj);
    if (it == host->holds.end()) return misuse(CB_ERR_BAD_ARGUMENT, obj, "cbgc_release: not held");
    if (--it->second == 0) host->holds.erase(it);
    return CB_OK;
}

int cbgc_attach_twin(void *, cb_host_ref obj, struct _object *twin) {
    if (!host) return -1;
    Object *o = as_object(obj);
    if (!o || o->twin) return -1;
    if (cb_host_acquire(host->heap, twin) != CB_OK) return -1;
    o->twin = reinterpret_cast<uintptr_t>(twin) | kNodeTag;
    register_holder(o);
    return 0;
}

int cbgc_hold_hook(void *, cb_host_ref obj) { return cbgc_hold(obj) == CB_OK ? 0 : -1; }

void cbgc_release_hook(void *, cb_host_ref obj) { cbgc_release(obj); }

}  // extern "C"
