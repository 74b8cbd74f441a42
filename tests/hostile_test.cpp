// Hostile callbacks: each case is detected and reported with the exact
// report kind, the collector stays consistent, and a second collection
// afterwards frees what it should.
#include "support/test_graph.hpp"

#include <array>
#include <set>

using namespace cbt;

namespace {

// ---------------------------------------------------------------------------
// Traverse visiting what it should not

TEST(Hostile, TraverseVisitsUntrackedNode) {
    Graph g;
    Node *u = g.rc(/*track=*/false);
    Node *a = g.rc();
    int ia = a->id, iu = u->id;
    g.link(a, a);
    a->on_traverse = [u](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(u, arg)) return r;
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_VISIT_UNTRACKED, u), 1);
    EXPECT_TRUE(g.dead(ia)) << "the untracked visit is ignored as an edge: a is still a garbage self-cycle";
    EXPECT_TRUE(g.alive(iu));
    EXPECT_EQ(g.count(u), 1) << "the untracked node's count must not change";
    EXPECT_FALSE(cb_is_tracked(g.heap, u));
    EXPECT_EQ(g.events.size(), 2u) << g.event_log();   // clear + dealloc of a only
    expect_collector_still_works(g);
}

TEST(Hostile, TraverseUntracksAndTracksNodesOfTheSet) {
    // During a stop-the-world count the set's headers hold trial deletion's
    // scratch where their positions would be (heap.hpp): a traverse that
    // untracks a node of the set must still take out the right one, and
    // the node moved into its place must keep its scratch.
    Graph g(CB_HEAP_NO_AUTO_COLLECT);
    std::vector<Node *> live;
    for (int i = 0; i < 8; ++i) live.push_back(g.rc());   // held by the program: roots
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    live.push_back(g.rc());   // last in generation 0: moved into the victim's place
    std::vector<int> live_ids;
    for (Node *n : live) live_ids.push_back(n->id);
    Node *made = nullptr;
    Node *victim = live[0];
    bool once = true;
    a->on_traverse = [&](Node &n, cb_visit_fn visit, void *arg) {
        if (once) {
            once = false;
            EXPECT_EQ(cb_untrack(g.heap, victim), CB_OK);
            made = g.rc();   // tracked during the count: not in the set
        }
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : live_ids) EXPECT_TRUE(g.alive(id)) << "a root lost its count when it was moved";
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    ASSERT_NE(made, nullptr);
    EXPECT_FALSE(cb_is_tracked(g.heap, victim));
    EXPECT_EQ(cb_generation_size(g.heap, 2), 9u) << "eight live nodes and the one made during the count";
    // Positions are right again: untracking each node takes out that node.
    ASSERT_EQ(cb_track(g.heap, victim), CB_OK);
    for (Node *n : live) ASSERT_EQ(cb_untrack(g.heap, n), CB_OK);
    ASSERT_EQ(cb_untrack(g.heap, made), CB_OK);
    EXPECT_EQ(cb_generation_size(g.heap, 0) + cb_generation_size(g.heap, 1) + cb_generation_size(g.heap, 2), 0u);
    for (Node *n : live) ASSERT_EQ(cb_track(g.heap, n), CB_OK);
    ASSERT_EQ(cb_track(g.heap, made), CB_OK);
    expect_collector_still_works(g);
    for (int id : live_ids) EXPECT_TRUE(g.alive(id));
}

TEST(Hostile, UntrackedVisitReportNamesTheType) {
    Graph g;
    Node *u = g.make(HM(), /*track=*/false);
    Node *r = g.rc();
    r->on_traverse = [u](Node &, cb_visit_fn visit, void *arg) { return visit(u, arg); };
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_GE(g.count_reports(CB_REPORT_VISIT_UNTRACKED), 1);
    EXPECT_EQ(g.reports[0].object, u);
    EXPECT_EQ(g.reports[0].type_name, "hm");
    g.clear_reports();
    EXPECT_EQ(g.count(u), 1);
}

TEST(Hostile, TraverseVisitsFreedPointerUnderVerify) {
    // Under CB_HEAP_VERIFY a freed pointer must be reported without being
    // read: ASan fails this test on any read of the freed block.
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Node *f = g.rc();
    void *stale = f;
    Node *a = g.rc(), *b = g.rc();   // before the free, which would hand f's block out again
    g.drop(f);   // freed now
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    a->on_traverse = [stale](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(stale, arg)) return r;
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_VISIT_INVALID, stale), 1);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    expect_collector_still_works(g);
}

TEST(Hostile, TraverseVisitsForeignPointersUnderVerify) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Graph other;
    Node *foreign = other.rc();   // a live node of another heap
    auto plain = std::make_unique<std::array<char, 64>>();   // malloc'd, not a node
    void *p1 = foreign, *p2 = plain->data() + 16;
    Node *r = g.rc();   // live
    Node *a = g.rc();   // garbage self-cycle
    int ir = r->id, ia = a->id;
    g.link(a, a);
    auto hostile = [p1, p2](Node &n, cb_visit_fn visit, void *arg) {
        if (int x = visit(p1, arg)) return x;
        if (int x = visit(p2, arg)) return x;
        return n.traverse_default(visit, arg);
    };
    r->on_traverse = hostile;
    a->on_traverse = hostile;
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_VISIT_INVALID, p1), 1);
    EXPECT_GE(g.take_reports(CB_REPORT_VISIT_INVALID, p2), 1);
    EXPECT_TRUE(g.alive(ir));
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(other.count(foreign), 1);
    EXPECT_TRUE(other.events.empty());
    r->on_traverse = nullptr;
    expect_collector_still_works(g);
}

int filter_calls = 0;
int is_node_filter(void *ctx, const void *ptr) {
    ++filter_calls;
    auto *non = static_cast<std::set<const void *> *>(ctx);
    return non->count(ptr) ? 0 : 1;
}

TEST(Hostile, IsNodeFilterSkipsNonNodesSilently) {
    // CPython's traverse functions visit ints and strings: the is_node
    // filter lets the heap skip them without a report.
    std::set<const void *> non;
    int small_int = 5;
    std::string str = "a string object";
    non.insert(&small_int);
    non.insert(str.data());
    filter_calls = 0;
    Graph g(CB_HEAP_NO_AUTO_COLLECT, &is_node_filter, &non);
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    const void *pi = &small_int, *ps = str.data();
    a->on_traverse = [pi, ps](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(const_cast<void *>(pi), arg)) return r;
        if (int r = visit(const_cast<void *>(ps), arg)) return r;
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GT(filter_calls, 0);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

// ---------------------------------------------------------------------------
// A traverse that throws: the collection frees nothing.

TEST(Hostile, TraverseThrowsDuringCount) {
    Graph g;
    Node *r = g.rc();                               // live
    (void)r;
    Node *t = g.make(RC().fin());                   // garbage, its traverse throws
    Node *p = g.make(RC().fin()), *q = g.rc();      // other garbage
    Node *m = g.hm();
    int it = t->id, ip = p->id, iq = q->id, im = m->id;
    g.link(t, t);
    g.link(p, q);
    g.link(q, p);
    g.link(q, m);
    WeakRec *w = g.weakref(q);
    g.drop(t);
    g.drop(p);
    g.drop(q);
    g.drop(m);
    t->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw Boom(); };
    intptr_t ct = g.count(t), cp = g.count(p), cq = g.count(q);
    size_t tracked = tracked_total(g.heap);

    int starts = 0, stops = 0;
    std::pair<int *, int *> ctr{&starts, &stops};
    auto cb = [](void *ctx, cb_collection_event ev, const cb_collection_stats *) {
        auto *p = static_cast<std::pair<int *, int *> *>(ctx);
        ++*(ev == CB_COLLECTION_START ? p->first : p->second);
    };
    ASSERT_EQ(cb_add_collection_callback(g.heap, cb, &ctr), CB_OK);

    EXPECT_EQ(g.full(), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.last.generation, CB_FULL) << "stats are filled even when the collection failed";
    EXPECT_EQ(g.last.freed, 0u);
    EXPECT_EQ(starts, 1);
    EXPECT_EQ(stops, 1) << "STOP is delivered also when the collection failed";
    ASSERT_EQ(cb_remove_collection_callback(g.heap, cb, &ctr), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, t), 1) << g.report_log();
    EXPECT_TRUE(g.events.empty()) << "a failed collection must free nothing: " << g.event_log();
    EXPECT_EQ(g.count(t), ct);
    EXPECT_EQ(g.count(p), cp);
    EXPECT_EQ(g.count(q), cq);
    EXPECT_EQ(tracked_total(g.heap), tracked);
    EXPECT_EQ(w->get(), q);
    EXPECT_EQ(w->calls, 0);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    EXPECT_EQ(cb_is_finalized(g.heap, p), 0);

    // The next collection, with a sane traverse, frees everything.
    t->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : {it, ip, iq, im}) EXPECT_TRUE(g.dead(id)) << id;
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(g.count_ev(Ev::Finalize), 2);
    expect_collector_still_works(g);
}

TEST(Hostile, TraverseThrowsDuringMark) {
    // r is a root; its traverse succeeds once (count) and throws the second
    // time (mark): the collection must still free nothing.
    Graph g;
    Node *r = g.rc(), *x = g.rc();
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ir = r->id, ix = x->id, ia = a->id, ib = b->id;
    g.link(r, x);
    g.drop(x);
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    r->on_traverse = [](Node &n, cb_visit_fn visit, void *arg) -> int {
        if (n.traverse_calls >= 2) throw Boom();
        return n.traverse_default(visit, arg);
    };
    EXPECT_EQ(g.full(), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, r), 1) << g.report_log();
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ix));
    r->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ir));
    EXPECT_TRUE(g.alive(ix));
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
}

TEST(Hostile, TraverseThrowsInYoungCollection) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    a->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw Boom(); };
    EXPECT_EQ(g.collect(0), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, a), 1);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.events.empty());
    a->on_traverse = nullptr;
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

TEST(Hostile, TraverseThrowsAfterFinalizersRan) {
    // The traverse only throws once finalizers have run (during the
    // resurrection check). Safe outcome: nothing is cleared or freed in that
    // collection; the next one frees the cycle without finalizing again.
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    bool finalized = false;
    a->on_finalize = [&](Node &) { finalized = true; };
    b->on_traverse = [&finalized](Node &n, cb_visit_fn visit, void *arg) -> int {
        if (finalized) throw Boom();
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    g.drop(b);
    cb_status st = g.full();
    EXPECT_TRUE(finalized);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    int threw = g.take_reports(CB_REPORT_CALLBACK_THREW, b);
    if (threw == 0) {
        // The implementation did not traverse after finalizers (no count
        // changed): the cycle is simply freed.
        EXPECT_EQ(st, CB_OK);
        EXPECT_TRUE(g.dead(ia));
        EXPECT_TRUE(g.dead(ib));
        return;
    }
    EXPECT_EQ(st, CB_ERR_CALLBACK_FAILED) << "documented: a throw in the resurrection check fails the collection";
    g.clear_reports();
    EXPECT_EQ(g.count_ev(Ev::Clear), 0) << "reachability unknown: clearing would be unsafe. " << g.event_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    b->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
}

class HostileHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(HostileHost, FailedCollectionReclaimsNoHostObject) {
    // r (live) -> h (unrooted). r's traverse throws: the bridge cannot know
    // r's edges, so h must not be swept. d <-> h3 is host-cycle garbage: not
    // freed by the failed collection either.
    Graph g(GetParam());
    Node *r = g.rc(), *d = g.rc();
    cb_host_ref h = g.host(1), h3 = g.host(1);
    uint64_t ih = g.hid(h), ih3 = g.hid(h3);
    int ir = r->id, id = d->id;
    g.link_host(r, h);
    g.link_host(d, h3);
    g.set_slot(h3, 0, d);
    g.drop(d);
    r->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw Boom(); };
    EXPECT_EQ(g.full(), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, r), 1) << g.report_log();
    EXPECT_TRUE(g.host_live(ih)) << "host object swept by a failed collection while a live node refers to it";
    EXPECT_TRUE(g.host_live(ih3));
    EXPECT_TRUE(g.alive(id));
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    r->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ir));
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_TRUE(g.dead(id));
    EXPECT_FALSE(g.host_live(ih3));
}

TEST_P(HostileHost, FinalizerAsksForCollections) {
    Graph g(GetParam());
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    cb_status s_full = CB_OK, s_young = CB_OK, s_rh = CB_OK;
    a->on_finalize = [&](Node &) {
        s_full = cb_collect(g.heap, CB_FULL, nullptr);
        s_young = cb_collect(g.heap, 0, nullptr);
        cb_collection_stats st{};
        s_rh = cb_refheap_collect(g.rh, &st);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(s_full, CB_ERR_BUSY);
    EXPECT_EQ(s_young, CB_ERR_BUSY);
    EXPECT_EQ(s_rh, CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 3) << g.report_log();
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

INSTANTIATE_TEST_SUITE_P(Modes, HostileHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Clear, finalize, dealloc and weakref callbacks that throw: reported, the
// collection continues.

TEST(Hostile, ClearThrowsBeforeDroppingAnything) {
    Graph g;
    Node *a = g.rc();
    Node *b = g.rc(), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    g.link(a, a);
    g.link(b, c);
    g.link(c, b);
    a->on_clear = [](Node &) { throw Boom(); };
    g.drop(a);
    g.drop(b);
    g.drop(c);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, a), 1) << g.report_log();
    g.take_reports(CB_REPORT_SURVIVED_CLEAR, a);   // a is still alive after its clear: may be reported
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.count(a), 1);
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    // Next collection with a working clear.
    a->on_clear = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

TEST(Hostile, ClearThrowsAfterDroppingEdges) {
    Graph g;
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    for (Node *n : {a, b})
        n->on_clear = [](Node &self) {
            self.drop_edges();
            throw Boom();
        };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_CALLBACK_THREW), 1);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    expect_collector_still_works(g);
}

TEST(Hostile, FinalizerThrows) {
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.make(RC().fin()), *c = g.make(RC().fin());
    int ia = a->id, ib = b->id, ic = c->id;
    g.ring({a, b, c});
    a->on_finalize = [](Node &) { throw Boom(); };
    g.drop(a);
    g.drop(b);
    g.drop(c);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, a), 1) << g.report_log();
    EXPECT_EQ(g.count_ev(Ev::Finalize), 3) << "the other finalizers still run";
    for (int id : {ia, ib, ic}) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.last.finalized, 3u);
    expect_collector_still_works(g);
}

TEST(Hostile, DeallocThrowsDuringCollection) {
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    g.link(a, a);
    g.link(b, c);
    g.link(c, b);
    a->throw_after_dealloc = true;
    g.drop(a);
    g.drop(b);
    g.drop(c);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
    for (int id : {ia, ib, ic}) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.last.freed, 3u);
    expect_collector_still_works(g);
}

TEST(Hostile, DeallocThrowsFromDecref) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    a->throw_after_dealloc = true;
    cb_status st = CB_OK;
    EXPECT_NO_THROW(st = cb_decref(g.heap, a)) << "exceptions must not cross the C API";
    (void)st;
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
    expect_collector_still_works(g);
}

TEST(Hostile, WeakrefCallbackThrows) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    WeakRec *w1 = g.weakref(a, nullptr, [](WeakRec &) { throw Boom(); });
    WeakRec *w2 = g.weakref(a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
    EXPECT_EQ(w1->calls, 1);
    EXPECT_EQ(w2->calls, 1) << "the other callbacks still run";
    EXPECT_EQ(w1->get(), nullptr);
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

TEST(Hostile, WeakrefCallbackThrowsFromDecref) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    WeakRec *w = g.weakref(a, nullptr, [](WeakRec &) { throw Boom(); });
    EXPECT_NO_THROW(g.drop(a));
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
}

TEST(Hostile, WeakrefCallbackAsksForCollectionAndAllocates) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    cb_status nested = CB_OK;
    Node *made = nullptr;
    g.weakref(a, nullptr, [&](WeakRec &) {
        nested = cb_collect(g.heap, CB_FULL, nullptr);
        made = g.rc();
    });
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(nested, CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 1);
    EXPECT_TRUE(g.dead(ia));
    ASSERT_NE(made, nullptr);
    EXPECT_TRUE(g.alive(made->id));
    g.drop(made);
    expect_collector_still_works(g);
}

// ---------------------------------------------------------------------------
// Clears that resurrect or do not break the cycle

TEST(Hostile, ClearResurrects) {
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    g.link(a, a);
    g.link(b, c);
    g.link(c, b);
    Node *global = nullptr;
    a->on_clear = [&](Node &self) {
        global = &self;
        g.incref(&self);
        self.drop_edges();
    };
    g.drop(a);
    g.drop(b);
    g.drop(c);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_SURVIVED_CLEAR, a), 1) << g.report_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.count_ev(Ev::Dealloc, ia), 0);
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ic));
    ASSERT_EQ(global, a);
    EXPECT_EQ(g.count(a), 1);
    EXPECT_TRUE(cb_is_tracked(g.heap, a)) << "a survivor must go back to a generation";
    // A later collection leaves it alone (it is referenced by the global).
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.count_ev(Ev::Clear, ia), 1);
    // Dropping the global frees it by refcount.
    g.drop(global);
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

TEST(Hostile, ClearThatDoesNotBreakTheCycle) {
    Graph g;
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    a->on_clear = [](Node &) {};   // does nothing
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_SURVIVED_CLEAR, a), 1) << g.report_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.count(a), 1);
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    // Second collection: the same, reported again, no second finalize.
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_SURVIVED_CLEAR, a), 1) << g.report_log();
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    // Fixed: freed.
    a->on_clear = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
}

// ---------------------------------------------------------------------------
// Finalizers that allocate

TEST(Hostile, FinalizerAllocatesNodesWithoutNestedCollection) {
    Graph g(0);   // automatic collection on
    ASSERT_EQ(cb_set_thresholds(g.heap, 1000000, 10, 10), CB_OK);
    int starts = 0;
    auto cb = [](void *ctx, cb_collection_event ev, const cb_collection_stats *) {
        if (ev == CB_COLLECTION_START) ++*static_cast<int *>(ctx);
    };
    ASSERT_EQ(cb_add_collection_callback(g.heap, cb, &starts), CB_OK);
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    Node *kept = nullptr;
    std::vector<int> made;
    a->on_finalize = [&](Node &) {
        for (int i = 0; i < 25; ++i) {
            auto [x, y] = g.garbage_pair();
            made.push_back(x);
            made.push_back(y);
        }
        kept = g.rc();
    };
    g.drop(a);
    ASSERT_EQ(cb_set_thresholds(g.heap, 1, 10, 10), CB_OK);   // every allocation is over the threshold
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    g.take_reports(CB_REPORT_REENTRANT_COLLECT);   // an implementation may report skipped automatic collections
    EXPECT_EQ(starts, 1) << "no collection may start from cb_alloc inside a running collection";
    EXPECT_TRUE(g.dead(ia));
    for (int id : made) EXPECT_TRUE(g.alive(id)) << "allocated during the collection: not part of it";
    ASSERT_NE(kept, nullptr);
    EXPECT_EQ(cb_generation_size(g.heap, 0), 51u);
    ASSERT_EQ(cb_set_thresholds(g.heap, 1000000, 10, 10), CB_OK);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    for (int id : made) EXPECT_TRUE(g.dead(id));
    EXPECT_TRUE(g.alive(kept->id));
    ASSERT_EQ(cb_remove_collection_callback(g.heap, cb, &starts), CB_OK);
}

// ---------------------------------------------------------------------------
// Counts that underflow, and counts too low for the references visited

TEST(Hostile, DecrefOfHandleManagedAtZeroUnderflows) {
    Graph g;
    Node *m = g.hm();
    g.drop(m);
    ASSERT_EQ(g.count(m), 0);
    EXPECT_EQ(cb_decref(g.heap, m), CB_ERR_UNDERFLOW);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_UNDERFLOW, m)) << g.report_log();
    EXPECT_EQ(g.count(m), 0);
    EXPECT_TRUE(cb_is_tracked(g.heap, m));
    int im = m->id;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im));
    expect_collector_still_works(g);
}

TEST(Hostile, DecrefOfRefcountedAtZeroUnderflows) {
    Graph g;
    Node *a = g.rc(/*track=*/false);
    a->refcnt = 0;   // an inconsistent object
    EXPECT_EQ(cb_decref(g.heap, a), CB_ERR_UNDERFLOW);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_UNDERFLOW, a)) << g.report_log();
    EXPECT_EQ(a->refcnt, 0);
    EXPECT_TRUE(g.alive(a->id));
    a->refcnt = 1;
    g.drop(a);
}

TEST(Hostile, HostReleaseWithoutAcquireUnderflows) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    EXPECT_EQ(cb_host_release(g.heap, a), CB_ERR_UNDERFLOW);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_UNDERFLOW, a)) << g.report_log();
    EXPECT_EQ(g.count(a), 2);
    ASSERT_EQ(cb_host_acquire(g.heap, a), CB_OK);
    EXPECT_EQ(g.count(a), 3);
    ASSERT_EQ(cb_host_release(g.heap, a), CB_OK);
    EXPECT_EQ(cb_host_release(g.heap, a), CB_ERR_UNDERFLOW);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_UNDERFLOW, a));
    EXPECT_EQ(g.count(a), 2);
    // The node's host-reference bookkeeping is intact: with no host refs it
    // is a plain garbage self-cycle once dropped.
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

TEST(Hostile, HostReleaseOnHandleManagedWithoutAcquireUnderflows) {
    Graph g;
    Node *m = g.hm();
    EXPECT_EQ(cb_host_release(g.heap, m), CB_ERR_UNDERFLOW);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_UNDERFLOW, m));
    EXPECT_EQ(g.count(m), 1);
    int im = m->id;
    g.drop(m);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im)) << "no host reference: an HM node with no handle is garbage";
}

TEST(Hostile, MoreReferencesVisitedThanCountHolds) {
    // a <-> b, but a's traverse visits b twice while holding one count:
    // b's count is inconsistent. b must be kept (a root) and reported;
    // since a is reachable from b, nothing is freed.
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *p = g.rc(), *q = g.rc();
    int ia = a->id, ib = b->id, ip = p->id, iq = q->id;
    g.link(a, b);
    g.link(b, a);
    g.link(p, q);
    g.link(q, p);
    a->on_traverse = [b](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(b, arg)) return r;   // an extra, uncounted visit
        return n.traverse_default(visit, arg);
    };
    for (Node *n : {a, b, p, q}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_REFS_EXCEED_COUNT, b), 1) << g.report_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_EQ(g.count_ev(Ev::Clear, ia) + g.count_ev(Ev::Clear, ib), 0) << g.event_log();
    EXPECT_TRUE(g.dead(ip)) << "unrelated garbage is still freed";
    EXPECT_TRUE(g.dead(iq));
    EXPECT_EQ(g.count(b), 1);
    // Fixed: the next collection frees the cycle.
    a->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Hostile, NegativeCountIsReportedAndKept) {
    Graph g;
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    a->refcnt = -1;   // corrupted by a buggy extension
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_REFS_EXCEED_COUNT, a), 1) << g.report_log();
    g.take_reports(CB_REPORT_REFS_EXCEED_COUNT);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    a->refcnt = 1;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
}

TEST(Hostile, TraverseVisitingNullIsIgnored) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    a->on_traverse = [](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(nullptr, arg)) return r;
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Hostile, FinalizerUntracksAnotherGarbageNode) {
    // Documented: a node untracked during a collection leaves it. b (garbage
    // self-cycle) is untracked by a's finalizer: not cleared, not freed.
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, a);
    g.link(b, b);
    a->on_finalize = [&](Node &) { EXPECT_EQ(cb_untrack(g.heap, b), CB_OK); };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_EQ(g.count_ev(Ev::Clear, ib), 0);
    EXPECT_FALSE(cb_is_tracked(g.heap, b));
    EXPECT_EQ(g.count(b), 1);
    expect_collector_still_works(g);
    // Tracked again, it is collected.
    ASSERT_EQ(cb_track(g.heap, b), CB_OK);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ib));
}

TEST(Hostile, FinalizerCallsRefusedOperations) {
    Graph g;
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    std::vector<cb_status> got;
    a->on_finalize = [&](Node &) {
        got.push_back(cb_freeze(g.heap));
        got.push_back(cb_unfreeze(g.heap));
        got.push_back(cb_uncollectable_release(g.heap));
        got.push_back(cb_set_host(g.heap, nullptr));
        got.push_back(cb_collect_if_due(g.heap));
        cb_host_hooks hooks{nullptr, [](void *, cb_host_ref) {}};
        got.push_back(cb_hd_prologue(g.heap, &hooks));
        cb_heap_destroy(g.heap);   // refused: the heap must survive this
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_EQ(got.size(), 6u);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], CB_ERR_BUSY) << "operation " << i;
    int busy = 0;
    for (auto &r : g.reports) busy += r.status == CB_ERR_BUSY;
    EXPECT_EQ(busy, 7) << g.report_log();
    EXPECT_EQ(size_t(busy), g.reports.size()) << g.report_log();
    g.clear_reports();
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

TEST(Hostile, WeakrefCallbackFreesItsOwnWeakref) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    WeakRec *w = g.weakref(a, nullptr, [&g](WeakRec &self) { g.free_weakref(&self); });
    WeakRec *w2 = g.weakref(a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(w->calls, 1);
    EXPECT_TRUE(w->freed);
    EXPECT_EQ(w2->calls, 1);
    // and from the decref path
    Node *b = g.rc();
    WeakRec *w3 = g.weakref(b, nullptr, [&g](WeakRec &self) { g.free_weakref(&self); });
    g.drop(b);
    EXPECT_EQ(w3->calls, 1);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(Hostile, CountBelowVisibleReferencesInYoungCollection) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    a->on_traverse = [](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(&n, arg)) return r;   // self visited twice
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_REFS_EXCEED_COUNT, a), 1) << g.report_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.events.empty());
    a->on_traverse = nullptr;
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

}  // namespace
