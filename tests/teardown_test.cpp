// Teardown in CPython's order, one test per step:
//   legacy finalizers set aside (uncollectable list) -> weakrefs to garbage
//   cleared, callbacks only if the holder survives -> finalizers, at most once
//   -> reachability re-checked (resurrection) -> clear with the object held,
//   dealloc when the count reaches zero, handle-managed garbage deallocated
//   after all clears -> host objects swept last.
#include "support/test_graph.hpp"

using namespace cbt;

namespace {

// ---------------------------------------------------------------------------
// Legacy finalizers: the uncollectable list

TEST(Legacy, CycleWithLegacyFinalizerIsKeptWithReasons) {
    Graph g;
    Node *l = g.make(RC().leg()), *b = g.make(RC().fin()), *m = g.hm();
    int il = l->id, ib = b->id, im = m->id;
    g.link(l, b);
    g.link(b, l);
    g.link(b, m);   // reached from the legacy cycle: kept too (not finalized)
    WeakRec *w = g.weakref(b);
    g.drop(l);
    g.drop(b);
    g.drop(m);
    EXPECT_EQ(g.count(l), 1);
    EXPECT_EQ(g.count(b), 1);
    EXPECT_EQ(g.count(m), 0);

    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(il));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.alive(im));
    EXPECT_TRUE(g.events.empty()) << "nothing kept as uncollectable may be finalized, cleared or freed (and the "
                                     "legacy finalizer is never called): "
                                  << g.event_log();
    EXPECT_EQ(g.last.uncollectable, 3u);
    EXPECT_EQ(g.last.freed, 0u);
    EXPECT_EQ(g.last.finalized, 0u);
    EXPECT_EQ(w->get(), b) << "weakrefs to uncollectable objects are not cleared";
    EXPECT_EQ(w->calls, 0);

    ASSERT_EQ(cb_uncollectable_count(g.heap), 3u);
    std::map<void *, cb_uncollectable> entries;
    for (size_t i = 0; i < 3; ++i) {
        cb_uncollectable u{};
        ASSERT_EQ(cb_uncollectable_get(g.heap, i, &u), CB_OK);
        entries[u.object] = u;
    }
    ASSERT_EQ(entries.size(), 3u);
    ASSERT_TRUE(entries.count(l) && entries.count(b) && entries.count(m));
    EXPECT_EQ(entries[l].reason, CB_UNCOLLECTABLE_LEGACY_FINALIZER);
    EXPECT_EQ(entries[l].culprit, l);
    EXPECT_EQ(entries[b].reason, CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY);
    EXPECT_EQ(entries[b].culprit, l);
    EXPECT_EQ(entries[m].reason, CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY);
    EXPECT_EQ(entries[m].culprit, l);
    // The heap holds one count on each.
    EXPECT_EQ(g.count(l), 2);
    EXPECT_EQ(g.count(b), 2);
    EXPECT_EQ(g.count(m), 1);

    // Held by the list, they are roots now: a second collection adds nothing.
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(cb_uncollectable_count(g.heap), 3u);
    EXPECT_EQ(g.last.uncollectable, 0u);
    EXPECT_EQ(g.count(l), 2);
    EXPECT_TRUE(g.events.empty()) << g.event_log();

    // del gc.garbage[:]: the heap drops its counts.
    ASSERT_EQ(cb_uncollectable_release(g.heap), CB_OK);
    EXPECT_EQ(cb_uncollectable_count(g.heap), 0u);
    EXPECT_EQ(g.count(l), 1);
    EXPECT_EQ(g.count(b), 1);
    EXPECT_EQ(g.count(m), 0);
    EXPECT_TRUE(g.alive(il));

    // Still a garbage cycle with a legacy finalizer: found again.
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(cb_uncollectable_count(g.heap), 3u);
    EXPECT_TRUE(g.events.empty()) << g.event_log();
    ASSERT_EQ(cb_uncollectable_release(g.heap), CB_OK);

    // The program breaks the cycle itself: refcounting frees l and b; m goes
    // at the next collection. The legacy finalizer is never called by us.
    g.unlink(b, l);
    EXPECT_TRUE(g.dead(il));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.alive(im));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im));
    EXPECT_EQ(g.count_ev(Ev::Legacy), 0);
    EXPECT_EQ(g.count_ev(Ev::Finalize), 0) << "b was never finalized: it died by refcount";
}

TEST(Legacy, OtherGarbageIsFreedInTheSameCollection) {
    // legacy self-cycle L; garbage cycle x <-> y that refers to L; an
    // independent garbage cycle p <-> q. x, y, p, q freed; L kept.
    Graph g;
    Node *L = g.make(RC().leg()), *x = g.make(RC().fin()), *y = g.rc(), *p = g.rc(), *q = g.rc();
    int iL = L->id;
    std::vector<int> freed = ids({x, y, p, q});
    g.link(L, L);
    g.link(x, y);
    g.link(y, x);
    g.link(x, L);
    g.link(p, q);
    g.link(q, p);
    for (Node *n : {L, x, y, p, q}) g.drop(n);
    EXPECT_EQ(g.count(L), 2);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : freed) EXPECT_TRUE(g.dead(id)) << id;
    EXPECT_TRUE(g.alive(iL));
    EXPECT_EQ(g.last.uncollectable, 1u);
    EXPECT_EQ(g.last.freed, 4u);
    EXPECT_EQ(g.last.finalized, 1u);
    ASSERT_EQ(cb_uncollectable_count(g.heap), 1u);
    cb_uncollectable u{};
    ASSERT_EQ(cb_uncollectable_get(g.heap, 0, &u), CB_OK);
    EXPECT_EQ(u.object, L);
    EXPECT_EQ(u.reason, CB_UNCOLLECTABLE_LEGACY_FINALIZER);
    EXPECT_EQ(g.count(L), 2) << "self edge + the list's count; x's reference is gone";
    EXPECT_EQ(g.count_ev(Ev::Finalize, iL), 0);
    EXPECT_EQ(g.count_ev(Ev::Clear, iL), 0);
}

TEST(Legacy, GetOutOfRangeIsRefused) {
    Graph g;
    cb_uncollectable u{};
    EXPECT_EQ(cb_uncollectable_get(g.heap, 0, &u), CB_ERR_BAD_ARGUMENT);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT));
    EXPECT_EQ(cb_uncollectable_get(g.heap, 0, nullptr), CB_ERR_NULL_ARGUMENT);
    EXPECT_TRUE(g.take_report(CB_REPORT_API_MISUSE, CB_ERR_NULL_ARGUMENT));
    EXPECT_EQ(cb_uncollectable_release(g.heap), CB_OK);
}

class LegacyHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(LegacyHost, HostObjectsReachedFromUncollectableAreKept) {
    Graph g(GetParam());
    Node *L = g.make(RC().leg());
    cb_host_ref h = g.host(1), h2 = g.host(1);
    uint64_t ih = g.hid(h), ih2 = g.hid(h2);
    g.link(L, L);
    g.link_host(L, h);
    g.set_slot(h, 0, h2);
    int iL = L->id;
    g.drop(L);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(cb_uncollectable_count(g.heap), 1u);
    EXPECT_TRUE(g.host_live(ih)) << "an uncollectable node still refers to this host object";
    EXPECT_TRUE(g.host_live(ih2));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_EQ(cb_refheap_get_host(g.rh, h, 0), h2);
    // Release and break: all gone.
    ASSERT_EQ(cb_uncollectable_release(g.heap), CB_OK);
    L->hosts.clear();
    g.unlink(L, L);
    EXPECT_TRUE(g.dead(iL));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(ih));
    EXPECT_FALSE(g.host_live(ih2));
}

TEST_P(LegacyHost, LegacyCycleThroughHostObjectIsKept) {
    // L -> h -> slot L: the cycle runs through the host.
    Graph g(GetParam());
    Node *L = g.make(RC().leg());
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    g.link_host(L, h);
    g.set_slot(h, 0, L);
    int iL = L->id;
    g.drop(L);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(iL));
    EXPECT_TRUE(g.host_live(ih));
    EXPECT_EQ(cb_uncollectable_count(g.heap), 1u);
    EXPECT_TRUE(g.events.empty()) << g.event_log();
}

INSTANTIATE_TEST_SUITE_P(Modes, LegacyHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Weak references

TEST(Weakrefs, ClearedAndCallbackRunOnceWhenHolderIsOutsideTheGraph) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    WeakRec *w = g.weakref(a);
    EXPECT_EQ(w->get(), a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(w->target_seen_in_callback, nullptr) << "the reference is cleared before its callback runs";
    EXPECT_EQ(g.last.weakrefs_cleared, 1u);
    EXPECT_EQ(g.last.weakref_callbacks, 1u);
    EXPECT_LT(g.first(Ev::WeakCb, w->tag), g.first(Ev::Clear)) << g.event_log();
    // never again
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(w->calls, 1);
    g.free_weakref(w);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(w->calls, 1);
}

TEST(Weakrefs, CallbackRunsOnlyIfHolderSurvives) {
    Graph g;
    Node *x = g.rc(), *y = g.rc(), *r = g.rc();
    int ix = x->id, iy = y->id, ir = r->id;
    g.link(x, y);
    g.link(y, x);
    WeakRec *w_null = g.weakref(x);            // holder outside the graph: survives
    WeakRec *w_live = g.weakref(x, r);         // holder r is live
    WeakRec *w_dead = g.weakref(x, y);         // holder y is garbage
    WeakRec *w_self = g.weakref(y, y);         // y holds a weakref to itself
    bool dead_cleared_before_holder_died = false;
    y->on_dealloc = [&](Node &) { dead_cleared_before_holder_died = (w_dead->get() == nullptr); };
    g.drop(x);
    g.drop(y);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ix));
    EXPECT_TRUE(g.dead(iy));
    EXPECT_TRUE(g.alive(ir));
    EXPECT_EQ(w_null->calls, 1);
    EXPECT_EQ(w_live->calls, 1);
    EXPECT_EQ(w_dead->calls, 0) << "the weakref's holder is garbage: no callback";
    EXPECT_EQ(w_self->calls, 0);
    EXPECT_TRUE(dead_cleared_before_holder_died);
    EXPECT_EQ(w_null->get(), nullptr);
    EXPECT_EQ(w_live->get(), nullptr);
    EXPECT_EQ(g.last.weakrefs_cleared, 4u);
    EXPECT_EQ(g.last.weakref_callbacks, 2u);
}

TEST(Weakrefs, CallbacksRunInCreationOrder) {
    Graph g;
    Node *a = g.rc();
    g.link(a, a);
    std::vector<int> order;
    std::vector<WeakRec *> ws;
    for (int i = 0; i < 5; ++i) ws.push_back(g.weakref(a, nullptr, [&order, i](WeakRec &) { order.push_back(i); }));
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
    Node *b = g.rc();
    order.clear();
    for (int i = 0; i < 5; ++i) g.weakref(b, nullptr, [&order, i](WeakRec &) { order.push_back(i); });
    g.drop(b);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Weakrefs, WeakrefToHandleManagedGarbage) {
    Graph g;
    Node *m = g.hm(), *a = g.rc();
    int im = m->id;
    g.link(m, a);
    g.link(a, m);
    WeakRec *w = g.weakref(m);
    g.drop(m);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(im));
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 1);
    EXPECT_LT(g.first(Ev::WeakCb, w->tag), g.first(Ev::Clear));
}

TEST(Weakrefs, WeakrefToLiveObjectIsUntouched) {
    Graph g;
    Node *a = g.rc(), *garbage = g.rc();
    g.link(a, a);
    g.link(garbage, garbage);
    WeakRec *w = g.weakref(a, garbage);   // holder dies, target lives
    g.drop(garbage);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(w->calls, 0);
    EXPECT_TRUE(w->freed) << "freed by its holder's dealloc";
    WeakRec *w2 = g.weakref(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(w2->get(), a);
    EXPECT_EQ(w2->calls, 0);
    EXPECT_EQ(g.last.weakrefs_cleared, 0u);
}

TEST(Weakrefs, DecrefToZeroClearsAndRunsCallbackBeforeDealloc) {
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    WeakRec *w = g.weakref(a);
    bool ran = false;
    w->fn = [&](WeakRec &) { ran = true; };
    g.drop(a);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->target_seen_in_callback, nullptr);
    EXPECT_LT(g.first(Ev::WeakCb, w->tag), g.first(Ev::Dealloc, ia));
    EXPECT_TRUE(ran);
}

TEST(Weakrefs, ClearWeakrefsByHand) {
    Graph g;
    Node *a = g.rc();
    WeakRec *w = g.weakref(a);
    ASSERT_EQ(cb_clear_weakrefs(g.heap, a), CB_OK);
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 1);
    g.drop(a);
    EXPECT_EQ(w->calls, 1) << "already cleared: dealloc must not run the callback again";
}

TEST(Weakrefs, CallbackNeverSeesHalfClearedObjects) {
    // live: r -> p -> q (q -> p), r holds a weakref to garbage a.
    // garbage: ring a -> b -> c -> a, c -> q (garbage refers into live data).
    // From inside the callback: no clear and no dealloc has happened yet,
    // every live object still has its edges, and so does the garbage.
    Graph g;
    Node *r = g.rc(), *p = g.rc(), *q = g.rc();
    g.link(r, p);
    g.link(p, q);
    g.link(q, p);
    g.drop(p);
    g.drop(q);
    Node *a = g.rc(), *b = g.make(RC().fin()), *c = g.rc();
    g.ring({a, b, c});
    g.link(c, q);
    int ib = b->id;
    bool ran = false;
    WeakRec *w = g.weakref(a, r, [&](WeakRec &wr) {
        ran = true;
        EXPECT_EQ(wr.get(), nullptr);
        EXPECT_EQ(g.count_ev(Ev::Clear), 0) << "callback after a clear: " << g.event_log();
        EXPECT_EQ(g.count_ev(Ev::Dealloc), 0) << g.event_log();
        EXPECT_EQ(g.count_ev(Ev::Finalize), 0) << "weakrefs are handled before finalizers";
        EXPECT_EQ(r->edges.size(), 1u);
        EXPECT_EQ(p->edges.size(), 1u);
        EXPECT_EQ(q->edges.size(), 1u);
        EXPECT_EQ(g.count(p), 2);
        EXPECT_EQ(g.count(q), 2) << "c's edge to q must still be there";
        EXPECT_EQ(cb_is_tracked(g.heap, p), 1);
    });
    g.drop(a);
    g.drop(b);
    g.drop(c);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(ran);
    EXPECT_EQ(w->calls, 1);
    EXPECT_EQ(g.live_nodes(), 3u);
    EXPECT_EQ(g.count(q), 1);
    EXPECT_EQ(g.count_ev(Ev::Finalize, ib), 1);
}

TEST(Weakrefs, WeakrefToResurrectedObjectIsStillCleared) {
    // CPython's order: weakrefs to garbage are cleared before finalizers run,
    // so a resurrected object has lost its weakrefs.
    Graph g;
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    Node *keep = nullptr;
    a->on_finalize = [&](Node &n) {
        keep = &n;
        g.incref(&n);
    };
    WeakRec *w = g.weakref(a);
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_EQ(w->get(), nullptr);
    EXPECT_EQ(w->calls, 1);
    ASSERT_EQ(keep, a);
    g.drop(keep);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(w->calls, 1);
}

TEST(Weakrefs, WeakrefCreatedByFinalizerToGarbageIsClearedAtDeath) {
    // A finalizer makes a new weakref to a garbage object after the weakref
    // phase; it must be cleared when the object dies (never dangle).
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    WeakRec *late = nullptr;
    a->on_finalize = [&](Node &) { late = g.weakref(b); };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    ASSERT_NE(late, nullptr);
    EXPECT_EQ(late->get(), nullptr) << "weakref left pointing at freed memory";
    EXPECT_EQ(late->calls, 0) << "documented: cleared without callbacks before clear runs";
}

// ---------------------------------------------------------------------------
// Finalizers

TEST(Finalize, AllFinalizersRunOnceBeforeAnyClear) {
    Graph g;
    std::vector<Node *> ring;
    for (int i = 0; i < 10; ++i) ring.push_back(g.make(RC().fin()));
    g.ring(ring);
    std::vector<int> is = ids(ring);
    for (Node *n : ring) {
        n->on_finalize = [&g, &ring](Node &self) {
            EXPECT_TRUE(cb_is_collecting(g.heap));
            EXPECT_EQ(g.count_ev(Ev::Clear), 0) << "finalizer ran after a clear";
            // Every garbage object is intact: edges still there.
            ASSERT_EQ(self.edges.size(), 1u);
            EXPECT_EQ(self.edges[0].to->edges.size(), 1u);
        };
        n->on_clear = [&g](Node &self) {
            EXPECT_NE(cb_is_finalized(g.heap, &self), 0);
            self.drop_edges();
        };
    }
    for (Node *n : ring) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : is) {
        EXPECT_EQ(g.count_ev(Ev::Finalize, id), 1);
        EXPECT_TRUE(g.dead(id));
    }
    EXPECT_LT(g.last_of(Ev::Finalize), g.first(Ev::Clear)) << g.event_log();
    EXPECT_EQ(g.last.finalized, 10u);
    EXPECT_EQ(g.last.freed, 10u);
}

TEST(Finalize, ObjectIsHeldWhileFinalized) {
    // Self-cycle: count 1. The finalizer sees count 2 (held) and drops the
    // self edge; the node must not die inside its finalizer (the support
    // checks that) but right after it, by refcount.
    Graph g;
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    intptr_t seen = -1;
    a->on_finalize = [&](Node &self) {
        seen = g.count(&self);
        g.unlink(&self, &self);
        EXPECT_TRUE(g.alive(self.id));
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(seen, 2);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_EQ(g.count_ev(Ev::Clear, ia), 0) << "it died by refcount before the clear phase";
    EXPECT_EQ(g.last.freed, 1u);
}

TEST(Finalize, FinalizerOfReachableObjectNeverRuns) {
    Graph g;
    Node *a = g.make(RC().fin());
    g.link(a, a);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.count_ev(Ev::Finalize), 0);
    EXPECT_EQ(cb_is_finalized(g.heap, a), 0);
}

TEST(Finalize, ResurrectionKeepsTheObjectAndWhatItReaches) {
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.rc(), *m = g.hm();
    Node *p = g.rc(), *q = g.rc();   // unrelated garbage, freed in the same collection
    int ia = a->id, ib = b->id, im = m->id, ip = p->id, iq = q->id;
    g.link(a, b);
    g.link(b, a);
    g.link(b, m);
    g.link(p, q);
    g.link(q, p);
    Node *keep = nullptr;
    a->on_finalize = [&](Node &n) {
        keep = &n;
        g.incref(&n);
    };
    for (Node *n : {a, b, m, p, q}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.alive(im));
    EXPECT_TRUE(g.dead(ip));
    EXPECT_TRUE(g.dead(iq));
    EXPECT_EQ(g.count_ev(Ev::Clear, ia) + g.count_ev(Ev::Clear, ib) + g.count_ev(Ev::Clear, im), 0);
    EXPECT_EQ(g.last.resurrected, 3u);
    EXPECT_EQ(g.last.finalized, 1u);
    EXPECT_EQ(g.last.freed, 2u);
    EXPECT_NE(cb_is_finalized(g.heap, a), 0);
    EXPECT_EQ(g.count(a), 2);
    EXPECT_EQ(a->edges.size(), 1u);
    EXPECT_EQ(b->edges.size(), 2u);
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    EXPECT_TRUE(cb_is_tracked(g.heap, m));

    // Still reachable from keep: nothing happens.
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    EXPECT_TRUE(g.alive(ia));

    // Dropped again: freed by the next collection, without a second finalize.
    g.drop(keep);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(im));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    EXPECT_EQ(g.last.finalized, 0u);
    EXPECT_EQ(g.last.resurrected, 0u);
}

TEST(Finalize, FinalizerResurrectsAnotherGarbageObject) {
    // a (finalizer) <-> b; c <-> d; a's finalizer stores c in a global. c and
    // d survive, a and b die.
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.rc(), *c = g.rc(), *d = g.make(RC().fin());
    int ia = a->id, ib = b->id, ic = c->id, id = d->id;
    g.link(a, b);
    g.link(b, a);
    g.link(c, d);
    g.link(d, c);
    Node *keep = nullptr;
    a->on_finalize = [&](Node &) {
        keep = c;
        g.incref(c);
    };
    for (Node *n : {a, b, c, d}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.alive(ic));
    EXPECT_TRUE(g.alive(id));
    EXPECT_EQ(g.count_ev(Ev::Finalize, id), 1) << "d's finalizer ran (it was garbage when finalizers ran)";
    EXPECT_EQ(g.last.resurrected, 2u);
    g.drop(keep);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ic));
    EXPECT_TRUE(g.dead(id));
    EXPECT_EQ(g.count_ev(Ev::Finalize, id), 1);
}

TEST(Finalize, FinalizerThatBreaksItsCycleFreesByRefcount) {
    // a's finalizer drops its edge to b; b dies by refcount during the
    // finalize phase (b's own finalizer may or may not have run). No node
    // may be touched after its dealloc.
    Graph g;
    Node *a = g.make(RC().fin()), *b = g.make(RC().fin()), *c = g.rc();
    int ia = a->id, ib = b->id, ic = c->id;
    g.link(a, b);
    g.link(b, c);
    g.link(c, a);
    a->on_finalize = [&](Node &self) { g.unlink(&self, b); };
    for (Node *n : {a, b, c}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ic));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    EXPECT_LE(g.count_ev(Ev::Finalize, ib), 1);
    expect_collector_still_works(g);
}

class FinalizeHost : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(FinalizeHost, ResurrectionIntoHostObjectKeepsItsHostEdges) {
    // garbage a (finalizer) self-cycle -> h2 (host, only reachable from a).
    // a's finalizer stores a into a rooted host object: a survives, so h2
    // must survive too.
    Graph g(GetParam());
    cb_host_ref r = g.host(1, /*rooted=*/true);
    cb_host_ref h2 = g.host(1);
    uint64_t ih2 = g.hid(h2);
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, a);
    g.link_host(a, h2);
    g.set_slot(h2, 0, b);   // h2 holds b
    g.drop(b);
    a->on_finalize = [&](Node &n) { g.set_slot(r, 0, &n); };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.host_live(ih2)) << "host object reachable from a resurrected node was reclaimed";
    EXPECT_TRUE(g.alive(ib)) << "node held by that host object was freed";
    EXPECT_EQ(g.count_ev(Ev::Clear), 0) << g.event_log();
    EXPECT_EQ(cb_refheap_get_node(g.rh, h2, 0), b);
    // Let go: the next collection frees everything, no second finalize.
    g.empty_slot(r, 0);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_FALSE(g.host_live(ih2));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
}

TEST_P(FinalizeHost, ResurrectionByIncrefKeepsHostEdges) {
    Graph g(GetParam());
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    Node *a = g.make(RC().fin());
    int ia = a->id;
    g.link(a, a);
    g.link_host(a, h);
    Node *keep = nullptr;
    a->on_finalize = [&](Node &n) {
        keep = &n;
        g.incref(&n);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.host_live(ih));
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.host_live(ih)) << "a live node refers to it";
    g.drop(keep);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_FALSE(g.host_live(ih));
}

TEST_P(FinalizeHost, WeakrefOwnedByGarbageNeverFiresLater) {
    // g is a garbage self-cycle that stays allocated until the host sweeps
    // h2, and owns a weakref to T, which is frozen (outside every collected
    // set) and held only by h1. The sweep frees T; by then g is cleared, so
    // the weakref must already be dead (CPython's bpo-38006 rule).
    Graph g(GetParam());
    Node *t = g.rc();
    int it = t->id;
    ASSERT_EQ(cb_freeze(g.heap), CB_OK);
    Node *holder = g.rc();
    int ih = holder->id;
    cb_host_ref h1 = g.host(1), h2 = g.host(1);
    g.set_slot(h1, 0, t);
    g.drop(t);
    g.set_slot(h2, 0, holder);
    g.link(holder, holder);
    g.drop(holder);
    WeakRec *w = g.weakref(t, holder);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(it));
    EXPECT_TRUE(g.dead(ih));
    EXPECT_EQ(g.count_ev(Ev::WeakCb), 0) << g.event_log();
    (void)w;
}

TEST_P(FinalizeHost, HostObjectAllocatedByFinalizerIsBlack) {
    // A finalizer allocates an unrooted host object: allocated during the
    // collection, it survives it; the next collection reclaims it.
    Graph g(GetParam());
    Node *a = g.make(RC().fin());
    g.link(a, a);
    uint64_t made = 0;
    cb_host_ref fresh = nullptr;
    a->on_finalize = [&](Node &) {
        fresh = g.host(1);
        made = g.hid(fresh);
    };
    g.drop(a);
    ASSERT_EQ(g.full(), CB_OK);
    ASSERT_NE(made, 0u);
    EXPECT_TRUE(g.host_live(made)) << "objects made while a collection runs must be allocated black";
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_FALSE(g.host_live(made));
}

TEST_P(FinalizeHost, FinalizerStoresGarbageNodeInNewHostObject) {
    // The finalizer puts a garbage node into a fresh host object: the host
    // acquire during teardown makes it survive; later both are freed.
    Graph g(GetParam());
    Node *a = g.make(RC().fin()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    uint64_t made = 0;
    a->on_finalize = [&](Node &) {
        cb_host_ref fresh = g.host(1);
        made = g.hid(fresh);
        g.set_slot(fresh, 0, b);
    };
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(g.host_live(made));
    EXPECT_EQ(g.count_ev(Ev::Clear), 0) << g.event_log();
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_FALSE(g.host_live(made));
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, FinalizeHost, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

// ---------------------------------------------------------------------------
// Clear and dealloc

TEST(Clear, ObjectIsHeldWhileCleared) {
    // Self-cycle: count 1 (the self edge). During clear the collector holds
    // it: count 2 on entry; dropping the self edge must not free it inside
    // its own clear (the support checks that), dealloc follows at zero.
    Graph g;
    Node *a = g.rc();
    int ia = a->id;
    g.link(a, a);
    g.drop(a);
    ASSERT_EQ(g.count(a), 1);
    ASSERT_EQ(g.full(), CB_OK);
    const Event *c = g.find_event(Ev::Clear, ia);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->count, 2);
    EXPECT_TRUE(c->collecting);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_LT(g.first(Ev::Clear, ia), g.first(Ev::Dealloc, ia));
    EXPECT_EQ(g.find_event(Ev::Dealloc, ia)->count, 0);
}

TEST(Clear, DeallocOnlyWhenCountReachesZeroAndNeverTouchedAfter) {
    Graph g;
    std::vector<Node *> ns;
    for (int i = 0; i < 6; ++i) ns.push_back(g.make(i % 2 ? RC().fin() : RC()));
    g.ring(ns);
    g.link(ns[0], ns[3]);
    g.link(ns[3], ns[0]);
    std::vector<int> is = ids(ns);
    for (Node *n : ns) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    for (int id : is) {
        ASSERT_TRUE(g.dead(id));
        // The dealloc is the last thing that happens to a node.
        long d = g.first(Ev::Dealloc, id);
        EXPECT_LT(g.last_of(Ev::Clear, id), d);
        EXPECT_LT(g.last_of(Ev::Finalize, id), d);
        EXPECT_EQ(g.find_event(Ev::Dealloc, id)->count, 0);
        EXPECT_EQ(g.count_ev(Ev::Dealloc, id), 1);
        EXPECT_LE(g.count_ev(Ev::Clear, id), 1);
    }
    EXPECT_GE(g.count_ev(Ev::Clear), 1);
}

// A dealloc releases what the object holds, which may deallocate the next
// object, and so on down a chain: without a bound on that nesting (CPython's
// trashcan), a long enough chain overflows the stack.
TEST(Clear, LongChainFreedByOneReleaseDoesNotOverflowTheStack) {
    constexpr int kLength = 300000;   // far deeper than an 8 MB stack allows nested deallocs
    Graph g;
    std::vector<Node *> chain;
    for (int i = 0; i < kLength; ++i) chain.push_back(g.rc());
    for (int i = 0; i + 1 < kLength; ++i) g.link(chain[i], chain[i + 1]);
    int first = chain.front()->id, last = chain.back()->id;
    for (int i = 1; i < kLength; ++i) g.drop(chain[i]);   // each is held by its predecessor alone
    g.drop(chain[0]);
    EXPECT_TRUE(g.dead(first));
    EXPECT_TRUE(g.dead(last));
    EXPECT_EQ(g.count_ev(Ev::Dealloc), kLength);
}

TEST(Clear, HandleManagedGarbageDeallocatedAfterAllClears) {
    Graph g;
    Node *a = g.rc(), *m1 = g.hm(), *b = g.rc(), *m2 = g.make(HM().fin()), *c = g.rc(), *d = g.rc();
    // a <-> m1, b -> m2 -> b, c <-> d
    g.link(a, m1);
    g.link(m1, a);
    g.link(b, m2);
    g.link(m2, b);
    g.link(c, d);
    g.link(d, c);
    int im1 = m1->id, im2 = m2->id;
    for (Node *n : {a, m1, b, m2, c, d}) g.drop(n);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_EQ(g.live_nodes(), 0u);
    EXPECT_EQ(g.count_ev(Ev::Clear, im1), 1);
    EXPECT_EQ(g.count_ev(Ev::Clear, im2), 1);
    long last_clear = g.last_of(Ev::Clear);
    EXPECT_GT(g.first(Ev::Dealloc, im1), last_clear) << g.event_log();
    EXPECT_GT(g.first(Ev::Dealloc, im2), last_clear) << g.event_log();
    EXPECT_EQ(g.last.freed, 6u);
}

TEST(Clear, TypeWithoutClearIsBrokenByItsNeighbour) {
    Graph g;
    Node *a = g.make(RC().noclear()), *b = g.rc();
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia));
    EXPECT_TRUE(g.dead(ib));
    EXPECT_EQ(g.count_ev(Ev::Clear, ia), 0);
}

TEST(Clear, CycleNobodyCanClearSurvivesAndStaysConsistent) {
    Graph g;
    Node *a = g.make(RC().noclear().fin()), *b = g.make(RC().noclear());
    int ia = a->id, ib = b->id;
    g.link(a, b);
    g.link(b, a);
    g.drop(a);
    g.drop(b);
    ASSERT_EQ(g.full(), CB_OK);
    g.clear_reports();   // the implementation may report it (SURVIVED_CLEAR)
    EXPECT_TRUE(g.alive(ia));
    EXPECT_TRUE(g.alive(ib));
    EXPECT_TRUE(cb_is_tracked(g.heap, a));
    EXPECT_EQ(g.count(a), 1);
    EXPECT_EQ(g.count(b), 1);
    ASSERT_EQ(g.full(), CB_OK);
    g.clear_reports();
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    // The program breaks the cycle by hand.
    g.unlink(a, b);
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ia));
    expect_collector_still_works(g);
}

// ---------------------------------------------------------------------------
// The whole order in one collection, with a host.

class Order : public ::testing::TestWithParam<cb_drive_mode> {};

TEST_P(Order, FullTeardownSequence) {
    // garbage:
    //   L  legacy self-cycle (kept)
    //   a (finalizer) <-> b, weakref w -> b (holder outside)
    //   a <-> m (handle-managed with finalizer)
    //   a -> h (host object), h slot 0 -> c, c self-cycle (c held by h)
    Graph g(GetParam());
    Node *L = g.make(RC().leg());
    Node *a = g.make(RC().fin()), *b = g.rc(), *m = g.make(HM().fin()), *c = g.rc();
    cb_host_ref h = g.host(1);
    uint64_t ih = g.hid(h);
    g.link(L, L);
    g.link(a, b);
    g.link(b, a);
    g.link(a, m);
    g.link(m, a);
    g.link_host(a, h);
    g.set_slot(h, 0, c);
    g.link(c, c);
    WeakRec *w = g.weakref(b);
    int iL = L->id, ia = a->id, ib = b->id, im = m->id, ic = c->id;
    std::vector<std::pair<int, bool>> host_live_at;   // (event index, h live)
    auto note = [&](Node &n) { host_live_at.push_back({n.id, g.host_live(ih)}); };
    for (Node *n : {a, b, m, c}) {
        n->on_finalize = note;
        n->on_clear = [&, note](Node &n2) {
            note(n2);
            n2.drop_edges();
        };
    }
    m->on_dealloc = note;
    for (Node *n : {L, a, b, m, c}) g.drop(n);

    ASSERT_EQ(g.full(), CB_OK);
    // Legacy kept, untouched.
    EXPECT_TRUE(g.alive(iL));
    EXPECT_EQ(cb_uncollectable_count(g.heap), 1u);
    // Everything else freed, host object reclaimed.
    for (int id : {ia, ib, im, ic}) EXPECT_TRUE(g.dead(id)) << id;
    EXPECT_FALSE(g.host_live(ih));
    // Order: weakref callback < every finalizer < every clear < HM dealloc.
    long wcb = g.first(Ev::WeakCb, w->tag);
    ASSERT_GE(wcb, 0);
    EXPECT_LT(wcb, g.first(Ev::Finalize)) << g.event_log();
    EXPECT_LT(g.last_of(Ev::Finalize), g.first(Ev::Clear)) << g.event_log();
    EXPECT_GT(g.first(Ev::Dealloc, im), g.last_of(Ev::Clear)) << g.event_log();
    EXPECT_EQ(g.count_ev(Ev::Finalize, ia), 1);
    EXPECT_EQ(g.count_ev(Ev::Finalize, im), 1);
    // The host object was alive for all foreign code of the teardown.
    for (auto &[id, live] : host_live_at) EXPECT_TRUE(live) << "host object reclaimed before code of node " << id;
    EXPECT_EQ(g.last.finalized, 2u);
    EXPECT_EQ(g.last.uncollectable, 1u);
    EXPECT_EQ(g.last.weakrefs_cleared, 1u);
    EXPECT_EQ(g.last.weakref_callbacks, 1u);
}

INSTANTIATE_TEST_SUITE_P(Modes, Order, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

}  // namespace
