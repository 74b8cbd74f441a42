// Tests of the C++ layer (include/cyclebridge/cyclebridge.hpp). Each test
// pins down one piece of wrapper code: the trampolines and type spec, the
// count offset, Ref<T>, Error, the std::function adapters, Heap ownership.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cyclebridge/cyclebridge.hpp"
#include "cyclebridge/refheap.h"

namespace cbx = cyclebridge;

namespace {

// Calls made by the node types below, reset by every test.
struct Pair;
struct Calls {
    int traverse = 0, clear = 0, finalize = 0, destroyed = 0;
    // When set, ~Pair records what observed->left holds at that moment.
    Pair *observed = nullptr;
    std::vector<Pair *> left_seen_by_dtor;
};
Calls calls;

// A node with two references and every optional callback but the legacy one.
struct Pair : cbx::RefCounted {
    static constexpr const char *type_name = "Pair";
    explicit Pair(int v = 0) : value(v) {}
    ~Pair();

    static void traverse(Pair &p, cbx::Visitor &v) {
        calls.traverse++;
        v.node(p.left);
        v.node(p.right);
    }
    static void clear(Pair &p) {
        calls.clear++;
        p.left.reset();
        p.right.reset();
    }
    static void finalize(Pair &p) {
        calls.finalize++;
        p.finalized_value = p.value;
    }

    int value;
    int finalized_value = -1;
    cbx::Ref<Pair> left, right;
};

Pair::~Pair() {
    calls.destroyed++;
    if (calls.observed && calls.observed != this) calls.left_seen_by_dtor.push_back(calls.observed->left.get());
}

// A polymorphic node reached through a base at a nonzero offset: in a
// Square, Shape (and its RefCounted) come after Named, so a Shape* is not
// the address the C API knows the object by.
struct Named {
    virtual ~Named() = default;
    std::string name = "a string long enough to live on the heap, for ASan";
};
struct Shape : cbx::RefCounted {
    virtual ~Shape() { calls.destroyed++; }
    virtual int sides() const = 0;
    static void traverse(Shape &s, cbx::Visitor &v) { v.node(s.next); }
    static void clear(Shape &s) { s.next.reset(); }
    cbx::Ref<Shape> next;
};
struct Square final : Named, Shape {
    static constexpr const char *type_name = "Square";
    int sides() const override { return 4; }
};

// Handle-managed: the count is open handles; the collector frees it.
struct Handled : cbx::RefCounted {
    static constexpr cb_kind kind = CB_KIND_HANDLE_MANAGED;
    static constexpr const char *type_name = "Handled";
    ~Handled() { calls.destroyed++; }
    static void traverse(Handled &h, cbx::Visitor &v) { v.node(h.field); }
    cbx::Ref<Pair> field;
};

// A traverse that throws while `failing` is set.
struct Fragile : cbx::RefCounted {
    static constexpr const char *type_name = "Fragile";
    static inline bool failing = false;
    ~Fragile() { calls.destroyed++; }
    static void traverse(Fragile &f, cbx::Visitor &v) {
        if (failing) throw std::runtime_error("traverse failed on purpose");
        v.node(f.other);
    }
    static void clear(Fragile &f) { f.other.reset(); }
    cbx::Ref<Fragile> other;
};

// tp_del: cycles holding one are uncollectable.
struct Legacy : cbx::RefCounted {
    static constexpr const char *type_name = "Legacy";
    ~Legacy() { calls.destroyed++; }
    static void traverse(Legacy &l, cbx::Visitor &v) {
        v.node(l.self);
        v.node(l.extra);
    }
    static void clear(Legacy &l) {
        l.self.reset();
        l.extra.reset();
    }
    static void legacy_finalize(Legacy &) {}
    cbx::Ref<Legacy> self;
    cbx::Ref<Pair> extra;
};

// Refers to a host object of the reference heap.
struct HostHolder : cbx::RefCounted {
    static constexpr const char *type_name = "HostHolder";
    ~HostHolder() { calls.destroyed++; }
    static void traverse(HostHolder &h, cbx::Visitor &v) { v.host(h.target); }
    static void clear(HostHolder &h) { h.target = nullptr; }
    cb_host_ref target = nullptr;
};

// A constructor that throws.
struct Throwing : cbx::RefCounted {
    explicit Throwing(bool fail) : label("long enough to be allocated, so ASan sees a leak") {
        if (fail) throw std::invalid_argument("constructor failed on purpose");
    }
    static void traverse(Throwing &, cbx::Visitor &) {}
    std::string label;
};

template <class F> cb_status status_of(F &&f) {
    try {
        f();
    } catch (const cbx::Error &e) {
        return e.status();
    }
    return CB_OK;
}

class CppApi : public ::testing::Test {
protected:
    void SetUp() override {
        calls = {};
        Fragile::failing = false;
    }
};

// ---------------------------------------------------------------------------

TEST_F(CppApi, TypeSpecComesFromStaticMembers) {
    cbx::Heap heap;
    const cb_type *t = heap.type<Pair>();
    ASSERT_NE(t, nullptr);
    EXPECT_STREQ(cb_type_name(t), "Pair");
    EXPECT_EQ(heap.type<Pair>(), t) << "registered once per heap";
    EXPECT_NE(heap.type<Square>(), t);

    // The count offset is where RefCounted sits in T (its count is its
    // first member), past vtable pointers and other bases.
    EXPECT_EQ(cbx::detail::Trampolines<Pair>::count_offset(), 0);
    Square probe;
    auto base_offset = reinterpret_cast<const char *>(static_cast<const cbx::RefCounted *>(&probe)) -
                       reinterpret_cast<const char *>(&probe);
    EXPECT_GT(base_offset, 0);
    EXPECT_EQ(cbx::detail::Trampolines<Square>::count_offset(), base_offset);
    calls.destroyed = 0;

    auto spec = cbx::detail::Trampolines<Legacy>::spec();
    EXPECT_EQ(spec.kind, CB_KIND_REFCOUNTED);
    EXPECT_NE(spec.clear, nullptr);
    EXPECT_EQ(spec.finalize, nullptr) << "Legacy has no finalize";
    EXPECT_NE(spec.legacy_finalize, nullptr);
    EXPECT_EQ(cbx::detail::Trampolines<Handled>::spec().kind, CB_KIND_HANDLE_MANAGED);

    // A second heap registers its own.
    cbx::Heap other;
    EXPECT_NE(other.type<Pair>(), t);
}

TEST_F(CppApi, MakeTracksWithCountOne) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    auto p = heap.make<Pair>(7);
    EXPECT_EQ(p->value, 7);
    EXPECT_EQ(p->heap(), heap.raw());
    EXPECT_TRUE(heap.is_tracked(p.get()));
    EXPECT_EQ(cb_count(heap.raw(), p.get()), 1);
    EXPECT_EQ(cb_type_of(heap.raw(), p.get()), heap.type<Pair>());

    auto s = heap.make<Square>();
    EXPECT_EQ(cb_count(heap.raw(), s.get()), 1) << "count read at the offset the wrapper passed";
    auto s2 = s;
    EXPECT_EQ(cb_count(heap.raw(), s.get()), 2);
    EXPECT_EQ(s->sides(), 4);
}

TEST_F(CppApi, CycleOfCppNodesIsCollected) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    {
        auto a = heap.make<Pair>(1);
        auto b = heap.make<Pair>(2);
        a->left = b;
        b->left = a;
        a->right = a;   // and a self-reference
        EXPECT_EQ(cb_count(heap.raw(), a.get()), 3);
        EXPECT_EQ(cb_count(heap.raw(), b.get()), 2);
    }
    EXPECT_EQ(calls.destroyed, 0) << "the cycle keeps both alive";

    cb_collection_stats stats = heap.collect();
    EXPECT_GT(calls.traverse, 0);
    EXPECT_EQ(stats.garbage, 2u);
    EXPECT_EQ(stats.freed, 2u);
    EXPECT_EQ(stats.finalized, 2u);
    EXPECT_EQ(calls.finalize, 2);
    EXPECT_GE(calls.clear, 1);
    EXPECT_EQ(calls.destroyed, 2) << "~Pair ran through the dealloc trampoline";
    EXPECT_EQ(cb_generation_size(heap.raw(), CB_FULL), 0u);
}

TEST_F(CppApi, ReachableNodesSurvive) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    auto root = heap.make<Pair>(1);
    root->left = heap.make<Pair>(2);
    root->left->left = root;   // a cycle, but rooted by `root`
    heap.collect();
    EXPECT_EQ(calls.destroyed, 0);
    EXPECT_EQ(calls.finalize, 0);
    EXPECT_EQ(root->left->value, 2);
    root->left->left.reset();
}

TEST_F(CppApi, PolymorphicCycleIsCollected) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    {
        auto a = heap.make<Square>();
        auto b = heap.make<Square>();
        // Stored through the base: the wrapper must hand the C API the
        // allocation address, not the Shape subobject's.
        a->next = cbx::Ref<Shape>::share(b.get());
        b->next = cbx::Ref<Shape>::share(a.get());
        ASSERT_NE(static_cast<void *>(static_cast<Shape *>(a.get())), static_cast<void *>(a.get()));
        EXPECT_EQ(cb_count(heap.raw(), a.get()), 2);
        EXPECT_EQ(a->next->sides(), 4);
    }
    cb_collection_stats stats = heap.collect();
    EXPECT_EQ(stats.freed, 2u);
    EXPECT_EQ(calls.destroyed, 2);
}

TEST_F(CppApi, HandleManagedIsFreedByTheCollector) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    // The core reports the Pair as CB_REPORT_SURVIVED_CLEAR (Handled has no
    // clear, so the Pair is still referenced when survivors are checked)
    // and then frees it with Handled. That is the core's business: keep it
    // off stderr here.
    heap.set_report_handler([](const cb_report &r) { EXPECT_EQ(r.kind, CB_REPORT_SURVIVED_CLEAR); });
    {
        auto h = heap.make<Handled>();
        h->field = heap.make<Pair>(3);
    }
    EXPECT_EQ(calls.destroyed, 0) << "closing the last handle does not free a handle-managed object";
    heap.collect();
    EXPECT_EQ(calls.destroyed, 2) << "the collector freed it, then its field";
}

TEST_F(CppApi, RefLifetime) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    cb_heap *h = heap.raw();
    auto a = heap.make<Pair>(1);
    Pair *raw = a.get();
    {
        cbx::Ref<Pair> copy = a;
        EXPECT_EQ(cb_count(h, raw), 2);
        cbx::Ref<Pair> moved = std::move(copy);
        EXPECT_EQ(copy, nullptr);
        EXPECT_EQ(moved, a);
        EXPECT_EQ(cb_count(h, raw), 2);
        cbx::Ref<Pair> assigned;
        assigned = moved;
        EXPECT_EQ(cb_count(h, raw), 3);
        cbx::Ref<Pair> &alias = assigned;
        assigned = alias;   // self-assignment keeps the count
        EXPECT_EQ(cb_count(h, raw), 3);
    }
    EXPECT_EQ(cb_count(h, raw), 1);

    // release / adopt hand the count over without touching it.
    Pair *released = a.release();
    EXPECT_FALSE(a);
    EXPECT_EQ(cb_count(h, released), 1);
    a = cbx::Ref<Pair>::adopt(released);
    EXPECT_EQ(cb_count(h, raw), 1);
    {
        auto shared = cbx::Ref<Pair>::share(raw);
        EXPECT_EQ(cb_count(h, raw), 2);
    }
    EXPECT_EQ(cb_count(h, raw), 1);

    // Replacing a field drops the old value: it is freed right away.
    a->left = heap.make<Pair>(2);
    a->left = heap.make<Pair>(3);
    EXPECT_EQ(calls.destroyed, 1);
    EXPECT_EQ(a->left->value, 3);

    // The field is updated before the old value is released (Py_SETREF,
    // Py_CLEAR): a destructor running from the release sees the new value.
    calls.observed = a.get();
    Pair *third = a->left.get();
    a->left = heap.make<Pair>(4);
    Pair *fourth = a->left.get();
    a->left.reset();
    EXPECT_EQ(calls.left_seen_by_dtor, (std::vector<Pair *>{fourth, nullptr}));
    EXPECT_NE(third, fourth);
    calls.observed = nullptr;
    EXPECT_EQ(calls.destroyed, 3);

    a->left = heap.make<Pair>(5);
    a.reset();
    EXPECT_FALSE(a);
    EXPECT_EQ(calls.destroyed, 5) << "last reference gone: ~Pair then cb_free, and its field follows";
    EXPECT_EQ(calls.finalize, 0) << "refcount deallocation is not a collection";
}

TEST_F(CppApi, MisuseThrowsError) {
    cbx::Heap heap;
    std::vector<cb_report> reports;
    heap.set_report_handler([&](const cb_report &r) { reports.push_back(r); });
    auto a = heap.make<Pair>();
    try {
        heap.track(a.get());
        FAIL() << "double track did not throw";
    } catch (const cbx::Error &e) {
        EXPECT_EQ(e.status(), CB_ERR_ALREADY_TRACKED);
        EXPECT_NE(std::string(e.what()).find("cb_track"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(cb_status_name(CB_ERR_ALREADY_TRACKED)), std::string::npos);
    }
    heap.untrack(a.get());
    EXPECT_FALSE(heap.is_tracked(a.get()));
    EXPECT_EQ(status_of([&] { heap.untrack(a.get()); }), CB_ERR_NOT_TRACKED);
    EXPECT_EQ(status_of([&] { cbx::check(cb_track(heap.raw(), a.get()), "cb_track"); }), CB_OK);
    EXPECT_EQ(status_of([&] { cbx::check(cb_incref(heap.raw(), nullptr)); }), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(reports.size(), 3u);
}

TEST_F(CppApi, ReportHandlerReceivesTheReport) {
    cbx::Heap heap;
    std::vector<cb_report> reports;
    std::vector<std::string> messages;
    heap.set_report_handler([&](const cb_report &r) {
        reports.push_back(r);
        messages.emplace_back(r.message ? r.message : "");
    });
    auto a = heap.make<Pair>();
    EXPECT_THROW(heap.track(a.get()), cbx::Error);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].kind, CB_REPORT_API_MISUSE);
    EXPECT_EQ(reports[0].status, CB_ERR_ALREADY_TRACKED);
    EXPECT_EQ(reports[0].object, a.get());
    ASSERT_NE(reports[0].type_name, nullptr);
    EXPECT_STREQ(reports[0].type_name, "Pair") << "the name came from Pair::type_name";
    EXPECT_FALSE(messages[0].empty());
    EXPECT_EQ(cb_report_count(heap.raw()), 1u);

    // An empty function restores the default handler: ours sees no more.
    heap.set_report_handler({});
    testing::internal::CaptureStderr();
    EXPECT_THROW(heap.track(a.get()), cbx::Error);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(reports.size(), 1u);
    EXPECT_FALSE(err.empty()) << "the default handler prints to stderr";
    EXPECT_EQ(cb_report_count(heap.raw()), 2u);
}

TEST_F(CppApi, ThrowingTraverseFailsTheCollectionAndFreesNothing) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    std::vector<cb_report_kind> kinds;
    heap.set_report_handler([&](const cb_report &r) { kinds.push_back(r.kind); });
    Fragile *a_raw, *b_raw;
    {
        auto a = heap.make<Fragile>();
        auto b = heap.make<Fragile>();
        a->other = b;
        b->other = a;
        a_raw = a.get();
        b_raw = b.get();
    }
    Fragile::failing = true;
    EXPECT_EQ(status_of([&] { heap.collect(); }), CB_ERR_CALLBACK_FAILED);
    ASSERT_FALSE(kinds.empty());
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), CB_REPORT_CALLBACK_THREW), kinds.end())
        << "the exception reached the core through the trampoline";
    EXPECT_EQ(calls.destroyed, 0);
    EXPECT_TRUE(heap.is_tracked(a_raw));
    EXPECT_TRUE(heap.is_tracked(b_raw));
    EXPECT_EQ(cb_count(heap.raw(), a_raw), 1);
    EXPECT_EQ(cb_count(heap.raw(), b_raw), 1);

    // The heap is consistent: the next collection frees the cycle.
    Fragile::failing = false;
    cb_collection_stats stats = heap.collect();
    EXPECT_EQ(stats.freed, 2u);
    EXPECT_EQ(calls.destroyed, 2);
}

TEST_F(CppApi, ThrowingConstructorFreesTheMemory) {
    std::vector<cb_report_kind> kinds;
    {
        cbx::Heap heap({.flags = CB_HEAP_VERIFY});
        heap.set_report_handler([&](const cb_report &r) { kinds.push_back(r.kind); });
        EXPECT_THROW(heap.make<Throwing>(true), std::invalid_argument);
        auto ok = heap.make<Throwing>(false);
        EXPECT_TRUE(heap.is_tracked(ok.get()));
    }
    // No CB_REPORT_LEAKED_AT_DESTROY: the failed construction's memory went
    // back with cb_free.
    EXPECT_TRUE(kinds.empty());
}

TEST_F(CppApi, MovedFromHeapIsInert) {
    cbx::Heap a;
    cb_heap *raw = a.raw();
    ASSERT_NE(raw, nullptr);
    int reports = 0;
    a.set_report_handler([&](const cb_report &) { reports++; });
    auto obj = a.make<Pair>();

    cbx::Heap b = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_EQ(a.raw(), nullptr);
    EXPECT_TRUE(b);
    EXPECT_EQ(b.raw(), raw);
    EXPECT_EQ(status_of([&] { a.collect(); }), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(status_of([&] { (void)a.make<Pair>(); }), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(status_of([&] { a.freeze(); }), CB_ERR_NULL_ARGUMENT);
    EXPECT_EQ(status_of([&] { (void)a.thresholds(); }), CB_ERR_NULL_ARGUMENT);

    // State moved with the heap: the handler and the type table.
    EXPECT_THROW(b.track(obj.get()), cbx::Error);
    EXPECT_EQ(reports, 1);
    EXPECT_EQ(b.type<Pair>(), cb_type_of(raw, obj.get()));

    // Move-assignment destroys the target's heap first; the old one must be
    // empty by then.
    cbx::Heap c;
    c = std::move(b);
    EXPECT_EQ(c.raw(), raw);
    EXPECT_FALSE(b);
    obj.reset();
    c = cbx::Heap();
    EXPECT_NE(c.raw(), raw);
}

TEST_F(CppApi, CollectionCallbacks) {
    cbx::Heap heap;
    std::vector<cb_collection_event> events;
    uint64_t freed_at_stop = 0;
    cb_status nested = CB_OK;
    auto id = heap.add_collection_callback([&](cb_collection_event e, const cb_collection_stats &s) {
        events.push_back(e);
        if (e == CB_COLLECTION_STOP) freed_at_stop = s.freed;
        nested = status_of([&] { heap.collect(); });
    });
    EXPECT_TRUE(id);
    heap.set_report_handler([](const cb_report &) {});
    {
        auto a = heap.make<Pair>();
        a->left = a;
    }
    heap.collect();
    EXPECT_EQ(events, (std::vector<cb_collection_event>{CB_COLLECTION_START, CB_COLLECTION_STOP}));
    EXPECT_EQ(freed_at_stop, 1u);
    EXPECT_EQ(nested, CB_ERR_BUSY) << "a callback may not start a collection";

    heap.remove_collection_callback(id);
    heap.collect();
    EXPECT_EQ(events.size(), 2u) << "removed";
    EXPECT_EQ(status_of([&] { heap.remove_collection_callback(id); }), CB_ERR_BAD_ARGUMENT);
}

TEST_F(CppApi, CallbackMayRemoveItself) {
    cbx::Heap heap;
    std::vector<int> seen;
    cbx::CallbackId id;
    // Captures big enough that std::function keeps them on the heap: using
    // them after the function was destroyed is a use-after-free ASan sees.
    std::string tag(64, 'x');
    id = heap.add_collection_callback([&heap, &id, &seen, tag](cb_collection_event e, const cb_collection_stats &) {
        if (e != CB_COLLECTION_STOP) return;
        heap.remove_collection_callback(id);
        seen.push_back(static_cast<int>(tag.size()));
    });
    heap.collect();
    heap.collect();
    EXPECT_EQ(seen, std::vector<int>{64});
}

TEST_F(CppApi, UncollectableList) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    Legacy *culprit;
    Pair *victim;
    {
        auto l = heap.make<Legacy>();
        l->self = l;                      // a cycle holding a legacy finalizer
        l->extra = heap.make<Pair>(5);    // garbage that only it reaches
        culprit = l.get();
        victim = l->extra.get();
    }
    heap.collect();
    EXPECT_EQ(calls.destroyed, 0);
    std::vector<cb_uncollectable> list = heap.uncollectable();
    ASSERT_EQ(list.size(), 2u);
    std::sort(list.begin(), list.end(), [](auto &x, auto &y) { return x.reason < y.reason; });
    EXPECT_EQ(list[0].object, culprit);
    EXPECT_EQ(list[0].reason, CB_UNCOLLECTABLE_LEGACY_FINALIZER);
    EXPECT_EQ(list[0].culprit, culprit);
    EXPECT_EQ(list[1].object, victim);
    EXPECT_EQ(list[1].reason, CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY);
    EXPECT_EQ(list[1].culprit, culprit);
    EXPECT_EQ(calls.finalize, 0);

    // Break the cycle by hand (the list's counts keep both alive), then let
    // the list go: the counts reach zero and both are deallocated.
    culprit->self.reset();
    heap.release_uncollectable();
    EXPECT_TRUE(heap.uncollectable().empty());
    EXPECT_EQ(calls.destroyed, 2);
}

TEST_F(CppApi, ThresholdsAndFreeze) {
    cbx::Heap heap;
    heap.set_thresholds(5, 6, 7);
    EXPECT_EQ(heap.thresholds(), (std::array<uint32_t, CB_GENERATIONS>{5, 6, 7}));
    auto a = heap.make<Pair>();
    a->left = a;
    heap.freeze();
    EXPECT_EQ(cb_frozen_count(heap.raw()), 1u);
    heap.collect();
    EXPECT_EQ(calls.destroyed, 0) << "frozen objects are never freed";
    heap.unfreeze();
    EXPECT_EQ(cb_frozen_count(heap.raw()), 0u);
    a.reset();
    heap.collect();
    EXPECT_EQ(calls.destroyed, 1);
    heap.set_automatic(false);
    heap.collect_if_due();
}

TEST_F(CppApi, VisitorHostReachesTheHostHeap) {
    cbx::Heap heap({.flags = CB_HEAP_VERIFY});
    cb_refheap *host = cb_refheap_new(heap.raw(), CB_DRIVE_BRIDGE);
    ASSERT_NE(host, nullptr);
    {
        // A rooted node keeps an unrooted host object alive only through
        // Visitor::host.
        auto n = heap.make<HostHolder>();
        cb_host_ref h = cb_refheap_alloc(host, 1);
        uint64_t id = cb_refheap_id(host, h);
        n->target = h;
        ASSERT_EQ(cb_refheap_collect(host, nullptr), CB_OK);
        EXPECT_TRUE(cb_refheap_is_live(host, id));

        // Now a cycle through the host: n -> h -> n, nothing rooted.
        ASSERT_EQ(cb_refheap_set_node(host, h, 0, n.get()), CB_OK);
        n.reset();
        EXPECT_EQ(calls.destroyed, 0);
        cb_collection_stats stats{};
        ASSERT_EQ(cb_refheap_collect(host, &stats), CB_OK);
        EXPECT_EQ(calls.destroyed, 1);
        EXPECT_FALSE(cb_refheap_is_live(host, id));
    }
    cb_refheap_destroy(host);
}

}  // namespace
