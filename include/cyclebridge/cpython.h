/*
 * The CPython-style adapter: the garbage-collection part of CPython's C API
 * (PyObject_GC_New, PyType_Ready, tp_traverse, weakrefs, ...) implemented on
 * a cyclebridge heap, so that extension code compiles unchanged against the
 * real Python.h and runs without libpython. Link cyclebridge_cpython.
 *
 * This header is for the runtime that embeds the adapter (a PyPy, a GraalPy,
 * a teaching VM), not for extensions: they include Python.h only.
 *
 * Like CPython's single interpreter, the adapter is bound to one heap at a
 * time, and used by one thread at a time. See docs/cpython.md.
 */
#ifndef CYCLEBRIDGE_CPYTHON_H
#define CYCLEBRIDGE_CPYTHON_H

#include "cyclebridge.h"

#ifdef __cplusplus
extern "C" {
#endif

struct _object;   /* PyObject */

/* What the adapter needs from the runtime's own heap. */
typedef struct cbpy_host {
    void *ctx;
    /* A twin was made for host object obj. From now on, and until obj
     * dies, obj must hold one host reference on twin (cb_host_acquire; the
     * reference host heap does it in cb_refheap_set_node) and report it
     * from its trace. Return 0, or nonzero to refuse. Needed for twins. */
    int (*attach_twin)(void *ctx, cb_host_ref obj, struct _object *twin);
    /* Calls host object fn with one argument: weakref callbacks that are
     * twins run through it. Return 0, or nonzero if the call failed (it is
     * reported). Optional: without it such callbacks are refused. */
    int (*call)(void *ctx, cb_host_ref fn, struct _object *arg);
    /* PyGC_Collect: one full collection of both heaps; returns the number
     * of unreachable objects found, or -1. Optional: without it,
     * cb_collect(heap, CB_FULL). */
    long (*collect)(void *ctx);
} cbpy_host;

/* Binds the C API to heap: from now on every PyObject_GC_New and the like
 * allocates there, and its reports go to the heap's handler. host may be
 * NULL (no twins). CB_ERR_BUSY if the adapter is bound already. */
cb_status cbpy_init(cb_heap *heap, const cbpy_host *host);
/* Unbinds the adapter. Every object it allocated must be gone by then; the
 * heap reports those that are not when it is destroyed. */
void cbpy_fini(void);
/* The bound heap, or NULL. */
cb_heap *cbpy_heap(void);

/* A new reference to host object obj's twin: the PyObject that stands for
 * it in C. Made on first use and kept, one per host object, as long as obj
 * lives. NULL with an exception set if the runtime gave no attach_twin or
 * refused. */
struct _object *cbpy_twin(cb_host_ref obj);
/* The host object a twin stands for, or NULL if o is not a twin. */
cb_host_ref cbpy_twin_host(struct _object *o);

/* The pending exception as "TypeError: message", or NULL when none is set.
 * Valid until the error indicator changes. */
const char *cbpy_error_message(void);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_CPYTHON_H */
