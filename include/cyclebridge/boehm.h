/*
 * The Boehm GC host: host objects allocated by Boehm GC (libgc), whose
 * collections drive a cyclebridge heap through the host-driven protocol.
 * Boehm starts every collection (GC_gcollect, or an allocation); the bridge
 * takes part from inside it. Link cyclebridge_boehm. See docs/boehm.md.
 *
 * Boehm's heap is one per process, so there is one Boehm host, bound to one
 * cyclebridge heap. Like that heap, it is used by one thread at a time (the
 * runtime's lock); Boehm's parallel markers are supported.
 *
 * A host object is a Boehm object of the host's own kind: `slots` words,
 * each empty, a Boehm object (any: host objects, GC_malloc memory, ...) or
 * a node of the heap (a refcounted or handle-managed object, on which the
 * host object holds a host reference), then `data_bytes` of untraced data.
 * Store into slots only through cbgc_set_object and cbgc_set_node.
 */
#ifndef CYCLEBRIDGE_BOEHM_H
#define CYCLEBRIDGE_BOEHM_H

#include <stddef.h>
#include <stdint.h>

#include "cyclebridge.h"

#ifdef __cplusplus
extern "C" {
#endif

struct _object;   /* PyObject */

/* Binds the Boehm host to heap (after GC_INIT). Refused: a second attach
 * (CB_ERR_BUSY), Boehm's incremental mode, which marks while the program
 * runs (CB_ERR_WRONG_MODE), a heap with a host interface or a collection
 * running (CB_ERR_WRONG_MODE, CB_ERR_BUSY). Each refusal is reported. */
cb_status cbgc_attach(cb_heap *heap);
/* Unbinds: Boehm no longer sees what nodes refer to. CB_ERR_BUSY while a
 * teardown is pending. */
cb_status cbgc_detach(void);

/* A new host object, zeroed; NULL when Boehm is out of memory. */
void *cbgc_new(size_t slots, size_t data_bytes);
/* Nonzero if p is a host object (allocated by cbgc_new). */
int cbgc_is_object(const void *p);
size_t cbgc_slot_count(const void *obj);
void *cbgc_data(void *obj);

/* obj.slot = target, a Boehm object or NULL; what the slot held is let go
 * (a node's host reference released). */
cb_status cbgc_set_object(void *obj, size_t slot, void *target);
/* obj.slot = node, a node of the heap: the host object takes a host
 * reference on it (cb_host_acquire). */
cb_status cbgc_set_node(void *obj, size_t slot, void *node);
/* What a slot holds: a Boehm object, or a node; NULL when it holds the
 * other, or nothing. */
void *cbgc_get_object(const void *obj, size_t slot);
void *cbgc_get_node(const void *obj, size_t slot);

/* Roots: a host object held here lives whatever refers to it, until
 * released as many times as held (memory Boehm does not scan, such as
 * HPy's handle table, holds host objects this way). */
cb_status cbgc_hold(void *obj);
cb_status cbgc_release(void *obj);

/* Hooks for the adapters, with any ctx: cbpy_host.attach_twin keeps a
 * host object's twin in the object; cbhpy_host.hold/release are
 * cbgc_hold/cbgc_release. */
int cbgc_attach_twin(void *ctx, cb_host_ref obj, struct _object *twin);
int cbgc_hold_hook(void *ctx, cb_host_ref obj);
void cbgc_release_hook(void *ctx, cb_host_ref obj);

/* One full Boehm collection with its teardown: GC_gcollect(), then the
 * teardown if Boehm's finalizers did not run it (GC_finalize_on_demand). */
cb_status cbgc_collect(void);
/* Runs a pending teardown now. Boehm runs it as a finalizer after each
 * collection; a runtime that invokes finalizers itself can call this from
 * the thread that holds its lock. Boehm collects nothing while a teardown
 * is pending. */
cb_status cbgc_finish_teardown(void);
int cbgc_teardown_pending(void);

typedef struct cbgc_stats {
    uint64_t collections;      /* Boehm collections the bridge took part in */
    uint64_t roots;            /* host objects rooted by live nodes, last one */
    uint64_t retained;         /* objects kept for the teardown, last one */
    uint64_t zombies;          /* dead host objects whose nodes were released, last one */
    uint64_t mark_threads;     /* threads that ran the mark procedure, all time */
    uint64_t abandoned;        /* Boehm markings given up (the bridge's too) */
} cbgc_stats;
void cbgc_get_stats(cbgc_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_BOEHM_H */
