// Counting and marking on several threads (cb_set_threads): the same
// outcome as on one thread, and misbehaving traverses handled as they are
// there. Built with ThreadSanitizer in scripts/test too.
#include <algorithm>
#include <random>

#include "support/test_graph.hpp"

namespace {

using cbt::Boom;
using cbt::Graph;
using cbt::Node;

// A heap of n nodes, the same for a given seed: the first half a chain the
// test holds by its head, the second half rings of 8 nothing outside
// holds; a random edge from one node in four to any node, so some rings
// hang from the chain and the others are garbage. Returns every node's id.
std::vector<int> build_mixed(Graph &g, int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Node *> nodes;
    for (int i = 0; i < n; ++i) nodes.push_back(g.rc());
    int half = n / 2;
    for (int i = 0; i + 1 < half; ++i) g.link(nodes[i], nodes[i + 1]);
    for (int start = half; start < n; start += 8) {
        int end = std::min(n, start + 8);
        for (int i = start; i < end; ++i) g.link(nodes[i], nodes[i + 1 < end ? i + 1 : start]);
    }
    for (int i = 0; i < n; ++i)
        if (rng() % 4 == 0) g.link(nodes[i], nodes[rng() % n]);
    std::vector<int> ids;
    for (int i = 0; i < n; ++i) {
        ids.push_back(nodes[i]->id);
        if (i != 0) g.drop(nodes[i]);
    }
    return ids;
}

std::vector<int> survivors(const Graph &g, const std::vector<int> &ids) {
    std::vector<int> out;
    for (int id : ids)
        if (g.alive(id)) out.push_back(id);
    return out;
}

// More nodes than the default minimum, so the default threshold applies.
constexpr int kBig = 40000;

TEST(Parallel, FullCollectionFreesWhatOneThreadFrees) {
    for (unsigned threads : {2u, 3u}) {
        Graph serial, parallel;
        ASSERT_EQ(cb_set_threads(parallel.heap, threads, 0), CB_OK);
        EXPECT_EQ(cb_get_threads(parallel.heap), threads);
        std::vector<int> a = build_mixed(serial, kBig, 7), b = build_mixed(parallel, kBig, 7);
        ASSERT_EQ(serial.full(), CB_OK);
        ASSERT_EQ(parallel.full(), CB_OK);
        EXPECT_GT(serial.dead_nodes(), 0u);
        EXPECT_EQ(parallel.dead_nodes(), serial.dead_nodes()) << threads << " threads";
        EXPECT_EQ(survivors(parallel, b), survivors(serial, a)) << threads << " threads";
        EXPECT_EQ(parallel.last.roots, serial.last.roots);
        EXPECT_EQ(parallel.last.examined, serial.last.examined);
    }
}

TEST(Parallel, YoungCollectionFreesWhatOneThreadFrees) {
    Graph serial, parallel;
    ASSERT_EQ(cb_set_threads(parallel.heap, 2, 1000), CB_OK);
    for (Graph *g : {&serial, &parallel}) {
        build_mixed(*g, 5000, 3);
        ASSERT_EQ(g->full(), CB_OK);   // the survivors are old now
    }
    std::vector<int> a = build_mixed(serial, 3000, 11), b = build_mixed(parallel, 3000, 11);
    ASSERT_EQ(serial.collect(0), CB_OK);
    ASSERT_EQ(parallel.collect(0), CB_OK);
    EXPECT_EQ(parallel.dead_nodes(), serial.dead_nodes());
    EXPECT_EQ(survivors(parallel, b), survivors(serial, a));
}

TEST(Parallel, SmallSetsStaySerialUnlessAsked) {
    Graph g;
    ASSERT_EQ(cb_set_threads(g.heap, 2, 0), CB_OK);
    // A traverse that calls the API is refused only while helpers run: a
    // heap below the minimum never starts them.
    Node *a = g.rc(), *b = g.rc();
    g.link(a, b);
    g.link(b, a);
    cb_status seen = CB_OK;
    a->on_traverse = [&seen](Node &n, cb_visit_fn visit, void *arg) {
        seen = cb_incref(n.g->heap, &n);
        if (seen == CB_OK) cb_decref(n.g->heap, &n);
        return n.traverse_default(visit, arg);
    };
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(seen, CB_OK);
    a->on_traverse = nullptr;
}

TEST(Parallel, CyclesAreFreedWhenEveryCollectionIsParallel) {
    Graph g;
    ASSERT_EQ(cb_set_threads(g.heap, 2, 1), CB_OK);
    std::vector<int> ids;
    for (int len = 1; len <= 40; ++len) {
        std::vector<Node *> ring;
        for (int i = 0; i < len; ++i) ring.push_back(g.rc());
        g.ring(ring);
        for (Node *n : ring) {
            ids.push_back(n->id);
            g.drop(n);
        }
    }
    Node *kept = g.rc();
    g.link(kept, kept);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : ids) EXPECT_TRUE(g.dead(id)) << id;
    EXPECT_TRUE(g.alive(kept->id));
}

TEST(Parallel, ThrowingTraverseFreesNothing) {
    Graph g;
    ASSERT_EQ(cb_set_threads(g.heap, 2, 1), CB_OK);
    std::vector<Node *> ring;
    for (int i = 0; i < 200; ++i) ring.push_back(g.rc());
    g.ring(ring);
    for (Node *n : ring) g.drop(n);
    Node *bad = ring[137];
    bad->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw Boom(); };
    EXPECT_EQ(g.full(), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.last.freed, 0u);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, bad), 1) << g.report_log();
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    bad->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.dead_nodes(), 200u);
}

// Every collection on two threads, over a 2-cycle a <-> b the test holds.
struct TwoThreadPair {
    Graph g;
    Node *a, *b;
    TwoThreadPair() {
        EXPECT_EQ(cb_set_threads(g.heap, 2, 1), CB_OK);
        a = g.rc();
        b = g.rc();
        g.link(a, b);
        g.link(b, a);
    }
};

TEST(Parallel, ApiCallFromATraverseIsRefusedAndReported) {
    TwoThreadPair pair;
    auto &[g, a, b] = pair;
    intptr_t before = g.count(a);
    std::vector<cb_status> seen;
    a->on_traverse = [&seen](Node &n, cb_visit_fn visit, void *arg) {
        seen.push_back(cb_incref(n.g->heap, &n));
        return n.traverse_default(visit, arg);
    };
    ASSERT_EQ(g.full(), CB_OK);   // a and b are held by the test: nothing to free
    ASSERT_FALSE(seen.empty());
    for (cb_status st : seen) EXPECT_EQ(st, CB_ERR_BUSY);
    EXPECT_EQ(g.count(a), before) << "a refused incref changes nothing";
    EXPECT_EQ(g.take_reports(CB_REPORT_API_MISUSE, a), int(seen.size())) << g.report_log();
    a->on_traverse = nullptr;
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.dead_nodes(), 2u);
}

TEST(Parallel, OverVisitingTraverseIsReportedOnceAndKeptAlive) {
    TwoThreadPair pair;
    auto &[g, a, b] = pair;
    // a visits b three times; b's count holds one reference.
    a->on_traverse = [b](Node &n, cb_visit_fn visit, void *arg) {
        visit(b, arg);
        visit(b, arg);
        return n.traverse_default(visit, arg);
    };
    int ia = a->id, ib = b->id;
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_REFS_EXCEED_COUNT, b), 1) << g.report_log();
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    a->on_traverse = nullptr;
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
}

TEST(Parallel, CrossHeapCycleIsFreedWithTheHostMarkingSerially) {
    for (cb_drive_mode mode : {CB_DRIVE_BRIDGE, CB_DRIVE_HOST}) {
        Graph g(mode);
        ASSERT_EQ(cb_set_threads(g.heap, 2, 1), CB_OK);
        Node *a = g.rc(), *b = g.rc();
        cb_host_ref h = g.host();
        g.link(a, b);
        g.link_host(b, h);
        g.set_slot(h, 0, a);
        Node *live = g.rc();
        cb_host_ref kept = g.host(1, /*rooted=*/true);
        g.link_host(live, kept);
        int ia = a->id, ib = b->id;
        g.drop(a);
        g.drop(b);
        ASSERT_EQ(g.full(), CB_OK) << (mode == CB_DRIVE_BRIDGE ? "bridge" : "host") << "-driven";
        EXPECT_TRUE(g.dead(ia));
        EXPECT_TRUE(g.dead(ib));
        EXPECT_TRUE(g.alive(live->id));
    }
}

TEST(Parallel, SetThreadsChecksItsArguments) {
    Graph g;
    EXPECT_EQ(cb_get_threads(g.heap), 1u);
    EXPECT_EQ(cb_set_threads(g.heap, 0, 0), CB_ERR_BAD_ARGUMENT);
    EXPECT_EQ(cb_set_threads(g.heap, CB_MAX_THREADS + 1, 0), CB_ERR_BAD_ARGUMENT);
    EXPECT_EQ(g.take_reports(CB_REPORT_API_MISUSE), 2);
    EXPECT_EQ(cb_set_threads(nullptr, 2, 0), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(cb_get_threads(g.heap), 1u);
    ASSERT_EQ(cb_set_threads(g.heap, 4, 0), CB_OK);
    EXPECT_EQ(cb_get_threads(g.heap), 4u);
    ASSERT_EQ(cb_set_threads(g.heap, 1, 0), CB_OK);
    EXPECT_EQ(cb_get_threads(g.heap), 1u);

    // From a collection callback: refused, the setting unchanged.
    ASSERT_EQ(cb_set_threads(g.heap, 2, 1), CB_OK);
    cb_status inside = CB_OK;
    auto during = [](void *ctx, cb_collection_event ev, const cb_collection_stats *) {
        auto *p = static_cast<std::pair<cb_heap *, cb_status *> *>(ctx);
        if (ev == CB_COLLECTION_START) *p->second = cb_set_threads(p->first, 3, 0);
    };
    std::pair<cb_heap *, cb_status *> ctx{g.heap, &inside};
    ASSERT_EQ(cb_add_collection_callback(g.heap, during, &ctx), CB_OK);
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_EQ(cb_remove_collection_callback(g.heap, during, &ctx), CB_OK);
    EXPECT_EQ(inside, CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_API_MISUSE), 1);
    EXPECT_EQ(cb_get_threads(g.heap), 2u);
}

}  // namespace
