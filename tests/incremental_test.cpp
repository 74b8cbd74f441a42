// Incremental full collections (cb_collect_slice): cycles freed across
// slices, and nothing reachable freed whatever the program does between
// them. Each case would fail without the last slice's check (see
// bridge/incremental.cpp).

#include <deque>
#include <random>
#include <set>

#include "support/process_memory.hpp"
#include "support/test_graph.hpp"

namespace {

using cbt::Graph;
using cbt::page_faults_in;
using cbt::HM;
using cbt::Node;

// Runs slices of `budget` until the collection ends, calling between(i)
// after slice i (the program's turn). Returns the number of slices.
template <class Between>
int run_slices(Graph &g, size_t budget, Between between) {
    for (int i = 1;; ++i) {
        int finished = 0;
        g.last = cb_collection_stats{};
        cb_status st = cb_collect_slice(g.heap, budget, &finished, &g.last);
        EXPECT_EQ(st, CB_OK) << "slice " << i;
        if (finished || st != CB_OK) return i;
        EXPECT_NE(cb_is_collecting(g.heap), 0);
        between(i);
    }
}
int run_slices(Graph &g, size_t budget) {
    return run_slices(g, budget, [](int) {});
}

// The slice after which the marking walk has begun (and passed the first
// node of generation 0): entering and subtracting take a budget's worth of
// nodes per slice each.
int marking_under_way(Graph &g, size_t budget) {
    size_t nodes = 0;
    for (int gen = 0; gen < CB_GENERATIONS; ++gen) nodes += cb_generation_size(g.heap, gen);
    return int(2 * nodes / budget) + 2;
}

// n garbage 2-cycles and a live chain of n nodes held by its head.
struct Mixed {
    std::vector<int> garbage, live;
    Node *head = nullptr;
    Mixed(Graph &g, int n) {
        for (int i = 0; i < n; ++i) {
            auto [a, b] = g.garbage_pair();
            garbage.push_back(a);
            garbage.push_back(b);
        }
        Node *prev = nullptr;
        for (int i = 0; i < n; ++i) {
            Node *n = g.rc();
            live.push_back(n->id);
            if (prev) {
                g.link(prev, n);
                g.drop(n);
            } else {
                head = n;
            }
            prev = n;
        }
    }
};

TEST(Incremental, CyclesAreFreedAcrossSlices) {
    Graph g;
    Mixed m(g, 1000);
    int slices = run_slices(g, 100);
    EXPECT_GT(slices, 30) << "4,000 nodes entered, traversed and walked 100 at a time";
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id)) << id;
    for (int id : m.live) EXPECT_TRUE(g.alive(id)) << id;
    EXPECT_EQ(g.last.generation, CB_FULL);
    EXPECT_EQ(g.last.examined, 3000u);
    EXPECT_EQ(g.last.garbage, 2000u);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    EXPECT_EQ(cb_generation_size(g.heap, 2), 1000u);
}

TEST(Incremental, BudgetZeroRunsTheWholeCollection) {
    Graph g;
    Mixed m(g, 100);
    EXPECT_EQ(run_slices(g, 0), 1);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
}

TEST(Incremental, OtherCollectionsWaitAndDestroyAbandons) {
    Graph g;
    Mixed m(g, 100);
    int finished = 0;
    ASSERT_EQ(cb_collect_slice(g.heap, 10, &finished, nullptr), CB_OK);
    ASSERT_EQ(finished, 0);
    EXPECT_EQ(g.collect(0), CB_ERR_BUSY);
    EXPECT_EQ(cb_freeze(g.heap), CB_ERR_BUSY);
    EXPECT_EQ(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 2);
    run_slices(g, 10);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));

    // A heap destroyed between slices: the collection is dropped and
    // frees nothing; the nodes the graph frees first leave holes.
    Graph h;
    Mixed n(h, 100);
    ASSERT_EQ(cb_collect_slice(h.heap, 10, &finished, nullptr), CB_OK);
    size_t dead_before = h.dead_nodes();
    h.allow_running_collection = true;
    h.teardown();
    EXPECT_EQ(h.dead_nodes(), dead_before);
}

// On a bridge-driven heap the host's objects are marked in the slices too:
// cross-heap cycles are freed, on both sides, and what a host root holds
// lives.
TEST(Incremental, CrossHeapCyclesAreFreedIncrementally) {
    Graph g(CB_DRIVE_BRIDGE);
    std::vector<int> dead_nodes, live_nodes;
    std::vector<uint64_t> dead_hosts, live_hosts;
    for (int i = 0; i < 50; ++i) {
        Node *n = g.rc();
        cb_host_ref h = g.host(1);
        g.link_host(n, h);
        g.set_slot(h, 0, n);
        g.drop(n);
        dead_nodes.push_back(n->id);
        dead_hosts.push_back(g.hid(h));
    }
    cb_host_ref root = g.host(50, /*rooted=*/true);
    live_hosts.push_back(g.hid(root));
    for (size_t i = 0; i < 50; ++i) {
        Node *n = g.rc();
        cb_host_ref h = g.host(1);
        g.link_host(n, h);
        g.set_slot(h, 0, n);
        g.set_slot(root, i, n);
        g.drop(n);
        live_nodes.push_back(n->id);
        live_hosts.push_back(g.hid(h));
    }
    EXPECT_GT(run_slices(g, 10), 20);
    for (int id : dead_nodes) EXPECT_TRUE(g.dead(id));
    for (uint64_t id : dead_hosts) EXPECT_FALSE(g.host_live(id));
    for (int id : live_nodes) EXPECT_TRUE(g.alive(id));
    for (uint64_t id : live_hosts) EXPECT_TRUE(g.host_live(id));
}

// Garbage of both heaps revived between slices through a host object the
// marking traced already: a node stored in its slot (cb_host_acquire is the
// barrier), a host object stored in its slot (the reference host's store
// calls cb_write_barrier_host), and a host object made a root (the last
// slice marks the host's roots again).
TEST(Incremental, WhatTheHostTakesBetweenSlicesLives) {
    Graph g(CB_DRIVE_BRIDGE);
    cb_host_ref root = g.host(2, /*rooted=*/true);
    Node *a = g.rc(), *b = g.rc();
    g.ring({a, b});
    g.drop(a);
    g.drop(b);   // a <-> b: garbage, still allocated
    cb_host_ref x = g.host(1), y = g.host(1);   // garbage host objects
    uint64_t ix = g.hid(x), iy = g.hid(y);
    Mixed filler(g, 100);
    int when = marking_under_way(g, 10) + 2;
    run_slices(g, 10, [&](int i) {
        if (i != when) return;
        g.set_slot(root, 0, a);
        g.set_slot(root, 1, x);
        g.root(y);
    });
    EXPECT_TRUE(g.alive(a->id));
    EXPECT_TRUE(g.alive(b->id));
    EXPECT_EQ(g.count_ev(cbt::Ev::Clear, a->id) + g.count_ev(cbt::Ev::Clear, b->id), 0) << "torn down";
    EXPECT_TRUE(g.host_live(ix));
    EXPECT_TRUE(g.host_live(iy));
    for (int id : filler.garbage) EXPECT_TRUE(g.dead(id));
    // Nothing is left for a collection that sees the same graph at once.
    size_t nodes = g.live_nodes(), hosts = g.host_count();
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), nodes);
    EXPECT_EQ(g.host_count(), hosts);
}

// A traverse that throws in a slice ends the collection, which frees
// nothing; one that starts a slice from inside a slice is refused.
TEST(Incremental, AThrowingTraverseFreesNothingAndReentryIsRefused) {
    Graph g;
    Mixed m(g, 200);
    Node *bad = g.node_by_id(m.garbage[150]);
    bad->on_traverse = [](Node &, cb_visit_fn, void *) -> int { throw cbt::Boom(); };
    size_t tracked = 0;
    for (int gen = 0; gen < CB_GENERATIONS; ++gen) tracked += cb_generation_size(g.heap, gen);
    cb_status last = CB_OK;
    int finished = 0, slices = 0;
    Node *freed_between = g.node_by_id(m.live.back());
    while (!finished) {
        last = cb_collect_slice(g.heap, 30, &finished, &g.last);
        if (++slices == 3) g.unlink(g.node_by_id(m.live[m.live.size() - 2]), freed_between);   // a hole
    }
    EXPECT_EQ(last, CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW, bad), 1) << g.report_log();
    for (int id : m.garbage) EXPECT_TRUE(g.alive(id));
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    size_t after = 0;
    for (int gen = 0; gen < CB_GENERATIONS; ++gen) after += cb_generation_size(g.heap, gen);
    EXPECT_EQ(after, tracked - 1) << "the hole is closed, the freed node gone";

    auto reenter = [](Node &n, cb_visit_fn visit, void *arg) {
        int finished = 0;
        EXPECT_EQ(cb_collect_slice(n.g->heap, 10, &finished, nullptr), CB_ERR_BUSY);
        return n.traverse_default(visit, arg);
    };
    // Stop-the-world walks take no holes: this one would crash on any left.
    bad->on_traverse = reenter;
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    EXPECT_GE(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 1);

    Mixed more(g, 50);
    g.node_by_id(more.garbage[0])->on_traverse = reenter;
    run_slices(g, 20);
    EXPECT_GE(g.take_reports(CB_REPORT_REENTRANT_COLLECT), 1);
    for (int id : more.garbage) EXPECT_TRUE(g.dead(id));
}

// The program takes a reference to a node of a garbage cycle (as through a
// weakref) after the count: the cycle is reachable again.
TEST(Incremental, ACountTakenBetweenSlicesKeepsTheCycle) {
    Graph g;
    Mixed m(g, 200);
    Node *a = g.node_by_id(m.garbage[100]);
    int ia = a->id, ib = m.garbage[101];
    run_slices(g, 50, [&](int i) {
        if (i == 20) g.incref(a);
    });
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_EQ(g.dead_nodes(), 398u);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
}

// An edge moves from a garbage node to a live one the marking walk has
// already scanned, and the garbage side lets go: the target's count is
// unchanged, but it is referenced from outside the garbage.
TEST(Incremental, AnEdgeMovedToAScannedNodeKeepsItsTarget) {
    Graph g;
    Node *live = g.rc();               // held by the test: a root, first in the walk
    Node *x = g.rc(), *y = g.rc();     // y -> x, y <-> y: garbage holding x
    g.link(y, x);
    g.link(y, y);
    int ix = x->id, iy = y->id;
    g.drop(x);
    g.drop(y);
    Mixed filler(g, 300);
    int when = marking_under_way(g, 40);
    bool moved = false;
    run_slices(g, 40, [&](int i) {
        if (i == when) {
            g.link(live, x);
            g.unlink(y, x);
            moved = true;
        }
    });
    ASSERT_TRUE(moved);
    EXPECT_TRUE(g.alive(ix));
    EXPECT_TRUE(g.dead(iy));
}

// A node made during the collection refers to a node of a garbage cycle.
TEST(Incremental, ANewNodeKeepsWhatItRefersTo) {
    Graph g;
    Mixed m(g, 200);
    Node *target = g.node_by_id(m.garbage[0]);
    Node *fresh = nullptr;
    run_slices(g, 50, [&](int i) {
        if (i == 15) {
            fresh = g.rc();
            g.link(fresh, target);
        }
    });
    ASSERT_NE(fresh, nullptr);
    EXPECT_TRUE(g.alive(m.garbage[0]));
    EXPECT_TRUE(g.alive(m.garbage[1]));
    EXPECT_TRUE(g.alive(fresh->id));
}

// Uncounted edges (into handle-managed nodes) made between slices are kept
// by their write barrier: into a node of the set, from a scanned one.
TEST(Incremental, AWriteBarrierKeepsAHandleManagedTarget) {
    Graph g;
    Node *live = g.rc();
    Node *m = g.hm();
    int im = m->id;
    g.drop(m);   // its handle closed: nothing holds it yet
    Mixed filler(g, 300);
    int when = marking_under_way(g, 40);
    run_slices(g, 40, [&](int i) {
        if (i == when) {
            g.link(live, m);   // uncounted
            cb_write_barrier(g.heap, m);
        }
    });
    EXPECT_TRUE(g.alive(im));
}

// A node made during the collection refers, uncounted, to a handle-managed
// node the count had not reached yet (its barrier found it outside the
// set), and the walk had passed the place of new nodes: the last slice
// scans the new nodes.
TEST(Incremental, ANewNodeKeepsAHandleManagedTargetTheCountHadNotReached) {
    Graph g;
    Mixed filler(g, 300);
    Node *holder = g.rc();
    Node *m = g.hm();
    int im = m->id;
    g.link(holder, m);   // uncounted: m lives through its holder
    g.drop(m);
    ASSERT_EQ(g.full(), CB_OK);   // all of it in generation 2, m near the end
    ASSERT_TRUE(g.alive(im));
    g.unlink(holder, m);          // now nothing refers to m
    Node *young = g.rc();         // generation 0, entered first
    run_slices(g, 40, [&](int i) {
        if (i == 1) {   // generation 0 entered; m not yet
            Node *fresh = g.rc();
            g.link(fresh, m);
            cb_write_barrier(g.heap, m);
        }
    });
    EXPECT_TRUE(g.alive(im));
    EXPECT_TRUE(g.alive(young->id));
}

// Nodes freed by their counts between slices leave holes the walks pass
// over; the rest is collected as usual.
TEST(Incremental, NodesFreedBetweenSlices) {
    Graph g;
    Mixed m(g, 300);
    Node *head = m.head;
    run_slices(g, 30, [&](int i) {
        if (i == 10) g.unlink(head, g.node_by_id(m.live[1]));   // frees the chain but its head
    });
    EXPECT_TRUE(g.alive(head->id));
    for (size_t k = 1; k < m.live.size(); ++k) EXPECT_TRUE(g.dead(m.live[k]));
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(cb_generation_size(g.heap, 2), 1u);
}

// A barrier while the count still enters nodes: the host object stored is
// traced only when the marking begins, so a node it holds that had not
// entered the set yet is marked all the same.
TEST(Incremental, ABarrierDuringTheCountTakesEffectWhenTheMarkingBegins) {
    Graph g(CB_DRIVE_BRIDGE);
    Mixed filler(g, 100);
    cb_host_ref root = g.host(1, /*rooted=*/true);
    cb_host_ref x = g.host(1);     // garbage so far
    Node *m = g.hm();              // last in generation 0: entered last
    g.set_slot(x, 0, m);
    g.drop(m);                     // held only by x, without a count
    run_slices(g, 10, [&](int i) {
        if (i == 1) g.set_slot(root, 0, x);   // the reference host's barrier
    });
    EXPECT_TRUE(g.host_live(g.hid(x)));
    EXPECT_TRUE(g.alive(m->id));
    EXPECT_EQ(g.count_ev(cbt::Ev::Clear, m->id), 0) << "torn down, though its holder lives";
    for (int id : filler.garbage) EXPECT_TRUE(g.dead(id));
}

// Much garbage: its clears spread over the slices after the check, at most
// a budget's worth each, while the program goes on with its live nodes;
// cb_is_collecting tells the teardown (2) from the marking (1).
TEST(Incremental, TheTeardownIsSpreadOverSlices) {
    Graph g;
    Mixed m(g, 1000);
    const size_t budget = 50;
    int marking = 0, teardown = 0, most = 0, before = 0;
    std::vector<Node *> made;
    run_slices(g, budget, [&](int) {
        int clears = g.count_ev(cbt::Ev::Clear);
        most = std::max(most, clears - before);
        before = clears;
        int phase = cb_is_collecting(g.heap);
        (phase == 2 ? teardown : marking)++;
        if (phase == 2) {   // the program runs: new nodes, an edge among live ones
            Node *n = g.rc();
            g.link(m.head, n);
            g.drop(n);
            made.push_back(n);
        }
    });
    EXPECT_GT(marking, 0);
    // A clear frees its node's partner by its count: 1,000 clears, a
    // quarter of the budget a slice (a clear counts as four units).
    const int per_slice = int(budget) / 4;
    EXPECT_GE(teardown, 1000 / per_slice - 1) << "1,000 clears, " << per_slice << " a slice";
    EXPECT_LE(most, per_slice);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    for (int id : m.live) EXPECT_TRUE(g.alive(id));
    for (Node *n : made) EXPECT_TRUE(g.alive(n->id));
    EXPECT_EQ(g.last.garbage, 2000u);
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
}

// A heap destroyed while the teardown is under way: the teardown is
// finished first (it cannot be undone), so the garbage is freed.
TEST(Incremental, DestroyDuringTheTeardownFinishesIt) {
    Graph g;
    Mixed m(g, 200);
    int finished = 0;
    while (!finished && cb_is_collecting(g.heap) != 2) ASSERT_EQ(cb_collect_slice(g.heap, 20, &finished, nullptr), CB_OK);
    ASSERT_FALSE(finished);
    ASSERT_EQ(cb_is_collecting(g.heap), 2);
    g.drop(m.head);   // the live chain goes by its counts; only the garbage is left
    for (int id : m.live) ASSERT_TRUE(g.dead(id));
    cb_heap_destroy(g.heap);
    g.heap = nullptr;   // destroyed: the fixture's own teardown has nothing left to do
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_TRUE(g.anomalies.empty());
}

// A chain whose every edge points to the node made before, held by its
// last node: the marking walk passes them all unmarked, and the root's scan
// then reaches them one by one behind the walk.
std::vector<Node *> backward_chain(Graph &g, int n) {
    std::vector<Node *> chain;
    for (int i = 0; i < n; ++i) {
        Node *node = g.rc();
        if (i > 0) {
            g.link(node, chain.back());
            g.drop(chain.back());
        }
        chain.push_back(node);
    }
    return chain;   // the test holds chain.back()
}

int traversals(const std::vector<Node *> &nodes) {
    int sum = 0;
    for (Node *n : nodes) sum += n->traverse_calls;
    return sum;
}

// The marking from a root scans what it reaches within the slice's budget
// and goes on in the next slice, rather than to the end at once.
TEST(Incremental, MarkingBehindTheWalkStaysWithinTheBudget) {
    Graph g;
    std::vector<Node *> chain = backward_chain(g, 2000);
    const size_t budget = 100;
    int before = 0, most = 0;
    run_slices(g, budget, [&](int) {
        int now = traversals(chain);
        most = std::max(most, now - before);
        before = now;
    });
    // A step is one node; the root's own scan comes on top of the drain.
    EXPECT_LE(most, int(budget) + 1);
    for (Node *n : chain) EXPECT_TRUE(g.alive(n->id));
    EXPECT_EQ(traversals(chain), 2 * 2000) << "each node traversed by the count and scanned once";
}

// The marking walk settles the nodes it scans, so only those it passed
// unmarked are looked at again: on a heap that is all live, three walks'
// worth of steps (enter, subtract, mark), not four.
TEST(Incremental, SettlingCostsOnlyTheNodesPassedUnmarked) {
    Graph g;
    Mixed m(g, 3000);   // 6,000 nodes of garbage and a live chain of 3,000
    const size_t budget = 100, nodes = 9000;
    int slices = run_slices(g, budget);
    // Each of the three walks steps over every node; settling steps over
    // the 6,000 the walk passed unmarked (garbage), the clears are 3,000
    // at a quarter of the budget each.
    const int at_most = int((3 * nodes + 6000) / budget + 3000 / (budget / 4)) + 10;
    EXPECT_LE(slices, at_most) << "a fourth walk over the 9,000 nodes would take " << nodes / budget << " more";
    EXPECT_GE(slices, at_most - 20);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    for (int id : m.live) EXPECT_TRUE(g.alive(id));
}

// Slices with a time budget (cb_collect_slice_for) read the clock every
// 1,024 steps (a clear counts as four). With a budget of 1 ns each slice
// is past its time at the first reading, so it walks or scans 1,024 nodes,
// or clears 256, at most. A long budget finishes the collection, teardown
// included, in one slice.
TEST(Incremental, TimedSlicesStopWhenTheirTimeIsUp) {
    constexpr int kSteps = 1024;
    Graph g;
    Mixed m(g, 4000);
    std::vector<Node *> chain = backward_chain(g, 8000);
    int slices = 0, teardown = 0, most_clears = 0, most_scans = 0, clears_before = 0, scans_before = 0;
    for (int finished = 0; !finished;) {
        ASSERT_EQ(cb_collect_slice_for(g.heap, 1, &finished, &g.last), CB_OK);
        ++slices;
        int clears = g.count_ev(cbt::Ev::Clear), scans = traversals(chain);
        most_clears = std::max(most_clears, clears - clears_before);
        most_scans = std::max(most_scans, scans - scans_before);
        clears_before = clears;
        scans_before = scans;
        if (cb_is_collecting(g.heap) == 2) ++teardown;
        ASSERT_LT(slices, 100000);
    }
    // 20,000 nodes, each entered, traversed, walked past and settled.
    EXPECT_GE(slices, 4 * 20000 / kSteps);
    EXPECT_LE(most_scans, kSteps + 1) << "a step is one node; the root's own scan comes on top";
    EXPECT_LE(most_clears, kSteps / 4);
    EXPECT_GE(teardown, 4000 / (kSteps / 4) - 1) << "4,000 clears, 256 a slice at most";
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    for (int id : m.live) EXPECT_TRUE(g.alive(id));
    for (Node *n : chain) EXPECT_TRUE(g.alive(n->id));
    EXPECT_EQ(g.last.garbage, 8000u);

    Graph h;
    Mixed n(h, 1000);
    int finished = 0;
    ASSERT_EQ(cb_collect_slice_for(h.heap, 60'000'000'000ull, &finished, &h.last), CB_OK);
    EXPECT_EQ(finished, 1) << "a minute is time enough for 3,000 nodes";
    for (int id : n.garbage) EXPECT_TRUE(h.dead(id));

    // A budget too long to add to the clock is no limit at all.
    Graph k;
    Mixed o(k, 1000);
    ASSERT_EQ(cb_collect_slice_for(k.heap, UINT64_MAX, &finished, &k.last), CB_OK);
    EXPECT_EQ(finished, 1);
    for (int id : o.garbage) EXPECT_TRUE(k.dead(id));
}

// Work budgets and time budgets may alternate within one collection.
TEST(Incremental, WorkAndTimeBudgetsAlternate) {
    Graph g;
    Mixed m(g, 4000);
    int slices = 0;
    for (int finished = 0; !finished; ++slices) {
        cb_status st = slices % 2 ? cb_collect_slice(g.heap, 50, &finished, &g.last)
                                  : cb_collect_slice_for(g.heap, 1, &finished, &g.last);
        ASSERT_EQ(st, CB_OK);
        ASSERT_LT(slices, 100000);
    }
    EXPECT_GE(slices, 2 * 4 * 12000 / (1024 + 50));
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    for (int id : m.live) EXPECT_TRUE(g.alive(id));
    EXPECT_EQ(g.last.garbage, 8000u);
    EXPECT_EQ(cb_collect_slice_for(nullptr, 1, nullptr, nullptr), CB_ERR_NULL_ARGUMENT);
}

// The slice ends with nodes marked but not yet scanned; the program frees
// the next of them before the following slice (in ASan builds, a use after
// free if the work list held it by address).
TEST(Incremental, ANodeWaitingToBeScannedMayBeFreedBetweenSlices) {
    Graph g;
    std::vector<Node *> chain = backward_chain(g, 2000);
    std::vector<int> ids;
    for (Node *n : chain) ids.push_back(n->id);
    int cut = -1;
    run_slices(g, 100, [&](int) {
        if (cut >= 0) return;
        // The lowest node the marking scanned (its second traversal) holds
        // the one the marking waits to scan.
        for (size_t i = 1; i < chain.size(); ++i)
            if (chain[i]->traverse_calls == 2) {
                if (chain[i - 1]->traverse_calls == 1) {
                    cut = int(i);
                    g.unlink(chain[i], chain[i - 1]);   // frees chain[0 .. i-1]
                }
                break;
            }
    });
    ASSERT_GT(cut, 0) << "the marking never stopped with work left";
    for (int i = 0; i < int(ids.size()); ++i)
        EXPECT_EQ(g.alive(ids[size_t(i)]), i >= cut) << "node " << i << " of the chain";
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), ids.size() - size_t(cut));
}

// Frozen nodes are roots: their uncounted edges keep handle-managed nodes
// of the set, and a frozen node freed between slices leaves a hole in the
// permanent generation's walk.
TEST(Incremental, FrozenNodesAreScannedInSlices) {
    Graph g;
    std::vector<Node *> frozen;
    std::vector<int> kept;
    for (int i = 0; i < 200; ++i) frozen.push_back(g.rc());
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    for (int i = 0; i < 200; ++i) {
        Node *m = g.hm();
        kept.push_back(m->id);
        g.link(frozen[size_t(i)], m);   // uncounted
        g.drop(m);
    }
    Mixed filler(g, 100);
    int when = marking_under_way(g, 10) + 3;
    run_slices(g, 10, [&](int i) {
        if (i == when) {   // the count is done and the frozen nodes' walk under way: free some ahead of it
            for (size_t k = 150; k < 160; ++k) g.drop(frozen[k]);
        }
    });
    for (size_t k = 0; k < kept.size(); ++k)
        if (k < 150 || k >= 160) {
            EXPECT_TRUE(g.alive(kept[k])) << "handle-managed node " << k;
        }
    for (int id : filler.garbage) EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(cb_frozen_count(g.heap), 190u);
}

// The set is what the arrays held when the collection began: a node made
// while the walk that enters it runs is new, not examined, and a cycle
// made then waits for the next collection (the side array of gc_refs is
// sized for the set once, at the start).
TEST(Incremental, NodesMadeWhileTheSetIsEnteredAreNotInIt) {
    Graph g;
    Mixed m(g, 100);
    std::vector<int> late;
    run_slices(g, 10, [&](int i) {
        if (i > 2) return;   // entering generation 0's 300 nodes takes 30 slices
        auto [a, b] = g.garbage_pair();
        late.push_back(a);
        late.push_back(b);
    });
    EXPECT_EQ(g.last.examined, 300u);
    for (int id : m.garbage) EXPECT_TRUE(g.dead(id));
    for (int id : late) EXPECT_TRUE(g.alive(id)) << "a node made during the collection was in its set";
    run_slices(g, 10);
    for (int id : late) EXPECT_TRUE(g.dead(id));
}

// The side array of gc_refs (bridge/refs_array.hpp) stays from one
// incremental collection to the next, so the next one touches no fresh
// page for it; it goes after two full collections that did not use it.
TEST(Incremental, TheSideArrayIsKeptWhileCollectionsUseIt) {
    constexpr size_t kNodes = 1 << 20;   // a 4 MiB side array: 1,024 pages
    constexpr long kPages = long(kNodes * sizeof(uint32_t) / 4096);
    cb_heap_options options{};
    options.flags = CB_HEAP_NO_AUTO_COLLECT;
    cb_heap *heap = cb_heap_new(&options);
    cb_type_spec spec{};
    spec.name = "leaf";
    spec.traverse = [](void *, cb_visit_fn, void *) { return 0; };
    spec.count_offset = 0;
    cb_type *type = nullptr;
    ASSERT_EQ(cb_type_register(heap, &spec, &type), CB_OK);
    std::vector<void *> objects(kNodes);
    for (auto &obj : objects) {
        obj = cb_alloc(heap, type, sizeof(intptr_t));
        *static_cast<intptr_t *>(obj) = 1;   // held by the test
        ASSERT_EQ(cb_track(heap, obj), CB_OK);
    }
    ASSERT_EQ(cb_collect(heap, CB_FULL, nullptr), CB_OK);   // all in the oldest generation
    auto incremental = [&] {
        int finished = 0;
        while (!finished) ASSERT_EQ(cb_collect_slice(heap, 100000, &finished, nullptr), CB_OK);
    };
    long first = page_faults_in(incremental);
    long second = page_faults_in(incremental);
    EXPECT_GE(first, kPages * 3 / 4) << "the first collection touches the array's pages";
    EXPECT_LT(second, kPages / 4) << "the array was made again";
    ASSERT_EQ(cb_collect(heap, CB_FULL, nullptr), CB_OK);   // one interval without it: kept
    EXPECT_LT(page_faults_in(incremental), kPages / 4) << "released after one interval";
    ASSERT_EQ(cb_collect(heap, CB_FULL, nullptr), CB_OK);
    ASSERT_EQ(cb_collect(heap, CB_FULL, nullptr), CB_OK);   // two: released
    EXPECT_GE(page_faults_in(incremental), kPages * 3 / 4) << "kept after two intervals unused";
    for (void *obj : objects) {
        cb_untrack(heap, obj);
        cb_free(heap, obj);
    }
    cb_heap_destroy(heap);
}

// Random programs between slices: whatever they do, every node reachable
// from what the test holds is alive when the collection ends, and a
// stop-the-world collection after it leaves exactly those.
TEST(Incremental, RandomProgramsBetweenSlices) {
    for (uint64_t seed = 1; seed <= 200; ++seed) {
        std::mt19937_64 rng(seed);
        Graph g;
        std::vector<Node *> held;   // one test reference each (repeats allowed)
        auto reachable = [&] {
            std::set<Node *> seen;
            std::deque<Node *> todo(held.begin(), held.end());
            while (!todo.empty()) {
                Node *n = todo.front();
                todo.pop_front();
                if (!seen.insert(n).second) continue;
                for (auto &e : n->edges) todo.push_back(e.to);
            }
            return seen;
        };
        auto pick = [&](const std::set<Node *> &from) {
            auto it = from.begin();
            std::advance(it, rng() % from.size());
            return *it;
        };
        // Start: a random graph, part of it held.
        std::vector<Node *> all;
        for (int i = 0; i < 300; ++i) all.push_back(rng() % 5 ? g.rc() : g.hm());
        for (int i = 0; i < 450; ++i) {
            Node *a = all[rng() % all.size()], *b = all[rng() % all.size()];
            g.link(a, b);
        }
        for (Node *n : all) {
            if (rng() % 10 == 0) held.push_back(n);
            else g.drop(n);
        }
        all.clear();   // some are freed already: only what `reachable` finds is touched
        // Where the nodes are when the collection starts: all young, all in
        // the oldest generation (its holes filled at the end), or frozen
        // (walked as roots, holes and all) with new ones to collect.
        const int start = int(seed % 3);
        if (start >= 1) {
            ASSERT_EQ(g.full(), CB_OK);
        }
        if (start == 2) {
            ASSERT_EQ(cb_freeze(g.heap), CB_OK);
            for (Node *n : reachable()) {
                if (rng() % 3) continue;
                Node *fresh = rng() % 5 ? g.rc() : g.hm();
                g.link(n, fresh);
                if (rng() % 2) g.link(fresh, n);
                g.drop(fresh);
            }
        }

        run_slices(g, 1 + rng() % 30, [&](int) {
            for (int op = int(rng() % 6); op > 0; --op) {
                std::set<Node *> r = reachable();
                switch (rng() % 5) {
                case 0: {   // a new node, held
                    Node *n = rng() % 5 ? g.rc() : g.hm();
                    if (!r.empty()) {
                        g.link(n, pick(r));
                        if (n->edges.back().to->hm) cb_write_barrier(g.heap, n->edges.back().to);
                    }
                    held.push_back(n);
                    break;
                }
                case 1:   // a new edge between reachable nodes
                    if (!r.empty()) {
                        Node *a = pick(r), *b = pick(r);
                        g.link(a, b);
                        if (b->hm) cb_write_barrier(g.heap, b);
                    }
                    break;
                case 2:   // an edge dropped
                    if (!r.empty()) {
                        Node *a = pick(r);
                        if (!a->edges.empty()) g.unlink(a, a->edges[rng() % a->edges.size()].to);
                    }
                    break;
                case 3:   // a held reference dropped
                    if (!held.empty()) {
                        size_t k = rng() % held.size();
                        Node *n = held[k];
                        held.erase(held.begin() + long(k));
                        g.drop(n);
                    }
                    break;
                case 4:   // a reference taken to any node still allocated (a weakref's get),
                          // until the garbage is known: its weakrefs are cleared then
                    if (g.live_nodes() > 0 && cb_is_collecting(g.heap) == 1) {
                        Node *n = g.node_by_id(g.any_live_id(rng()));
                        g.incref(n);
                        held.push_back(n);
                    }
                    break;
                }
            }
        });
        std::set<Node *> r = reachable();
        for (Node *n : r) {
            ASSERT_TRUE(g.alive(n->id)) << "seed " << seed << ": reachable node " << n->id << " freed";
            // Nor torn down and kept only because the test held a count.
            ASSERT_EQ(g.count_ev(cbt::Ev::Clear, n->id), 0) << "seed " << seed << ": reachable node " << n->id
                                                             << " cleared";
        }
        EXPECT_EQ(g.take_reports(CB_REPORT_SURVIVED_CLEAR), 0) << "seed " << seed;
        ASSERT_EQ(cb_unfreeze(g.heap), CB_OK);
        ASSERT_EQ(g.full(), CB_OK);
        EXPECT_EQ(g.live_nodes(), reachable().size()) << "seed " << seed;
        g.clear_reports();
    }
}

}  // namespace
