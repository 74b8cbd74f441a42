// Write barriers (cb_write_barrier, cb_write_barrier_host): edges the
// collector cannot count, made by user code while a collection runs, keep
// their targets alive through it.
#include "support/test_graph.hpp"

using namespace cbt;

namespace {

class Barrier : public ::testing::TestWithParam<cb_drive_mode> {};

TEST(Barrier, FinalizerStoringHandleManagedGarbageIntoLiveObjectResurrectsIt) {
    // f (finalizer) -> g (handle-managed, no handle) -> f, g -> g2. f's
    // finalizer stores g in live l: an uncounted edge, invisible to the
    // recount. The barrier keeps g and all it reaches.
    Graph g;
    Node *l = g.hm();
    Node *f = g.make(RC().fin()), *hm = g.hm(), *g2 = g.rc();
    int iff = f->id, ihm = hm->id, ig2 = g2->id;
    g.link(f, hm);
    g.link(hm, f);
    g.link(hm, g2);
    f->on_finalize = [&](Node &) {
        g.link(l, hm);
        cb_write_barrier(g.heap, hm);
    };
    g.drop(f);
    g.drop(hm);
    g.drop(g2);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ihm));
    EXPECT_TRUE(g.alive(ig2));
    EXPECT_TRUE(g.alive(iff)) << "g reaches f";
    EXPECT_EQ(g.last.resurrected, 3u);
    EXPECT_EQ(g.count_ev(Ev::Clear), 0) << g.event_log();

    g.unlink(l, hm);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(iff));
    EXPECT_TRUE(g.dead(ihm));
    EXPECT_TRUE(g.dead(ig2));
    EXPECT_EQ(g.count_ev(Ev::Finalize, iff), 1);
}

TEST(Barrier, StoreFromClearIsReportedAndKept) {
    Graph g;
    Node *l = g.hm();
    Node *c = g.rc(), *hm = g.hm();
    int ic = c->id, ihm = hm->id;
    g.link(c, hm);
    g.link(hm, c);
    bool stored = false;
    c->on_clear = [&](Node &self) {
        if (!stored) {   // once: the second collection frees both
            g.link(l, hm);
            cb_write_barrier(g.heap, hm);
            stored = true;
        }
        self.drop_edges();
    };
    g.drop(c);
    g.drop(hm);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_SURVIVED_CLEAR), 1);
    EXPECT_TRUE(g.alive(ihm));
    EXPECT_TRUE(g.alive(ic)) << "hm still refers to c";
    EXPECT_EQ(hm->clear_calls, 0) << "a node made live again by a barrier is not cleared";
    g.unlink(l, hm);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ihm));
    EXPECT_TRUE(g.dead(ic));
}

TEST(Barrier, OutsideCollectionsNothingHappens) {
    Graph g;
    Node *hm = g.hm();
    int ihm = hm->id;
    cb_write_barrier(g.heap, hm);
    cb_write_barrier(g.heap, nullptr);
    cb_write_barrier(nullptr, hm);
    cb_write_barrier_host(g.heap, nullptr);
    EXPECT_EQ(g.reports.size(), 0u);
    g.drop(hm);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ihm)) << "a barrier outside a collection keeps nothing";
}

TEST_P(Barrier, FinalizerStoringGarbageHostObjectIntoLiveNodeKeepsIt) {
    // f (finalizer) -> host object h -> f. f's finalizer gives live l an
    // edge to h: without the barrier the host would sweep h under l.
    Graph g(GetParam());
    Node *l = g.rc();
    Node *f = g.make(RC().fin());
    int iff = f->id;
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    g.link_host(f, h);
    g.set_slot(h, 0, f);
    f->on_finalize = [&](Node &) {
        g.link_host(l, h);
        cb_write_barrier_host(g.heap, h);
    };
    g.drop(f);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_TRUE(g.alive(iff)) << "h holds f";

    l->hosts.clear();
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_TRUE(g.dead(iff));
    EXPECT_EQ(g.count_ev(Ev::Finalize, iff), 1);
}

TEST(Barrier, HandleManagedEdgeMadeBetweenHostDrivenStepsIsMarked) {
    // A host that lets its mutator run between cb_hd_* steps: after the
    // prologue marked and scanned l, the mutator moves hm, held only by
    // host object h (not marked yet), into l, and h lets go. Without the
    // barrier hm would be freed under l.
    Graph g(CB_DRIVE_HOST);
    Node *l = g.hm();
    Node *hm = g.hm();
    int ihm = hm->id;
    cb_host_ref h = g.host(1);
    g.set_slot(h, 0, hm);
    g.drop(hm);   // its handle closes: only h holds it
    struct Hooks {
        static void mark(void *, cb_host_ref) {}
    };
    cb_host_hooks hooks{nullptr, &Hooks::mark};
    ASSERT_EQ(cb_hd_prologue(g.heap, &hooks), CB_OK);
    g.link(l, hm);
    cb_write_barrier(g.heap, hm);
    g.empty_slot(h, 0);
    int idle = 0;
    ASSERT_EQ(cb_hd_trace(g.heap, 0, &idle), CB_OK);
    int finished = 0;
    ASSERT_EQ(cb_hd_epilogue(g.heap, &finished), CB_OK);
    ASSERT_TRUE(finished);
    EXPECT_TRUE(g.alive(ihm));
    g.unlink(l, hm);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ihm));
}

INSTANTIATE_TEST_SUITE_P(Modes, Barrier, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

}  // namespace
