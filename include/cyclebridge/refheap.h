/*
 * The reference host heap: a small precise mark-sweep heap built into
 * cyclebridge, for tests, the demo and teaching. Its objects are arrays of
 * slots; a slot holds nothing, a host object, or a node of the bridge heap
 * (holding a host reference on it, see cb_host_acquire).
 *
 * It drives the bridge either way:
 *  - CB_DRIVE_BRIDGE: it installs itself as the bridge's host interface and
 *    cb_refheap_collect runs cb_collect(CB_FULL);
 *  - CB_DRIVE_HOST: cb_refheap_collect marks its own heap and calls the
 *    bridge's host-driven steps (cb_hd_*), as a runtime's collector would.
 * Either way one call is one full collection of both heaps.
 */
#ifndef CYCLEBRIDGE_REFHEAP_H
#define CYCLEBRIDGE_REFHEAP_H

#include "cyclebridge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_refheap cb_refheap;

typedef enum cb_drive_mode { CB_DRIVE_BRIDGE = 0, CB_DRIVE_HOST = 1 } cb_drive_mode;

/* NULL if bridge is NULL, already has a host, or memory runs out. */
cb_refheap *cb_refheap_new(cb_heap *bridge, cb_drive_mode mode);
/* Frees every host object (dropping their node references) and detaches. */
void cb_refheap_destroy(cb_refheap *heap);
cb_drive_mode cb_refheap_mode(const cb_refheap *heap);

/* A new object with nslots empty slots. Objects made while a collection
 * runs are marked (allocated black), so that collection never frees them. */
cb_host_ref cb_refheap_alloc(cb_refheap *heap, size_t nslots);
size_t cb_refheap_slot_count(const cb_refheap *heap, cb_host_ref obj);
/* A stable identity that outlives the object: ids are never reused. */
uint64_t cb_refheap_id(const cb_refheap *heap, cb_host_ref obj);
int cb_refheap_is_live(const cb_refheap *heap, uint64_t id);
size_t cb_refheap_live_count(const cb_refheap *heap);

/* Store into a slot (the old content is dropped). set_node takes a host
 * reference on node; set_empty and overwriting drop it. */
cb_status cb_refheap_set_host(cb_refheap *heap, cb_host_ref obj, size_t slot, cb_host_ref target);
cb_status cb_refheap_set_node(cb_refheap *heap, cb_host_ref obj, size_t slot, void *node);
cb_status cb_refheap_set_empty(cb_refheap *heap, cb_host_ref obj, size_t slot);
cb_host_ref cb_refheap_get_host(const cb_refheap *heap, cb_host_ref obj, size_t slot);
void *cb_refheap_get_node(const cb_refheap *heap, cb_host_ref obj, size_t slot);

/* Roots are counted: an object is a root while add_root calls outnumber
 * remove_root calls. */
cb_status cb_refheap_add_root(cb_refheap *heap, cb_host_ref obj);
cb_status cb_refheap_remove_root(cb_refheap *heap, cb_host_ref obj);

/* Host-driven only: nodes traced per cb_hd_trace step (0: no limit). */
void cb_refheap_set_trace_budget(cb_refheap *heap, size_t budget);

/* One full collection of both heaps. Reclaimed objects are overwritten
 * with a poison pattern before their memory is released. */
cb_status cb_refheap_collect(cb_refheap *heap, cb_collection_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_REFHEAP_H */
