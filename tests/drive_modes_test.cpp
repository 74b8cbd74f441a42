// The two ways of driving a full collection: bridge-driven (the bridge marks
// the host through cb_host_interface) and host-driven (the host's collector
// calls cb_hd_*). Tests run the reference host heap in both modes, compare
// the two on the same graphs, and drive both protocols by hand with a small
// host written here.
#include "support/test_graph.hpp"

#include <random>

using namespace cbt;

namespace {

const auto kModes = ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST);

// ---------------------------------------------------------------------------
// The reference host heap in both modes

class Modes : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(Modes, ModeAndOneHostPerHeap) {
    Graph g(GetParam());
    EXPECT_EQ(cb_refheap_mode(g.rh), GetParam());
    if (GetParam() == CB_DRIVE_BRIDGE) {
        EXPECT_EQ(cb_refheap_new(g.heap, CB_DRIVE_HOST), nullptr) << "the heap already has a host";
        g.clear_reports();
    }
}

TEST_P(Modes, HostRootsAreCounted) {
    Graph g(GetParam());
    cb_host_ref r = g.host(1);
    uint64_t ir = g.hid(r);
    g.root(r);
    g.root(r);
    g.unroot(r);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ir)) << "two adds, one remove: still a root";
    g.unroot(r);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ir));
}

TEST_P(Modes, HostOnlyCyclesAndUnreferencedObjectsAreReclaimed) {
    Graph g(GetParam());
    cb_host_ref a = g.host(1), b = g.host(1), lone = g.host(0);
    uint64_t ia = g.hid(a), ib = g.hid(b), il = g.hid(lone);
    g.set_slot(a, 0, b);
    g.set_slot(b, 0, a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ia));
    EXPECT_FALSE(g.host_live(ib));
    EXPECT_FALSE(g.host_live(il));
    EXPECT_EQ(g.host_count(), 0u);
}

TEST_P(Modes, NodeHeldByRootedHostIsKeptAndItsHostEdgesToo) {
    // rooted R -> slot a; a -> H1 -> slot b; b <-> b; b -> H2. Garbage:
    // c -> H3 -> slot c.
    Graph g(GetParam());
    cb_host_ref R = g.host(1, true), H1 = g.host(1), H2 = g.host(0), H3 = g.host(1);
    Node *a = g.rc(), *b = g.rc(), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    uint64_t i1 = g.hid(H1), i2 = g.hid(H2), i3 = g.hid(H3);
    g.set_slot(R, 0, a);
    g.link_host(a, H1);
    g.set_slot(H1, 0, b);
    g.link(b, b);
    g.link_host(b, H2);
    g.link_host(c, H3);
    g.set_slot(H3, 0, c);
    for (Node *n : {a, b, c}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_TRUE(g.host_live(i1));
    EXPECT_TRUE(g.host_live(i2));
    EXPECT_FALSE(g.host_live(i3));
    EXPECT_EQ(g.last.garbage, 1u);
    if (GetParam() == CB_DRIVE_BRIDGE) {
        EXPECT_EQ(g.last.host_marked, 3u) << "R, H1 and H2";
    }
}

TEST_P(Modes, DeepHostChainIsMarkedWithoutRecursion) {
    // rooted h0 -> h1 -> ... -> h49999 -> slot: node cycle; and an
    // alternating chain host -> node -> host -> node ... of 20,000 links.
    constexpr int kHosts = 50000, kAlt = 20000;
    Graph g(GetParam());
    cb_host_ref head = g.host(1, true);
    cb_host_ref prev = head;
    for (int i = 0; i < kHosts; ++i) {
        cb_host_ref h = g.host(1);
        g.set_slot(prev, 0, h);
        prev = h;
    }
    Node *tail = g.rc();
    int itail = tail->id;
    g.link(tail, tail);
    cb_host_ref last = g.host(2);
    g.set_slot(prev, 0, last);
    g.set_slot(last, 0, tail);
    g.drop(tail);
    // alternating chain hanging off `last`
    cb_host_ref hp = last;
    for (int i = 0; i < kAlt; ++i) {
        Node *n = g.rc();
        g.link(n, n);
        g.set_slot(hp, 1, n);
        cb_host_ref next = g.host(2);
        g.link_host(n, next);
        g.drop(n);
        hp = next;
    }
    size_t hosts = g.host_count();
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.host_count(), hosts);
    EXPECT_EQ(g.live_nodes(), size_t(kAlt + 1));
    EXPECT_TRUE(g.alive(itail));
    EXPECT_TRUE(g.events.empty());
    g.unroot(head);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.host_count(), 0u);
    EXPECT_EQ(g.live_nodes(), 0u);
}

TEST_P(Modes, DestroyingTheHostHeapDropsItsNodeReferences) {
    Graph g(GetParam());
    cb_host_ref h = g.host(2, true);
    Node *a = g.rc(), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.set_slot(h, 0, a);
    g.set_slot(h, 1, b);
    g.link(b, b);
    g.link_host(b, h);
    g.drop(a);
    g.drop(b);
    g.destroy_refheap();
    EXPECT_TRUE(g.dead(ia)) << "its only reference was the host's";
    EXPECT_TRUE(g.alive(ib));
    EXPECT_EQ(g.count(b), 1);
    b->hosts.clear();   // the host object is gone
    ASSERT_EQ(cb_collect(g.heap, CB_FULL, nullptr), CB_OK);
    EXPECT_TRUE(g.dead(ib));
    // The heap has no host now: a new one can be attached.
    cb_refheap *again = cb_refheap_new(g.heap, CB_DRIVE_BRIDGE);
    ASSERT_NE(again, nullptr);
    cb_refheap_destroy(again);
}

TEST_P(Modes, OverwritingSlotsDuringCollectionIsSafe) {
    // A finalizer rewires host slots while the host is being collected:
    // empties the slot holding another garbage node, and stores a live node.
    Graph g(GetParam());
    cb_host_ref R = g.host(1, true);
    cb_host_ref h = g.host(2);
    Node *a = g.make(RC().fin()), *b = g.rc(), *live = g.rc();
    int ia = a->id, ib = b->id, il = live->id;
    g.link_host(a, h);
    g.set_slot(h, 0, a);
    g.set_slot(h, 1, b);
    g.link(b, b);
    g.set_slot(R, 0, live);
    a->on_finalize = [&](Node &) {
        g.empty_slot(h, 1);       // b loses its host reference
        g.set_slot(h, 1, live);   // a garbage host object takes a live node
    };
    g.drop(a);
    g.drop(b);
    g.drop(live);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.alive(il));
    EXPECT_EQ(g.count(live), 1) << "h was reclaimed and released its reference to live";
    EXPECT_EQ(g.host_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Both, Modes, kModes, mode_name);

TEST(HostMode, TraceBudgetDoesNotChangeTheResult) {
    for (size_t budget : {size_t(1), size_t(2), size_t(7), size_t(0)}) {
        Graph g(CB_DRIVE_HOST);
        cb_refheap_set_trace_budget(g.rh, budget);
        cb_host_ref R = g.host(1, true);
        std::vector<Node *> chain;
        for (int i = 0; i < 50; ++i) chain.push_back(g.make(i % 3 == 1 ? HM() : RC()));
        for (int i = 0; i + 1 < 50; ++i) g.link(chain[i], chain[i + 1]);
        cb_host_ref mid = g.host(1);
        g.link_host(chain[25], mid);
        Node *held = g.rc();
        g.set_slot(mid, 0, held);
        g.set_slot(R, 0, chain[0]);
        for (Node *n : chain) g.drop(n);
        g.drop(held);
        ASSERT_EQ(g.full(), CB_OK) << "budget " << budget;
        EXPECT_EQ(g.live_nodes(), 51u) << "budget " << budget;
        EXPECT_EQ(g.host_count(), 2u) << "budget " << budget;
        g.unroot(R);
        ASSERT_EQ(g.full(), CB_OK);
        EXPECT_EQ(g.live_nodes(), 0u) << "budget " << budget;
        EXPECT_EQ(g.host_count(), 0u);
    }
}

TEST(HostMode, CbCollectWithoutHostInterfaceTreatsHostRefsAsRoots) {
    // A host-driven heap has no host interface: cb_collect(CB_FULL) cannot
    // see host objects, so host references are roots and nothing of the
    // host is reclaimed; cb_refheap_collect frees the cycle.
    Graph g(CB_DRIVE_HOST);
    Node *a = g.rc();
    int ia = a->id;
    cb_host_ref h = g.host(1), lone = g.host(0);
    uint64_t ih = g.hid(h), il = g.hid(lone);
    g.link_host(a, h);
    g.set_slot(h, 0, a);
    g.drop(a);
    ASSERT_EQ(cb_collect(g.heap, CB_FULL, nullptr), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_TRUE(g.host_live(il));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_FALSE(g.host_live(il));
}

TEST(BridgeMode, CbCollectIsTheRefheapCollection) {
    Graph g(CB_DRIVE_BRIDGE);
    Node *a = g.rc();
    int ia = a->id;
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    g.link_host(a, h);
    g.set_slot(h, 0, a);
    g.drop(a);
    ASSERT_EQ(cb_collect(g.heap, CB_FULL, nullptr), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_FALSE(g.host_live(ih));
}

// ---------------------------------------------------------------------------
// Both modes free the same objects: the same pseudo-random graphs, built
// and mutated identically in a bridge-driven and a host-driven heap.

struct World {
    Graph g;
    std::vector<Node *> held;      // nodes the test holds a reference to
    std::vector<Node *> kept;      // nodes resurrected by finalizers
    std::vector<int> node_ids;
    std::vector<uint64_t> host_ids;
    std::vector<cb_host_ref> roots;
    explicit World(cb_drive_mode m) : g(m) {}
};

void build(World &w, unsigned seed) {
    std::mt19937 rng(seed);
    auto pick = [&](size_t n) { return size_t(rng() % n); };
    Graph &g = w.g;
    std::vector<Node *> nodes;
    std::vector<cb_host_ref> hosts;
    for (int i = 0; i < 40; ++i) hosts.push_back(g.host(3));
    for (int i = 0; i < 150; ++i) {
        unsigned k = rng() % 20;
        TypeOpts t = k < 11 ? RC() : k < 14 ? RC().fin() : k < 18 ? HM() : k < 19 ? HM().fin() : RC().noclear();
        Node *n = g.make(t);
        nodes.push_back(n);
        w.node_ids.push_back(n->id);
        if (t.finalize && rng() % 4 == 0) {
            World *pw = &w;
            n->on_finalize = [pw](Node &self) {
                pw->g.incref(&self);
                pw->kept.push_back(&self);
            };
        }
    }
    for (Node *n : nodes) {
        int ne = int(rng() % 4);
        for (int e = 0; e < ne; ++e) g.link(n, nodes[pick(nodes.size())]);
        if (rng() % 4 == 0) g.link_host(n, hosts[pick(hosts.size())]);
    }
    for (cb_host_ref h : hosts) {
        w.host_ids.push_back(g.hid(h));
        for (size_t s = 0; s < 3; ++s) {
            unsigned r = rng() % 10;
            if (r < 4) g.set_slot(h, s, nodes[pick(nodes.size())]);
            else if (r < 7) g.set_slot(h, s, hosts[pick(hosts.size())]);
        }
    }
    for (int i = 0; i < 4; ++i) {
        cb_host_ref r = hosts[pick(hosts.size())];
        g.root(r);
        w.roots.push_back(r);
    }
    for (Node *n : nodes) {
        if (rng() % 25 == 0) w.held.push_back(n);
        else g.drop(n);
    }
}

struct Outcome {
    std::vector<int> dead_nodes;
    std::vector<bool> host_live;
    uint64_t garbage, finalized, resurrected;
    size_t kept;
    bool operator==(const Outcome &) const = default;
};

Outcome outcome(World &w) {
    Outcome o{};
    for (int id : w.node_ids)
        if (w.g.dead(id)) o.dead_nodes.push_back(id);
    for (uint64_t id : w.host_ids) o.host_live.push_back(w.g.host_live(id));
    o.garbage = w.g.last.garbage;
    o.finalized = w.g.last.finalized;
    o.resurrected = w.g.last.resurrected;
    o.kept = w.kept.size();
    return o;
}

TEST(Equivalence, BothModesFreeTheSameObjects) {
    for (unsigned seed = 1; seed <= 12; ++seed) {
        World wb(CB_DRIVE_BRIDGE), wh(CB_DRIVE_HOST);
        build(wb, seed);
        build(wh, seed);
        std::vector<Outcome> ob, oh;
        for (int step = 0; step < 4; ++step) {
            for (World *w : {&wb, &wh}) {
                if (step == 1) {   // the test lets go of its nodes
                    for (Node *n : w->held) w->g.drop(n);
                    w->held.clear();
                }
                if (step == 2) {   // the host drops its roots
                    for (cb_host_ref r : w->roots) w->g.unroot(r);
                    w->roots.clear();
                }
                if (step == 3) {   // resurrected nodes are let go too
                    for (Node *n : w->kept) w->g.drop(n);
                    w->kept.clear();
                }
                ASSERT_EQ(w->g.full(), CB_OK) << "seed " << seed << " step " << step;
                w->g.clear_reports();   // noclear-only cycles may be reported as survivors
            }
            Outcome b = outcome(wb), h = outcome(wh);
            EXPECT_EQ(b.dead_nodes, h.dead_nodes) << "seed " << seed << " step " << step;
            EXPECT_EQ(b.host_live, h.host_live) << "seed " << seed << " step " << step;
            EXPECT_EQ(b.garbage, h.garbage) << "seed " << seed << " step " << step;
            EXPECT_EQ(b.finalized, h.finalized) << "seed " << seed << " step " << step;
            EXPECT_EQ(b.resurrected, h.resurrected) << "seed " << seed << " step " << step;
            EXPECT_EQ(b.kept, h.kept) << "seed " << seed << " step " << step;
        }
    }
}

// ---------------------------------------------------------------------------
// A host written here, driving the bridge both ways by hand.

struct HObj {
    int id = 0;
    bool marked = false;
    bool dead = false;
    int roots = 0;
    std::vector<HObj *> hosts;
    std::vector<void *> nodes;
};

struct MiniHost {
    Graph &g;
    std::vector<std::unique_ptr<HObj>> objs;
    std::vector<HObj *> work;
    int enumerate_calls = 0, sweep_calls = 0, reset_calls = 0, newly_marked = 0, trace_calls = 0;
    std::vector<int> handed_to_host;   // ids given to mark_host (host-driven)
    std::function<void(HObj &)> on_trace;
    std::function<void()> on_sweep;
    bool attached = false;

    explicit MiniHost(Graph &graph) : g(graph) {}
    ~MiniHost() {
        if (attached) cb_set_host(g.heap, nullptr);
        // Drop node references still held (the Graph frees the nodes).
        for (auto &o : objs)
            if (!o->dead)
                for (void *n : o->nodes) cb_host_release(g.heap, n);
    }

    HObj *make(bool root = false) {
        auto o = std::make_unique<HObj>();
        o->id = int(objs.size()) + 1;
        o->roots = root ? 1 : 0;
        o->marked = cb_is_collecting(g.heap) != 0;   // allocated black
        objs.push_back(std::move(o));
        return objs.back().get();
    }
    void hold(HObj *o, Node *n) {
        EXPECT_EQ(cb_host_acquire(g.heap, n), CB_OK);
        o->nodes.push_back(n);
    }

    // ---- bridge-driven interface
    cb_host_interface iface() {
        cb_host_interface hi{};
        hi.ctx = this;
        hi.enumerate_roots = [](void *ctx, cb_host_visitor *v) {
            auto *self = static_cast<MiniHost *>(ctx);
            self->enumerate_calls++;
            for (auto &o : self->objs)
                if (!o->dead && o->roots > 0) cb_host_visit(v, o.get());
        };
        hi.trace = [](void *ctx, cb_host_ref ref, cb_host_visitor *v) {
            auto *self = static_cast<MiniHost *>(ctx);
            auto *o = static_cast<HObj *>(ref);
            self->trace_calls++;
            EXPECT_FALSE(o->dead);
            if (self->on_trace) self->on_trace(*o);
            for (HObj *h : o->hosts) cb_host_visit(v, h);
            for (void *n : o->nodes) cb_host_visit_node(v, n);
        };
        hi.mark = [](void *ctx, cb_host_ref ref) -> int {
            auto *self = static_cast<MiniHost *>(ctx);
            auto *o = static_cast<HObj *>(ref);
            if (o->marked) return 0;
            o->marked = true;
            self->newly_marked++;
            return 1;
        };
        hi.sweep = [](void *ctx) {
            auto *self = static_cast<MiniHost *>(ctx);
            self->sweep_calls++;
            self->g.record(Ev::Custom, -1, 0);   // sweep marker in the event log
            if (self->on_sweep) self->on_sweep();
            self->sweep();
        };
        hi.reset_marks = [](void *ctx) {
            auto *self = static_cast<MiniHost *>(ctx);
            self->reset_calls++;
            for (auto &o : self->objs) o->marked = false;
        };
        return hi;
    }
    void attach() {
        cb_host_interface hi = iface();
        ASSERT_EQ(cb_set_host(g.heap, &hi), CB_OK);
        attached = true;
    }
    void sweep() {
        std::vector<HObj *> dying;
        for (auto &o : objs) {
            if (o->dead) continue;
            if (o->marked) o->marked = false;
            else dying.push_back(o.get());
        }
        for (HObj *o : dying) o->dead = true;
        for (HObj *o : dying) {
            std::vector<void *> ns = std::move(o->nodes);
            o->nodes.clear();
            o->hosts.clear();
            for (void *n : ns) EXPECT_EQ(cb_host_release(g.heap, n), CB_OK);
        }
    }

    // ---- host-driven protocol (api.md section 13)
    static void mark_and_push(void *ctx, cb_host_ref ref) {
        auto *self = static_cast<MiniHost *>(ctx);
        auto *o = static_cast<HObj *>(ref);
        self->handed_to_host.push_back(o->id);
        if (!o->marked) {
            o->marked = true;
            self->work.push_back(o);
        }
    }
    int epilogue_rounds = 0, busy_traces = 0;
    cb_status collect_host_driven(size_t budget) {
        for (auto &o : objs) o->marked = false;
        cb_host_hooks hooks{this, &MiniHost::mark_and_push};
        cb_status st = cb_hd_prologue(g.heap, &hooks);
        if (st != CB_OK) return st;
        for (auto &o : objs)
            if (!o->dead && o->roots > 0) mark_and_push(this, o.get());
        int finished = 0;
        do {
            for (;;) {
                while (!work.empty()) {
                    HObj *o = work.back();
                    work.pop_back();
                    for (HObj *h : o->hosts) mark_and_push(this, h);
                    for (void *n : o->nodes) EXPECT_EQ(cb_hd_visit_node(g.heap, n), CB_OK);
                }
                int idle = 0;
                EXPECT_EQ(cb_hd_trace(g.heap, budget, &idle), CB_OK);
                if (!idle) busy_traces++;
                if (idle && work.empty()) break;
            }
            st = cb_hd_epilogue(g.heap, &finished);
            epilogue_rounds++;
        } while (!finished);
        if (st != CB_OK) {
            for (auto &o : objs) o->marked = false;
            return st;
        }
        g.record(Ev::Custom, -1, 0);
        sweep();
        return CB_OK;
    }
};

TEST(CustomHost, BridgeDrivenProtocol) {
    Graph g;
    MiniHost host(g);
    host.attach();
    // R (root) holds a; a -> H1; H1 holds b (self-cycle); b -> H2.
    // garbage: c -> H3, H3 holds c; H4 -> H5 -> H4 (host-only cycle).
    HObj *R = host.make(true), *H1 = host.make(), *H2 = host.make(), *H3 = host.make(), *H4 = host.make(),
         *H5 = host.make();
    Node *a = g.rc(), *b = g.rc(), *c = g.make(RC().fin());
    int ia = a->id, ib = b->id, ic = c->id;
    host.hold(R, a);
    g.link_host(a, H1);
    host.hold(H1, b);
    g.link(b, b);
    g.link_host(b, H2);
    g.link_host(c, H3);
    host.hold(H3, c);
    H4->hosts.push_back(H5);
    H5->hosts.push_back(H4);
    for (Node *n : {a, b, c}) g.drop(n);

    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_EQ(host.enumerate_calls, 1);
    EXPECT_EQ(host.sweep_calls, 1);
    EXPECT_EQ(host.reset_calls, 0);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_FALSE(R->dead);
    EXPECT_FALSE(H1->dead);
    EXPECT_FALSE(H2->dead);
    EXPECT_TRUE(H3->dead);
    EXPECT_TRUE(H4->dead);
    EXPECT_TRUE(H5->dead);
    EXPECT_EQ(host.newly_marked, 3) << "R, H1, H2";
    EXPECT_EQ(g.last.host_marked, uint64_t(host.newly_marked));
    EXPECT_EQ(host.trace_calls, 3) << "each marked object traced once";
    // c's finalizer ran before the sweep, c's dealloc came from the sweep.
    long sweep_at = g.first(Ev::Custom, -1);
    EXPECT_LT(g.first(Ev::Finalize, ic), sweep_at);
    EXPECT_LT(g.first(Ev::Clear, ic), sweep_at);
    EXPECT_GT(g.first(Ev::Dealloc, ic), sweep_at);
    for (auto &o : host.objs)
        if (!o->dead) {
            EXPECT_FALSE(o->marked) << "sweep unmarks survivors";
        }

    // Young collections never touch the host.
    ASSERT_EQ(g.collect(0), CB_OK);
    ASSERT_EQ(g.collect(1), CB_OK);
    EXPECT_EQ(host.enumerate_calls, 1);
    EXPECT_EQ(host.sweep_calls, 1);

    // Unroot: everything goes.
    R->roots = 0;
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    for (auto &o : host.objs) EXPECT_TRUE(o->dead) << o->id;
}

TEST(CustomHost, HandleManagedGarbageHeldByGarbageHostObject) {
    // m (HM, no handle) -> H, H holds m: a cycle through the host. m must be
    // freed exactly once, and H's release of m must come before m's memory
    // is gone (or m must be freed when the release drops the last host ref).
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    MiniHost host(g);
    host.attach();
    HObj *H = host.make();
    Node *m = g.hm();
    int im = m->id;
    g.link_host(m, H);
    host.hold(H, m);
    g.drop(m);
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.dead(im));
    EXPECT_TRUE(H->dead);
    EXPECT_EQ(g.count_ev(Ev::Dealloc, im), 1);
    EXPECT_TRUE(g.reports.empty()) << g.report_log();
}

TEST(CustomHost, HostTraceThrowsFreesNothingAndResetsMarks) {
    Graph g;
    MiniHost host(g);
    host.attach();
    HObj *R = host.make(true), *H = host.make(), *G = host.make();
    Node *a = g.rc(), *c = g.rc();
    int ia = a->id, ic = c->id;
    host.hold(R, a);
    g.link_host(a, H);
    g.link(c, c);   // plain garbage
    g.link_host(c, G);
    g.drop(a);
    g.drop(c);
    host.on_trace = [&](HObj &o) {
        if (&o == H) throw Boom();
    };
    EXPECT_EQ(g.collect(CB_FULL), CB_ERR_CALLBACK_FAILED);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
    EXPECT_EQ(host.sweep_calls, 0);
    EXPECT_EQ(host.reset_calls, 1);
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    EXPECT_TRUE(g.alive(ic));
    for (auto &o : host.objs) {
        EXPECT_FALSE(o->dead);
        EXPECT_FALSE(o->marked);
    }
    host.on_trace = nullptr;
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_FALSE(H->dead);
    EXPECT_TRUE(G->dead);
}

TEST(CustomHost, HostSweepThrowsIsReported) {
    Graph g;
    MiniHost host(g);
    host.attach();
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    host.on_sweep = [] { throw Boom(); };
    EXPECT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_EQ(g.take_reports(CB_REPORT_CALLBACK_THREW), 1) << g.report_log();
    EXPECT_TRUE(g.dead(ia));
    host.on_sweep = nullptr;
    expect_collector_still_works(g);
}

TEST(CustomHost, HostVisitOfInvalidNodeUnderVerify) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    MiniHost host(g);
    host.attach();
    HObj *R = host.make(true);
    Node *f = g.rc();
    void *stale = f;
    g.drop(f);   // freed
    R->nodes.push_back(stale);   // a host object holding a dangling pointer
    ASSERT_EQ(g.collect(CB_FULL), CB_OK);
    EXPECT_GE(g.take_reports(CB_REPORT_VISIT_INVALID, stale), 1) << g.report_log();
    R->nodes.clear();
    expect_collector_still_works(g);
}

TEST(CustomHost, HostDrivenProtocolByHand) {
    Graph g;
    MiniHost host(g);
    HObj *R = host.make(true), *H1 = host.make(), *H2 = host.make(), *H3 = host.make();
    Node *a = g.rc(), *b = g.rc(), *c = g.rc(), *m = g.hm(), *d = g.rc();
    int ia = a->id, ib = b->id, ic = c->id, im = m->id, id = d->id;
    host.hold(R, a);
    g.link_host(a, H1);
    host.hold(H1, b);
    g.link(b, b);
    g.link_host(b, H2);
    g.link_host(c, H3);
    host.hold(H3, c);
    g.link(m, d);
    g.link(d, m);
    for (Node *n : {a, b, c, m, d}) g.drop(n);
    ASSERT_EQ(host.collect_host_driven(0), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_TRUE(g.dead(im));
    EXPECT_TRUE(g.dead(id));
    EXPECT_FALSE(H1->dead);
    EXPECT_FALSE(H2->dead);
    EXPECT_TRUE(H3->dead);
    auto handed = [&](HObj *o) {
        return std::count(host.handed_to_host.begin(), host.handed_to_host.end(), o->id);
    };
    EXPECT_GE(handed(H1), 1);
    EXPECT_GE(handed(H2), 1);
    EXPECT_EQ(handed(H3), 0) << "garbage c's host object was handed to the host as live";
    EXPECT_EQ(cb_is_collecting(g.heap), 0);
    cb_collection_stats s{};
    ASSERT_EQ(cb_last_stats(g.heap, &s), CB_OK);
    EXPECT_EQ(s.generation, CB_FULL);
    EXPECT_EQ(s.garbage, 3u);
    // Sweep came after all teardown of non-host-held garbage.
    long sweep_at = g.first(Ev::Custom, -1);
    EXPECT_LT(g.first(Ev::Dealloc, im), sweep_at);
    EXPECT_LT(g.first(Ev::Dealloc, id), sweep_at);
}

TEST(CustomHost, HostDrivenTraceHonoursBudget) {
    // R holds n0; n0 -> n1 -> ... -> n19: only reachable through the host,
    // so the bridge traces them in cb_hd_trace steps of at most one node.
    Graph g;
    MiniHost host(g);
    HObj *R = host.make(true);
    std::vector<Node *> chain;
    for (int i = 0; i < 20; ++i) chain.push_back(g.rc());
    for (int i = 0; i + 1 < 20; ++i) g.link(chain[i], chain[i + 1]);
    host.hold(R, chain[0]);
    for (Node *n : chain) g.drop(n);
    ASSERT_EQ(host.collect_host_driven(1), CB_OK);
    EXPECT_EQ(g.live_nodes(), 20u);
    EXPECT_GE(host.busy_traces, 10) << "budget 1: one node per cb_hd_trace";
    host.busy_traces = 0;
    ASSERT_EQ(host.collect_host_driven(0), CB_OK);
    EXPECT_LE(host.busy_traces, 1) << "no budget: the first trace drains everything";
    R->roots = 0;
    ASSERT_EQ(host.collect_host_driven(3), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
}

TEST(CustomHost, HostDrivenVisitOfNonNode) {
    Graph g(CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT);
    cb_host_hooks hooks{nullptr, [](void *, cb_host_ref) {}};
    ASSERT_EQ(cb_hd_prologue(g.heap, &hooks), CB_OK);
    int junk = 0;
    EXPECT_EQ(cb_hd_visit_node(g.heap, &junk), CB_ERR_NOT_A_NODE);
    EXPECT_EQ(g.take_reports(CB_REPORT_VISIT_INVALID, &junk), 1) << g.report_log();
    EXPECT_EQ(cb_hd_visit_node(g.heap, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_NULL_ARGUMENT));
    int idle = 0, finished = 0;
    ASSERT_EQ(cb_hd_trace(g.heap, 0, &idle), CB_OK);
    EXPECT_EQ(idle, 1);
    do {
        ASSERT_EQ(cb_hd_epilogue(g.heap, &finished), CB_OK);
    } while (!finished);
    expect_collector_still_works(g);
}

TEST(CustomHost, HostDrivenEpilogueLoopsForResurrectedHostEdges) {
    // A finalizer resurrects a node that refers to a host object nobody
    // marked yet: the epilogue must hand it to the host (finished = 0) and
    // the node it holds must survive without being cleared.
    Graph g;
    MiniHost host(g);
    HObj *H = host.make();   // unrooted, reached only from a
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, a);
    g.link_host(a, H);
    host.hold(H, b);
    g.drop(b);
    Node *keep = nullptr;
    a->on_finalize = [&](Node &n) {
        keep = &n;
        g.incref(&n);
    };
    g.drop(a);
    ASSERT_EQ(host.collect_host_driven(0), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_FALSE(H->dead);
    EXPECT_EQ(g.count_ev(Ev::Clear), 0) << g.event_log();
    EXPECT_GE(host.epilogue_rounds, 2);
    g.drop(keep);
    ASSERT_EQ(host.collect_host_driven(0), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(H->dead);
}

}  // namespace
