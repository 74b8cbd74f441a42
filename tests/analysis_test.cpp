// The core's services for adapters and diagnostics: cb_find_unreachable
// (analysis without teardown), cb_weakref_on_clear and cb_report_issue.
#include "support/test_graph.hpp"

using namespace cbt;

namespace {

struct Found {
    std::set<const void *> objects;
    static void add(void *ctx, void *obj) { static_cast<Found *>(ctx)->objects.insert(obj); }
};

}  // namespace

TEST(FindUnreachable, ReportsWhatACollectionFreesAndFreesNothing) {
    Graph g;
    Node *a = g.rc(), *b = g.rc(), *self = g.rc(), *live = g.rc(), *kept = g.rc();
    g.link(a, b);
    g.link(b, a);
    g.link(self, self);
    g.link(live, kept);
    g.link(kept, live);
    int ia = a->id, ib = b->id, is = self->id;
    g.drop(a);
    g.drop(b);
    g.drop(self);   // `live` stays held by the test

    Found found;
    cb_collection_stats stats{};
    ASSERT_EQ(cb_find_unreachable(g.heap, &Found::add, &found, &stats), CB_OK);
    EXPECT_EQ(found.objects, (std::set<const void *>{a, b, self}));
    EXPECT_EQ(stats.examined, 5u);
    EXPECT_EQ(stats.garbage, 3u);
    EXPECT_TRUE(g.alive(ia) && g.alive(ib) && g.alive(is)) << "analysis must free nothing";
    EXPECT_EQ(a->clear_calls + b->clear_calls + self->clear_calls, 0);
    EXPECT_EQ(cb_last_stats(g.heap, &stats), CB_ERR_WRONG_PHASE) << "analysis is not a collection";

    // A second analysis sees the same (flags were put back), and a real
    // collection frees exactly that.
    Found again;
    ASSERT_EQ(cb_find_unreachable(g.heap, &Found::add, &again, nullptr), CB_OK);
    EXPECT_EQ(again.objects, found.objects);
    g.full();
    EXPECT_EQ(g.last.garbage, 3u);
    EXPECT_TRUE(g.dead(ia) && g.dead(ib) && g.dead(is));
    EXPECT_TRUE(g.alive(live->id));
}

TEST(FindUnreachable, MarksTheHostAndPutsItsMarksBack) {
    Graph g(CB_DRIVE_BRIDGE);
    // node -> host -> node, unrooted: garbage; the same through a rooted host: live.
    Node *n = g.rc(), *m = g.rc();
    cb_host_ref h = g.host(1), r = g.host(1, /*rooted=*/true);
    g.link_host(n, h);
    g.set_slot(h, 0, n);
    g.link_host(m, r);
    g.set_slot(r, 0, m);
    uint64_t hid = g.hid(h);
    g.drop(n);
    g.drop(m);

    Found found;
    cb_collection_stats stats{};
    ASSERT_EQ(cb_find_unreachable(g.heap, &Found::add, &found, &stats), CB_OK);
    EXPECT_EQ(found.objects, (std::set<const void *>{n}));
    EXPECT_GE(stats.host_marked, 1u);
    EXPECT_TRUE(g.host_live(hid));
    // The host's marks were reset: the next collection still finds h dead.
    g.full();
    EXPECT_FALSE(g.host_live(hid));
    EXPECT_TRUE(g.alive(m->id));
}

TEST(FindUnreachable, RefusedDuringACollection) {
    Graph g;
    Node *a = g.rc();
    Found found;
    a->on_clear = [&](Node &n) {
        EXPECT_EQ(cb_find_unreachable(g.heap, &Found::add, &found, nullptr), CB_ERR_BUSY);
        n.drop_edges();
    };
    g.link(a, a);
    g.drop(a);
    g.full();
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 1);
    EXPECT_TRUE(found.objects.empty());
}

TEST(FindUnreachable, AThrowingTraverseFindsNothing) {
    Graph g;
    Node *a = g.rc(), *bad = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    bad->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw Boom(); };
    Found found;
    EXPECT_EQ(cb_find_unreachable(g.heap, &Found::add, &found, nullptr), CB_ERR_CALLBACK_FAILED);
    EXPECT_TRUE(found.objects.empty());
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1);
    bad->on_traverse = nullptr;
    g.full();
    EXPECT_TRUE(g.dead(ia));
}

namespace {
struct ClearLog {
    std::vector<int> cleared;   // tags, in order
    static void hook(cb_weakref *ref, void *data) {
        auto *w = static_cast<WeakRec *>(data);
        // The hook runs with the ref already cleared.
        EXPECT_EQ(cb_weakref_get(ref), nullptr);
        current->cleared.push_back(w->tag);
    }
    static ClearLog *current;
};
ClearLog *ClearLog::current = nullptr;
}  // namespace

TEST(WeakrefOnClear, ToldWhenTheTargetDiesOrIsGarbageNotWhenFreed) {
    Graph g;
    ClearLog log;
    ClearLog::current = &log;
    Node *holder = g.rc();
    Node *dies = g.rc(), *cyc = g.rc(), *freed_target = g.rc();
    WeakRec *w1 = g.weakref(dies, holder);
    WeakRec *w2 = g.weakref(cyc, holder);
    WeakRec *w3 = g.weakref(freed_target, holder);
    for (WeakRec *w : {w1, w2, w3}) ASSERT_EQ(cb_weakref_on_clear(g.heap, w->ref, &ClearLog::hook), CB_OK);

    g.drop(dies);   // count to zero: cleared, then its callback runs
    EXPECT_EQ(log.cleared, std::vector<int>{w1->tag});
    EXPECT_EQ(w1->calls, 1);

    g.link(cyc, cyc);
    g.drop(cyc);
    g.full();       // garbage: cleared before the callback
    EXPECT_EQ(log.cleared, (std::vector<int>{w1->tag, w2->tag}));
    EXPECT_EQ(w2->calls, 1);

    g.free_weakref(w3);   // the owner's own free: no hook
    EXPECT_EQ(log.cleared.size(), 2u);
    EXPECT_EQ(cb_weakref_on_clear(g.heap, nullptr, &ClearLog::hook), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(g.take_reports(CB_REPORT_API_MISUSE), 1);
    ClearLog::current = nullptr;
}

TEST(WeakrefOnClear, WeakrefsOwnedByGarbageAreToldToo) {
    Graph g;
    ClearLog log;
    ClearLog::current = &log;
    Node *target = g.rc(), *holder = g.rc();
    WeakRec *w = g.weakref(target, holder);
    ASSERT_EQ(cb_weakref_on_clear(g.heap, w->ref, &ClearLog::hook), CB_OK);
    g.link(holder, holder);
    g.drop(holder);
    g.full();   // the holder is garbage; its weakref is cleared, its target lives
    EXPECT_EQ(log.cleared, std::vector<int>{w->tag});
    EXPECT_EQ(w->calls, 0);
    EXPECT_TRUE(g.alive(target->id));
    ClearLog::current = nullptr;
}

TEST(ReportIssue, GoesToTheHeapsHandler) {
    Graph g;
    int x = 0;
    cb_report_issue(g.heap, CB_REPORT_CALLBACK_THREW, CB_OK, &x, "adapter.Type", "tp_finalize raised");
    ASSERT_EQ(g.reports.size(), 1u);
    EXPECT_EQ(g.reports[0].kind, CB_REPORT_CALLBACK_THREW);
    EXPECT_EQ(g.reports[0].object, &x);
    EXPECT_EQ(g.reports[0].type_name, "adapter.Type");
    EXPECT_EQ(g.reports[0].message, "tp_finalize raised");
    g.clear_reports();
    cb_report_issue(nullptr, CB_REPORT_API_MISUSE, CB_OK, nullptr, nullptr, "ignored");
}
