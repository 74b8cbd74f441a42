/*
 * The HPy-style adapter, for the runtime that embeds it: opening and
 * closing the context extensions receive, the host hooks, and handles to
 * host objects. Extensions include only "hpy.h" (cyclebridge/hpy/hpy.h).
 * Link cyclebridge_hpy. See docs/hpy.md.
 *
 * One context per heap, used by one thread at a time.
 */
#ifndef CYCLEBRIDGE_HPY_RUNTIME_H
#define CYCLEBRIDGE_HPY_RUNTIME_H

#include "cyclebridge.h"
#include "hpy/hpy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the adapter needs from the runtime's own heap, for handles and
 * globals that refer to host objects (fields are edges, found by tracing). */
typedef struct cbhpy_host {
    void *ctx;
    /* A handle or a global now refers to obj: keep it alive, as a root,
     * until the matching release. Holds nest. Return 0, or nonzero to
     * refuse (the handle is not made). */
    int (*hold)(void *ctx, cb_host_ref obj);
    void (*release)(void *ctx, cb_host_ref obj);
} cbhpy_host;

enum {
    /* HPy's debug mode: where each handle was opened and closed is kept,
     * closed handles are not reused for a while, fields are checked
     * against a record of every HPyField_Store, and handles still open at
     * close are reported one by one with where they were opened. */
    CBHPY_DEBUG = 1u << 0
};

typedef struct cbhpy_options {
    uint32_t flags;
    const cbhpy_host *host;   /* NULL: no handles to host objects */
} cbhpy_options;

/* Opens the context for heap (options may be NULL). NULL on failure,
 * reported through the heap: a NULL heap, a heap that has a context, no
 * memory. */
HPyContext *cbhpy_open(cb_heap *heap, const cbhpy_options *options);
/* Closes the context. Handles still open are reported (debug mode: each,
 * with where it was opened) and closed; globals are dropped. Then a full
 * collection (cb_collect) frees what only they held. If HPy objects are
 * still alive after it (held by refcounted or host objects), they are
 * reported, CB_ERR_BUSY is returned, and the context stays open, without
 * handles or globals: release what holds them and close again. Refused
 * (CB_ERR_BUSY) while a collection runs. */
cb_status cbhpy_close(HPyContext *ctx);

cb_heap *cbhpy_heap(const HPyContext *ctx);
int cbhpy_is_debug(const HPyContext *ctx);
/* Handles open now, and HPy objects (types included) not yet freed. */
size_t cbhpy_open_handles(const HPyContext *ctx);
size_t cbhpy_live_objects(const HPyContext *ctx);
/* Calls fn for each open handle, with where it was opened (debug mode;
 * "?" otherwise). */
void cbhpy_each_open_handle(const HPyContext *ctx, void (*fn)(void *arg, HPy h, const char *opened_at),
                            void *arg);

/* The pending error as "SystemError: message", or NULL. */
const char *cbhpy_error_message(const HPyContext *ctx);

/* A new handle to host object obj (held through cbhpy_host.hold), and
 * back: the host object a handle refers to, or NULL. Host objects must be
 * 4-byte aligned (the adapter keeps a tag in the low bits). */
HPy _cbhpy_from_host(HPyContext *ctx, cb_host_ref obj, const char *where);
#define cbhpy_from_host(ctx, obj) _cbhpy_from_host((ctx), (obj), _CBHPY_HERE)
cb_host_ref cbhpy_as_host(HPyContext *ctx, HPy h);

/* The HPy object a node pointer is, for host traces and tests: a handle to
 * it (a new one), or HPy_NULL if node is not an HPy object of ctx. And the
 * node of an HPy object handle (what host objects store, with
 * cb_host_acquire), or NULL. */
HPy _cbhpy_from_node(HPyContext *ctx, void *node, const char *where);
#define cbhpy_from_node(ctx, node) _cbhpy_from_node((ctx), (node), _CBHPY_HERE)
void *cbhpy_as_node(HPyContext *ctx, HPy h);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_HPY_RUNTIME_H */
