// API misuse: every call returns its documented status, is reported (kind
// API_MISUSE, with that status), and leaves the heap unchanged and usable.
#include <cstring>
#include "support/test_graph.hpp"

#include <set>

#include "support/lsan.hpp"

using namespace cbt;

namespace {

#define EXPECT_MISUSE(g, call, status)                                                              \
    do {                                                                                            \
        uint64_t before_ = cb_report_count((g).heap);                                               \
        EXPECT_EQ((call), (status)) << #call;                                                       \
        EXPECT_TRUE((g).take_report(CB_REPORT_API_MISUSE, (status))) << #call << "\n" << (g).report_log(); \
        EXPECT_EQ(cb_report_count((g).heap), before_ + 1) << #call;                                 \
    } while (0)

TEST(Misuse, StatusNamesAreDistinct) {
    std::set<std::string> names;
    for (int s = CB_OK; s <= CB_ERR_CALLBACK_FAILED; ++s) {
        const char *n = cb_status_name(cb_status(s));
        ASSERT_NE(n, nullptr);
        EXPECT_GT(std::strlen(n), 0u);
        names.insert(n);
    }
    EXPECT_EQ(names.size(), size_t(CB_ERR_CALLBACK_FAILED) + 1);
    EXPECT_NE(cb_status_name(cb_status(999)), nullptr);
}

TEST(Misuse, NullPointers) {
    Graph g;
    Node *a = g.rc();
    EXPECT_MISUSE(g, cb_track(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_untrack(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_incref(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_decref(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_host_acquire(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_host_release(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_clear_weakrefs(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_weakref_free(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    cb_weakref *w = nullptr;
    EXPECT_MISUSE(g, cb_weakref_new(g.heap, nullptr, nullptr, nullptr, nullptr, &w), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_weakref_new(g.heap, a, nullptr, nullptr, nullptr, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_type_register(g.heap, nullptr, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_add_collection_callback(g.heap, nullptr, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_track_external(g.heap, g.type(RC()), nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_track_external(g.heap, nullptr, a), CB_ERR_NULL_ARGUMENT);
    EXPECT_MISUSE(g, cb_last_stats(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(cb_alloc(g.heap, nullptr, 16), nullptr);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_NULL_ARGUMENT) ||
                g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT))
        << g.report_log();
    // Without a heap nothing can be reported, but nothing may crash.
    EXPECT_EQ(cb_track(nullptr, a), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(cb_incref(nullptr, a), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(cb_collect(nullptr, CB_FULL, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(cb_refheap_new(nullptr, CB_DRIVE_BRIDGE), nullptr);
    EXPECT_EQ(cb_weakref_get(nullptr), nullptr);
    // The heap is unchanged.
    EXPECT_EQ(g.count(a), 1);
    EXPECT_EQ(tracked_total(g.heap), 1u);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
    expect_collector_still_works(g);
}

TEST(Misuse, TypeRegistrationChecks) {
    Graph g;
    cb_type *out = nullptr;
    cb_type_spec s{};
    s.name = "bad";
    s.kind = CB_KIND_REFCOUNTED;
    s.count_offset = 0;
    // traverse is required
    cb_status st = cb_type_register(g.heap, &s, &out);
    EXPECT_TRUE(st == CB_ERR_NULL_ARGUMENT || st == CB_ERR_BAD_ARGUMENT) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st));
    s.traverse = [](void *, cb_visit_fn, void *) { return 0; };
    // out is required
    EXPECT_MISUSE(g, cb_type_register(g.heap, &s, nullptr), CB_ERR_NULL_ARGUMENT);
    // negative offset without accessors
    s.count_offset = -1;
    EXPECT_MISUSE(g, cb_type_register(g.heap, &s, &out), CB_ERR_BAD_ARGUMENT);
    // count offset not aligned for an intptr_t (documented BAD_ARGUMENT)
    s.count_offset = 3;
    EXPECT_MISUSE(g, cb_type_register(g.heap, &s, &out), CB_ERR_BAD_ARGUMENT);
    s.count_offset = 0;
    // An unknown kind, as a C caller can pass it (any int fits a C enum).
    // Written through memcpy: the library must not load it as a cb_kind.
    int bad_kind = 7;
    std::memcpy(&s.kind, &bad_kind, sizeof bad_kind);
    EXPECT_MISUSE(g, cb_type_register(g.heap, &s, &out), CB_ERR_BAD_ARGUMENT);
    s.kind = CB_KIND_REFCOUNTED;
    // a good one; the name is copied
    std::string name = "good-type";
    s.name = name.c_str();
    s.count_offset = 0;
    ASSERT_EQ(cb_type_register(g.heap, &s, &out), CB_OK);
    name = "XXXXXXXXX";
    EXPECT_STREQ(cb_type_name(out), "good-type");
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Misuse, DoubleTrackAndUntrack) {
    Graph g;
    Node *a = g.rc();
    EXPECT_MISUSE(g, cb_track(g.heap, a), CB_ERR_ALREADY_TRACKED);
    EXPECT_EQ(cb_generation_size(g.heap, 0), 1u);
    ASSERT_EQ(cb_untrack(g.heap, a), CB_OK);
    EXPECT_MISUSE(g, cb_untrack(g.heap, a), CB_ERR_NOT_TRACKED);
    EXPECT_EQ(tracked_total(g.heap), 0u);
    ASSERT_EQ(cb_track(g.heap, a), CB_OK);
    EXPECT_EQ(tracked_total(g.heap), 1u);
    // Tracked again, after a round trip, it is collected normally.
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

TEST(Misuse, UntrackAfterCollectionPromotion) {
    // An object that moved generations can still be untracked and tracked;
    // the generation arrays stay consistent.
    Graph g;
    std::vector<Node *> ns;
    for (int i = 0; i < 10; ++i) ns.push_back(g.rc());
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_EQ(cb_generation_size(g.heap, 1), 10u);
    for (int i = 0; i < 10; i += 2) ASSERT_EQ(cb_untrack(g.heap, ns[i]), CB_OK);
    EXPECT_EQ(cb_generation_size(g.heap, 1), 5u);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(cb_generation_size(g.heap, CB_FULL), 5u);
    for (int i = 0; i < 10; i += 2) ASSERT_EQ(cb_track(g.heap, ns[i]), CB_OK);
    EXPECT_EQ(cb_generation_size(g.heap, 0), 5u);
    for (Node *n : ns) g.drop(n);
    EXPECT_EQ(tracked_total(g.heap), 0u);
}

TEST(Misuse, FreeOfTrackedObjectIsRefused) {
    Graph g;
    Node *a = g.rc();
    EXPECT_MISUSE(g, cb_free(g.heap, a), CB_ERR_ALREADY_TRACKED);
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    EXPECT_EQ(g.count(a), 1);
    EXPECT_EQ(cb_generation_size(g.heap, 0), 1u);
    g.drop(a);   // the object is intact: normal dealloc works
    EXPECT_EQ(g.live_nodes(), 0u);
}

TEST(Misuse, ReallocOfTrackedObjectIsRefused) {
    Graph g;
    Node *a = g.rc();
    EXPECT_EQ(cb_realloc(g.heap, a, 4096), nullptr);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_ALREADY_TRACKED)) << g.report_log();
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    EXPECT_EQ(g.count(a), 1);
}

// cb_realloc keeps contents, alignment, count and type; like CPython's
// PyObject_GC_Resize it leaves the new bytes uninitialized.
TEST(Misuse, ReallocKeepsContentsCountAndType) {
    Graph g;
    cb_type_spec s{};
    s.name = "raw";
    s.kind = CB_KIND_REFCOUNTED;
    s.traverse = [](void *, cb_visit_fn, void *) { return 0; };
    s.count_offset = 0;
    cb_type *t = nullptr;
    ASSERT_EQ(cb_type_register(g.heap, &s, &t), CB_OK);
    auto *p = static_cast<unsigned char *>(cb_alloc(g.heap, t, 32));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    for (int i = 8; i < 32; ++i) EXPECT_EQ(p[i], 0) << i;
    for (int i = 8; i < 32; ++i) p[i] = static_cast<unsigned char>(i);
    p = static_cast<unsigned char *>(cb_realloc(g.heap, p, 256));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(cb_count(g.heap, p), 1);
    for (int i = 8; i < 32; ++i) EXPECT_EQ(p[i], i);
    std::memset(p + 32, 0, 256 - 32);   // new bytes are the caller's to set
    EXPECT_EQ(cb_type_of(g.heap, p), t);
    ASSERT_EQ(cb_track(g.heap, p), CB_OK);
    ASSERT_EQ(cb_decref(g.heap, p), CB_OK);   // dealloc NULL: cb_free
}

TEST(Misuse, DocumentedArgumentChecks) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Graph other;
    // A type of another heap.
    EXPECT_EQ(cb_alloc(g.heap, other.type(RC()), 64), nullptr);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT)) << g.report_log();
    // No room for the count.
    EXPECT_EQ(cb_alloc(g.heap, g.type(RC()), 4), nullptr);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT)) << g.report_log();
    // cb_track_external of an object from cb_alloc (detectable under VERIFY).
    Node *a = g.rc(/*track=*/false);
    EXPECT_MISUSE(g, cb_track_external(g.heap, g.type(RC()), a), CB_ERR_BAD_ARGUMENT);
    // A freed pointer, and a pointer that never was a node.
    Node *f = g.rc();
    void *stale = f;
    g.drop(f);
    EXPECT_MISUSE(g, cb_incref(g.heap, stale), CB_ERR_NOT_A_NODE);
    EXPECT_MISUSE(g, cb_track(g.heap, stale), CB_ERR_NOT_A_NODE);
    int junk[8] = {};
    EXPECT_MISUSE(g, cb_decref(g.heap, &junk[4]), CB_ERR_NOT_A_NODE);
    cb_weakref *w = nullptr;
    EXPECT_MISUSE(g, cb_weakref_new(g.heap, &junk[4], nullptr, nullptr, nullptr, &w), CB_ERR_NOT_A_NODE);
    EXPECT_EQ(cb_count(g.heap, stale), 0) << "read-only functions return 0 for unknown pointers";
    EXPECT_EQ(cb_is_tracked(g.heap, &junk[4]), 0);
    EXPECT_EQ(cb_type_of(g.heap, &junk[4]), nullptr);
    // cb_free of an external node, realloc of an object with weakrefs.
    Node *e = g.make_external();
    cb_status st = cb_free(g.heap, e);
    EXPECT_TRUE(st == CB_ERR_BAD_ARGUMENT || st == CB_ERR_ALREADY_TRACKED) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st)) << g.report_log();
    EXPECT_TRUE(cb_is_tracked(g.heap, e));
    EXPECT_EQ(g.count(a), 1);
    cb_weakref *wa = nullptr;
    ASSERT_EQ(cb_weakref_new(g.heap, a, nullptr, nullptr, nullptr, &wa), CB_OK);
    EXPECT_EQ(cb_realloc(g.heap, a, 512), nullptr);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT)) << g.report_log();
    EXPECT_EQ(cb_weakref_get(wa), a);
    ASSERT_EQ(cb_weakref_free(g.heap, wa), CB_OK);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Misuse, UntrackingAnExternalNodeForgetsIt) {
    // Documented: cb_untrack of an external node forgets it, and clears its
    // weakrefs without running their callbacks.
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Node *e = g.make_external();
    WeakRec *w = g.weakref(e);
    ASSERT_EQ(cb_untrack(g.heap, e), CB_OK);
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 0);
    EXPECT_EQ(cb_type_of(g.heap, e), nullptr) << "the heap no longer knows the pointer";
    EXPECT_MISUSE(g, cb_incref(g.heap, e), CB_ERR_NOT_A_NODE);
    EXPECT_EQ(e->refcnt, 1);
    // It can be tracked again as a new external node.
    ASSERT_EQ(cb_track_external(g.heap, g.type(RC()), e), CB_OK);
    int ie = e->id;
    g.drop(e);
    EXPECT_TRUE(g.dead(ie));
}

TEST(Misuse, FreeClearsWeakrefsWithoutCallbacks) {
    Graph g;
    Node *u = g.rc(/*track=*/false);
    int iu = u->id;
    WeakRec *w = g.weakref(u);
    u->~Node();
    ASSERT_EQ(cb_free(g.heap, u), CB_OK);
    g.forget_node(iu);
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 0);
}

TEST(Misuse, CollectGenerationOutOfRange) {
    Graph g;
    EXPECT_MISUSE(g, cb_collect(g.heap, -1, nullptr), CB_ERR_BAD_ARGUMENT);
    EXPECT_MISUSE(g, cb_collect(g.heap, CB_GENERATIONS, nullptr), CB_ERR_BAD_ARGUMENT);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    expect_collector_still_works(g);
}

TEST(Misuse, CountOverflowIsRefused) {
    Graph g;
    Node *a = g.rc(/*track=*/false);
    a->refcnt = INTPTR_MAX;
    EXPECT_MISUSE(g, cb_incref(g.heap, a), CB_ERR_OVERFLOW);
    EXPECT_EQ(a->refcnt, INTPTR_MAX);
    a->refcnt = 1;
    g.drop(a);
}

TEST(Misuse, WeakrefMisuse) {
    Graph g;
    Node *a = g.rc();
    cb_weakref *w = nullptr;
    ASSERT_EQ(cb_weakref_new(g.heap, a, nullptr, nullptr, nullptr, &w), CB_OK);
    EXPECT_EQ(cb_weakref_get(w), a);
    ASSERT_EQ(cb_weakref_free(g.heap, w), CB_OK);
    // a weakref without callback is cleared silently
    ASSERT_EQ(cb_weakref_new(g.heap, a, nullptr, nullptr, nullptr, &w), CB_OK);
    int ia = a->id;
    g.drop(a);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(cb_weakref_get(w), nullptr);
    ASSERT_EQ(cb_weakref_free(g.heap, w), CB_OK);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Misuse, HostDrivenStepsOutOfOrder) {
    Graph g;   // no host interface: host-driven steps allowed
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    int idle = 0, finished = 0;
    EXPECT_MISUSE(g, cb_hd_trace(g.heap, 0, &idle), CB_ERR_WRONG_PHASE);
    EXPECT_MISUSE(g, cb_hd_epilogue(g.heap, &finished), CB_ERR_WRONG_PHASE);
    EXPECT_MISUSE(g, cb_hd_visit_node(g.heap, a), CB_ERR_WRONG_PHASE);
    EXPECT_MISUSE(g, cb_hd_prologue(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(cb_is_collecting(g.heap), 0);

    std::vector<cb_host_ref> marked;
    cb_host_hooks hooks{&marked, [](void *ctx, cb_host_ref r) {
                            static_cast<std::vector<cb_host_ref> *>(ctx)->push_back(r);
                        }};
    ASSERT_EQ(cb_hd_prologue(g.heap, &hooks), CB_OK);
    EXPECT_NE(cb_is_collecting(g.heap), 0);
    // A second prologue is a step out of order (or a collection asked for
    // while one runs).
    cb_status st = cb_hd_prologue(g.heap, &hooks);
    EXPECT_TRUE(st == CB_ERR_WRONG_PHASE || st == CB_ERR_BUSY) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st) || g.take_report(CB_REPORT_REENTRANT_COLLECT, st))
        << g.report_log();
    // Documented: a full collection during a host-driven one is refused.
    EXPECT_EQ(cb_collect(g.heap, CB_FULL, nullptr), CB_ERR_BUSY);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BUSY) ||
                g.take_report(CB_REPORT_REENTRANT_COLLECT, CB_ERR_BUSY))
        << g.report_log();
    // Finish properly.
    for (;;) {
        ASSERT_EQ(cb_hd_trace(g.heap, 0, &idle), CB_OK);
        if (!idle) continue;
        ASSERT_EQ(cb_hd_epilogue(g.heap, &finished), CB_OK);
        if (finished) break;
    }
    EXPECT_TRUE(marked.empty());
    EXPECT_TRUE(g.dead(ia)) << "a host-driven collection frees a garbage self-cycle";
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    // After the epilogue the steps are out of order again.
    EXPECT_MISUSE(g, cb_hd_trace(g.heap, 0, &idle), CB_ERR_WRONG_PHASE);
    EXPECT_MISUSE(g, cb_hd_epilogue(g.heap, &finished), CB_ERR_WRONG_PHASE);
    expect_collector_still_works(g);
}

TEST(Misuse, HostDrivenStepsOnBridgeDrivenHeap) {
    Graph g(CB_DRIVE_BRIDGE);
    cb_host_hooks hooks{nullptr, [](void *, cb_host_ref) {}};
    EXPECT_MISUSE(g, cb_hd_prologue(g.heap, &hooks), CB_ERR_WRONG_MODE);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    EXPECT_EQ(cb_refheap_new(g.heap, CB_DRIVE_BRIDGE), nullptr) << "the heap already has a host";
    g.clear_reports();
    expect_collector_still_works(g);
}

TEST(Misuse, HostDrivenPrologueWithoutMarkHook) {
    Graph g;
    cb_host_hooks hooks{nullptr, nullptr};
    cb_status st = cb_hd_prologue(g.heap, &hooks);
    EXPECT_TRUE(st == CB_ERR_NULL_ARGUMENT || st == CB_ERR_BAD_ARGUMENT) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st));
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
}

TEST(Misuse, RefheapMisuse) {
    Graph g(CB_DRIVE_BRIDGE);
    EXPECT_EQ(cb_refheap_mode(g.rh), CB_DRIVE_BRIDGE);
    cb_host_ref h = g.host(2);
    Node *a = g.rc();
    EXPECT_MISUSE(g, cb_refheap_set_node(g.rh, h, 2, a), CB_ERR_BAD_ARGUMENT);
    EXPECT_MISUSE(g, cb_refheap_set_host(g.rh, h, 5, h), CB_ERR_BAD_ARGUMENT);
    EXPECT_MISUSE(g, cb_refheap_set_empty(g.rh, h, 2), CB_ERR_BAD_ARGUMENT);
    EXPECT_EQ(g.count(a), 1) << "a refused store takes no reference";
    cb_status st = cb_refheap_remove_root(g.rh, h);   // not a root
    EXPECT_TRUE(st == CB_ERR_UNDERFLOW || st == CB_ERR_BAD_ARGUMENT) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st)) << g.report_log();
    // Slots still work.
    g.set_slot(h, 1, a);
    EXPECT_EQ(g.count(a), 2);
    EXPECT_EQ(cb_refheap_get_node(g.rh, h, 1), a);
    EXPECT_EQ(cb_refheap_get_host(g.rh, h, 1), nullptr);
    g.set_slot(h, 1, h);   // overwriting drops the node reference
    EXPECT_EQ(g.count(a), 1);
    EXPECT_EQ(cb_refheap_get_host(g.rh, h, 1), h);
    g.empty_slot(h, 1);
    EXPECT_EQ(cb_refheap_get_host(g.rh, h, 1), nullptr);
    EXPECT_EQ(cb_refheap_slot_count(g.rh, h), 2u);
    uint64_t id1 = g.hid(h), id2 = g.hid(g.host(1));
    EXPECT_NE(id1, id2);
    g.clear_reports();
}

TEST(Misuse, SetHostValidation) {
    Graph g;
    cb_host_interface hi{};
    cb_status st = cb_set_host(g.heap, &hi);   // no callbacks at all
    EXPECT_TRUE(st == CB_ERR_NULL_ARGUMENT || st == CB_ERR_BAD_ARGUMENT) << cb_status_name(st);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st));
    EXPECT_EQ(cb_set_host(g.heap, nullptr), CB_OK);   // detaching nothing is fine
    cb_refheap *rh = cb_refheap_new(g.heap, CB_DRIVE_BRIDGE);
    ASSERT_NE(rh, nullptr) << "a refused cb_set_host must leave the heap without a host";
    cb_refheap_destroy(rh);
    expect_collector_still_works(g);
}

TEST(Misuse, RemovingUnknownCallback) {
    Graph g;
    auto fn = [](void *, cb_collection_event, const cb_collection_stats *) {};
    cb_status st = cb_remove_collection_callback(g.heap, fn, nullptr);
    if (st != CB_OK) {
        EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, st));
    }
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Misuse, TrackExternalTwice) {
    Graph g;
    Node *e = g.make_external();
    EXPECT_MISUSE(g, cb_track_external(g.heap, g.type(RC()), e), CB_ERR_ALREADY_TRACKED);
    EXPECT_EQ(g.count(e), 1);
    int ie = e->id;
    g.drop(e);
    EXPECT_TRUE(g.dead(ie));
}

TEST(Misuse, DestroyReportsLeakedObjects) {
    auto *g = new Graph();
    g->allow_leak_report = true;
#ifdef CBT_HAVE_LSAN
    __lsan_disable();
#endif
    void *leak = cb_alloc(g->heap, g->type(RC()), 64);
#ifdef CBT_HAVE_LSAN
    __lsan_enable();
#endif
    ASSERT_NE(leak, nullptr);
    cb_heap *heap = g->heap;
    (void)heap;
    size_t before = g->reports.size();
    g->teardown();
    bool seen = false;
    for (size_t i = before; i < g->reports.size(); ++i)
        if (g->reports[i].kind == CB_REPORT_LEAKED_AT_DESTROY) seen = true;
    EXPECT_TRUE(seen);
    delete g;
}

TEST(Misuse, DestroyWhileHostDrivenCollectionWaits) {
    // Documented: destroying a heap while a host-driven collection waits
    // for the host abandons that collection (no leak, no crash).
    cb_heap *heap = cb_heap_new(nullptr);
    ASSERT_NE(heap, nullptr);
    cb_host_hooks hooks{nullptr, [](void *, cb_host_ref) {}};
    ASSERT_EQ(cb_hd_prologue(heap, &hooks), CB_OK);
    EXPECT_NE(cb_is_collecting(heap), 0);
    cb_heap_destroy(heap);
}

TEST(Misuse, ReportHandlerCanBeReset) {
    Graph g;
    uint64_t before = cb_report_count(g.heap);
    cb_set_report_handler(g.heap, nullptr, nullptr);   // default: stderr
    testing::internal::CaptureStderr();
    EXPECT_EQ(cb_track(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(err.empty()) << "the default handler prints to stderr";
    EXPECT_EQ(cb_report_count(g.heap), before + 1);
    cb_set_report_handler(g.heap, &detail::t_report, &g);
    EXPECT_TRUE(g.reports.empty());
}

TEST(Misuse, ReportCarriesObjectAndTypeName) {
    Graph g;
    Node *a = g.rc();
    ASSERT_EQ(cb_track(g.heap, a), CB_ERR_ALREADY_TRACKED);
    ASSERT_EQ(g.reports.size(), 1u);
    EXPECT_EQ(g.reports[0].kind, CB_REPORT_API_MISUSE);
    EXPECT_EQ(g.reports[0].status, CB_ERR_ALREADY_TRACKED);
    EXPECT_EQ(g.reports[0].object, a);
    EXPECT_EQ(g.reports[0].type_name, "rc");
    EXPECT_FALSE(g.reports[0].message.empty());
    g.clear_reports();
}

}  // namespace
