// Core collection: completeness (the cycles of the mission, freed in one
// collection), safety (nothing reachable from a root is touched), counts and
// kinds, host edges, statistics and collection callbacks.
#include "support/test_graph.hpp"

using namespace cbt;

namespace {

// ---------------------------------------------------------------------------
// Basics of the node model

TEST(Core, AllocGivesUntrackedObjectWithCountOne) {
    Graph g;
    Node *a = g.rc(/*track=*/false);
    EXPECT_EQ(g.count(a), 1);
    EXPECT_FALSE(cb_is_tracked(g.heap, a));
    EXPECT_EQ(cb_type_of(g.heap, a), g.type(RC()));
    EXPECT_STREQ(cb_type_name(g.type(RC())), "rc");
    EXPECT_EQ(cb_generation_size(g.heap, 0), 0u);
    ASSERT_EQ(cb_track(g.heap, a), CB_OK);
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    EXPECT_EQ(cb_generation_size(g.heap, 0), 1u);
    EXPECT_EQ(cb_is_finalized(g.heap, a), 0);
    int id = a->id;
    g.drop(a);   // refcount path: no collection needed
    EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(cb_generation_size(g.heap, 0), 0u);
}

TEST(Core, DecrefToZeroDeallocatesRefcountedNodeAndItsEdges) {
    Graph g;
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.drop(b);   // b now held by a only
    EXPECT_EQ(g.count(b), 1);
    g.drop(a);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_LT(g.first(Ev::Dealloc, ia), g.first(Ev::Dealloc, ib));
    EXPECT_EQ(g.count_ev(Ev::Clear), 0);
    EXPECT_EQ(g.count_ev(Ev::Finalize), 0);
}

TEST(Core, HandleManagedNodeIsFreedOnlyByTheCollector) {
    Graph g;
    Node *m = g.hm();
    int im = m->id;
    g.drop(m);   // handle closed: count 0, but not freed by decref
    EXPECT_TRUE(g.alive(im));
    EXPECT_EQ(g.count(m), 0);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im));
    EXPECT_EQ(g.count_ev(Ev::Clear, im), 1) << "collector frees handle-managed nodes by clear then dealloc";
    EXPECT_LT(g.first(Ev::Clear, im), g.first(Ev::Dealloc, im));
    EXPECT_EQ(g.last.garbage, 1u);
    EXPECT_EQ(g.last.freed, 1u);
}

TEST(Core, HandleManagedNodeWithOpenHandleIsRoot) {
    Graph g;
    Node *m = g.hm(), *a = g.rc(), *b = g.rc();
    int ids_[] = {m->id, a->id, b->id};
    g.link(m, a);
    g.link(a, b);
    g.link(b, a);
    g.link(a, m);   // uncounted: m's count stays the handle
    g.drop(a);
    g.drop(b);
    EXPECT_EQ(g.count(m), 1);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(g.full(), CB_OK);
        for (int id : ids_) EXPECT_TRUE(g.alive(id));
        EXPECT_TRUE(g.events.empty()) << g.event_log();
    }
    EXPECT_EQ(g.last.roots, 1u);
    g.drop(m);   // close the handle
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : ids_) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.last.garbage, 3u);
    EXPECT_EQ(g.last.freed, 3u);
}

TEST(Core, CountThroughAccessors) {
    Graph g;
    Node *a = g.make(RC().acc());
    EXPECT_EQ(a->alt_count, 1);
    EXPECT_EQ(a->refcnt, 0) << "count_offset < 0: the core must use set_count";
    int ia = a->id;
    g.link(a, a);
    EXPECT_EQ(g.count(a), 2);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

TEST(Core, ExternalObjectsAreCollected) {
    Graph g;
    Node *a = g.make_external(), *b = g.make_external();
    int ia = a->id, ib = b->id;
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.last.freed, 2u);
}

TEST(Core, ExternalObjectsVisitedUnderVerify) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    Node *a = g.make_external(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
}

TEST(Core, NullDeallocMeansCbFree) {
    // A self-cycle of a type with dealloc NULL: its clear empties the node's
    // vectors (they then own no memory) and the core cb_frees the object.
    Graph g;
    TypeOpts t = RC();
    t.null_dealloc = true;
    Node *a = g.make(t);
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.last.garbage, 1u);
    EXPECT_EQ(g.last.freed, 1u);
    EXPECT_EQ(g.count_ev(Ev::Clear, ia), 1);
    EXPECT_EQ(g.count_ev(Ev::Dealloc), 0);
    EXPECT_EQ(cb_generation_size(g.heap, CB_FULL), 0u);
    g.forget_node(ia);   // the core released it; do not free it again
}

// ---------------------------------------------------------------------------
// Completeness: the cycles of the mission, 10,000 of each, one collection.

constexpr int kMany = 10000;

TEST(Mission, SelfCycles10k) {
    Graph g;
    for (int i = 0; i < kMany; ++i) {
        Node *a = g.rc();
        g.link(a, a);
        g.drop(a);
    }
    EXPECT_EQ(g.live_nodes(), size_t(kMany));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.dead_nodes(), size_t(kMany));
    EXPECT_EQ(g.last.garbage, uint64_t(kMany));
    EXPECT_EQ(g.last.freed, uint64_t(kMany));
    EXPECT_EQ(g.last.examined, uint64_t(kMany));
    EXPECT_EQ(g.last.roots, 0u);
}

TEST(Mission, TwoCycles10k) {
    Graph g;
    for (int i = 0; i < kMany; ++i) {
        Node *a = g.rc(), *b = g.rc();
        g.link(a, b);
        g.link(b, a);
        g.drop(a);
        g.drop(b);
    }
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.last.garbage, uint64_t(2 * kMany));
    EXPECT_EQ(g.last.freed, uint64_t(2 * kMany));
}

TEST(Mission, CyclesThroughHandleManagedObjects10k) {
    Graph g;
    for (int i = 0; i < kMany; ++i) {
        Node *a = g.rc(), *m = g.hm();
        g.link(a, m);   // uncounted
        g.link(m, a);   // counted
        g.drop(a);
        g.drop(m);      // close the handle
    }
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.last.garbage, uint64_t(2 * kMany));
    EXPECT_EQ(g.last.freed, uint64_t(2 * kMany));
}

class MissionHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(MissionHost, CyclesThroughHostObjects10k) {
    Graph g(GetParam());
    for (int i = 0; i < kMany; ++i) {
        Node *a = g.rc();
        cb_host_ref h = g.host(1);
        g.link_host(a, h);   // node -> host object
        g.set_slot(h, 0, a); // host object -> node (a host reference)
        g.drop(a);
        EXPECT_EQ(g.count(a), 1);
    }
    EXPECT_EQ(g.host_count(), size_t(kMany));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u) << "cycles through a host object must be freed in one full collection";
    EXPECT_EQ(g.host_count(), 0u);
    EXPECT_EQ(g.last.garbage, uint64_t(kMany));
}

TEST_P(MissionHost, AllFourCycleShapesTogether10k) {
    Graph g(GetParam());
    for (int i = 0; i < kMany; ++i) {
        Node *s = g.rc();
        g.link(s, s);
        g.drop(s);
        Node *a = g.rc(), *b = g.rc();
        g.link(a, b);
        g.link(b, a);
        g.drop(a);
        g.drop(b);
        Node *c = g.rc(), *m = g.hm();
        g.link(c, m);
        g.link(m, c);
        g.drop(c);
        g.drop(m);
        Node *d = g.rc();
        cb_host_ref h = g.host(1);
        g.link_host(d, h);
        g.set_slot(h, 0, d);
        g.drop(d);
    }
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.host_count(), 0u);
    EXPECT_EQ(g.last.garbage, uint64_t(6 * kMany));
}

TEST_P(MissionHost, CycleThroughHandleManagedAndHostObjects) {
    // RC -> HM -> host -> RC, and HM -> host -> HM.
    Graph g(GetParam());
    std::vector<int> all;
    for (int i = 0; i < 100; ++i) {
        Node *a = g.rc(), *m = g.hm();
        cb_host_ref h = g.host(1);
        g.link(a, m);
        g.link_host(m, h);
        g.set_slot(h, 0, a);
        g.drop(a);
        g.drop(m);
        Node *m2 = g.hm();
        cb_host_ref h2 = g.host(1);
        g.link_host(m2, h2);
        g.set_slot(h2, 0, m2);
        g.drop(m2);
        all.insert(all.end(), {a->id, m->id, m2->id});
    }
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : all) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.host_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, MissionHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

TEST(Completeness, GarbageHangingOffACycleIsFreed) {
    // a <-> b, a -> t1 -> t2 (tree of acyclic garbage below a cycle).
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *t1 = g.rc(), *t2 = g.hm(), *t3 = g.rc();
    std::vector<int> all = ids({a, b, t1, t2, t3});
    g.link(a, b);
    g.link(b, a);
    g.link(a, t1);
    g.link(t1, t2);
    g.link(t2, t3);
    for (Node *n : {a, b, t1, t2, t3}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : all) EXPECT_TRUE(g.dead(id)) << id;
    EXPECT_EQ(g.last.garbage, 5u);
    EXPECT_EQ(g.last.freed, 5u);
}

TEST(Completeness, LongRingIsFreedWithoutRecursion) {
    // A ring of 100,000 nodes: marking or counting by recursion would blow
    // the stack. Each node also points to itself, so our own dealloc never
    // cascades deeply.
    constexpr int kN = 100000;
    Graph g;
    std::vector<Node *> ns;
    ns.reserve(kN);
    for (int i = 0; i < kN; ++i) ns.push_back(g.rc());
    for (int i = 0; i < kN; ++i) {
        g.link(ns[i], ns[(i + 1) % kN]);
        g.link(ns[i], ns[i]);
    }
    Node *root = g.rc();
    g.link(root, ns[0]);
    for (Node *n : ns) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), size_t(kN + 1)) << "everything is reachable from root";
    EXPECT_TRUE(g.events.empty());
    g.drop(root);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.last.garbage, uint64_t(kN));
}

TEST(Completeness, HostReferenceCountsAsExternalWithoutHostInterface) {
    // On a heap with no host interface a host reference cannot be seen as an
    // edge, so the node is a root.
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    ASSERT_EQ(cb_host_acquire(g.heap, a), CB_OK);
    EXPECT_EQ(g.count(a), 3);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.last.roots, 1u);
    ASSERT_EQ(cb_host_release(g.heap, a), CB_OK);
    EXPECT_EQ(g.count(a), 1);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

TEST(Completeness, HostAcquireOnHandleManagedDoesNotChangeCount) {
    Graph g;
    Node *m = g.hm();
    int im = m->id;
    ASSERT_EQ(cb_host_acquire(g.heap, m), CB_OK);
    EXPECT_EQ(g.count(m), 1);
    g.drop(m);
    EXPECT_EQ(g.count(m), 0);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(im)) << "a host reference keeps a handle-managed node when there is no host interface";
    ASSERT_EQ(cb_host_release(g.heap, m), CB_OK);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im));
}

// ---------------------------------------------------------------------------
// Safety: nothing reachable from a root is cleared, finalized or freed.

TEST(Safety, CycleReachableFromCountRootIsKept) {
    Graph g;
    Node *r = g.rc(), *a = g.make(RC().fin()), *b = g.make(RC().fin());
    int ir = r->id, ia = a->id, ib = b->id;
    g.link(r, a);
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(g.full(), CB_OK);
        EXPECT_TRUE(g.events.empty()) << g.event_log();
        EXPECT_EQ(g.last.garbage, 0u);
    }
    EXPECT_EQ(g.count(a), 2);
    EXPECT_EQ(g.count(b), 1);
    EXPECT_EQ(cb_is_finalized(g.heap, a), 0);
    // Dropping the root frees r by refcount; the cycle becomes garbage.
    g.drop(r);
    EXPECT_TRUE(g.dead(ir));
    EXPECT_TRUE(g.alive(ia));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.last.finalized, 2u);
}

TEST(Safety, UnseenReferenceInsideACycleIsARoot) {
    // a -> b -> c -> a; the test keeps an extra (invisible) reference to b.
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *c = g.rc();
    g.ring({a, b, c});
    g.drop(a);
    g.drop(c);   // the test still holds b
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 3u);
    EXPECT_EQ(g.last.roots, 1u);
    EXPECT_EQ(g.last.garbage, 0u);
    EXPECT_TRUE(g.events.empty());
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
}

TEST(Safety, ReferenceFromUntrackedNodeIsExternal) {
    Graph g;
    Node *u = g.rc(/*track=*/false), *a = g.rc();
    int iu = u->id, ia = a->id;
    g.link(a, a);
    g.link(u, a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia)) << "the collector cannot see u's reference: a must be a root";
    EXPECT_EQ(g.last.examined, 1u);
    g.drop(u);
    EXPECT_TRUE(g.dead(iu));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

TEST(Safety, NodesReachableOnlyThroughHandleManagedRootAreKept) {
    Graph g;
    Node *m = g.hm(), *a = g.rc(), *m2 = g.hm();
    g.link(m, a);
    g.link(a, m2);
    g.link(m2, a);
    g.drop(a);
    g.drop(m2);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 3u);
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    g.drop(m);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
}

class SafetyHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(SafetyHost, CycleReachableFromHostRootIsKept) {
    Graph g(GetParam());
    cb_host_ref r = g.host(1, /*rooted=*/true);
    Node *a = g.make(RC().fin()), *b = g.rc(), *m = g.hm();
    g.set_slot(r, 0, a);
    g.link(a, b);
    g.link(b, a);
    g.link(b, m);
    g.link(m, a);
    g.drop(a);
    g.drop(b);
    g.drop(m);
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(g.full(), CB_OK);
        EXPECT_EQ(g.live_nodes(), 3u);
        EXPECT_TRUE(g.events.empty()) << g.event_log();
        EXPECT_EQ(g.last.garbage, 0u);
    }
    g.unroot(r);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.host_count(), 0u);
}

TEST_P(SafetyHost, HostObjectsReachableFromLiveNodesAreKept) {
    // live r -> h1 (unrooted) -> slot: b (self-cycle) -> h2 -> slot: h3
    Graph g(GetParam());
    Node *r = g.rc(), *b = g.rc();
    cb_host_ref h1 = g.host(1), h2 = g.host(1), h3 = g.host(1);
    uint64_t i1 = g.hid(h1), i2 = g.hid(h2), i3 = g.hid(h3);
    g.link_host(r, h1);
    g.set_slot(h1, 0, b);
    g.link(b, b);
    g.link_host(b, h2);
    g.set_slot(h2, 0, h3);
    g.drop(b);
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(g.full(), CB_OK);
        EXPECT_TRUE(g.host_live(i1));
        EXPECT_TRUE(g.host_live(i2));
        EXPECT_TRUE(g.host_live(i3));
        EXPECT_EQ(g.live_nodes(), 2u);
        EXPECT_TRUE(g.events.empty()) << g.event_log();
    }
    // Reads of the kept objects still work (not poisoned).
    EXPECT_EQ(cb_refheap_get_node(g.rh, h1, 0), b);
    EXPECT_EQ(cb_refheap_get_host(g.rh, h2, 0), h3);
    g.drop(r);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(i1));
    EXPECT_FALSE(g.host_live(i2));
    EXPECT_FALSE(g.host_live(i3));
    EXPECT_EQ(g.live_nodes(), 0u);
}

TEST_P(SafetyHost, HostObjectsOfGarbageStayReadableUntilTeardownEnds) {
    // Garbage: a (finalizer) self-cycle -> h -> slot: h2. a's finalizer,
    // clear and dealloc read h; an HM garbage node's dealloc (after every
    // clear) reads h as well. Host objects go back only after all that.
    Graph g(GetParam());
    Node *a = g.make(RC().fin()), *m = g.make(HM().fin());
    cb_host_ref h = g.host(2), h2 = g.host(1);
    uint64_t ih = g.hid(h), ih2 = g.hid(h2);
    g.set_slot(h, 0, h2);
    g.link(a, a);
    g.link_host(a, h);
    g.link_host(m, h);
    int reads = 0;
    auto check = [&](Node &, const char *where) {
        EXPECT_TRUE(g.host_live(ih)) << "host object reclaimed before " << where;
        EXPECT_TRUE(g.host_live(ih2)) << "host object reclaimed before " << where;
        if (g.host_live(ih)) {
            EXPECT_EQ(cb_refheap_slot_count(g.rh, h), 2u) << where;
            EXPECT_EQ(cb_refheap_get_host(g.rh, h, 0), h2) << where;
            EXPECT_EQ(cb_refheap_get_node(g.rh, h, 1), nullptr) << where;
        }
        ++reads;
    };
    a->on_finalize = [&](Node &n) { check(n, "a's finalizer"); };
    a->on_clear = [&](Node &n) {
        check(n, "a's clear");
        n.drop_edges();
    };
    a->on_dealloc = [&](Node &n) { check(n, "a's dealloc"); };
    m->on_finalize = [&](Node &n) { check(n, "m's finalizer"); };
    m->on_clear = [&](Node &n) {
        check(n, "m's clear");
        n.drop_edges();
    };
    m->on_dealloc = [&](Node &n) { check(n, "m's dealloc (after all clears)"); };
    int ia = a->id, im = m->id;
    g.drop(a);
    g.drop(m);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(reads, 6);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(im));
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_FALSE(g.host_live(ih2));
}

TEST_P(SafetyHost, NodeHeldByGarbageHostObjectReadsItsHostEdgesInFinalizer) {
    // garbage chain: a -> h1 -> slot b -> h2 -> slot a. Both finalizers read
    // the host objects they refer to.
    Graph g(GetParam());
    Node *a = g.make(RC().fin()), *b = g.make(RC().fin());
    cb_host_ref h1 = g.host(1), h2 = g.host(1);
    uint64_t i1 = g.hid(h1), i2 = g.hid(h2);
    g.link_host(a, h1);
    g.set_slot(h1, 0, b);
    g.link_host(b, h2);
    g.set_slot(h2, 0, a);
    a->on_finalize = [&](Node &) {
        ASSERT_TRUE(g.host_live(i1));
        EXPECT_EQ(cb_refheap_get_node(g.rh, h1, 0), b);
    };
    b->on_finalize = [&](Node &) {
        ASSERT_TRUE(g.host_live(i2));
        EXPECT_EQ(cb_refheap_get_node(g.rh, h2, 0), a);
    };
    int ia = a->id, ib = b->id;
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.count_ev(Ev::Finalize), 2);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.host_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, SafetyHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Statistics, exact numbers on a small graph

TEST(Stats, ExactNumbersOnSmallGraph) {
    Graph g;
    Node *r = g.rc(), *x = g.rc();       // r (test-held) -> x
    g.link(r, x);
    g.drop(x);
    Node *a = g.rc(), *b = g.rc();       // 2-cycle
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    Node *c = g.rc();                    // self-cycle with a weakref
    g.link(c, c);
    WeakRec *w = g.weakref(c);
    g.drop(c);
    Node *d = g.make(RC().fin()), *e = g.rc();   // cycle with one finalizer
    g.link(d, e);
    g.link(e, d);
    g.drop(d);
    g.drop(e);
    Node *u = g.rc(/*track=*/false);     // untracked: not examined
    (void)u;

    cb_collection_stats s{};
    ASSERT_EQ(cb_collect(g.heap, CB_FULL, &s), CB_OK);
    EXPECT_EQ(s.generation, CB_FULL);
    EXPECT_EQ(s.examined, 7u);
    EXPECT_EQ(s.roots, 1u);
    EXPECT_EQ(s.garbage, 5u);
    EXPECT_EQ(s.freed, 5u);
    EXPECT_EQ(s.uncollectable, 0u);
    EXPECT_EQ(s.finalized, 1u);
    EXPECT_EQ(s.resurrected, 0u);
    EXPECT_EQ(s.weakrefs_cleared, 1u);
    EXPECT_EQ(s.weakref_callbacks, 1u);
    EXPECT_EQ(s.host_marked, 0u);
    EXPECT_EQ(s.reports, 0u);
    uint64_t sum = 0;
    for (uint64_t p : s.phase_ns) sum += p;
    EXPECT_GT(s.total_ns, 0u);
    EXPECT_LE(sum, s.total_ns);
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(w->get(), nullptr);

    cb_collection_stats l{};
    ASSERT_EQ(cb_last_stats(g.heap, &l), CB_OK);
    EXPECT_EQ(l.examined, s.examined);
    EXPECT_EQ(l.garbage, s.garbage);
    EXPECT_EQ(l.freed, s.freed);
    EXPECT_EQ(l.total_ns, s.total_ns);

    // Second collection: only r and x are left.
    ASSERT_EQ(cb_collect(g.heap, CB_FULL, &s), CB_OK);
    EXPECT_EQ(s.examined, 2u);
    EXPECT_EQ(s.roots, 1u);
    EXPECT_EQ(s.garbage, 0u);
    EXPECT_EQ(s.freed, 0u);
    EXPECT_EQ(s.finalized, 0u);
    EXPECT_EQ(s.weakrefs_cleared, 0u);
}

TEST(Stats, YoungCollectionStats) {
    Graph g;
    Node *old = g.rc();
    ASSERT_EQ(g.full(), CB_OK);   // old -> generation 2
    Node *a = g.rc(), *b = g.rc(), *keep = g.rc();
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    cb_collection_stats s{};
    ASSERT_EQ(cb_collect(g.heap, 0, &s), CB_OK);
    EXPECT_EQ(s.generation, 0);
    EXPECT_EQ(s.examined, 3u);
    EXPECT_EQ(s.roots, 1u);
    EXPECT_EQ(s.garbage, 2u);
    EXPECT_EQ(s.freed, 2u);
    (void)old;
    (void)keep;
}

TEST(Stats, LastStatsBeforeAnyCollection) {
    Graph g;
    cb_collection_stats s{};
    // Documented: CB_ERR_WRONG_PHASE, not reported.
    EXPECT_EQ(cb_last_stats(g.heap, &s), CB_ERR_WRONG_PHASE);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_EQ(cb_last_stats(g.heap, &s), CB_OK);
    EXPECT_EQ(s.generation, 0);
}

TEST(Stats, ReportsCountedDuringCollection) {
    Graph g;
    Node *u = g.rc(/*track=*/false);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    a->on_traverse = [u](Node &n, cb_visit_fn visit, void *arg) {
        if (int r = visit(u, arg)) return r;   // untracked: reported
        return n.traverse_default(visit, arg);
    };
    g.drop(a);
    uint64_t before = cb_report_count(g.heap);
    ASSERT_EQ(g.full(), CB_OK);
    int n = g.take_reports(CB_REPORT_VISIT_UNTRACKED, u);
    EXPECT_GE(n, 1);
    EXPECT_EQ(g.last.reports, uint64_t(n));
    EXPECT_EQ(cb_report_count(g.heap), before + uint64_t(n));
    EXPECT_TRUE(g.dead(ia));
}

// ---------------------------------------------------------------------------
// Collection callbacks (gc.callbacks)

struct CallbackLog {
    struct Call {
        cb_collection_event event;
        cb_collection_stats stats;
        int tag;
    };
    std::vector<Call> calls;
    cb_heap *heap = nullptr;
    cb_status nested = CB_OK;
    bool try_nested = false;
};

struct TaggedCtx {
    CallbackLog *log;
    int tag;
};

void log_cb(void *ctx, cb_collection_event ev, const cb_collection_stats *st) {
    auto *t = static_cast<TaggedCtx *>(ctx);
    t->log->calls.push_back({ev, st ? *st : cb_collection_stats{}, t->tag});
    if (t->log->try_nested) t->log->nested = cb_collect(t->log->heap, 0, nullptr);
}

TEST(Callbacks, StartThenStopWithFinalStats) {
    Graph g;
    CallbackLog log;
    TaggedCtx c1{&log, 1};
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    Node *a = g.rc(), *b = g.rc();
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    Node *keep = g.rc();
    (void)keep;
    ASSERT_EQ(g.collect(1), CB_OK);
    ASSERT_EQ(log.calls.size(), 2u);
    EXPECT_EQ(log.calls[0].event, CB_COLLECTION_START);
    EXPECT_EQ(log.calls[0].stats.generation, 1);
    EXPECT_EQ(log.calls[0].stats.examined, 0u) << "START: the counters are zero";
    EXPECT_EQ(log.calls[0].stats.freed, 0u);
    EXPECT_EQ(log.calls[1].event, CB_COLLECTION_STOP);
    EXPECT_EQ(log.calls[1].stats.generation, 1);
    EXPECT_EQ(log.calls[1].stats.examined, 3u);
    EXPECT_EQ(log.calls[1].stats.garbage, 2u);
    EXPECT_EQ(log.calls[1].stats.freed, 2u);
    EXPECT_EQ(log.calls[1].stats.garbage, g.last.garbage);
    EXPECT_EQ(log.calls[1].stats.freed, g.last.freed);
}

TEST(Callbacks, SeveralCallbacksAndRemoval) {
    Graph g;
    CallbackLog log;
    TaggedCtx c1{&log, 1}, c2{&log, 2};
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c2), CB_OK);
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_EQ(log.calls.size(), 4u);
    int starts1 = 0, starts2 = 0, stops1 = 0, stops2 = 0;
    for (auto &c : log.calls) {
        (c.event == CB_COLLECTION_START ? (c.tag == 1 ? starts1 : starts2) : (c.tag == 1 ? stops1 : stops2))++;
    }
    EXPECT_EQ(starts1, 1);
    EXPECT_EQ(starts2, 1);
    EXPECT_EQ(stops1, 1);
    EXPECT_EQ(stops2, 1);
    // registration order; every START before every STOP
    EXPECT_EQ(log.calls[0].event, CB_COLLECTION_START);
    EXPECT_EQ(log.calls[0].tag, 1);
    EXPECT_EQ(log.calls[1].event, CB_COLLECTION_START);
    EXPECT_EQ(log.calls[1].tag, 2);
    EXPECT_EQ(log.calls[2].tag, 1);
    EXPECT_EQ(log.calls[3].tag, 2);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    log.calls.clear();
    ASSERT_EQ(g.collect(0), CB_OK);
    ASSERT_EQ(log.calls.size(), 2u);
    for (auto &c : log.calls) EXPECT_EQ(c.tag, 2);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c2), CB_OK);
    log.calls.clear();
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(log.calls.empty());
}

TEST(Callbacks, SamePairTwiceRunsTwiceAndRemoveTakesOne) {
    Graph g;
    CallbackLog log;
    TaggedCtx c1{&log, 1};
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_EQ(log.calls.size(), 4u);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    log.calls.clear();
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_EQ(log.calls.size(), 2u);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    EXPECT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c1), CB_ERR_BAD_ARGUMENT);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT));
}

struct AddDuring {
    cb_heap *heap;
    CallbackLog *log;
    TaggedCtx *late;
    bool added = false;
};

TEST(Callbacks, CallbackAddedDuringCollectionStartsWithNextEvent) {
    Graph g;
    CallbackLog log;
    TaggedCtx late{&log, 2};
    AddDuring ad{g.heap, &log, &late};
    auto adder = [](void *ctx, cb_collection_event ev, const cb_collection_stats *) {
        auto *a = static_cast<AddDuring *>(ctx);
        if (ev == CB_COLLECTION_START && !a->added) {
            a->added = true;
            EXPECT_EQ(cb_add_collection_callback(a->heap, &log_cb, a->late), CB_OK);
        }
    };
    ASSERT_EQ(cb_add_collection_callback(g.heap, adder, &ad), CB_OK);
    ASSERT_EQ(g.collect(0), CB_OK);
    ASSERT_EQ(log.calls.size(), 1u) << "the new callback gets STOP of this collection, not START";
    EXPECT_EQ(log.calls[0].event, CB_COLLECTION_STOP);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, adder, &ad), CB_OK);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &late), CB_OK);
}

TEST(Callbacks, CollectionFromCallbackIsRefusedAndReported) {
    Graph g;
    CallbackLog log;
    log.heap = g.heap;
    log.try_nested = true;
    TaggedCtx c1{&log, 1};
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(log.nested, CB_ERR_BUSY);
    EXPECT_EQ(log.calls.size(), 2u) << "a refused nested collection runs no callbacks";
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 2);
    EXPECT_TRUE(g.dead(ia)) << "the outer collection must still finish";
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    expect_collector_still_works(g);
}

TEST(Callbacks, HostDrivenCollectionRunsCallbacks) {
    Graph g(CB_DRIVE_HOST);
    CallbackLog log;
    TaggedCtx c1{&log, 1};
    ASSERT_EQ(cb_add_collection_callback(g.heap, &log_cb, &c1), CB_OK);
    Node *a = g.rc();
    cb_host_ref h = g.host(1);
    g.link_host(a, h);
    g.set_slot(h, 0, a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_EQ(log.calls.size(), 2u);
    EXPECT_EQ(log.calls[0].event, CB_COLLECTION_START);
    EXPECT_EQ(log.calls[1].event, CB_COLLECTION_STOP);
    EXPECT_EQ(log.calls[1].stats.generation, CB_FULL);
    EXPECT_EQ(log.calls[1].stats.garbage, 1u);
}

}  // namespace
