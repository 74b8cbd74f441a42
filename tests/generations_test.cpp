// Generations: young collections (only the young set, outside references
// external, handle-managed and host-held nodes as roots), promotion,
// freeze/unfreeze, thresholds, cb_collect_if_due and automatic collection.
#include "support/test_graph.hpp"

using namespace cbt;

namespace {

std::array<size_t, 3> sizes(cb_heap *h) {
    return {cb_generation_size(h, 0), cb_generation_size(h, 1), cb_generation_size(h, 2)};
}

TEST(Young, YoungCycleFreedByGenerationZero) {
    Graph g;
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.last.generation, 0);
    EXPECT_EQ(g.last.garbage, 2u);
    EXPECT_EQ(g.last.freed, 2u);
}

TEST(Young, SurvivorsArePromotedOneGenerationAtATime) {
    Graph g;
    std::vector<Node *> ns;
    for (int i = 0; i < 3; ++i) ns.push_back(g.rc());
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{3, 0, 0}));
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 3, 0}));
    Node *fresh = g.rc();
    (void)fresh;
    ASSERT_EQ(g.collect(0), CB_OK);   // gen 1 untouched, fresh promoted
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 4, 0}));
    EXPECT_EQ(g.last.examined, 1u);
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_EQ(g.last.examined, 4u);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 0, 4}));
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 0, 4}));
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_EQ(g.last.examined, 0u) << "generation 2 is not part of a generation-1 collection";
}

TEST(Young, ReferencesFromOlderGenerationsAreExternal) {
    // o (old, garbage self-cycle) -> a <-> b (young). Young collections must
    // treat o's reference as external; only the full collection frees all.
    Graph g;
    Node *o = g.rc();
    int io = o->id;
    g.link(o, o);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    ASSERT_EQ(cb_generation_size(g.heap, 2), 1u);
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.link(o, a);
    g.drop(a);
    g.drop(b);
    g.drop(o);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_EQ(g.last.roots, 1u);
    EXPECT_EQ(g.last.garbage, 0u);
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(io));
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
}

TEST(Young, EdgesOutOfTheYoungSetAreNotFollowed) {
    // young a (garbage self-cycle) -> o (old garbage self-cycle). A young
    // collection frees a; clearing a drops its count on o, which stays.
    Graph g;
    Node *o = g.rc();
    int io = o->id;
    g.link(o, o);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.link(a, o);
    g.drop(o);
    g.drop(a);
    EXPECT_EQ(g.count(o), 2);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.alive(io));
    EXPECT_EQ(g.count(o), 1);
    EXPECT_EQ(g.last.examined, 1u);
    EXPECT_EQ(g.count_ev(Ev::Clear, io), 0);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(io));
}

TEST(Young, HandleManagedNodesAreRoots) {
    Graph g;
    Node *a = g.rc(), *m = g.hm();
    int ia = a->id, im = m->id;
    g.link(a, m);
    g.link(m, a);
    g.drop(a);
    g.drop(m);   // no handle left: garbage for a full collection
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(im));
    EXPECT_EQ(g.last.garbage, 0u);
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.alive(im));
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(im));
}

class YoungHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(YoungHost, HostHeldNodesAreRootsAndHostIsUntouched) {
    // a (self-cycle) held by an unrooted host object h; a -> h2.
    // Young collections keep a and never sweep the host; the full one frees.
    Graph g(GetParam());
    Node *a = g.rc();
    int ia = a->id;
    cb_host_ref h = g.host(1), h2 = g.host(1);
    uint64_t ih = g.hid(h), ih2 = g.hid(h2);
    g.link(a, a);
    g.set_slot(h, 0, a);
    g.link_host(a, h2);
    g.drop(a);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(g.last.roots, 1u);
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_TRUE(g.host_live(ih2));
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_TRUE(g.host_live(ih2));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_FALSE(g.host_live(ih2));
}

TEST_P(YoungHost, YoungCollectionNeverReclaimsHostObjects) {
    // Unrooted host objects nobody refers to survive young collections:
    // only a full collection marks and sweeps the host.
    Graph g(GetParam());
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.host_live(ih));
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.host_live(ih));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ih));
}

INSTANTIATE_TEST_SUITE_P(Modes, YoungHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Freeze

TEST(Freeze, FrozenGarbageIsNeverFreedUntilUnfrozen) {
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    g.link(a, b);
    g.link(b, a);
    g.link(c, c);
    ASSERT_EQ(g.collect(0), CB_OK);   // a, b, c in gen 1
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    EXPECT_EQ(cb_frozen_count(g.heap), 3u);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 0, 0}));
    g.drop(a);
    g.drop(b);
    g.drop(c);
    for (int gen = 0; gen <= CB_FULL; ++gen) {
        ASSERT_EQ(g.collect(gen), CB_OK);
        EXPECT_EQ(g.last.examined, 0u);
        EXPECT_TRUE(g.alive(ia));
        EXPECT_TRUE(g.alive(ic));
    }
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    ASSERT_EQ(cb_unfreeze(g.heap), CB_OK);
    EXPECT_EQ(cb_frozen_count(g.heap), 0u);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 0, 3}));
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_TRUE(g.alive(ia)) << "unfrozen nodes go to generation 2";
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ic));
}

TEST(Freeze, ReferencesFromFrozenNodesKeepTargets) {
    // f (frozen) -> a (young garbage self-cycle), f -> m (HM, no handle).
    Graph g;
    Node *f = g.rc();
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    Node *a = g.rc(), *m = g.hm();
    int ia = a->id, im = m->id, iff = f->id;
    g.link(a, a);
    g.link(f, a);
    g.link(f, m);
    g.drop(a);
    g.drop(m);
    g.link(f, f);
    g.drop(f);   // f is garbage, but frozen
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.alive(ia)) << "a frozen node's reference is external";
    EXPECT_TRUE(g.alive(im)) << "frozen nodes are traced as a root set: their HM targets live";
    EXPECT_TRUE(g.alive(iff));
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    ASSERT_EQ(cb_unfreeze(g.heap), CB_OK);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(im));
    EXPECT_TRUE(g.dead(iff));
}

TEST(Freeze, NodesTrackedAfterFreezeAreCollected) {
    Graph g;
    Node *keep = g.rc();
    (void)keep;
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    EXPECT_EQ(cb_generation_size(g.heap, 0), 1u);
    ASSERT_EQ(g.collect(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(g.last.examined, 1u);
    EXPECT_EQ(cb_frozen_count(g.heap), 1u);
}

TEST(Freeze, FreezeDuringCollectionIsRefused) {
    Graph g;
    Node *a = g.make(RC().fin());
    g.link(a, a);
    cb_status fz = CB_OK, ufz = CB_OK;
    a->on_finalize = [&](Node &) {
        fz = cb_freeze(g.heap);
        ufz = cb_unfreeze(g.heap);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(fz, CB_ERR_BUSY);
    EXPECT_EQ(ufz, CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT) + g.take_reports(CB_REPORT_API_MISUSE), 2)
        << g.report_log();
    EXPECT_EQ(cb_frozen_count(g.heap), 0u);
}

class FreezeHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(FreezeHost, HostObjectsReferencedByFrozenNodesSurvive) {
    // f (frozen) -> h (unrooted host object) -> slot b. A full collection
    // must not reclaim h: a live (frozen) node refers to it.
    Graph g(GetParam());
    Node *f = g.rc(), *b = g.rc();
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    int ib = b->id;
    g.link_host(f, h);
    g.set_slot(h, 0, b);
    g.drop(b);
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ih)) << "a host object a frozen node refers to was reclaimed";
    EXPECT_TRUE(g.alive(ib));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ih));
    ASSERT_EQ(cb_unfreeze(g.heap), CB_OK);
    g.drop(f);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_TRUE(g.dead(ib));
}

INSTANTIATE_TEST_SUITE_P(Modes, FreezeHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Thresholds and automatic collection

struct GenLog {
    std::vector<int> gens;   // generation of every collection started
};

void gen_cb(void *ctx, cb_collection_event ev, const cb_collection_stats *st) {
    if (ev == CB_COLLECTION_START) static_cast<GenLog *>(ctx)->gens.push_back(st->generation);
}

TEST(Thresholds, DefaultsAndSet) {
    Graph g;
    uint32_t t[CB_GENERATIONS] = {};
    cb_get_thresholds(g.heap, t);
    EXPECT_EQ(t[0], 700u);
    EXPECT_EQ(t[1], 10u);
    EXPECT_EQ(t[2], 10u);
    ASSERT_EQ(cb_set_thresholds(g.heap, 5, 3, 2), CB_OK);
    cb_get_thresholds(g.heap, t);
    EXPECT_EQ(t[0], 5u);
    EXPECT_EQ(t[1], 3u);
    EXPECT_EQ(t[2], 2u);
}

TEST(Thresholds, CollectIfDueRunsGenerationZeroPastThreshold) {
    Graph g;   // no automatic collection from cb_alloc
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    ASSERT_EQ(cb_set_thresholds(g.heap, 10, 10, 10), CB_OK);
    for (int i = 0; i < 5; ++i) g.rc();
    ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    EXPECT_TRUE(log.gens.empty()) << "5 tracked nodes do not exceed threshold 10";
    for (int i = 0; i < 20; ++i) g.rc();
    ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    ASSERT_EQ(log.gens.size(), 1u);
    EXPECT_EQ(log.gens[0], 0);
    EXPECT_EQ(sizes(g.heap), (std::array<size_t, 3>{0, 25, 0}));
    ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    EXPECT_EQ(log.gens.size(), 1u) << "the counter restarts after a collection";
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Thresholds, UntrackLowersTheCount) {
    Graph g;
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    ASSERT_EQ(cb_set_thresholds(g.heap, 10, 10, 10), CB_OK);
    std::vector<Node *> ns;
    for (int i = 0; i < 15; ++i) ns.push_back(g.rc());
    for (int i = 0; i < 10; ++i) ASSERT_EQ(cb_untrack(g.heap, ns[i]), CB_OK);
    ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    EXPECT_TRUE(log.gens.empty()) << "15 tracked - 10 untracked does not exceed 10";
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Thresholds, OlderGenerationsFollowCPythonsSchedule) {
    // t0=10, t1=3: generation 1 is collected once generation 0 has been
    // collected more than t1 times (CPython: count > threshold).
    Graph g;
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    ASSERT_EQ(cb_set_thresholds(g.heap, 10, 3, 1000), CB_OK);
    for (int round = 0; round < 12; ++round) {
        for (int i = 0; i < 11; ++i) g.rc();
        ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    }
    ASSERT_EQ(log.gens.size(), 12u);
    std::vector<int> first_gen1;
    for (size_t i = 0; i < log.gens.size(); ++i)
        if (log.gens[i] == 1) first_gen1.push_back(int(i));
    ASSERT_GE(first_gen1.size(), 2u) << "generation 1 never collected";
    EXPECT_TRUE(first_gen1[0] == 3 || first_gen1[0] == 4) << "first gen-1 collection at index " << first_gen1[0];
    int gap = first_gen1[1] - first_gen1[0];
    // CPython: count1 > t1 gen-0 collections, then the gen-1 one itself.
    EXPECT_TRUE(gap >= 4 && gap <= 5) << "gap " << gap;
    for (int gen : log.gens) EXPECT_NE(gen, 2) << "threshold2 = 1000 is never reached";
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Thresholds, FullCollectionWaitsForQuarterOfOldGeneration) {
    // With t1 = t2 = 1, generation 2 would be collected every few rounds;
    // the 25% rule makes full collections rarer as the old generation grows:
    // between two full collections, more than a quarter of the old
    // generation's size (at the previous one) must have been promoted.
    Graph g;
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    ASSERT_EQ(cb_set_thresholds(g.heap, 10, 1, 1), CB_OK);
    std::vector<size_t> old_size_at_full;    // gen 2 size right after each full collection
    std::vector<size_t> tracked_at_full;     // nodes tracked so far at each full collection
    size_t tracked = 0;
    for (int round = 0; round < 60; ++round) {
        for (int i = 0; i < 20; ++i) g.rc();
        tracked += 20;
        size_t before = log.gens.size();
        ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
        if (log.gens.size() > before && log.gens.back() == CB_FULL) {
            old_size_at_full.push_back(cb_generation_size(g.heap, 2));
            tracked_at_full.push_back(tracked);
        }
    }
    ASSERT_GE(old_size_at_full.size(), 2u) << "full collections must still happen";
    for (size_t i = 1; i < old_size_at_full.size(); ++i) {
        size_t promoted_between = tracked_at_full[i] - tracked_at_full[i - 1];
        EXPECT_GT(promoted_between * 4, old_size_at_full[i - 1])
            << "full collection " << i << " came after only " << promoted_between << " new nodes; old gen was "
            << old_size_at_full[i - 1];
    }
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Thresholds, CollectIfDueDuringCollectionIsBusy) {
    Graph g;
    Node *a = g.make(RC().fin());
    g.link(a, a);
    cb_status st = CB_OK;
    a->on_finalize = [&](Node &) { st = cb_collect_if_due(g.heap); };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(st, CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 1) << g.report_log();
}

TEST(Automatic, AllocationTriggersCollections) {
    Graph g(0);   // automatic collection on
    ASSERT_EQ(cb_set_thresholds(g.heap, 50, 10, 10), CB_OK);
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    for (int i = 0; i < 1000; ++i) {
        Node *a = g.rc();
        g.link(a, a);
        g.drop(a);
    }
    EXPECT_GE(log.gens.size(), 15u) << "about one collection per 50 allocations";
    EXPECT_GE(g.dead_nodes(), 900u) << "automatic collections free garbage cycles";
    // Turned off: no more collections.
    cb_set_automatic(g.heap, 0);
    size_t n = log.gens.size();
    for (int i = 0; i < 1000; ++i) {
        Node *a = g.rc();
        g.link(a, a);
        g.drop(a);
    }
    EXPECT_EQ(log.gens.size(), n);
    cb_set_automatic(g.heap, 1);
    for (int i = 0; i < 100; ++i) g.rc();
    EXPECT_GT(log.gens.size(), n);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Automatic, ThresholdZeroTurnsItOff) {
    Graph g(0);
    ASSERT_EQ(cb_set_thresholds(g.heap, 0, 10, 10), CB_OK);
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    for (int i = 0; i < 2000; ++i) g.rc();
    EXPECT_TRUE(log.gens.empty());
    ASSERT_EQ(cb_collect_if_due(g.heap), CB_OK);
    EXPECT_TRUE(log.gens.empty());
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

TEST(Automatic, NoAutoCollectFlag) {
    Graph g(CB_HEAP_NO_AUTO_COLLECT);
    ASSERT_EQ(cb_set_thresholds(g.heap, 5, 10, 10), CB_OK);
    GenLog log;
    ASSERT_EQ(cb_add_collection_callback(g.heap, gen_cb, &log), CB_OK);
    for (int i = 0; i < 100; ++i) g.rc();
    EXPECT_TRUE(log.gens.empty());
    ASSERT_EQ(cb_remove_collection_callback(g.heap, gen_cb, &log), CB_OK);
}

class AutomaticHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(AutomaticHost, AutomaticCollectionsKeepHostInvariants) {
    // Many automatic collections on a heap with a host: nodes held by a
    // rooted host object, and host objects they refer to, always survive.
    Graph g(GetParam(), 0);
    ASSERT_EQ(cb_set_thresholds(g.heap, 20, 2, 2), CB_OK);
    cb_host_ref root = g.host(1, /*rooted=*/true);
    Node *k = g.rc();
    int ik = k->id;
    cb_host_ref kh = g.host(1);
    uint64_t ikh = g.hid(kh);
    g.set_slot(root, 0, k);
    g.link_host(k, kh);
    g.link(k, k);
    g.drop(k);
    for (int i = 0; i < 2000; ++i) {
        Node *a = g.rc();
        g.link(a, a);
        g.drop(a);
    }
    EXPECT_TRUE(g.alive(ik));
    EXPECT_TRUE(g.host_live(ikh));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 1u);
    EXPECT_TRUE(g.host_live(ikh));
}

INSTANTIATE_TEST_SUITE_P(Modes, AutomaticHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

}  // namespace
