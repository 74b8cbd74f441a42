/*
 * cyclebridge: finds and frees garbage cycles that run between a traced
 * heap and reference-counted objects.
 *
 * The C API (C11). One heap is used by one thread at a time. Every function
 * that can fail returns a cb_status; a failure also goes to the heap's report
 * handler (stderr by default) and leaves the heap unchanged.
 *
 * See docs/api.md for the full contract and docs/design.md for the algorithm.
 */
#ifndef CYCLEBRIDGE_H
#define CYCLEBRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_heap cb_heap;
typedef struct cb_type cb_type;
typedef struct cb_weakref cb_weakref;
/* An object of the host's traced heap, opaque to cyclebridge. */
typedef void *cb_host_ref;

typedef enum cb_status {
    CB_OK = 0,
    CB_ERR_NULL_ARGUMENT,   /* a required pointer was NULL */
    CB_ERR_NOT_A_NODE,      /* the pointer is not a live object of this heap */
    CB_ERR_NOT_TRACKED,     /* untrack of an untracked object, or the object must be tracked */
    CB_ERR_ALREADY_TRACKED, /* track of a tracked object, or free of a tracked one */
    CB_ERR_UNDERFLOW,       /* a count would go below zero */
    CB_ERR_OVERFLOW,        /* a count would exceed what the heap can hold */
    CB_ERR_BUSY,            /* a collection is running: the request was refused */
    CB_ERR_WRONG_MODE,      /* not possible in this heap's drive mode */
    CB_ERR_WRONG_PHASE,     /* host-driven step called out of order */
    CB_ERR_BAD_ARGUMENT,    /* an argument is out of range or inconsistent */
    CB_ERR_NO_MEMORY,
    CB_ERR_CALLBACK_FAILED  /* a callback threw: the collection freed nothing */
} cb_status;

/* A static, human-readable name for a status. */
const char *cb_status_name(cb_status status);

/* ------------------------------------------------------------------ */
/* Heap                                                                 */
/* ------------------------------------------------------------------ */

enum {
    /* Check every pointer a traverse visits against the set of live
     * objects before reading it: a freed or foreign pointer is reported
     * instead of read. Slower; for tests and debugging. */
    CB_HEAP_VERIFY = 1u << 0,
    /* Do not start collections from cb_alloc when thresholds are crossed. */
    CB_HEAP_NO_AUTO_COLLECT = 1u << 1
};

typedef struct cb_heap_options {
    uint32_t flags;
    /* Optional filter for runtimes whose traverse functions also visit
     * objects that are not nodes (CPython visits ints and strings): return
     * nonzero when ptr is a node of this heap. NULL: every visited pointer
     * must be a node. */
    int (*is_node)(void *ctx, const void *ptr);
    void *is_node_ctx;
} cb_heap_options;

/* options may be NULL for the defaults. Returns NULL only when out of memory. */
cb_heap *cb_heap_new(const cb_heap_options *options);
/* Frees the heap's own structures, and the weakrefs still registered. Runs
 * no callbacks and frees no object; objects from cb_alloc still allocated
 * are reported. Between host-driven steps it abandons that collection;
 * from a callback of a running collection it is refused (reported). */
void cb_heap_destroy(cb_heap *heap);

/* ------------------------------------------------------------------ */
/* Reports: every error and every misbehaving callback                  */
/* ------------------------------------------------------------------ */

typedef enum cb_report_kind {
    CB_REPORT_API_MISUSE = 0,       /* a call returned an error status */
    CB_REPORT_VISIT_UNTRACKED,      /* traverse visited a node that is not tracked */
    CB_REPORT_VISIT_INVALID,        /* traverse visited a pointer that is not a live node */
    CB_REPORT_REFS_EXCEED_COUNT,    /* more references were visited than the count holds */
    CB_REPORT_CALLBACK_THREW,       /* a callback threw a C++ exception */
    CB_REPORT_SURVIVED_CLEAR,       /* garbage still alive after clear (resurrected or not fully cleared) */
    CB_REPORT_REENTRANT_COLLECT,    /* a collection was asked for while one runs */
    CB_REPORT_LEAKED_AT_DESTROY     /* the heap was destroyed with objects still allocated */
} cb_report_kind;

typedef struct cb_report {
    cb_report_kind kind;
    cb_status status;        /* the status returned to the caller, if any */
    const char *message;     /* valid during the handler call only */
    const void *object;      /* the object concerned, or NULL */
    const char *type_name;   /* its type's name, or NULL */
} cb_report;

typedef void (*cb_report_fn)(void *ctx, const cb_report *report);
/* NULL restores the default handler, which prints to stderr. */
void cb_set_report_handler(cb_heap *heap, cb_report_fn handler, void *ctx);
/* Reports issued since the heap was created. */
uint64_t cb_report_count(const cb_heap *heap);
/* Issues a report through the heap's handler: for adapters and runtimes,
 * so that their errors reach the same place as the collector's. object is
 * never read; type_name may be NULL. */
void cb_report_issue(cb_heap *heap, cb_report_kind kind, cb_status status, const void *object,
                     const char *type_name, const char *message);

/* ------------------------------------------------------------------ */
/* Types                                                                */
/* ------------------------------------------------------------------ */

typedef enum cb_kind {
    /* Rooted when its count exceeds the references the collector sees.
     * The count holds every reference; dealloc runs when it reaches zero. */
    CB_KIND_REFCOUNTED = 0,
    /* Rooted while its count (open handles and globals) is above zero;
     * references from other objects are edges only. Freed by the collector. */
    CB_KIND_HANDLE_MANAGED = 1
} cb_kind;

/* The same shape as CPython's visitproc/traverseproc: a traverse calls
 * visit(target, arg) for each object it refers to and returns the first
 * nonzero value visit returns. */
typedef int (*cb_visit_fn)(void *target, void *arg);
typedef int (*cb_traverse_fn)(void *obj, cb_visit_fn visit, void *arg);
typedef void (*cb_object_fn)(void *obj);
typedef intptr_t (*cb_get_count_fn)(const void *obj);
typedef void (*cb_set_count_fn)(void *obj, intptr_t count);

typedef struct cb_type_spec {
    const char *name;              /* copied */
    cb_kind kind;
    cb_traverse_fn traverse;       /* required */
    cb_object_fn clear;            /* drop references; NULL: cannot break cycles itself */
    cb_object_fn finalize;         /* PEP 442 finalizer; run at most once per object */
    cb_object_fn legacy_finalize;  /* tp_del: never called by the collector; garbage
                                      cycles holding one are kept as uncollectable */
    cb_object_fn dealloc;          /* object is untracked already; must release its
                                      memory (cb_free for cb_alloc). NULL: cb_free */
    /* The count: an intptr_t at count_offset bytes into the object, or, when
     * count_offset is negative, read and written through get_count/set_count. */
    ptrdiff_t count_offset;
    cb_get_count_fn get_count;
    cb_set_count_fn set_count;
} cb_type_spec;

/* Registers a type with the heap; *out stays valid until the heap is destroyed. */
cb_status cb_type_register(cb_heap *heap, const cb_type_spec *spec, cb_type **out);
const char *cb_type_name(const cb_type *type);

/* ------------------------------------------------------------------ */
/* Objects                                                              */
/* ------------------------------------------------------------------ */

/* Allocates size zeroed bytes behind an intrusive header (8 bytes, found
 * from the object pointer without a lookup), 16-byte aligned. The object is
 * untracked and its count is 1: the caller holds the one reference (or the
 * one handle). May run an automatic collection first, as CPython does. */
void *cb_alloc(cb_heap *heap, const cb_type *type, size_t size);
/* Resizes an untracked object from cb_alloc; bytes past the old size are
 * not initialized. The object may move: use the returned pointer. */
void *cb_realloc(cb_heap *heap, void *obj, size_t new_size);
/* Releases the memory of an untracked object from cb_alloc. */
cb_status cb_free(cb_heap *heap, void *obj);

/* Objects whose memory cyclebridge does not control: the header lives in a
 * side table and every visit looks the pointer up there. Untrack with
 * cb_untrack; the object is forgotten then. The count is not changed. */
cb_status cb_track_external(cb_heap *heap, const cb_type *type, void *obj);

/* Start and stop taking part in collections. New objects join the youngest
 * generation. */
cb_status cb_track(cb_heap *heap, void *obj);
cb_status cb_untrack(cb_heap *heap, void *obj);
int cb_is_tracked(const cb_heap *heap, const void *obj);
/* Nonzero once the object's finalizer has run. */
int cb_is_finalized(const cb_heap *heap, const void *obj);
/* Records that the object's finalizer has run, for runtimes that also run
 * finalizers themselves (CPython's PyObject_CallFinalizerFromDealloc): the
 * collector will not run it again. */
cb_status cb_mark_finalized(cb_heap *heap, void *obj);
const cb_type *cb_type_of(const cb_heap *heap, const void *obj);

/* The count (references, or handles for handle-managed objects). Decref to
 * zero deallocates a refcounted object: weakrefs to it are cleared (their
 * callbacks run), it is untracked, then its dealloc runs. Handle-managed
 * objects are freed only by the collector. */
cb_status cb_incref(cb_heap *heap, void *obj);
cb_status cb_decref(cb_heap *heap, void *obj);
intptr_t cb_count(const cb_heap *heap, const void *obj);

/* A host object takes or drops a reference to a node. For a refcounted node
 * this also changes its count. The collector treats such references as
 * edges from the host, not as roots: the node lives while a marked host
 * object holds it. */
cb_status cb_host_acquire(cb_heap *heap, void *obj);
cb_status cb_host_release(cb_heap *heap, void *obj);

/* Write barriers, for references the collector can only find by tracing:
 * an edge into a handle-managed node (it holds no count), and any edge to a
 * host object. Call one right after storing such a reference in an object
 * (an HPyField, say). Outside collections they do nothing. During one, the
 * target, and all it reaches, survives that collection, whatever stage it
 * is in: a finalizer that stores garbage into a live object resurrects it
 * safely. Stores made from a clear are reported, as any resurrection by a
 * clear is (CB_REPORT_SURVIVED_CLEAR). Edges made in the last stage (by
 * deallocators) are not covered; see docs/api.md. */
void cb_write_barrier(cb_heap *heap, void *node);
void cb_write_barrier_host(cb_heap *heap, cb_host_ref ref);

/* Called from a traverse (arg is the visit argument) or from a host trace
 * (arg is the cb_host_visitor): the object refers to a host object. */
void cb_visit_host(void *arg, cb_host_ref ref);

/* ------------------------------------------------------------------ */
/* Weak references                                                      */
/* ------------------------------------------------------------------ */

typedef void (*cb_weakref_callback)(cb_weakref *ref, void *data);

/* A weak reference to a tracked or untracked object of this heap. holder is
 * the node that owns the weakref (CPython's weakref object), or NULL when it
 * is owned outside the graph. When the target dies the reference is cleared
 * first; the callback then runs only if the holder survives. */
cb_status cb_weakref_new(cb_heap *heap, void *target, void *holder,
                         cb_weakref_callback callback, void *data, cb_weakref **out);
/* The target, or NULL once cleared. */
void *cb_weakref_get(const cb_weakref *ref);
/* Optional: on_clear(ref, data) runs whenever the heap clears ref (its
 * target died or was found garbage), before any user code can run, and not
 * on cb_weakref_free. For runtimes whose weakref objects keep their own copy
 * of the target (CPython's wr_object): it may only update the caller's own
 * memory, never call into cyclebridge. NULL removes it. */
cb_status cb_weakref_on_clear(cb_heap *heap, cb_weakref *ref, cb_weakref_callback on_clear);
/* Unregisters and frees the weakref; its callback will not run. */
cb_status cb_weakref_free(cb_heap *heap, cb_weakref *ref);
/* Clears every weakref to obj and runs their callbacks, as a dealloc must
 * (CPython's PyObject_ClearWeakRefs). Done for you by cb_decref. */
cb_status cb_clear_weakrefs(cb_heap *heap, void *obj);

/* ------------------------------------------------------------------ */
/* Collections                                                          */
/* ------------------------------------------------------------------ */

#define CB_GENERATIONS 3   /* 0 and 1 young, 2 old; a full collection takes all */
#define CB_FULL (CB_GENERATIONS - 1)

typedef enum cb_phase {
    CB_PHASE_COUNT = 0,     /* trial deletion */
    CB_PHASE_MARK,          /* roots to fixed point, across both heaps */
    CB_PHASE_LEGACY,        /* cycles holding legacy finalizers set aside,
                               garbage split from the survivors */
    CB_PHASE_WEAKREFS,      /* weakrefs to garbage cleared, callbacks run */
    CB_PHASE_FINALIZE,      /* finalizers run */
    CB_PHASE_RESURRECT,     /* reachability checked again */
    CB_PHASE_CLEAR,         /* clear callbacks, deallocation */
    CB_PHASE_SWEEP,         /* host objects returned to their collector */
    CB_PHASE_COUNT_
} cb_phase;

typedef struct cb_collection_stats {
    int generation;          /* oldest generation collected; CB_FULL for full */
    uint64_t examined;       /* nodes in the collected set */
    uint64_t roots;          /* of those, rooted by count, handle or host */
    uint64_t garbage;        /* unreachable nodes found */
    uint64_t freed;          /* released during the collection: cb_alloc memory
                                freed (however the count reached zero), or
                                external objects deallocated */
    uint64_t uncollectable;  /* set aside for legacy finalizers */
    uint64_t finalized;      /* finalizers run */
    uint64_t resurrected;    /* garbage made reachable again by finalizers */
    uint64_t weakrefs_cleared;
    uint64_t weakref_callbacks;
    uint64_t host_marked;    /* host objects marked by the bridge */
    uint64_t reports;        /* reports issued during the collection */
    uint64_t phase_ns[CB_PHASE_COUNT_];
    uint64_t total_ns;
} cb_collection_stats;

/* Collects generations 0..generation. A full collection (CB_FULL) also
 * marks the host heap through the host interface; on a heap that has a
 * host-driven collection in progress it returns CB_ERR_BUSY. stats may be NULL.
 * Asked for from inside a callback of a running collection: CB_ERR_BUSY,
 * and nothing runs. */
cb_status cb_collect(cb_heap *heap, int generation, cb_collection_stats *stats);
/* One slice of an incremental full collection: the first call starts one,
 * each runs about `budget` nodes' worth of its work (0: the rest of it) and
 * returns, and the program runs between slices as it likes, changing
 * counts and edges, making and freeing nodes (edges the counts do not show
 * need their write barrier, as always). *finished is set to 1 by the slice
 * that ends the collection, which also fills *stats (both may be NULL).
 * The last slice checks what the others found against the heap as it is
 * then: nothing reachable is freed, whatever the program did; what became
 * garbage during the collection waits for the next one. The check costs
 * what the garbage costs, not what the heap does, and the garbage's clears
 * are spread over the slices after it (budget / 4 clears each). While it runs, cb_is_collecting is true and other collections
 * are refused (CB_ERR_BUSY); cb_heap_destroy between slices abandons it.
 * With a host interface, host objects are marked in the slices too; the
 * host's stores of host objects need cb_write_barrier_host between slices
 * (docs/api.md). Slices count and mark on one thread. */
cb_status cb_collect_slice(cb_heap *heap, size_t budget, int *finished, cb_collection_stats *stats);
/* cb_collect_slice with a time budget instead of a work budget: the slice
 * returns once `nanoseconds` have passed (0: the rest of it), the clock
 * read every 1,024 steps of work (256 clears), so it overruns by the time
 * of 1,024 steps at most (about 20 microseconds on the machine of
 * docs/performance.md). Two steps are not cut short: the slice in which the marking ends
 * also runs the check (the garbage's cost), and one callback (a traverse,
 * a clear) runs to its end. Budgets of both kinds may alternate. */
cb_status cb_collect_slice_for(cb_heap *heap, uint64_t nanoseconds, int *finished, cb_collection_stats *stats);
/* Finds what a full collection would find unreachable now and calls
 * found(ctx, obj) for each, without running any callback but traverses:
 * nothing is finalized, cleared or freed, and no collection is recorded.
 * A bridge-driven host takes part if its interface has reset_marks (its
 * marks are put back); otherwise host references count as external.
 * stats (may be NULL) gets examined, roots, garbage and host_marked. */
typedef void (*cb_found_fn)(void *ctx, void *obj);
cb_status cb_find_unreachable(cb_heap *heap, cb_found_fn found, void *ctx, cb_collection_stats *stats);

/* Threads for counting and marking: the calling thread and threads - 1
 * helpers the heap starts now and keeps until the heap is destroyed or
 * this is called again (1, the default: the caller alone; at most
 * CB_MAX_THREADS). Collections of at least min_nodes nodes (0: 32,768)
 * then count on all of them, and mark on all of them when no host is
 * marked (host callbacks run on the collecting thread only); heaps with
 * CB_HEAP_VERIFY or objects from cb_track_external stay serial. While
 * helpers run, traverse (and the is_node filter) is called from several
 * threads at once, each call for a different object: it may read its
 * object and call visit, nothing else; an API call that names an object,
 * or cb_alloc, from a traverse is then refused (CB_ERR_BUSY, reported).
 * Everything else runs on the calling thread, as before. Refused during a
 * collection. Whether it pays depends on the graph and the machine: see
 * docs/performance.md. */
#define CB_MAX_THREADS 64
cb_status cb_set_threads(cb_heap *heap, unsigned threads, size_t min_nodes);
unsigned cb_get_threads(const cb_heap *heap);

/* Statistics of the last finished collection. */
cb_status cb_last_stats(const cb_heap *heap, cb_collection_stats *stats);
/* 0: no collection runs; 1: one is counting or marking; 2: its garbage is
 * known and being torn down (no weakref leads to it any more). */
int cb_is_collecting(const cb_heap *heap);

/* Automatic collection, as CPython's: generation 0 is collected when
 * objects tracked minus objects untracked or deallocated since its last
 * collection exceed threshold0, generation 1 after
 * threshold1 collections of generation 0, and so on; a full collection
 * also waits until the objects surviving since the last one exceed 25% of
 * the old generation. Defaults 700, 10, 10. */
cb_status cb_set_thresholds(cb_heap *heap, uint32_t t0, uint32_t t1, uint32_t t2);
void cb_get_thresholds(const cb_heap *heap, uint32_t out[CB_GENERATIONS]);
/* Runs the collection automatic collection would run now, if any. */
cb_status cb_collect_if_due(cb_heap *heap);
void cb_set_automatic(cb_heap *heap, int enabled);
/* Tracked objects per generation. */
size_t cb_generation_size(const cb_heap *heap, int generation);

/* gc.freeze(): every tracked object moves into a permanent generation that
 * collections never free. cb_unfreeze moves them back to the oldest. */
cb_status cb_freeze(cb_heap *heap);
cb_status cb_unfreeze(cb_heap *heap);
size_t cb_frozen_count(const cb_heap *heap);

typedef enum cb_collection_event { CB_COLLECTION_START = 0, CB_COLLECTION_STOP = 1 } cb_collection_event;
typedef void (*cb_collection_callback)(void *ctx, cb_collection_event event,
                                       const cb_collection_stats *stats);
/* Like gc.callbacks. Callbacks may not start collections (CB_ERR_BUSY). */
cb_status cb_add_collection_callback(cb_heap *heap, cb_collection_callback fn, void *ctx);
cb_status cb_remove_collection_callback(cb_heap *heap, cb_collection_callback fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Uncollectable garbage (gc.garbage)                                   */
/* ------------------------------------------------------------------ */

typedef enum cb_uncollectable_reason {
    CB_UNCOLLECTABLE_LEGACY_FINALIZER = 0,  /* the object has a legacy finalizer */
    CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY  /* a garbage object with one reaches it */
} cb_uncollectable_reason;

typedef struct cb_uncollectable {
    void *object;
    cb_uncollectable_reason reason;
    void *culprit;   /* the object with the legacy finalizer */
} cb_uncollectable;

/* The heap holds one count on every object in the list. */
size_t cb_uncollectable_count(const cb_heap *heap);
cb_status cb_uncollectable_get(const cb_heap *heap, size_t index, cb_uncollectable *out);
/* Empties the list, dropping the heap's counts (del gc.garbage[:]). */
cb_status cb_uncollectable_release(cb_heap *heap);

/* ------------------------------------------------------------------ */
/* Bridge-driven: the bridge marks the host heap through this interface */
/* ------------------------------------------------------------------ */

typedef struct cb_host_visitor cb_host_visitor;

typedef struct cb_host_interface {
    void *ctx;
    /* Visit every host root with cb_host_visit. */
    void (*enumerate_roots)(void *ctx, cb_host_visitor *visitor);
    /* Visit what one host object refers to: host objects with
     * cb_host_visit, nodes with cb_host_visit_node. */
    void (*trace)(void *ctx, cb_host_ref obj, cb_host_visitor *visitor);
    /* Set the object's mark; return nonzero if it was not marked. */
    int (*mark)(void *ctx, cb_host_ref obj);
    /* After teardown: reclaim unmarked host objects, unmark the others. */
    void (*sweep)(void *ctx);
    /* The collection failed (a callback threw) and frees nothing: unmark
     * every host object without reclaiming any. */
    void (*reset_marks)(void *ctx);
} cb_host_interface;

/* NULL detaches the host. A heap with a host interface is bridge-driven. */
cb_status cb_set_host(cb_heap *heap, const cb_host_interface *host);
void cb_host_visit(cb_host_visitor *visitor, cb_host_ref ref);
void cb_host_visit_node(cb_host_visitor *visitor, void *node);

/* ------------------------------------------------------------------ */
/* Host-driven: the host's collector calls the bridge at fixed points   */
/* ------------------------------------------------------------------ */
/*
 * One full collection, driven by the host's collector:
 *
 *   cb_hd_prologue(heap, &hooks);          trial deletion; host objects that
 *                                          rooted nodes reach arrive at
 *                                          hooks.mark_host
 *   loop:
 *     host marks its heap; for every foreign reference in a marked host
 *     object it calls cb_hd_visit_node(heap, node);
 *     cb_hd_trace(heap, budget, &idle);    marks foreign nodes; host objects
 *                                          they reach arrive at mark_host
 *     until the host's work list is empty and idle is set
 *   cb_hd_epilogue(heap, &finished);       teardown; if finished is 0, new
 *                                          host objects arrived at mark_host:
 *                                          go round the loop and call
 *                                          cb_hd_epilogue again
 *   host sweeps its unmarked objects.
 */
typedef struct cb_host_hooks {
    void *ctx;
    /* Mark obj and push it on the host's work list (if not marked yet). */
    void (*mark_host)(void *ctx, cb_host_ref obj);
} cb_host_hooks;

cb_status cb_hd_prologue(cb_heap *heap, const cb_host_hooks *hooks);
cb_status cb_hd_visit_node(cb_heap *heap, void *node);
/* budget: nodes to trace before returning; 0 for no limit. */
cb_status cb_hd_trace(cb_heap *heap, size_t budget, int *idle);
/* For hosts that sweep before the teardown can run (Boehm GC: its sweep
 * holds a lock that the code a teardown runs may need). Call it once the
 * marking is done (the host's work list empty, idle set) and before the
 * sweep: every host object that an unmarked node refers to arrives at
 * hooks.mark_host. The host keeps those, and all they reach, through this
 * sweep, but follows no node from them (such nodes are garbage already).
 * cb_hd_epilogue then runs after the host's collection; the host objects it
 * hands over are all alive still, and need tracing only. */
cb_status cb_hd_retain(cb_heap *heap);
/* Ends a host-driven collection whose marking the host gave up, before
 * cb_hd_epilogue: nothing is freed. CB_ERR_WRONG_PHASE once the teardown
 * has started. */
cb_status cb_hd_abandon(cb_heap *heap);
/* Returns CB_ERR_CALLBACK_FAILED with *finished set when a callback threw
 * during the collection: nothing was freed, and the host must not sweep
 * (its marking may be incomplete); it unmarks its objects instead. */
cb_status cb_hd_epilogue(cb_heap *heap, int *finished);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_H */
