/*
 * cyclebridge-demo: the four kinds of garbage cycle cyclebridge exists for,
 * built 10,000 times each and then collected.
 *
 *   (a) a refcounted object that refers to itself;
 *   (b) two refcounted objects that refer to each other;
 *   (c) a refcounted object -> a host object -> the same refcounted object;
 *   (d) a refcounted object -> a handle-managed object -> the same
 *       refcounted object, with the handle closed.
 *
 * Every creator reference is dropped and no host object is rooted, so all of
 * it is garbage. First nothing runs the objects' traverse functions (as in
 * PyPy today): every object stays allocated. Then one cyclebridge full
 * collection runs over both heaps and must free all of it; the exit status
 * is non-zero if anything survives, so the demo doubles as a smoke check.
 *
 * It uses only the public C API: cyclebridge.h and refheap.h.
 *
 * Usage: cyclebridge-demo [bridge|host]
 *   bridge  (default) the bridge marks the reference host heap itself;
 *   host    the reference host heap's collector drives the bridge (cb_hd_*).
 */
#define _POSIX_C_SOURCE 200809L

#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/refheap.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_CYCLES 10000

/* ------------------------------------------------------------------ */
/* The demo's object type: a CPython-style extension object             */
/* ------------------------------------------------------------------ */

enum demo_kind {
    KIND_SELF = 0,     /* (a) */
    KIND_PAIR,         /* (b) */
    KIND_HOST_NODE,    /* (c), the refcounted side */
    KIND_HANDLE_RC,    /* (d), the refcounted side */
    KIND_HANDLE_HM,    /* (d), the handle-managed side */
    KIND_COUNT_
};

typedef struct demo_obj {
    intptr_t refcnt;          /* the count cyclebridge reads (count_offset) */
    int kind;                 /* enum demo_kind, for the per-kind counters */
    /* Up to two references to other objects of the bridge heap. A strong
     * reference holds a count on a refcounted target; a reference to a
     * handle-managed object is an edge only (the collector frees it). */
    struct demo_obj *ref[2];
    unsigned char strong[2];
    cb_host_ref host;         /* a reference into the host heap, or NULL */
} demo_obj;

/* dealloc and clear receive only the object: the heap is a global. */
static cb_heap *g_heap;
static long g_allocated[KIND_COUNT_];
static long g_deallocated[KIND_COUNT_];
static int g_errors;

#define CHECK(call)                                                          \
    do {                                                                     \
        cb_status st_ = (call);                                              \
        if (st_ != CB_OK) {                                                  \
            fprintf(stderr, "demo: %s failed: %s (line %d)\n", #call,        \
                    cb_status_name(st_), __LINE__);                          \
            exit(2);                                                         \
        }                                                                    \
    } while (0)

static int demo_traverse(void *self, cb_visit_fn visit, void *arg)
{
    demo_obj *o = self;
    for (int i = 0; i < 2; i++) {
        if (o->ref[i]) {
            int r = visit(o->ref[i], arg);
            if (r)
                return r;
        }
    }
    if (o->host)
        cb_visit_host(arg, o->host);
    return 0;
}

/* Drops every reference, as CPython's tp_clear does with Py_CLEAR: the
 * field is emptied before the count is dropped. */
static void demo_clear(void *self)
{
    demo_obj *o = self;
    o->host = NULL;
    for (int i = 0; i < 2; i++) {
        demo_obj *target = o->ref[i];
        int strong = o->strong[i];
        o->ref[i] = NULL;
        o->strong[i] = 0;
        if (target && strong && cb_decref(g_heap, target) != CB_OK)
            g_errors++;
    }
}

static void demo_dealloc(void *self)
{
    demo_obj *o = self;
    demo_clear(o); /* a refcounted object may die before its clear ran */
    g_deallocated[o->kind]++;
    if (cb_free(g_heap, o) != CB_OK)
        g_errors++;
}

static cb_type *register_type(const char *name, cb_kind kind)
{
    cb_type_spec spec = {0};
    spec.name = name;
    spec.kind = kind;
    spec.traverse = demo_traverse;
    spec.clear = demo_clear;
    spec.dealloc = demo_dealloc;
    spec.count_offset = offsetof(demo_obj, refcnt);
    cb_type *type = NULL;
    CHECK(cb_type_register(g_heap, &spec, &type));
    return type;
}

/* A new tracked object; the caller holds its one reference (or handle). */
static demo_obj *new_obj(const cb_type *type, int kind)
{
    demo_obj *o = cb_alloc(g_heap, type, sizeof *o);
    if (!o) {
        fprintf(stderr, "demo: cb_alloc failed\n");
        exit(2);
    }
    o->kind = kind;
    g_allocated[kind]++;
    CHECK(cb_track(g_heap, o));
    return o;
}

/* from refers to to; a strong reference takes a count on to. */
static void refer(demo_obj *from, int slot, demo_obj *to, int strong)
{
    from->ref[slot] = to;
    from->strong[slot] = (unsigned char)strong;
    if (strong)
        CHECK(cb_incref(g_heap, to));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long alive(int kind) { return g_allocated[kind] - g_deallocated[kind]; }

static size_t tracked_total(void)
{
    size_t n = 0;
    for (int g = 0; g < CB_GENERATIONS; g++)
        n += cb_generation_size(g_heap, g);
    return n;
}

int main(int argc, char **argv)
{
    cb_drive_mode mode = CB_DRIVE_BRIDGE;
    if (argc > 1 && strcmp(argv[1], "host") == 0) {
        mode = CB_DRIVE_HOST;
    } else if (argc > 1 && strcmp(argv[1], "bridge") != 0) {
        fprintf(stderr, "usage: %s [bridge|host]\n"
                "  bridge  the bridge marks the host heap itself (default)\n"
                "  host    the host's collector drives the bridge (cb_hd_*)\n",
                argv[0]);
        return 2;
    }

    /* No automatic collections: nothing runs a traverse until we ask. */
    cb_heap_options opts = {0};
    opts.flags = CB_HEAP_NO_AUTO_COLLECT;
    g_heap = cb_heap_new(&opts);
    if (!g_heap) {
        fprintf(stderr, "demo: cb_heap_new failed\n");
        return 2;
    }
    cb_refheap *host = cb_refheap_new(g_heap, mode);
    if (!host) {
        fprintf(stderr, "demo: cb_refheap_new failed\n");
        return 2;
    }

    cb_type *t_self = register_type("SelfCycle", CB_KIND_REFCOUNTED);
    cb_type *t_pair = register_type("PairCycle", CB_KIND_REFCOUNTED);
    cb_type *t_host_node = register_type("HostCycleNode", CB_KIND_REFCOUNTED);
    cb_type *t_handle_rc = register_type("HandleCycleNode", CB_KIND_REFCOUNTED);
    cb_type *t_handle_hm = register_type("HandleManaged", CB_KIND_HANDLE_MANAGED);

    /* Kept only to show, before any collection, that no count reached
     * zero and every host object is still there. */
    demo_obj **refcounted = malloc(sizeof(demo_obj *) * 5 * N_CYCLES);
    uint64_t *host_ids = malloc(sizeof(uint64_t) * N_CYCLES);
    size_t n_refcounted = 0;
    if (!refcounted || !host_ids) {
        fprintf(stderr, "demo: out of memory\n");
        return 2;
    }

    double t_build = now_ms();
    for (int i = 0; i < N_CYCLES; i++) {
        /* (a) x -> x */
        demo_obj *x = new_obj(t_self, KIND_SELF);
        refer(x, 0, x, 1);
        refcounted[n_refcounted++] = x;
        CHECK(cb_decref(g_heap, x));

        /* (b) p <-> q */
        demo_obj *p = new_obj(t_pair, KIND_PAIR);
        demo_obj *q = new_obj(t_pair, KIND_PAIR);
        refer(p, 0, q, 1);
        refer(q, 0, p, 1);
        refcounted[n_refcounted++] = p;
        refcounted[n_refcounted++] = q;
        CHECK(cb_decref(g_heap, p));
        CHECK(cb_decref(g_heap, q));

        /* (c) n -> h -> n: h is a host object whose slot holds n (a host
         * reference, which counts on n); n's traverse visits h. */
        demo_obj *n = new_obj(t_host_node, KIND_HOST_NODE);
        cb_host_ref h = cb_refheap_alloc(host, 1);
        if (!h) {
            fprintf(stderr, "demo: cb_refheap_alloc failed\n");
            return 2;
        }
        CHECK(cb_refheap_set_node(host, h, 0, n));
        n->host = h;
        host_ids[i] = cb_refheap_id(host, h);
        refcounted[n_refcounted++] = n;
        CHECK(cb_decref(g_heap, n));

        /* (d) r -> m -> r: m is handle-managed; r's reference to it is an
         * edge only, m holds a count on r. Closing m's one handle leaves
         * nothing rooting it. */
        demo_obj *r = new_obj(t_handle_rc, KIND_HANDLE_RC);
        demo_obj *m = new_obj(t_handle_hm, KIND_HANDLE_HM);
        refer(r, 0, m, 0);
        refer(m, 0, r, 1);
        refcounted[n_refcounted++] = r;
        CHECK(cb_decref(g_heap, r));
        CHECK(cb_decref(g_heap, m)); /* close the handle */
    }
    t_build = now_ms() - t_build;

    /* ---------------------------------------------------------------- */
    /* Without cyclebridge: nothing runs tp_traverse                     */
    /* ---------------------------------------------------------------- */
    size_t rc_nonzero = 0;
    for (size_t i = 0; i < n_refcounted; i++)
        if (cb_count(g_heap, refcounted[i]) > 0)
            rc_nonzero++;
    size_t hosts_live = 0;
    for (int i = 0; i < N_CYCLES; i++)
        if (cb_refheap_is_live(host, host_ids[i]))
            hosts_live++;
    free(refcounted);

    long before[KIND_COUNT_];
    for (int k = 0; k < KIND_COUNT_; k++)
        before[k] = alive(k);
    size_t host_before = cb_refheap_live_count(host);
    size_t tracked_before = tracked_total();

    printf("cyclebridge demo: %d garbage cycles of each kind, every creator "
           "reference dropped, no host root\n\n", N_CYCLES);
    printf("Built in %.1f ms. Without a collector that runs the objects' "
           "traverse functions\n(as in PyPy today, where nothing runs "
           "tp_traverse) all of it stays allocated:\n", t_build);
    printf("  refcounted objects whose count is still above zero: %zu of %zu\n",
           rc_nonzero, n_refcounted);
    printf("  host objects still alive, each held by a live node:  %zu of %d\n\n",
           hosts_live, N_CYCLES);

    /* ---------------------------------------------------------------- */
    /* One cyclebridge full collection of both heaps                     */
    /* ---------------------------------------------------------------- */
    uint64_t reports_before = cb_report_count(g_heap);
    cb_collection_stats st;
    double t_collect = now_ms();
    CHECK(cb_refheap_collect(host, &st));
    t_collect = now_ms() - t_collect;
    uint64_t reports = cb_report_count(g_heap) - reports_before;

    size_t host_after = cb_refheap_live_count(host);
    size_t tracked_after = tracked_total();

    printf("One cyclebridge full collection (cb_refheap_collect, %s): "
           "%.1f ms\n\n", mode == CB_DRIVE_HOST ? "host-driven" : "bridge-driven",
           t_collect);

    static const struct {
        const char *cycle;
        const char *object;
        int kind;          /* -1: the host heap */
    } rows[] = {
        {"(a) self-cycle", "refcounted", KIND_SELF},
        {"(b) two-object cycle", "refcounted", KIND_PAIR},
        {"(c) node -> host -> node", "refcounted", KIND_HOST_NODE},
        {"", "host object", -1},
        {"(d) node -> handle -> node", "refcounted", KIND_HANDLE_RC},
        {"", "handle-managed", KIND_HANDLE_HM},
    };
    printf("%-28s %-15s %10s %10s %10s %10s\n", "cycle", "object", "built",
           "before", "after", "deallocs");
    printf("%-28s %-15s %10s %10s %10s %10s\n", "----------------------------",
           "---------------", "----------", "----------", "----------", "----------");
    long total_before = 0, total_after = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        long built, b, a, freed;
        if (rows[i].kind < 0) {
            built = N_CYCLES;
            b = (long)host_before;
            a = (long)host_after;
            freed = b - a;
        } else {
            built = g_allocated[rows[i].kind];
            b = before[rows[i].kind];
            a = alive(rows[i].kind);
            freed = g_deallocated[rows[i].kind];
        }
        total_before += b;
        total_after += a;
        printf("%-28s %-15s %10ld %10ld %10ld %10ld\n", rows[i].cycle,
               rows[i].object, built, b, a, freed);
    }
    printf("%-28s %-15s %10s %10ld %10ld %10ld\n\n", "total", "", "",
           total_before, total_after, total_before - total_after);

    static const char *phase_names[CB_PHASE_COUNT_] = {
        "count", "mark", "legacy", "weakrefs",
        "finalize", "resurrect", "clear", "sweep",
    };
    printf("Collection statistics\n");
    printf("  %-22s %12llu\n", "nodes examined", (unsigned long long)st.examined);
    printf("  %-22s %12llu\n", "roots", (unsigned long long)st.roots);
    printf("  %-22s %12llu\n", "garbage found", (unsigned long long)st.garbage);
    printf("  %-22s %12llu\n", "nodes freed", (unsigned long long)st.freed);
    printf("  %-22s %12llu\n", "uncollectable", (unsigned long long)st.uncollectable);
    printf("  %-22s %12llu\n", "host objects marked", (unsigned long long)st.host_marked);
    printf("  %-22s %12llu\n", "reports", (unsigned long long)st.reports);
    printf("  %-22s %12.3f\n", "total (ms)", (double)st.total_ns / 1e6);
    for (int p = 0; p < CB_PHASE_COUNT_; p++)
        printf("  %-22s %12.3f\n", phase_names[p], (double)st.phase_ns[p] / 1e6);
    printf("  (phase times in ms)\n\n");

    int ok = 1;
    if (total_after != 0 || tracked_after != 0) {
        printf("FAIL: %ld objects survived the collection (%zu nodes still "
               "tracked, %zu before)\n", total_after, tracked_after, tracked_before);
        ok = 0;
    }
    if (reports != 0 || g_errors != 0) {
        printf("FAIL: %llu reports from the collector, %d failed calls in "
               "callbacks\n", (unsigned long long)reports, g_errors);
        ok = 0;
    }
    if (ok)
        printf("OK: every cycle was freed: %ld objects before, 0 after.\n",
               total_before);

    cb_refheap_destroy(host);
    cb_heap_destroy(g_heap);
    free(host_ids);
    return ok ? 0 : 1;
}
