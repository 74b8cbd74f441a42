// Test support for cyclebridge: a C++ node type registered through the C API,
// a registry of what the collector did to each node (finalize, clear,
// dealloc, weakref callbacks, in order), report capture, and a reference host
// heap wrapper. Header-only; every *_test.cpp includes it.
//
//   cbt::Graph g;                         // a heap, no host
//   cbt::Graph g(CB_DRIVE_HOST);          // a heap with a reference host heap
//   Node *a = g.rc(), *b = g.rc();        // tracked, count 1 (the test's ref)
//   g.link(a, b); g.link(b, a);           // counted edges, as CPython
//   g.drop(a); g.drop(b);                 // the test lets go: a garbage cycle
//   g.full();                             // one full collection
//   EXPECT_TRUE(g.dead(id_a));
//
// Nodes are allocated with cb_alloc + placement new (or operator new and
// cb_track_external) and their dealloc runs the destructor then cb_free.
//
// Edges: an edge to a refcounted node holds a count (incref on link, decref
// when dropped); an edge to a handle-managed node is not counted. Host edges
// (node -> host object) are visited with cb_visit_host; host objects hold
// nodes through refheap slots (cb_refheap_set_node, which takes a host ref).
//
// The Graph checks invariants on every callback the collector makes and
// reports violations as test failures when it is destroyed:
//   - a finalizer runs at most once per node;
//   - dealloc runs on an untracked node, with count 0 (refcounted) or with
//     no open handle (handle-managed), never from inside the node's own
//     clear or finalizer (the collector holds the node during both);
//   - every report must be consumed by the test (expect_report /
//     take_reports / clear_reports), so an unexpected report fails the test.
// At destruction it frees whatever is left (weakrefs, uncollectable list,
// host heap, remaining nodes) so that LeakSanitizer sees no leak, then
// destroys the heap.
#pragma once

#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/refheap.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace cbt {

// The exception hostile callbacks throw.
struct Boom : std::runtime_error {
    Boom() : std::runtime_error("boom from a test callback") {}
};

enum class Ev { Finalize, Clear, Dealloc, Legacy, WeakCb, Custom };

inline const char *ev_name(Ev e) {
    switch (e) {
    case Ev::Finalize: return "finalize";
    case Ev::Clear: return "clear";
    case Ev::Dealloc: return "dealloc";
    case Ev::Legacy: return "legacy";
    case Ev::WeakCb: return "weakref-callback";
    case Ev::Custom: return "custom";
    }
    return "?";
}

struct Event {
    Ev kind;
    int id;            // node id, or weakref tag for WeakCb
    intptr_t count;    // the node's count when the event happened (0 for WeakCb)
    bool collecting;   // cb_is_collecting at that moment
};

class Graph;
struct Node;
struct WeakRec;

struct Edge {
    Node *to;
    bool counted;   // holds a count on `to` (refcounted targets)
};

// Which type a node gets. Types are registered once per Graph per option set.
struct TypeOpts {
    cb_kind kind = CB_KIND_REFCOUNTED;
    bool clear = true;       // has a clear callback
    bool finalize = false;   // has a PEP 442 finalizer
    bool legacy = false;     // has a legacy finalizer (tp_del)
    bool accessors = false;  // count read/written through get_count/set_count
    bool null_dealloc = false;  // dealloc NULL: the core cb_frees (no destructor: only for
                                // nodes whose vectors are empty at death)

    auto key() const { return std::make_tuple(int(kind), clear, finalize, legacy, accessors, null_dealloc); }
    TypeOpts &fin(bool v = true) { finalize = v; return *this; }
    TypeOpts &noclear() { clear = false; return *this; }
    TypeOpts &leg(bool v = true) { legacy = v; return *this; }
    TypeOpts &acc(bool v = true) { accessors = v; return *this; }
};
inline TypeOpts RC() { return TypeOpts{}; }
inline TypeOpts HM() { TypeOpts t; t.kind = CB_KIND_HANDLE_MANAGED; return t; }

// The counts sit in a standard-layout base at offset 0 of Node.
struct NodeCounts {
    intptr_t refcnt = 0;     // count_offset 0 (types without accessors)
    intptr_t alt_count = 0;  // the count for types with accessors
};
constexpr ptrdiff_t kRefcntOffset = offsetof(NodeCounts, refcnt);
constexpr ptrdiff_t kAltCountOffset = offsetof(NodeCounts, alt_count);

struct Node : NodeCounts {
    Graph *g = nullptr;
    int id = 0;
    bool hm = false;
    bool external = false;
    bool accessors = false;
    std::vector<Edge> edges;
    std::vector<cb_host_ref> hosts;      // host objects this node refers to
    std::vector<WeakRec *> owned_weak;   // weakrefs this node holds (freed at dealloc)

    // Per-node behaviour. on_clear and on_traverse replace the default
    // (drop_edges / traverse_default); the others run before the default.
    std::function<void(Node &)> on_finalize;
    std::function<void(Node &)> on_clear;
    std::function<void(Node &)> on_dealloc;
    std::function<void(Node &)> on_legacy;
    std::function<int(Node &, cb_visit_fn, void *)> on_traverse;
    // Throw Boom from dealloc after the memory has been released.
    bool throw_after_dealloc = false;

    int in_clear = 0;
    int in_finalize = 0;
    int finalize_calls = 0;
    int clear_calls = 0;
    int traverse_calls = 0;
    int tag = 0;   // free for tests

    intptr_t raw_count() const { return accessors ? alt_count : refcnt; }

    int traverse_default(cb_visit_fn visit, void *arg);
    // The default clear: drops every edge (decref of counted ones) and every
    // host edge. Edges are moved out first, as Py_CLEAR does.
    void drop_edges();
    // Index of the first edge to `to`, or -1.
    int find_edge(const Node *to) const {
        for (size_t i = 0; i < edges.size(); ++i)
            if (edges[i].to == to) return int(i);
        return -1;
    }
};

// A weakref created through the Graph, with its callback's record.
struct WeakRec {
    Graph *g = nullptr;
    int tag = 0;
    cb_weakref *ref = nullptr;
    Node *holder = nullptr;
    bool freed = false;
    int calls = 0;
    bool with_callback = true;
    void *target_seen_in_callback = reinterpret_cast<void *>(1);
    std::function<void(WeakRec &)> fn;
    void *get() const { return cb_weakref_get(ref); }
};

struct Report {
    cb_report_kind kind;
    cb_status status;
    std::string message;
    const void *object;
    std::string type_name;
};

inline const char *report_kind_name(cb_report_kind k) {
    switch (k) {
    case CB_REPORT_API_MISUSE: return "API_MISUSE";
    case CB_REPORT_VISIT_UNTRACKED: return "VISIT_UNTRACKED";
    case CB_REPORT_VISIT_INVALID: return "VISIT_INVALID";
    case CB_REPORT_REFS_EXCEED_COUNT: return "REFS_EXCEED_COUNT";
    case CB_REPORT_CALLBACK_THREW: return "CALLBACK_THREW";
    case CB_REPORT_SURVIVED_CLEAR: return "SURVIVED_CLEAR";
    case CB_REPORT_REENTRANT_COLLECT: return "REENTRANT_COLLECT";
    case CB_REPORT_LEAKED_AT_DESTROY: return "LEAKED_AT_DESTROY";
    }
    return "?";
}

inline std::string describe(const Report &r) {
    std::ostringstream os;
    os << report_kind_name(r.kind) << " status=" << cb_status_name(r.status) << " object=" << r.object
       << " type=" << r.type_name << " msg=\"" << r.message << "\"";
    return os.str();
}

namespace detail {
inline int t_traverse(void *obj, cb_visit_fn visit, void *arg);
inline void t_clear(void *obj);
inline void t_finalize(void *obj);
inline void t_legacy(void *obj);
inline void t_dealloc(void *obj);
inline intptr_t t_get_count(const void *obj);
inline void t_set_count(void *obj, intptr_t v);
inline void t_weak_cb(cb_weakref *ref, void *data);
inline void t_report(void *ctx, const cb_report *r);
}  // namespace detail

class Graph {
public:
    cb_heap *heap = nullptr;
    cb_refheap *rh = nullptr;
    cb_collection_stats last{};
    std::vector<Event> events;
    std::vector<Report> reports;
    std::vector<std::string> anomalies;
    bool tearing_down = false;
    bool check_reports = true;   // unconsumed reports fail the test at destruction

    explicit Graph(uint32_t flags = CB_HEAP_NO_AUTO_COLLECT, int (*is_node)(void *, const void *) = nullptr,
                   void *is_node_ctx = nullptr) {
        cb_heap_options o{};
        o.flags = flags;
        o.is_node = is_node;
        o.is_node_ctx = is_node_ctx;
        heap = cb_heap_new(&o);
        if (!heap) throw std::runtime_error("cb_heap_new failed");
        cb_set_report_handler(heap, &detail::t_report, this);
    }
    explicit Graph(cb_drive_mode mode, uint32_t flags = CB_HEAP_NO_AUTO_COLLECT) : Graph(flags) {
        rh = cb_refheap_new(heap, mode);
        if (!rh) throw std::runtime_error("cb_refheap_new failed");
    }
    Graph(const Graph &) = delete;
    Graph &operator=(const Graph &) = delete;

    ~Graph() { teardown(); }

    // ---- types -----------------------------------------------------------
    cb_type *type(const TypeOpts &t) {
        auto it = types_.find(t.key());
        if (it != types_.end()) return it->second;
        cb_type_spec s{};
        std::string name = std::string(t.kind == CB_KIND_HANDLE_MANAGED ? "hm" : "rc") + (t.finalize ? "+fin" : "") +
                           (t.legacy ? "+legacy" : "") + (t.clear ? "" : "+noclear") + (t.accessors ? "+acc" : "") +
                           (t.null_dealloc ? "+nulldealloc" : "");
        s.name = name.c_str();
        s.kind = t.kind;
        s.traverse = &detail::t_traverse;
        s.clear = t.clear ? &detail::t_clear : nullptr;
        s.finalize = t.finalize ? &detail::t_finalize : nullptr;
        s.legacy_finalize = t.legacy ? &detail::t_legacy : nullptr;
        s.dealloc = t.null_dealloc ? nullptr : &detail::t_dealloc;
        if (t.accessors) {
            s.count_offset = -1;
            s.get_count = &detail::t_get_count;
            s.set_count = &detail::t_set_count;
        } else {
            s.count_offset = kRefcntOffset;
        }
        cb_type *out = nullptr;
        cb_status st = cb_type_register(heap, &s, &out);
        if (st != CB_OK || !out) throw std::runtime_error("cb_type_register failed");
        types_[t.key()] = out;
        return out;
    }

    // ---- nodes -------------------------------------------------------------
    // A new node with count 1 (the test's reference or handle), tracked
    // unless track is false.
    Node *make(const TypeOpts &t = RC(), bool track = true) {
        cb_type *ty = type(t);
        void *mem = cb_alloc(heap, ty, sizeof(Node));
        if (!mem) throw std::runtime_error("cb_alloc returned NULL");
        intptr_t c0, c1;
        std::memcpy(&c0, static_cast<char *>(mem) + kRefcntOffset, sizeof c0);
        std::memcpy(&c1, static_cast<char *>(mem) + kAltCountOffset, sizeof c1);
        Node *n = new (mem) Node();
        if (static_cast<void *>(static_cast<NodeCounts *>(n)) != mem)
            throw std::runtime_error("NodeCounts is not at offset 0 of Node");
        n->refcnt = c0;
        n->alt_count = c1;
        init(n, t);
        if (n->raw_count() != 1) anomaly("cb_alloc did not set the count to 1", n);
        if (track) {
            cb_status st = cb_track(heap, n);
            if (st != CB_OK) anomaly(std::string("cb_track failed: ") + cb_status_name(st), n);
        }
        return n;
    }
    Node *rc(bool track = true) { return make(RC(), track); }
    Node *rc_fin() { return make(RC().fin()); }
    Node *hm(bool track = true) { return make(HM(), track); }

    // A node whose memory the test owns (operator new), tracked with
    // cb_track_external. Count 1.
    Node *make_external(const TypeOpts &t = RC()) {
        Node *n = new Node();
        init(n, t);
        n->external = true;
        n->refcnt = 1;
        n->alt_count = 1;
        cb_status st = cb_track_external(heap, type(t), n);
        if (st != CB_OK) anomaly(std::string("cb_track_external failed: ") + cb_status_name(st), n);
        return n;
    }

    // a -> b. Counted (incref) when b is refcounted.
    void link(Node *a, Node *b) {
        bool counted = !b->hm;
        if (counted) expect_ok(cb_incref(heap, b), "incref in link");
        a->edges.push_back(Edge{b, counted});
    }
    void ring(const std::vector<Node *> &ns) {
        for (size_t i = 0; i < ns.size(); ++i) link(ns[i], ns[(i + 1) % ns.size()]);
    }
    // Removes one edge a -> b (decref when counted).
    void unlink(Node *a, Node *b) {
        int i = a->find_edge(b);
        if (i < 0) {
            anomaly("unlink: no such edge", a);
            return;
        }
        Edge e = a->edges[size_t(i)];
        a->edges.erase(a->edges.begin() + i);
        if (e.counted) expect_ok(cb_decref(heap, e.to), "decref in unlink");
    }
    // a -> host object (visited with cb_visit_host).
    void link_host(Node *a, cb_host_ref h) { a->hosts.push_back(h); }
    // Two refcounted nodes referring to each other, which the test lets go
    // of at once: a garbage 2-cycle. Returns their ids.
    std::pair<int, int> garbage_pair() {
        Node *a = rc(), *b = rc();
        link(a, b);
        link(b, a);
        std::pair<int, int> ids{a->id, b->id};
        drop(a);
        drop(b);
        return ids;
    }
    // The test drops its reference (or closes its handle).
    void drop(Node *n) { expect_ok(cb_decref(heap, n), "drop"); }
    void incref(Node *n) { expect_ok(cb_incref(heap, n), "incref"); }
    intptr_t count(const Node *n) const { return cb_count(heap, n); }

    bool alive(int id) const { return live_.count(id) != 0; }
    bool dead(int id) const { return dead_.count(id) != 0; }
    size_t live_nodes() const { return live_.size(); }
    size_t dead_nodes() const { return dead_.size(); }
    Node *node_by_id(int id) const {
        auto it = live_.find(id);
        return it == live_.end() ? nullptr : it->second;
    }
    int next_tag() { return ++next_id_; }
    // The id of one live node, chosen by r (any value); live_nodes() > 0.
    int any_live_id(uint64_t r) const {
        auto it = live_.begin();
        std::advance(it, long(r % live_.size()));
        return it->first;
    }

    // ---- events ----------------------------------------------------------
    void record(Ev kind, int id, intptr_t count) {
        if (tearing_down) return;
        events.push_back(Event{kind, id, count, cb_is_collecting(heap) != 0});
    }
    int count_ev(Ev kind, int id = -1) const {
        int c = 0;
        for (auto &e : events)
            if (e.kind == kind && (id < 0 || e.id == id)) ++c;
        return c;
    }
    // Index of the first/last event of this kind (for id, or any id when -1); -1 if none.
    long first(Ev kind, int id = -1) const {
        for (size_t i = 0; i < events.size(); ++i)
            if (events[i].kind == kind && (id < 0 || events[i].id == id)) return long(i);
        return -1;
    }
    long last_of(Ev kind, int id = -1) const {
        for (size_t i = events.size(); i-- > 0;)
            if (events[i].kind == kind && (id < 0 || events[i].id == id)) return long(i);
        return -1;
    }
    const Event *find_event(Ev kind, int id) const {
        for (auto &e : events)
            if (e.kind == kind && e.id == id) return &e;
        return nullptr;
    }
    std::string event_log() const {
        std::ostringstream os;
        for (auto &e : events) os << ev_name(e.kind) << "(" << e.id << ",c=" << e.count << ") ";
        return os.str();
    }

    // ---- reports -----------------------------------------------------------
    // Consumes the reports of this kind (about obj, unless obj is null) and
    // returns how many there were.
    int take_reports(cb_report_kind kind, const void *obj = nullptr) {
        int n = 0;
        for (auto it = reports.begin(); it != reports.end();) {
            if (it->kind == kind && (!obj || it->object == obj)) {
                ++n;
                it = reports.erase(it);
            } else {
                ++it;
            }
        }
        return n;
    }
    // Consumes the first report of this kind with this status.
    bool take_report(cb_report_kind kind, cb_status status, const void *obj = nullptr) {
        for (auto it = reports.begin(); it != reports.end(); ++it) {
            if (it->kind == kind && it->status == status && (!obj || it->object == obj)) {
                reports.erase(it);
                return true;
            }
        }
        return false;
    }
    int count_reports(cb_report_kind kind) const {
        int n = 0;
        for (auto &r : reports)
            if (r.kind == kind) ++n;
        return n;
    }
    void clear_reports() { reports.clear(); }
    std::string report_log() const {
        std::string s;
        for (auto &r : reports) s += "  " + describe(r) + "\n";
        return s;
    }

    // ---- weakrefs -----------------------------------------------------------
    WeakRec *weakref(Node *target, Node *holder = nullptr, std::function<void(WeakRec &)> fn = {},
                     bool with_callback = true) {
        auto w = std::make_unique<WeakRec>();
        w->g = this;
        w->tag = ++next_id_;
        w->holder = holder;
        w->with_callback = with_callback;
        w->fn = std::move(fn);
        cb_status st = cb_weakref_new(heap, target, holder, with_callback ? &detail::t_weak_cb : nullptr, w.get(),
                                      &w->ref);
        if (st != CB_OK || !w->ref) throw std::runtime_error("cb_weakref_new failed");
        if (holder) holder->owned_weak.push_back(w.get());
        weak_.push_back(std::move(w));
        return weak_.back().get();
    }
    void free_weakref(WeakRec *w) {
        if (w->freed) return;
        w->freed = true;
        if (w->holder) {
            auto &v = w->holder->owned_weak;
            v.erase(std::remove(v.begin(), v.end(), w), v.end());
        }
        cb_status st = cb_weakref_free(heap, w->ref);
        if (st != CB_OK && !tearing_down) anomaly(std::string("cb_weakref_free failed: ") + cb_status_name(st), nullptr);
    }

    // ---- host heap ---------------------------------------------------------
    cb_host_ref host(size_t nslots = 2, bool rooted = false) {
        require_rh();
        cb_host_ref h = cb_refheap_alloc(rh, nslots);
        if (!h) throw std::runtime_error("cb_refheap_alloc failed");
        if (rooted) root(h);
        return h;
    }
    uint64_t hid(cb_host_ref h) const { return cb_refheap_id(rh, h); }
    bool host_live(uint64_t id) const { return cb_refheap_is_live(rh, id) != 0; }
    size_t host_count() const { return cb_refheap_live_count(rh); }
    void set_slot(cb_host_ref h, size_t slot, Node *n) { expect_ok(cb_refheap_set_node(rh, h, slot, n), "set_node"); }
    void set_slot(cb_host_ref h, size_t slot, cb_host_ref t) {
        expect_ok(cb_refheap_set_host(rh, h, slot, t), "set_host");
    }
    void empty_slot(cb_host_ref h, size_t slot) { expect_ok(cb_refheap_set_empty(rh, h, slot), "set_empty"); }
    void root(cb_host_ref h) { expect_ok(cb_refheap_add_root(rh, h), "add_root"); }
    void unroot(cb_host_ref h) { expect_ok(cb_refheap_remove_root(rh, h), "remove_root"); }
    void destroy_refheap() {
        if (rh) cb_refheap_destroy(rh);
        rh = nullptr;
    }

    // ---- collections -------------------------------------------------------
    // One full collection: through the host heap when there is one.
    cb_status full() {
        last = cb_collection_stats{};
        if (rh) return cb_refheap_collect(rh, &last);
        return cb_collect(heap, CB_FULL, &last);
    }
    cb_status collect(int generation) {
        last = cb_collection_stats{};
        return cb_collect(heap, generation, &last);
    }

    // ---- invariant checks ----------------------------------------------------
    void anomaly(const std::string &what, const Node *n) {
        if (tearing_down) return;
        std::ostringstream os;
        os << what;
        if (n) os << " (node id " << n->id << ")";
        anomalies.push_back(os.str());
    }
    void expect_ok(cb_status st, const char *what) {
        if (st != CB_OK) anomaly(std::string(what) + " returned " + cb_status_name(st), nullptr);
    }

    // Frees everything that is left and destroys the heap. Idempotent.
    void teardown() {
        if (!heap) return;
        if (!anomalies.empty()) {
            std::string s;
            for (auto &a : anomalies) s += "  " + a + "\n";
            ADD_FAILURE() << "invariant violations seen by the test node type:\n" << s;
        }
        if (check_reports && !reports.empty())
            ADD_FAILURE() << "unexpected reports (" << reports.size() << "):\n" << report_log();
        reports.clear();
        tearing_down = true;
        cb_set_automatic(heap, 0);
        if (cb_is_collecting(heap) && !allow_running_collection) ADD_FAILURE() << "heap still collecting at teardown";
        for (auto &w : weak_) free_weakref(w.get());
        cb_uncollectable_release(heap);
        cb_unfreeze(heap);
        destroy_refheap();
        std::vector<Node *> rest;
        for (auto &kv : live_) rest.push_back(kv.second);
        for (Node *n : rest) {
            if (cb_is_tracked(heap, n)) cb_untrack(heap, n);
            n->edges.clear();
            n->hosts.clear();
            n->owned_weak.clear();
        }
        for (Node *n : rest) {
            live_.erase(n->id);
            if (n->external) {
                delete n;
            } else {
                n->~Node();
                cb_free(heap, n);
            }
        }
        size_t leaked_before = reports.size();
        cb_heap_destroy(heap);
        heap = nullptr;
        for (size_t i = leaked_before; i < reports.size(); ++i)
            if (reports[i].kind == CB_REPORT_LEAKED_AT_DESTROY && !allow_leak_report)
                ADD_FAILURE() << "heap destroyed with objects still allocated: " << describe(reports[i]);
    }
    bool allow_leak_report = false;
    bool allow_running_collection = false;   // teardown between incremental slices

    // For nodes whose memory the core released without our dealloc (types
    // with dealloc NULL): drop them from the registry as dead.
    void forget_node(int id) {
        live_.erase(id);
        dead_.insert(id);
    }

private:
    friend void detail::t_dealloc(void *);
    void init(Node *n, const TypeOpts &t) {
        n->g = this;
        n->id = ++next_id_;
        n->hm = t.kind == CB_KIND_HANDLE_MANAGED;
        n->accessors = t.accessors;
        live_[n->id] = n;
    }
    void require_rh() const {
        if (!rh) throw std::runtime_error("this Graph has no host heap");
    }
    void forget(Node *n) {
        live_.erase(n->id);
        dead_.insert(n->id);
    }

    std::map<decltype(TypeOpts{}.key()), cb_type *> types_;
    std::map<int, Node *> live_;
    std::set<int> dead_;
    std::vector<std::unique_ptr<WeakRec>> weak_;
    int next_id_ = 0;
};

// ---------------------------------------------------------------------------

inline int Node::traverse_default(cb_visit_fn visit, void *arg) {
    for (auto &e : edges)
        if (int r = visit(e.to, arg)) return r;
    for (cb_host_ref h : hosts) cb_visit_host(arg, h);
    return 0;
}

inline void Node::drop_edges() {
    std::vector<Edge> es = std::move(edges);
    edges.clear();
    hosts.clear();
    for (auto &e : es)
        if (e.counted) g->expect_ok(cb_decref(g->heap, e.to), "decref in clear");
}

namespace detail {

inline int t_traverse(void *obj, cb_visit_fn visit, void *arg) {
    Node *n = static_cast<Node *>(obj);
    n->traverse_calls++;
    if (n->on_traverse && !n->g->tearing_down) return n->on_traverse(*n, visit, arg);
    return n->traverse_default(visit, arg);
}

inline void t_clear(void *obj) {
    Node *n = static_cast<Node *>(obj);
    Graph *g = n->g;
    n->clear_calls++;
    g->record(Ev::Clear, n->id, n->raw_count());
    struct Depth {
        Node *n;
        ~Depth() { n->in_clear--; }
    } depth{n};
    n->in_clear++;
    if (n->on_clear && !g->tearing_down)
        n->on_clear(*n);
    else
        n->drop_edges();
}

inline void t_finalize(void *obj) {
    Node *n = static_cast<Node *>(obj);
    Graph *g = n->g;
    n->finalize_calls++;
    if (n->finalize_calls > 1) g->anomaly("finalizer ran more than once", n);
    g->record(Ev::Finalize, n->id, n->raw_count());
    struct Depth {
        Node *n;
        ~Depth() { n->in_finalize--; }
    } depth{n};
    n->in_finalize++;
    if (n->on_finalize && !g->tearing_down) n->on_finalize(*n);
}

inline void t_legacy(void *obj) {
    Node *n = static_cast<Node *>(obj);
    n->g->record(Ev::Legacy, n->id, n->raw_count());
    if (n->on_legacy && !n->g->tearing_down) n->on_legacy(*n);
}

inline void t_dealloc(void *obj) {
    Node *n = static_cast<Node *>(obj);
    Graph *g = n->g;
    if (!g->tearing_down) {
        if (cb_is_tracked(g->heap, n)) g->anomaly("dealloc of a tracked node", n);
        if (n->raw_count() != 0)
            g->anomaly(std::string(n->hm ? "handle-managed" : "refcounted") + " node deallocated with count " +
                           std::to_string(n->raw_count()),
                       n);
        if (n->in_clear) g->anomaly("node deallocated from inside its own clear", n);
        if (n->in_finalize) g->anomaly("node deallocated from inside its own finalizer", n);
    }
    g->record(Ev::Dealloc, n->id, n->raw_count());
    if (n->on_dealloc && !g->tearing_down) n->on_dealloc(*n);
    bool throw_after = n->throw_after_dealloc && !g->tearing_down;
    while (!n->owned_weak.empty()) g->free_weakref(n->owned_weak.back());
    std::vector<Edge> es = std::move(n->edges);
    n->edges.clear();
    n->hosts.clear();
    for (auto &e : es)
        if (e.counted) g->expect_ok(cb_decref(g->heap, e.to), "decref in dealloc");
    g->forget(n);
    if (n->external) {
        delete n;
    } else {
        n->~Node();
        cb_status st = cb_free(g->heap, obj);
        if (st != CB_OK && !g->tearing_down)
            g->anomalies.push_back(std::string("cb_free in dealloc returned ") + cb_status_name(st));
    }
    if (throw_after) throw Boom();
}

inline intptr_t t_get_count(const void *obj) { return static_cast<const Node *>(obj)->alt_count; }
inline void t_set_count(void *obj, intptr_t v) {
    // Also called by cb_alloc before the Node is constructed: write the raw field.
    std::memcpy(static_cast<char *>(obj) + kAltCountOffset, &v, sizeof v);
}

inline void t_weak_cb(cb_weakref *ref, void *data) {
    WeakRec *w = static_cast<WeakRec *>(data);
    w->calls++;
    if (w->ref != ref) w->g->anomaly("weakref callback got a different cb_weakref", nullptr);
    w->target_seen_in_callback = cb_weakref_get(ref);
    w->g->record(Ev::WeakCb, w->tag, 0);
    if (w->fn && !w->g->tearing_down) w->fn(*w);
}

inline void t_report(void *ctx, const cb_report *r) {
    Graph *g = static_cast<Graph *>(ctx);
    g->reports.push_back(Report{r->kind, r->status, r->message ? r->message : "", r->object,
                                r->type_name ? r->type_name : ""});
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Small helpers shared by the suites.

inline std::vector<int> ids(const std::vector<Node *> &ns) {
    std::vector<int> v;
    for (auto *n : ns) v.push_back(n->id);
    return v;
}

// Builds a fresh garbage 2-cycle and an RC <-> HM cycle, runs one full
// collection and checks all four nodes are freed: a collector left
// inconsistent by an earlier hostile callback fails here.
inline void expect_collector_still_works(Graph &g) {
    Node *a = g.rc(), *b = g.rc(), *c = g.rc(), *m = g.hm();
    int ia = a->id, ib = b->id, ic = c->id, im = m->id;
    g.link(a, b);
    g.link(b, a);
    g.link(c, m);
    g.link(m, c);
    g.drop(a);
    g.drop(b);
    g.drop(c);
    g.drop(m);
    EXPECT_EQ(g.full(), CB_OK);
    EXPECT_TRUE(g.dead(ia)) << "2-cycle not freed after a hostile collection";
    EXPECT_TRUE(g.dead(ib));
    EXPECT_TRUE(g.dead(ic)) << "RC<->HM cycle not freed after a hostile collection";
    EXPECT_TRUE(g.dead(im));
}

inline std::string mode_name(const ::testing::TestParamInfo<cb_drive_mode> &info) {
    return info.param == CB_DRIVE_BRIDGE ? "BridgeDriven" : "HostDriven";
}

// Tracked nodes in generations 0..2 (the permanent one excluded).
inline size_t tracked_total(cb_heap *h) {
    size_t n = 0;
    for (int i = 0; i < CB_GENERATIONS; ++i) n += cb_generation_size(h, i);
    return n;
}

}  // namespace cbt
