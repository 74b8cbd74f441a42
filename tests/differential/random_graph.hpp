// Differential testing of cyclebridge against a brute-force oracle.
//
// Shared by tests/differential_test.cpp (seeded PRNG, many graphs) and
// tests/fuzz/fuzz_collect.cpp (libFuzzer input bytes). See docs/testing.md.
//
// A Scenario builds a random graph over the three kinds of node
//   - refcounted nodes (RC, CB_KIND_REFCOUNTED, from cb_alloc),
//   - handle-managed nodes (HM, CB_KIND_HANDLE_MANAGED, from cb_alloc),
//   - host objects of the reference host heap (cb_refheap),
// with edges between any two kinds, roots of every kind, weakrefs,
// finalizers (some resurrecting), legacy finalizers, and then alternates
// random mutations with young and full collections. Before every operation
// it copies its own model of the graph (World) and asks the oracle what
// the operation must do; afterwards it compares that with what the
// library's callbacks recorded and with the counts the library keeps.
//
// The model is the test's own data: a node's fields are the edge list kept
// in World, which its traverse reports and its clear/dealloc drop, and the
// counts the library keeps are checked against the number of references
// the model holds after every operation.
#pragma once

#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/refheap.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cbdiff {

// ---------------------------------------------------------------------
// Sources of choices
// ---------------------------------------------------------------------

// Every random decision goes through a Source: a seeded PRNG for the gtest
// driver, the fuzz input for libFuzzer. range() is inclusive on both ends.
class Source {
public:
    virtual ~Source() = default;
    virtual uint32_t range(uint32_t lo, uint32_t hi) = 0;
    bool percent(uint32_t p) { return p > 0 && range(0, 99) < p; }
    // Picks an index in [0, n); n must be > 0.
    uint32_t index(size_t n) { return range(0, static_cast<uint32_t>(n - 1)); }
};

// splitmix64 seeding a xoshiro256**: fast, and the sequence depends only
// on the seed.
class PrngSource final : public Source {
public:
    explicit PrngSource(uint64_t seed) {
        uint64_t x = seed;
        for (auto &w : s_) {
            x += 0x9E3779B97F4A7C15ull;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            w = z ^ (z >> 31);
        }
    }
    uint32_t range(uint32_t lo, uint32_t hi) override {
        if (hi <= lo) return lo;
        uint64_t span = uint64_t(hi) - lo + 1;
        return lo + static_cast<uint32_t>(next() % span);
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        uint64_t result = rotl(s_[1] * 5, 7) * 9;
        uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    uint64_t s_[4];
};

// ---------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------

constexpr uint32_t kNone = UINT32_MAX;
// The generation the model gives frozen nodes (cb_freeze).
constexpr int kFrozenGen = CB_GENERATIONS;

enum class Kind : uint8_t { RC, HM, Host };
// Finalizer behaviour of a node. Resurrect: the finalizer stores the
// object into a test-held list and takes a count (a handle for HM).
enum class Fin : uint8_t { None, Finalizer, Resurrect, Legacy };

inline const char *kind_name(Kind k) { return k == Kind::RC ? "RC" : k == Kind::HM ? "HM" : "host"; }
inline const char *fin_name(Fin f) {
    switch (f) {
    case Fin::None: return "-";
    case Fin::Finalizer: return "finalizer";
    case Fin::Resurrect: return "finalizer(resurrects)";
    case Fin::Legacy: return "legacy";
    }
    return "?";
}

// One object: a node (RC or HM) or a host object. Ids index World::objs
// and are never reused.
struct Obj {
    Kind kind = Kind::RC;
    Fin fin = Fin::None;
    bool accessor = false;     // count read through get_count/set_count
    bool external = false;     // tracked with cb_track_external (memory is the test's)
    bool alive = true;         // node: not deallocated; host: not reclaimed
    void *ptr = nullptr;       // node object, or cb_host_ref
    uint64_t host_id = 0;      // cb_refheap_id
    // Node: its fields (targets, any kind, repeats allowed).
    // Host: its slots (kNone = empty).
    std::vector<uint32_t> edges;
    int gen = 0;               // generation the model expects the node in
    uint32_t ext = 0;          // test-held counts (RC) / open handles (HM)
    uint32_t res = 0;          // counts held by the resurrection list
    bool unc = false;          // held by the heap's uncollectable list
    uint32_t host_roots = 0;   // cb_refheap_add_root minus remove_root
    bool finalized = false;
    bool cleared = false;      // its clear callback ran
    uint32_t fin_runs = 0;
    uint32_t dealloc_runs = 0;

    bool is_node() const { return kind != Kind::Host; }
};

struct Weak {
    uint32_t target = kNone;
    uint32_t holder = kNone;   // kNone: owned outside the graph
    bool has_cb = false;
    bool freed = false;        // cb_weakref_free called
    bool cleared = false;      // cb_weakref_get returned NULL
    uint32_t cb_runs = 0;
    cb_weakref *ref = nullptr;
};

struct World {
    std::vector<Obj> objs;
    std::vector<Weak> weaks;
};

inline std::string obj_name(const World &w, uint32_t id) {
    if (id == kNone) return ".";
    const Obj &o = w.objs[id];
    char buf[32];
    std::snprintf(buf, sizeof buf, "%c%u", o.kind == Kind::RC ? 'r' : o.kind == Kind::HM ? 'm' : 'h', id);
    return buf;
}

// The count the library must hold for every node, computed from the model:
// RC: one per field of a live node and per slot of a live host object that
// refers to it, plus test, resurrection-list and uncollectable-list holds.
// HM: handles only (test, resurrection list, uncollectable list).
inline std::vector<int64_t> expected_counts(const World &w) {
    std::vector<int64_t> c(w.objs.size(), 0);
    for (size_t i = 0; i < w.objs.size(); i++) {
        const Obj &o = w.objs[i];
        if (o.is_node()) c[i] = int64_t(o.ext) + o.res + (o.unc ? 1 : 0);
    }
    for (const Obj &o : w.objs) {
        if (!o.alive) continue;
        for (uint32_t t : o.edges)
            if (t != kNone && w.objs[t].kind == Kind::RC) c[t]++;
    }
    return c;
}

// Alive RC nodes whose count the model says is zero die, and what they
// held is released, to a fixed point (the refcount cascade; its set does
// not depend on the order). Marks them dead in w and in victims.
inline void settle(World &w, std::vector<uint8_t> &victims) {
    victims.resize(w.objs.size(), 0);
    std::vector<int64_t> c = expected_counts(w);
    std::vector<uint32_t> work;
    for (uint32_t i = 0; i < w.objs.size(); i++)
        if (w.objs[i].alive && w.objs[i].kind == Kind::RC && c[i] <= 0) work.push_back(i);
    while (!work.empty()) {
        uint32_t i = work.back();
        work.pop_back();
        Obj &o = w.objs[i];
        if (!o.alive) continue;
        o.alive = false;
        victims[i] = 1;
        for (uint32_t t : o.edges)
            if (t != kNone && w.objs[t].alive && w.objs[t].kind == Kind::RC && --c[t] <= 0) work.push_back(t);
    }
}

// Breadth-first closure from `from` over alive objects with allow[i] set.
// nodes_only: do not enter host objects (young collections do not trace
// the host heap).
inline std::vector<uint8_t> closure(const World &w, const std::vector<uint32_t> &from,
                                    const std::vector<uint8_t> &allow, bool nodes_only) {
    std::vector<uint8_t> seen(w.objs.size(), 0);
    std::vector<uint32_t> work;
    for (uint32_t i : from)
        if (allow[i] && !seen[i]) {
            seen[i] = 1;
            work.push_back(i);
        }
    while (!work.empty()) {
        uint32_t i = work.back();
        work.pop_back();
        for (uint32_t t : w.objs[i].edges) {
            if (t == kNone || seen[t] || !allow[t] || !w.objs[t].alive) continue;
            if (nodes_only && w.objs[t].kind == Kind::Host) continue;
            seen[t] = 1;
            work.push_back(t);
        }
    }
    return seen;
}

// Three-valued expectation: the order in which a refcount cascade frees
// objects is the library's to choose; where it decides the outcome, both
// outcomes are accepted.
constexpr uint8_t kNo = 0, kYes = 1, kMaybe = 2;

struct Expect {
    bool collection = false;
    int generation = 0;              // CB_FULL for full
    std::vector<uint8_t> collected;  // S: the collected set
    std::vector<uint8_t> roots;      // roots inside S (nodes), and host roots (full)
    std::vector<uint8_t> unreachable;// in the set and not reached from its roots (G, uncollectable and what they keep)
    std::vector<uint8_t> garbage;    // G: unreachable, minus uncollectable (before resurrection)
    std::vector<uint8_t> uc;         // added to the uncollectable list
    std::vector<uint8_t> finalize;   // finalizer runs now
    std::vector<uint8_t> revived;    // resurrected by a finalizer, or reachable from one
    std::vector<uint8_t> freed;      // node deallocated / host object reclaimed
    std::vector<uint8_t> cascade;    // of freed: by refcount, outside G
    std::vector<uint8_t> weak_clear; // per weakref: Tri
    std::vector<uint8_t> weak_cb;    // per weakref: Tri, callback runs (once)
    // For each uncollectable node, the legacy nodes that reach it.
    std::vector<std::vector<uint32_t>> culprits;
};

// Weakref expectations once `freed` (the nodes that die) is known. G is
// the collection's garbage at the time weakrefs are handled (empty for a
// mutation); `revived` the part of G a finalizer brought back.
inline void expect_weakrefs(const World &w, Expect &e) {
    size_t n = w.objs.size();
    auto at = [&](const std::vector<uint8_t> &v, uint32_t i) { return i != kNone && i < v.size() && v[i]; };
    std::vector<uint8_t> none(n, 0);
    const std::vector<uint8_t> &G = e.garbage.empty() ? none : e.garbage;
    const std::vector<uint8_t> &rev = e.revived.empty() ? none : e.revived;
    e.weak_clear.assign(w.weaks.size(), kNo);
    e.weak_cb.assign(w.weaks.size(), kNo);
    for (size_t k = 0; k < w.weaks.size(); k++) {
        const Weak &r = w.weaks[k];
        if (r.freed) continue;
        if (r.cleared) continue;   // target died earlier; nothing more happens
        uint32_t t = r.target, h = r.holder;
        bool h_in_G = at(G, h);
        if (at(G, t)) {
            // Cleared in the weakref phase; the callback runs only if the
            // holder is not garbage at that time.
            e.weak_clear[k] = kYes;
            if (r.has_cb) e.weak_cb[k] = h_in_G ? kNo : kYes;
        } else if (at(e.freed, t)) {
            // Dies by refcount: during a mutation, or during a collection's
            // teardown (released by garbage).
            e.weak_clear[k] = kYes;
            if (r.has_cb) {
                if (h == kNone) e.weak_cb[k] = kYes;
                else if (h_in_G && !at(rev, h)) e.weak_cb[k] = kNo;
                else if (h_in_G) e.weak_cb[k] = kMaybe;   // holder resurrected
                else if (at(e.freed, h)) e.weak_cb[k] = kMaybe;   // holder dies in the same cascade
                else e.weak_cb[k] = kYes;
            }
        } else {
            // Target survives. A weakref whose holder is garbage may be
            // cleared early (CPython does, bpo-38006); its callback never runs.
            e.weak_clear[k] = h_in_G ? kMaybe : kNo;
        }
    }
}

// The oracle for a mutation: the world after the edit (pred, no deaths
// applied yet) decides which RC nodes die by refcount.
inline Expect oracle_mutation(World &pred) {
    Expect e;
    settle(pred, e.freed);
    e.freed.resize(pred.objs.size(), 0);
    e.cascade = e.freed;
    expect_weakrefs(pred, e);
    return e;
}

struct OracleOptions {
    // Young collections treat every collected HM node as a root: a node
    // outside the set may refer to it, and HM references hold no count.
    bool young_hm_always_root = true;
};

// The oracle for a collection of generations 0..gen (CB_FULL: full).
// host_marked: a full collection that marks the host heap (bridge-driven
// cb_collect, or either drive through cb_refheap_collect). A full
// cb_collect on a host-driven heap cannot mark the host: like a young
// collection it counts host references as external and frees no host
// object, but it does cover every generation.
inline Expect oracle_collect(const World &w, int gen, bool host_marked, const OracleOptions &opt = {}) {
    const size_t n = w.objs.size();
    const bool full = gen >= CB_FULL;
    const bool with_host = full && host_marked;
    Expect e;
    e.collection = true;
    e.generation = full ? CB_FULL : gen;
    e.collected.assign(n, 0);
    e.roots.assign(n, 0);
    std::vector<int64_t> counts = expected_counts(w);

    // The collected set: nodes of generations 0..gen, never frozen ones;
    // a full collection that marks the host heap covers host objects too.
    // Frozen nodes are roots of full collections (their fields are traced).
    std::vector<uint8_t> allow(n, 0);
    std::vector<uint32_t> roots;
    for (uint32_t i = 0; i < n; i++) {
        const Obj &o = w.objs[i];
        if (!o.alive) continue;
        if (o.is_node() ? (o.gen != kFrozenGen && (full || o.gen <= gen)) : with_host) e.collected[i] = 1;
        allow[i] = e.collected[i];
        if (full && o.is_node() && o.gen == kFrozenGen) {
            allow[i] = 1;
            roots.push_back(i);
        }
    }

    if (with_host) {
        for (uint32_t i = 0; i < n; i++) {
            const Obj &o = w.objs[i];
            if (!e.collected[i]) continue;
            bool root = o.is_node() ? (o.ext + o.res + (o.unc ? 1u : 0u)) > 0 : o.host_roots > 0;
            if (root) roots.push_back(i);
        }
    } else {
        // Trial deletion over the set: references from outside it (older or
        // frozen nodes, host objects, the test) are external.
        std::vector<int64_t> internal(n, 0);
        std::vector<uint8_t> host_held(n, 0);
        for (uint32_t i = 0; i < n; i++) {
            const Obj &o = w.objs[i];
            if (!o.alive) continue;
            for (uint32_t t : o.edges) {
                if (t == kNone) continue;
                if (o.kind == Kind::Host) host_held[t] = 1;
                else if (e.collected[i]) internal[t]++;
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            if (!e.collected[i]) continue;
            const Obj &o = w.objs[i];
            bool root = host_held[i] != 0;
            if (o.kind == Kind::RC) root = root || counts[i] - internal[i] > 0;
            else root = root || (!full && opt.young_hm_always_root) || counts[i] > 0;
            if (root) roots.push_back(i);
        }
    }
    for (uint32_t r : roots) e.roots[r] = 1;

    // Mark. Without the host, only node edges inside the set (and out of
    // frozen nodes) are followed.
    std::vector<uint8_t> reach = closure(w, roots, allow, !with_host);
    std::vector<uint8_t> unreach(n, 0);
    for (uint32_t i = 0; i < n; i++) unreach[i] = e.collected[i] && !reach[i];
    e.unreachable = unreach;

    // Legacy finalizers: they and all they reach among the unreachable.
    std::vector<uint32_t> legacy;
    for (uint32_t i = 0; i < n; i++)
        if (unreach[i] && w.objs[i].fin == Fin::Legacy) legacy.push_back(i);
    std::vector<uint8_t> ucset = closure(w, legacy, unreach, !with_host);
    e.uc.assign(n, 0);
    e.culprits.assign(n, {});
    for (uint32_t l : legacy) {
        std::vector<uint8_t> from_l = closure(w, {l}, unreach, !with_host);
        for (uint32_t i = 0; i < n; i++)
            if (from_l[i] && w.objs[i].is_node()) e.culprits[i].push_back(l);
    }
    e.garbage.assign(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (ucset[i] && w.objs[i].is_node()) e.uc[i] = 1;
        e.garbage[i] = unreach[i] && !ucset[i];
    }

    // Finalizers run on garbage not finalized before; some resurrect.
    e.finalize.assign(n, 0);
    std::vector<uint32_t> resurrected;
    for (uint32_t i = 0; i < n; i++) {
        const Obj &o = w.objs[i];
        if (!e.garbage[i] || o.finalized) continue;
        if (o.fin == Fin::Finalizer || o.fin == Fin::Resurrect) e.finalize[i] = 1;
        if (o.fin == Fin::Resurrect) resurrected.push_back(i);
    }
    e.revived = closure(w, resurrected, e.garbage, !with_host);

    // What dies: the rest of the garbage, and by refcount whatever only
    // that garbage held (young collections: possibly nodes outside the set).
    World after = w;
    for (uint32_t i : resurrected) after.objs[i].res++;
    for (uint32_t i = 0; i < n; i++) {
        if (e.uc[i]) after.objs[i].unc = true;
        if (e.garbage[i] && !e.revived[i]) after.objs[i].alive = false;
    }
    std::vector<uint8_t> victims;
    settle(after, victims);
    e.freed.assign(n, 0);
    e.cascade.assign(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (e.garbage[i] && !e.revived[i]) e.freed[i] = 1;
        if (victims[i]) e.freed[i] = e.cascade[i] = 1;
    }
    expect_weakrefs(w, e);
    return e;
}

// ---------------------------------------------------------------------
// Dumps
// ---------------------------------------------------------------------

inline std::string set_string(const World &w, const std::vector<uint8_t> &s) {
    std::string out = "{";
    bool first = true;
    for (uint32_t i = 0; i < s.size() && i < w.objs.size(); i++) {
        if (!s[i]) continue;
        if (!first) out += ' ';
        out += obj_name(w, i);
        first = false;
    }
    return out + "}";
}

inline std::string dump_world(const World &w) {
    std::string out;
    char buf[256];
    std::vector<int64_t> counts = expected_counts(w);
    std::string dead;
    for (uint32_t i = 0; i < w.objs.size(); i++) {
        const Obj &o = w.objs[i];
        if (!o.alive) {
            dead += ' ' + obj_name(w, i);
            continue;
        }
        if (o.is_node()) {
            std::string gen = o.gen == kFrozenGen ? "frozen" : "gen" + std::to_string(o.gen);
            std::snprintf(buf, sizeof buf, "  %-4s %s%s%s %s %s=%lld [test=%u res=%u unc=%d]%s%s  fields:",
                          obj_name(w, i).c_str(), kind_name(o.kind), o.accessor ? "(accessor)" : "",
                          o.external ? "(external)" : "", gen.c_str(),
                          o.kind == Kind::RC ? "count" : "handles", (long long)counts[i], o.ext, o.res,
                          o.unc ? 1 : 0, o.fin == Fin::None ? "" : (std::string(" ") + fin_name(o.fin)).c_str(),
                          o.finalized ? " finalized" : "");
            out += buf;
            if (o.edges.empty()) out += " -";
            for (uint32_t t : o.edges) out += ' ' + obj_name(w, t);
        } else {
            std::snprintf(buf, sizeof buf, "  %-4s host roots=%u  slots:", obj_name(w, i).c_str(), o.host_roots);
            out += buf;
            for (uint32_t t : o.edges) out += ' ' + obj_name(w, t);
        }
        out += '\n';
    }
    if (!dead.empty()) out += "  dead:" + dead + "\n";
    for (uint32_t k = 0; k < w.weaks.size(); k++) {
        const Weak &r = w.weaks[k];
        if (r.freed) continue;
        std::snprintf(buf, sizeof buf, "  w%u -> %s holder=%s%s%s\n", k, obj_name(w, r.target).c_str(),
                      r.holder == kNone ? "none" : obj_name(w, r.holder).c_str(),
                      r.has_cb ? " callback" : "", r.cleared ? " [cleared]" : "");
        out += buf;
    }
    return out;
}

// ---------------------------------------------------------------------
// The scenario: the live heaps, driven from a Source
// ---------------------------------------------------------------------

struct NodeObj {
    intptr_t count;        // count_offset 0 for ordinary types
    intptr_t alt_count;    // used through get_count/set_count by accessor types
    class Scenario *sc;
    uint32_t id;
    uint32_t magic;
};
constexpr uint32_t kNodeMagic = 0xC7C1EB1Du;

// Features a run can leave out, to tell bugs apart while triaging
// (CB_DIFF_DISABLE=host-hm,weak-holder ...). Every feature is on by default.
enum Feature : uint32_t {
    kFeatHM = 1u << 0,           // "hm": handle-managed nodes
    kFeatHost = 1u << 1,         // "host": host objects
    kFeatHostHM = 1u << 2,       // "host-hm": host slots holding handle-managed nodes
    kFeatWeakref = 1u << 3,      // "weakref": weak references
    kFeatWeakHolder = 1u << 4,   // "weak-holder": weakrefs owned by nodes
    kFeatFinalizer = 1u << 5,    // "finalizer": finalizers (and resurrection)
    kFeatResurrect = 1u << 6,    // "resurrect": resurrecting finalizers
    kFeatLegacy = 1u << 7,       // "legacy": legacy finalizers
    kFeatYoung = 1u << 8,        // "young": young collections
    kFeatHostDriven = 1u << 9,   // "host-driven": CB_DRIVE_HOST
    kFeatBridgeDriven = 1u << 10,// "bridge-driven": CB_DRIVE_BRIDGE
    kFeatVerify = 1u << 11,      // "verify": CB_HEAP_VERIFY heaps
    kFeatExternal = 1u << 12,    // "external": nodes tracked with cb_track_external
    kFeatFreeze = 1u << 13,      // "freeze": cb_freeze / cb_unfreeze
    kFeatAuto = 1u << 14,        // "auto": cb_collect_if_due
    kFeatIsNode = 1u << 15,      // "is-node": traverses visit non-nodes, filtered by is_node
    kFeatHostless = 1u << 16,    // "hostless-full": cb_collect(CB_FULL) on a host-driven heap
    kFeatRetrack = 1u << 17,     // "retrack": cb_untrack + cb_track (back to generation 0)
    kFeatThreads = 1u << 18,     // "threads": counting and marking on 2 threads (cb_set_threads)
    kFeatIncremental = 1u << 19, // "incremental": full collections in slices (cb_collect_slice)
};

// Parses a comma-separated list of feature names; unknown names are
// returned in *bad.
inline uint32_t parse_features(const std::string &list, std::string *bad = nullptr) {
    static const std::pair<const char *, uint32_t> names[] = {
        {"hm", kFeatHM}, {"host", kFeatHost}, {"host-hm", kFeatHostHM}, {"weakref", kFeatWeakref},
        {"weak-holder", kFeatWeakHolder}, {"finalizer", kFeatFinalizer}, {"resurrect", kFeatResurrect},
        {"legacy", kFeatLegacy}, {"young", kFeatYoung}, {"host-driven", kFeatHostDriven},
        {"bridge-driven", kFeatBridgeDriven}, {"verify", kFeatVerify}, {"external", kFeatExternal},
        {"freeze", kFeatFreeze}, {"auto", kFeatAuto}, {"is-node", kFeatIsNode},
        {"hostless-full", kFeatHostless}, {"retrack", kFeatRetrack}, {"threads", kFeatThreads},
        {"incremental", kFeatIncremental}};
    uint32_t mask = 0;
    size_t pos = 0;
    while (pos <= list.size()) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        std::string item = list.substr(pos, end - pos);
        if (!item.empty()) {
            bool found = false;
            for (auto &[n, bit] : names)
                if (item == n) {
                    mask |= bit;
                    found = true;
                }
            if (!found && bad) *bad += (bad->empty() ? "" : ",") + item;
        }
        pos = end + 1;
    }
    return mask;
}

struct ScenarioOptions {
    uint32_t disabled = 0;    // Feature bits left out
    uint64_t seed = 0;        // for the report only
    bool verbose = false;     // print every operation to stderr
    std::string replay;       // how to replay, printed with a failure
    uint32_t max_objects = 40;
    OracleOptions oracle;
};

class Scenario {
public:
    Scenario(Source &src, ScenarioOptions opt) : src_(src), opt_(opt) {}
    ~Scenario() { teardown_hard(); }
    Scenario(const Scenario &) = delete;
    Scenario &operator=(const Scenario &) = delete;

    // Runs the whole scenario; false on the first mismatch (see report()).
    bool run() {
        setup();
        if (!failed_) build();
        uint32_t rounds = failed_ ? 0 : src_.range(1, 6);
        for (uint32_t r = 0; r < rounds && !failed_; r++) {
            uint32_t muts = src_.range(0, 8);
            for (uint32_t m = 0; m < muts && !failed_; m++) mutate();
            if (!failed_) collect_random();
        }
        if (!failed_) finish();
        return !failed_;
    }

    const std::string &report() const { return report_; }
    // The operation and first mismatch of a failed run, on one line.
    const std::string &first_mismatch() const { return first_mismatch_; }
    uint64_t collections() const { return collections_; }
    uint64_t operations() const { return ops_; }
    size_t objects() const { return w_.objs.size(); }

private:
    // ---- callbacks (static: the library calls them) -------------------

    static NodeObj *node(void *obj) { return static_cast<NodeObj *>(obj); }

    static int cb_traverse(void *obj, cb_visit_fn visit, void *arg) {
        NodeObj *n = node(obj);
        Scenario *sc = n->sc;
        if (n->magic != kNodeMagic) {
            std::fprintf(stderr, "cbdiff: traverse of a non-node %p\n", obj);
            std::abort();
        }
        const Obj &o = sc->w_.objs[n->id];
        if (!o.alive) sc->violation("traverse of dead node " + sc->name(n->id));
        if (sc->filter_) {
            // Like CPython visiting an int: not a node, dropped by is_node.
            int r = visit(&sc->not_a_node_, arg);
            if (r) return r;
        }
        for (uint32_t t : o.edges) {
            const Obj &to = sc->w_.objs[t];
            if (to.kind == Kind::Host) {
                cb_visit_host(arg, to.ptr);
            } else {
                int r = visit(to.ptr, arg);
                if (r) return r;
            }
        }
        return 0;
    }

    void check_targets(uint32_t id, const char *what) {
        for (uint32_t t : w_.objs[id].edges) {
            const Obj &to = w_.objs[t];
            bool live = to.kind == Kind::Host ? (rh_ && cb_refheap_is_live(rh_, to.host_id)) : to.alive;
            if (!live) violation(std::string(what) + " of " + name(id) + " found its target " + name(t) + " already freed");
        }
    }

    // Drops every field: decref RC targets, forget the rest.
    void drop_fields(uint32_t id) {
        std::vector<uint32_t> e;
        e.swap(w_.objs[id].edges);
        for (uint32_t t : e) {
            if (w_.objs[t].kind != Kind::RC) continue;
            if (!w_.objs[t].alive) {
                violation(name(id) + " dropping a field to dead " + name(t));
                continue;
            }
            cb_status s = cb_decref(heap_, w_.objs[t].ptr);
            if (s != CB_OK) violation(name(id) + ": cb_decref(" + name(t) + ") = " + cb_status_name(s));
        }
    }

    static void cb_clear(void *obj) {
        NodeObj *n = node(obj);
        Scenario *sc = n->sc;
        Obj &o = sc->w_.objs[n->id];
        if (!o.alive) sc->violation("clear of dead node " + sc->name(n->id));
        if (o.cleared) sc->violation("clear ran twice on " + sc->name(n->id));
        o.cleared = true;
        sc->trace("clear", sc->name(n->id));
        sc->ev_clear_.push_back(n->id);
        sc->check_targets(n->id, "clear");
        sc->drop_fields(n->id);
    }

    static void cb_finalize(void *obj) {
        NodeObj *n = node(obj);
        Scenario *sc = n->sc;
        uint32_t id = n->id;
        Obj &o = sc->w_.objs[id];
        if (!o.alive) sc->violation("finalizer of dead node " + sc->name(id));
        if (o.cleared) sc->violation("finalizer of " + sc->name(id) + " ran after its clear");
        if (++o.fin_runs > 1) sc->violation("finalizer of " + sc->name(id) + " ran twice");
        sc->trace("finalize", sc->name(id));
        sc->ev_final_.push_back(id);
        sc->check_targets(id, "finalizer");
        if (o.fin == Fin::Resurrect) {
            cb_status s = cb_incref(sc->heap_, obj);
            if (s != CB_OK) sc->violation("resurrecting incref failed");
            sc->w_.objs[id].res++;
        }
    }

    static void cb_legacy(void *obj) {
        NodeObj *n = node(obj);
        n->sc->violation("the collector called the legacy finalizer of " + n->sc->name(n->id));
    }

    static void cb_dealloc(void *obj) {
        NodeObj *n = node(obj);
        Scenario *sc = n->sc;
        uint32_t id = n->id;
        if (!sc->w_.objs[id].alive) sc->violation("dealloc of dead node " + sc->name(id));
        if (++sc->w_.objs[id].dealloc_runs > 1) sc->violation("dealloc ran twice on " + sc->name(id));
        const bool external = sc->w_.objs[id].external;
        // (An external object is forgotten by now: the heap cannot be asked.)
        if (!external && cb_is_tracked(sc->heap_, obj)) sc->violation("dealloc of " + sc->name(id) + " while tracked");
        sc->trace("dealloc", sc->name(id));
        sc->ev_dealloc_.push_back(id);
        sc->drop_fields(id);
        // Weakrefs this node owns go with it (a weakref object's dealloc).
        for (Weak &r : sc->w_.weaks) {
            if (r.holder != id || r.freed) continue;
            cb_status s = cb_weakref_free(sc->heap_, r.ref);
            if (s != CB_OK) sc->violation("cb_weakref_free in dealloc failed");
            r.freed = true;
        }
        sc->w_.objs[id].alive = false;
        n->magic = 0;
        if (external) {
            delete n;
            return;
        }
        cb_status s = cb_free(sc->heap_, obj);
        if (s != CB_OK) sc->violation("cb_free in dealloc of " + sc->name(id) + " = " + cb_status_name(s));
    }

    static intptr_t cb_get_count(const void *obj) { return static_cast<const NodeObj *>(obj)->alt_count; }
    static void cb_set_count(void *obj, intptr_t v) { static_cast<NodeObj *>(obj)->alt_count = v; }

    struct WeakCtx {
        Scenario *sc;
        uint32_t index;
    };
    static void cb_weak_callback(cb_weakref *ref, void *data) {
        auto *c = static_cast<WeakCtx *>(data);
        Scenario *sc = c->sc;
        Weak &r = sc->w_.weaks[c->index];
        r.cb_runs++;
        sc->trace("weakref callback", "w" + std::to_string(c->index));
        sc->ev_wcb_.push_back(c->index);
        std::string wn = "weakref w" + std::to_string(c->index);
        if (r.freed) sc->violation("callback of freed " + wn);
        if (cb_weakref_get(ref) != nullptr) sc->violation("callback of " + wn + " sees its target");
        if (r.holder != kNone) {
            const Obj &h = sc->w_.objs[r.holder];
            if (!h.alive) sc->violation("callback of " + wn + " whose holder is freed");
            else if (h.cleared) sc->violation("callback of " + wn + " sees its holder half cleared");
        }
    }

    static int cb_is_node(void *ctx, const void *ptr) {
        return ptr != &static_cast<Scenario *>(ctx)->not_a_node_;
    }

    static void cb_on_collection(void *ctx, cb_collection_event event, const cb_collection_stats *stats) {
        auto *sc = static_cast<Scenario *>(ctx);
        if (event == CB_COLLECTION_START) sc->started_generation_ = stats->generation;
    }

    static void cb_report_handler(void *ctx, const cb_report *rep) {
        auto *sc = static_cast<Scenario *>(ctx);
        sc->violation(std::string("library report: ") + (rep->message ? rep->message : "?"));
    }

    void trace(const char *what, const std::string &who) {
        if (opt_.verbose) std::fprintf(stderr, "    %s %s\n", what, who.c_str());
    }

    void violation(std::string msg) {
        if (opt_.verbose) std::fprintf(stderr, "    VIOLATION %s\n", msg.c_str());
        if (violations_.size() < 50) violations_.push_back(std::move(msg));
    }
    std::string name(uint32_t id) const { return obj_name(w_, id); }

    // ---- setup and construction ---------------------------------------

    struct TypeKey {
        Kind kind;
        Fin fin;
        bool accessor;
        cb_type *type;
    };

    void setup() {
        cb_heap_options ho{};
        ho.flags = CB_HEAP_NO_AUTO_COLLECT;
        verify_ = src_.percent(25) && on(kFeatVerify);
        if (verify_) ho.flags |= CB_HEAP_VERIFY;
        filter_ = src_.percent(20) && on(kFeatIsNode);
        if (filter_) {
            ho.is_node = &Scenario::cb_is_node;
            ho.is_node_ctx = this;
        }
        heap_ = cb_heap_new(&ho);
        if (!heap_) return fail("cb_heap_new failed");
        // Every collection, however small, on two threads: the parallel
        // count and mark must find what the serial ones find.
        threads_ = src_.percent(25) && on(kFeatThreads);
        if (threads_ && cb_set_threads(heap_, 2, 1) != CB_OK) return fail("cb_set_threads failed");
        cb_set_report_handler(heap_, &Scenario::cb_report_handler, this);
        if (cb_add_collection_callback(heap_, &Scenario::cb_on_collection, this) != CB_OK)
            return fail("cb_add_collection_callback failed");
        // Small thresholds, so that cb_collect_if_due picks every generation.
        cb_set_thresholds(heap_, src_.range(1, 12), src_.range(1, 4), src_.range(1, 4));
        static const Fin fins[] = {Fin::None, Fin::Finalizer, Fin::Resurrect, Fin::Legacy};
        for (Kind k : {Kind::RC, Kind::HM}) {
            for (Fin f : fins) {
                for (bool acc : {false, true}) {
                    if (acc && f != Fin::None) continue;
                    std::string tn = std::string(k == Kind::RC ? "rc" : "hm") + "_" +
                                     (f == Fin::None ? "plain" : f == Fin::Finalizer ? "fin"
                                                               : f == Fin::Resurrect ? "resurrect" : "legacy") +
                                     (acc ? "_accessor" : "");
                    cb_type_spec spec{};
                    spec.name = tn.c_str();
                    spec.kind = k == Kind::RC ? CB_KIND_REFCOUNTED : CB_KIND_HANDLE_MANAGED;
                    spec.traverse = &Scenario::cb_traverse;
                    spec.clear = &Scenario::cb_clear;
                    spec.finalize = (f == Fin::Finalizer || f == Fin::Resurrect) ? &Scenario::cb_finalize : nullptr;
                    spec.legacy_finalize = f == Fin::Legacy ? &Scenario::cb_legacy : nullptr;
                    spec.dealloc = &Scenario::cb_dealloc;
                    if (acc) {
                        spec.count_offset = -1;
                        spec.get_count = &Scenario::cb_get_count;
                        spec.set_count = &Scenario::cb_set_count;
                    } else {
                        spec.count_offset = offsetof(NodeObj, count);
                    }
                    cb_type *t = nullptr;
                    if (cb_type_register(heap_, &spec, &t) != CB_OK || !t) return fail("cb_type_register failed");
                    types_.push_back({k, f, acc, t});
                }
            }
        }
        mode_ = src_.percent(50) ? CB_DRIVE_HOST : CB_DRIVE_BRIDGE;
        if (!on(kFeatHostDriven)) mode_ = CB_DRIVE_BRIDGE;
        if (!on(kFeatBridgeDriven) && on(kFeatHostDriven)) mode_ = CB_DRIVE_HOST;
        rh_ = cb_refheap_new(heap_, mode_);
        if (!rh_) return fail("cb_refheap_new failed");
        if (mode_ == CB_DRIVE_HOST) {
            static const size_t budgets[] = {0, 0, 1, 2, 5};
            cb_refheap_set_trace_budget(rh_, budgets[src_.range(0, 4)]);
        }
    }

    cb_type *type_for(Kind k, Fin f, bool acc) {
        for (auto &t : types_)
            if (t.kind == k && t.fin == f && t.accessor == acc) return t.type;
        return nullptr;
    }

    // Graph shape parameters, drawn once per graph.
    uint32_t w_rc_ = 1, w_hm_ = 1, w_host_ = 1;
    uint32_t fin_pct_ = 0, res_pct_ = 0, legacy_pct_ = 0, root_pct_ = 0, edge_max_ = 2;

    Kind random_kind() {
        uint32_t total = w_rc_ + w_hm_ + w_host_;
        uint32_t x = src_.range(0, total - 1);
        if (x < w_rc_) return Kind::RC;
        if (x < w_rc_ + w_hm_) return Kind::HM;
        return Kind::Host;
    }
    Fin random_fin() {
        if (src_.percent(legacy_pct_) && on(kFeatLegacy)) return Fin::Legacy;
        if (src_.percent(fin_pct_) && on(kFeatFinalizer))
            return src_.percent(res_pct_) && on(kFeatResurrect) ? Fin::Resurrect : Fin::Finalizer;
        return Fin::None;
    }
    bool on(uint32_t feature) const { return (opt_.disabled & feature) == 0; }

    // Allocates an object (no operation check: nothing can die). Nodes are
    // tracked and hold one test count (handle); host objects are unrooted.
    uint32_t create(Kind k) {
        uint32_t id = static_cast<uint32_t>(w_.objs.size());
        Obj o;
        o.kind = k;
        if (k == Kind::Host) {
            size_t nslots = src_.range(1, 4);
            cb_host_ref h = cb_refheap_alloc(rh_, nslots);
            if (!h) {
                fail("cb_refheap_alloc failed");
                return kNone;
            }
            o.ptr = h;
            o.host_id = cb_refheap_id(rh_, h);
            o.edges.assign(nslots, kNone);
            o.gen = CB_FULL;
            w_.objs.push_back(std::move(o));
            return id;
        }
        o.fin = random_fin();
        o.accessor = k == Kind::RC && o.fin == Fin::None && src_.percent(20);
        cb_type *t = type_for(k, o.fin, o.accessor);
        o.external = src_.percent(15) && on(kFeatExternal);
        void *p;
        if (o.external) {
            auto *ext = new NodeObj{};
            if (o.accessor) ext->alt_count = 1;
            else ext->count = 1;
            p = ext;
        } else {
            p = cb_alloc(heap_, t, sizeof(NodeObj) + 16 * src_.range(0, 2));
        }
        if (!p) {
            fail("cb_alloc failed");
            return kNone;
        }
        NodeObj *n = node(p);
        n->sc = this;
        n->id = id;
        n->magic = kNodeMagic;
        o.ptr = p;
        o.ext = 1;
        o.gen = 0;
        bool external = o.external;
        w_.objs.push_back(std::move(o));
        cb_status s = external ? cb_track_external(heap_, t, p) : cb_track(heap_, p);
        if (s != CB_OK) fail(std::string("cb_track failed: ") + cb_status_name(s));
        return id;
    }

    std::vector<uint32_t> alive_ids(bool nodes, bool hosts) const {
        std::vector<uint32_t> out;
        for (uint32_t i = 0; i < w_.objs.size(); i++) {
            const Obj &o = w_.objs[i];
            if (!o.alive) continue;
            if (o.is_node() ? nodes : hosts) out.push_back(i);
        }
        return out;
    }
    uint32_t random_alive(bool nodes, bool hosts) {
        std::vector<uint32_t> v = alive_ids(nodes, hosts);
        if (v.empty()) return kNone;
        return v[src_.index(v.size())];
    }
    uint32_t random_alive_of(Kind k) {
        std::vector<uint32_t> v;
        for (uint32_t i = 0; i < w_.objs.size(); i++)
            if (w_.objs[i].alive && w_.objs[i].kind == k) v.push_back(i);
        if (v.empty()) return kNone;
        return v[src_.index(v.size())];
    }
    // A target for a new edge: any alive object, biased by kind weights.
    uint32_t random_target() {
        Kind k = random_kind();
        uint32_t t = random_alive_of(k);
        if (t == kNone) t = random_alive(true, true);
        return t;
    }

    void build() {
        uint32_t n = src_.range(1, opt_.max_objects);
        w_rc_ = src_.range(0, 4);
        w_hm_ = src_.range(0, 3);
        w_host_ = src_.range(0, 3);
        if (!on(kFeatHM)) w_hm_ = 0;
        if (!on(kFeatHost)) w_host_ = 0;
        if (w_rc_ + w_hm_ + w_host_ == 0) w_rc_ = 1;
        fin_pct_ = src_.range(0, 40);
        res_pct_ = src_.range(0, 60);
        legacy_pct_ = src_.percent(60) ? 0 : src_.range(1, 15);
        root_pct_ = src_.range(0, 60);
        edge_max_ = src_.range(1, 3);
        log("build: " + std::to_string(n) + " objects");
        for (uint32_t i = 0; i < n && !failed_; i++) create(random_kind());
        if (failed_) return;
        // Fields and slots, all set while every node still holds its test
        // count, so nothing dies yet.
        for (uint32_t i = 0; i < w_.objs.size() && !failed_; i++) {
            Obj &o = w_.objs[i];
            if (o.is_node()) {
                uint32_t k = src_.range(0, edge_max_);
                for (uint32_t j = 0; j < k; j++) raw_add_field(i, random_target());
            } else {
                for (uint32_t s = 0; s < o.edges.size(); s++)
                    if (src_.percent(60)) raw_set_slot(i, s, random_target());
            }
        }
        uint32_t nweak = src_.range(0, n / 3 + 1);
        for (uint32_t k = 0; k < nweak && !failed_; k++) raw_new_weakref();
        if (failed_) return;
        // Roots. Unrooted nodes drop the test's count, one operation each.
        std::vector<uint32_t> drop;
        for (uint32_t i = 0; i < w_.objs.size(); i++) {
            if (w_.objs[i].kind == Kind::Host) {
                if (src_.percent(root_pct_)) {
                    if (cb_refheap_add_root(rh_, w_.objs[i].ptr) != CB_OK) return fail("cb_refheap_add_root failed");
                    w_.objs[i].host_roots++;
                }
            } else if (!src_.percent(root_pct_)) {
                drop.push_back(i);
            }
        }
        check_consistency("after build");
        for (uint32_t i : drop) {
            if (failed_) return;
            if (w_.objs[i].alive && w_.objs[i].ext > 0) op_drop_ext(i);
        }
    }

    // ---- raw edits (no deaths possible) -----------------------------------

    void raw_add_field(uint32_t src, uint32_t dst) {
        if (dst == kNone) return;
        if (w_.objs[dst].kind == Kind::RC) {
            cb_status s = cb_incref(heap_, w_.objs[dst].ptr);
            if (s != CB_OK) return fail("cb_incref failed");
        }
        w_.objs[src].edges.push_back(dst);
        // Edges no count shows need their barrier while a collection runs
        // (between an incremental collection's slices); otherwise a no-op.
        if (w_.objs[dst].kind == Kind::HM) cb_write_barrier(heap_, w_.objs[dst].ptr);
        else if (w_.objs[dst].kind == Kind::Host) cb_write_barrier_host(heap_, w_.objs[dst].ptr);
    }
    cb_status slot_store(uint32_t h, uint32_t s, uint32_t dst) {
        void *hp = w_.objs[h].ptr;
        if (dst == kNone) return cb_refheap_set_empty(rh_, hp, s);
        if (w_.objs[dst].kind == Kind::Host) return cb_refheap_set_host(rh_, hp, s, w_.objs[dst].ptr);
        return cb_refheap_set_node(rh_, hp, s, w_.objs[dst].ptr);
    }
    void raw_set_slot(uint32_t h, uint32_t s, uint32_t dst) {
        if (dst != kNone && w_.objs[dst].kind == Kind::HM && !on(kFeatHostHM)) return;
        if (w_.objs[h].edges[s] != kNone) return fail("raw_set_slot on a full slot");
        cb_status st = slot_store(h, s, dst);
        if (st != CB_OK) return fail(std::string("refheap slot store failed: ") + cb_status_name(st));
        w_.objs[h].edges[s] = dst;
    }
    void raw_new_weakref() {
        uint32_t t = random_alive(true, false);
        if (t == kNone || !on(kFeatWeakref)) return;
        uint32_t holder = src_.percent(30) ? kNone : random_alive(true, false);
        if (!on(kFeatWeakHolder)) holder = kNone;
        bool has_cb = src_.percent(80);
        uint32_t k = static_cast<uint32_t>(w_.weaks.size());
        wctx_.push_back(std::make_unique<WeakCtx>(WeakCtx{this, k}));
        Weak r;
        r.target = t;
        r.holder = holder;
        r.has_cb = has_cb;
        cb_status s = cb_weakref_new(heap_, w_.objs[t].ptr, holder == kNone ? nullptr : w_.objs[holder].ptr,
                                     has_cb ? &Scenario::cb_weak_callback : nullptr, wctx_.back().get(), &r.ref);
        if (s != CB_OK || !r.ref) return fail(std::string("cb_weakref_new failed: ") + cb_status_name(s));
        w_.weaks.push_back(r);
        log("weakref w" + std::to_string(k) + " -> " + name(t) + " holder " +
            (holder == kNone ? std::string("none") : name(holder)) + (has_cb ? " callback" : ""));
    }

    // ---- operations checked against the oracle ----------------------------

    void log(const std::string &s) {
        ++ops_;
        if (opt_.verbose) std::fprintf(stderr, "[op %llu] %s\n", (unsigned long long)ops_, s.c_str());
        if (oplog_.size() < 400) oplog_.push_back(s);
        else if (oplog_.size() == 400) oplog_.push_back("... (log truncated)");
    }

    // Every operation: snapshot, expectation, act, compare.
    struct Pending {
        std::string desc;
        World before;
        Expect exp;
        size_t unc_before = 0;
        bool releases_unc = false;   // the operation empties the uncollectable list
    };

    Pending begin_mutation(const std::string &desc, World &pred) {
        Pending p;
        p.desc = desc;
        p.before = w_;
        p.exp = oracle_mutation(pred);
        p.unc_before = cb_uncollectable_count(heap_);
        reset_events();
        log(desc);
        return p;
    }

    void reset_events() {
        ev_dealloc_.clear();
        ev_final_.clear();
        ev_clear_.clear();
        ev_wcb_.clear();
    }

    void op_drop_ext(uint32_t id) {
        World pred = w_;
        pred.objs[id].ext--;
        Pending p = begin_mutation("drop test count of " + name(id), pred);
        w_.objs[id].ext--;
        cb_status s = cb_decref(heap_, w_.objs[id].ptr);
        if (s != CB_OK) violation(std::string("cb_decref = ") + cb_status_name(s));
        end(p);
    }
    void op_drop_res(uint32_t id) {
        World pred = w_;
        pred.objs[id].res--;
        Pending p = begin_mutation("drop resurrection-list count of " + name(id), pred);
        w_.objs[id].res--;
        cb_status s = cb_decref(heap_, w_.objs[id].ptr);
        if (s != CB_OK) violation(std::string("cb_decref = ") + cb_status_name(s));
        end(p);
    }
    void op_add_ext(uint32_t id) {
        World pred = w_;
        Pending p = begin_mutation("add test count to " + name(id), pred);
        cb_status s = cb_incref(heap_, w_.objs[id].ptr);
        if (s != CB_OK) violation(std::string("cb_incref = ") + cb_status_name(s));
        w_.objs[id].ext++;
        end(p);
    }
    void op_add_field(uint32_t src, uint32_t dst) {
        World pred = w_;
        Pending p = begin_mutation("field " + name(src) + " -> " + name(dst), pred);
        raw_add_field(src, dst);
        end(p);
    }
    void op_remove_field(uint32_t src, uint32_t idx) {
        World pred = w_;
        uint32_t t = pred.objs[src].edges[idx];
        pred.objs[src].edges.erase(pred.objs[src].edges.begin() + idx);
        Pending p = begin_mutation("remove field " + name(src) + " -> " + name(t), pred);
        w_.objs[src].edges.erase(w_.objs[src].edges.begin() + idx);
        if (w_.objs[t].kind == Kind::RC) {
            cb_status s = cb_decref(heap_, w_.objs[t].ptr);
            if (s != CB_OK) violation(std::string("cb_decref = ") + cb_status_name(s));
        }
        end(p);
    }
    void op_set_slot(uint32_t h, uint32_t s, uint32_t dst) {
        if (dst != kNone && w_.objs[dst].kind == Kind::HM && !on(kFeatHostHM)) dst = kNone;
        World pred = w_;
        pred.objs[h].edges[s] = dst;
        Pending p = begin_mutation("slot " + name(h) + "[" + std::to_string(s) + "] = " + name(dst) +
                                       " (was " + name(w_.objs[h].edges[s]) + ")",
                                   pred);
        cb_status st = slot_store(h, s, dst);
        if (st != CB_OK) violation(std::string("refheap slot store = ") + cb_status_name(st));
        w_.objs[h].edges[s] = dst;
        end(p);
    }
    void op_host_root(uint32_t h, bool add) {
        World pred = w_;
        Pending p = begin_mutation(std::string(add ? "add" : "remove") + " host root " + name(h), pred);
        cb_status s = add ? cb_refheap_add_root(rh_, w_.objs[h].ptr) : cb_refheap_remove_root(rh_, w_.objs[h].ptr);
        if (s != CB_OK) violation(std::string("refheap root change = ") + cb_status_name(s));
        if (add) w_.objs[h].host_roots++;
        else w_.objs[h].host_roots--;
        end(p);
    }
    void op_new_weakref() {
        World pred = w_;
        Pending p = begin_mutation("new weakref", pred);
        raw_new_weakref();
        p.exp.weak_clear.resize(w_.weaks.size(), kNo);
        p.exp.weak_cb.resize(w_.weaks.size(), kNo);
        end(p);
    }
    void op_free_weakref(uint32_t k) {
        World pred = w_;
        Pending p = begin_mutation("free weakref w" + std::to_string(k), pred);
        cb_status s = cb_weakref_free(heap_, w_.weaks[k].ref);
        if (s != CB_OK) violation(std::string("cb_weakref_free = ") + cb_status_name(s));
        w_.weaks[k].freed = true;
        end(p);
    }
    void op_release_uncollectable() {
        World pred = w_;
        for (Obj &o : pred.objs) o.unc = false;
        Pending p = begin_mutation("release the uncollectable list", pred);
        p.releases_unc = true;
        cb_status s = cb_uncollectable_release(heap_);
        if (s != CB_OK) violation(std::string("cb_uncollectable_release = ") + cb_status_name(s));
        for (Obj &o : w_.objs) o.unc = false;
        end(p);
    }
    void op_new_object() {
        Kind k = random_kind();
        World pred = w_;
        Pending p = begin_mutation("new object", pred);
        uint32_t id = create(k);
        if (failed_ || id == kNone) return;
        oplog_.back() += " " + name(id) + (w_.objs[id].fin != Fin::None ? std::string(" ") + fin_name(w_.objs[id].fin) : "");
        // The expectation knew nothing of the new object.
        grow(p.exp, w_.objs.size());
        end(p);
        if (failed_) return;
        // Link it in: fields/slots both ways, then maybe drop the test count.
        uint32_t links = src_.range(0, 3);
        for (uint32_t j = 0; j < links && !failed_; j++) {
            if (src_.percent(50)) {
                if (w_.objs[id].kind == Kind::Host) {
                    uint32_t s = src_.index(w_.objs[id].edges.size());
                    op_set_slot(id, s, random_target());
                } else {
                    uint32_t t = random_target();
                    if (t != kNone) op_add_field(id, t);
                }
            } else {
                link_to(id);
            }
        }
        if (failed_) return;
        if (w_.objs[id].is_node() && w_.objs[id].alive && w_.objs[id].ext > 0 && !src_.percent(root_pct_))
            op_drop_ext(id);
        else if (w_.objs[id].kind == Kind::Host && src_.percent(root_pct_))
            op_host_root(id, true);
    }
    // Some alive object gets a reference to id.
    void link_to(uint32_t id) {
        uint32_t from = random_alive(true, true);
        if (from == kNone || !w_.objs[id].alive) return;
        if (w_.objs[from].kind == Kind::Host) {
            uint32_t s = src_.index(w_.objs[from].edges.size());
            op_set_slot(from, s, id);
        } else {
            op_add_field(from, id);
        }
    }
    static void grow(Expect &e, size_t n) {
        for (auto *v : {&e.collected, &e.roots, &e.unreachable, &e.garbage, &e.uc, &e.finalize, &e.revived, &e.freed,
                        &e.cascade})
            v->resize(n, 0);
        e.culprits.resize(n);
    }

    void mutate() {
        uint32_t choice = src_.range(0, 109);
        if (choice < 18) {   // add a field or fill a slot
            uint32_t from = random_alive(true, true);
            uint32_t to = random_target();
            if (from == kNone || to == kNone) return;
            if (w_.objs[from].kind == Kind::Host) {
                uint32_t s = src_.index(w_.objs[from].edges.size());
                op_set_slot(from, s, src_.percent(10) ? w_.objs[from].edges[s] : to);
            } else {
                op_add_field(from, to);
            }
        } else if (choice < 36) {   // remove a field or empty a slot
            uint32_t from = random_alive(true, true);
            if (from == kNone || w_.objs[from].edges.empty()) return;
            uint32_t idx = src_.index(w_.objs[from].edges.size());
            if (w_.objs[from].kind == Kind::Host) op_set_slot(from, idx, kNone);
            else op_remove_field(from, idx);
        } else if (choice < 50) {   // drop a root: test count, handle, resurrection list, host root
            std::vector<uint32_t> c;
            for (uint32_t i = 0; i < w_.objs.size(); i++) {
                const Obj &o = w_.objs[i];
                if (o.alive && (o.ext > 0 || o.res > 0 || o.host_roots > 0)) c.push_back(i);
            }
            if (c.empty()) return;
            uint32_t i = c[src_.index(c.size())];
            Obj &o = w_.objs[i];
            if (o.kind == Kind::Host) op_host_root(i, false);
            else if (o.res > 0 && (o.ext == 0 || src_.percent(50))) op_drop_res(i);
            else op_drop_ext(i);
        } else if (choice < 60) {   // add a root
            uint32_t i = random_alive(true, true);
            if (i == kNone) return;
            if (w_.objs[i].kind == Kind::Host) op_host_root(i, true);
            else op_add_ext(i);
        } else if (choice < 76) {
            if (w_.objs.size() < opt_.max_objects + 20) op_new_object();
        } else if (choice < 84) {
            if (w_.weaks.size() < 30) op_new_weakref();
        } else if (choice < 89) {
            std::vector<uint32_t> c;
            for (uint32_t k = 0; k < w_.weaks.size(); k++)
                if (!w_.weaks[k].freed) c.push_back(k);
            if (!c.empty()) op_free_weakref(c[src_.index(c.size())]);
        } else if (choice < 93) {
            if (cb_uncollectable_count(heap_) > 0) op_release_uncollectable();
        } else if (choice >= 100) {
            if (choice < 103) {
                if (!on(kFeatFreeze)) return;
                if (cb_frozen_count(heap_) > 0 && src_.percent(60)) op_freeze(false);
                else if (src_.percent(50)) op_freeze(true);
            } else if (choice < 106) {
                uint32_t id = random_alive(true, false);
                if (id != kNone && !w_.objs[id].external && on(kFeatRetrack)) op_retrack(id);
            } else if (on(kFeatAuto)) {
                op_collect_if_due();
            }
        } else {   // a host slot takes a node the test holds, then the test lets go
            uint32_t h = random_alive_of(Kind::Host);
            uint32_t t = random_alive(true, false);
            if (h == kNone || t == kNone) return;
            op_set_slot(h, src_.index(w_.objs[h].edges.size()), t);
            if (!failed_ && w_.objs[t].alive && w_.objs[t].ext > 0) op_drop_ext(t);
        }
    }

    void collect_random() {
        uint32_t x = src_.range(0, 9);
        if (!on(kFeatYoung) && x < 4) x += 4;
        if (x < 2) collect(0, false);
        else if (x < 4) collect(1, false);
        else if (x < 7) collect(CB_FULL, true);
        else if (mode_ == CB_DRIVE_BRIDGE || on(kFeatHostless)) collect(CB_FULL, false);
        else collect(CB_FULL, true);
    }

    // A collection: young (gen 0/1, cb_collect) or full (cb_refheap_collect,
    // or cb_collect: bridge-driven it marks the host, host-driven it cannot).
    void collect(int gen, bool via_refheap) {
        const bool host_marked = via_refheap || (gen >= CB_FULL && mode_ == CB_DRIVE_BRIDGE);
        // A full collection through cb_collect may run in slices instead,
        // the program idle between them: the result must be the same.
        const size_t budget = gen >= CB_FULL && !via_refheap && on(kFeatIncremental) && src_.percent(40)
                                  ? src_.range(1, 8)
                                  : 0;
        Pending p;
        char buf[128];
        std::snprintf(buf, sizeof buf, "collect %s%s%s", gen >= CB_FULL ? "full" : gen == 0 ? "gen0" : "gen0..1",
                      gen < CB_FULL      ? ""
                      : via_refheap      ? " (cb_refheap_collect)"
                      : host_marked      ? " (cb_collect)"
                                         : " (cb_collect, host-driven heap: host not marked)",
                      budget ? (" in slices of " + std::to_string(budget)).c_str() : "");
        p.desc = buf;
        p.before = w_;
        p.exp = oracle_collect(w_, gen, host_marked, opt_.oracle);
        p.unc_before = cb_uncollectable_count(heap_);
        reset_events();
        log(p.desc);
        cb_collection_stats st{};
        cb_status s = via_refheap ? cb_refheap_collect(rh_, &st)
                      : budget    ? collect_in_slices(budget, &st, p, host_marked)
                                  : cb_collect(heap_, gen, &st);
        ++collections_;
        if (s != CB_OK) violation(std::string("collection returned ") + cb_status_name(s));
        stats_ = st;
        have_stats_ = true;
        end(p);
        have_stats_ = false;
        last_cascade_ = std::find(p.exp.cascade.begin(), p.exp.cascade.end(), 1) != p.exp.cascade.end();
    }

    // A full collection in slices. Between slices the program makes
    // changes that create no garbage (each checked as any mutation is), so
    // the collection must end as a stop-the-world one would on the graph
    // as it is at the last slice: p is predicted again after each change.
    // The changes include reviving the garbage the collection looks at.
    cb_status collect_in_slices(size_t budget, cb_collection_stats *st, Pending &p, bool host_marked) {
        int finished = 0;
        cb_status s = CB_OK;
        const std::string desc = p.desc;
        for (size_t slices = 0; !finished && s == CB_OK; ++slices) {
            if (slices > 100000) {
                violation("an incremental collection did not finish in 100,000 slices");
                break;
            }
            // A time budget of 1 ns ends a slice at its first clock
            // reading, after 1,024 steps: as reproducible as a work budget.
            s = src_.percent(25) ? cb_collect_slice_for(heap_, 1, &finished, st)
                                 : cb_collect_slice(heap_, budget, &finished, st);
            // Once the garbage is known (2) the program cannot reach it: no
            // weakref leads there, nothing outside refers to it. The test's
            // raw pointers could, so it changes nothing then.
            if (finished || s != CB_OK || failed_ || cb_is_collecting(heap_) != 1 || !src_.percent(20)) continue;
            grow_between_slices(host_marked);
            if (failed_) break;
            p.before = w_;
            p.exp = oracle_collect(w_, CB_FULL, host_marked, opt_.oracle);
            p.unc_before = cb_uncollectable_count(heap_);
            reset_events();
            log(desc + " (continued)");
        }
        return s;
    }

    // Stores go into objects the program can reach (a store into garbage
    // keeps its target through the barrier, which cannot know: that is
    // imprecision, not an error, and no oracle predicts it); their targets
    // may be anything, garbage included: revived.
    void grow_between_slices(bool host_marked) {
        const Expect now = oracle_collect(w_, CB_FULL, host_marked, opt_.oracle);
        auto live_holder = [&](bool nodes, bool hosts) {
            std::vector<uint32_t> v;
            for (uint32_t i : alive_ids(nodes, hosts))
                if (!now.unreachable[i]) v.push_back(i);
            return v.empty() ? kNone : v[src_.index(v.size())];
        };
        switch (src_.range(0, 3)) {
        case 0: {   // a field of a node
            uint32_t from = live_holder(true, false), to = random_target();
            if (from != kNone && to != kNone) op_add_field(from, to);
            break;
        }
        case 1: {   // an empty slot of a host object filled
            uint32_t h = live_holder(false, true);
            if (h == kNone) break;
            std::vector<uint32_t> empty;
            for (uint32_t k = 0; k < w_.objs[h].edges.size(); k++)
                if (w_.objs[h].edges[k] == kNone) empty.push_back(k);
            uint32_t to = random_target();
            if (!empty.empty() && to != kNone) op_set_slot(h, empty[src_.index(empty.size())], to);
            break;
        }
        case 2: {   // a root: a test count, a handle or a host root
            uint32_t i = random_alive(true, true);
            if (i == kNone) break;
            if (w_.objs[i].kind == Kind::Host) op_host_root(i, true);
            else op_add_ext(i);
            break;
        }
        default:
            if (on(kFeatWeakref) && w_.weaks.size() < 30) op_new_weakref();
        }
    }

    // cb_collect_if_due: the oracle for every generation it might pick; the
    // collection callback tells which one ran, if any.
    void op_collect_if_due() {
        const bool host_marked = mode_ == CB_DRIVE_BRIDGE;
        Expect cand[CB_GENERATIONS];
        for (int g = 0; g < CB_GENERATIONS; g++) cand[g] = oracle_collect(w_, g, host_marked, opt_.oracle);
        Pending p;
        p.desc = "cb_collect_if_due";
        p.before = w_;
        p.unc_before = cb_uncollectable_count(heap_);
        reset_events();
        log(p.desc);
        started_generation_ = -1;
        cb_status s = cb_collect_if_due(heap_);
        if (s != CB_OK) violation(std::string("cb_collect_if_due returned ") + cb_status_name(s));
        if (started_generation_ < 0 || started_generation_ >= CB_GENERATIONS) {
            World pred = p.before;
            p.exp = oracle_mutation(pred);
            oplog_.back() += ": nothing due";
        } else {
            ++collections_;
            p.exp = cand[started_generation_];
            p.desc += ": collected generations 0.." + std::to_string(started_generation_);
            oplog_.back() = p.desc;
            if (cb_last_stats(heap_, &stats_) == CB_OK) have_stats_ = true;
        }
        end(p);
        have_stats_ = false;
    }

    void op_freeze(bool freeze) {
        World pred = w_;
        Pending p = begin_mutation(freeze ? "cb_freeze" : "cb_unfreeze", pred);
        cb_status s = freeze ? cb_freeze(heap_) : cb_unfreeze(heap_);
        if (s != CB_OK) violation(std::string(freeze ? "cb_freeze" : "cb_unfreeze") + " = " + cb_status_name(s));
        for (Obj &o : w_.objs) {
            if (!o.alive || !o.is_node()) continue;
            if (freeze) o.gen = kFrozenGen;
            else if (o.gen == kFrozenGen) o.gen = CB_FULL;
        }
        end(p);
    }

    // Untrack and track again: the node rejoins generation 0.
    void op_retrack(uint32_t id) {
        World pred = w_;
        Pending p = begin_mutation("untrack and track " + name(id), pred);
        cb_status s1 = cb_untrack(heap_, w_.objs[id].ptr);
        cb_status s2 = cb_track(heap_, w_.objs[id].ptr);
        if (s1 != CB_OK || s2 != CB_OK) violation("cb_untrack/cb_track failed");
        w_.objs[id].gen = 0;
        end(p);
    }

    // ---- comparison -----------------------------------------------------------

    void end(Pending &p) {
        if (failed_) return;
        const Expect &e = p.exp;
        std::vector<std::string> diffs;
        size_t n = w_.objs.size();
        grow(p.exp, n);

        // Host objects reclaimed.
        for (uint32_t i = 0; i < n; i++) {
            Obj &o = w_.objs[i];
            if (o.kind == Kind::Host && o.alive && !cb_refheap_is_live(rh_, o.host_id)) o.alive = false;
        }
        // Freed nodes and reclaimed host objects.
        std::vector<uint8_t> freed(n, 0);
        for (uint32_t id : ev_dealloc_) freed[id] = 1;
        for (uint32_t i = 0; i < p.before.objs.size(); i++) {
            const Obj &b = p.before.objs[i];
            if (b.kind == Kind::Host && b.alive && !w_.objs[i].alive) freed[i] = 1;
            if (b.is_node() && !b.alive && freed[i]) diffs.push_back("dealloc of already dead " + name(i));
        }
        std::vector<uint8_t> missing(n, 0), extra(n, 0);
        bool any_m = false, any_x = false;
        for (uint32_t i = 0; i < n; i++) {
            bool want = i < e.freed.size() && e.freed[i];
            if (want && !freed[i]) missing[i] = any_m = 1;
            if (!want && freed[i]) extra[i] = any_x = 1;
        }
        if (any_m) diffs.push_back("expected freed but survived: " + set_string(w_, missing));
        if (any_x) diffs.push_back("freed but expected to survive: " + set_string(w_, extra));

        // Finalizers.
        std::vector<uint8_t> fin(n, 0);
        for (uint32_t id : ev_final_) fin[id] = 1;
        std::vector<uint8_t> fm(n, 0), fx(n, 0);
        any_m = any_x = false;
        for (uint32_t i = 0; i < n; i++) {
            bool want = i < e.finalize.size() && e.finalize[i];
            if (want && !fin[i]) fm[i] = any_m = 1;
            if (!want && fin[i]) fx[i] = any_x = 1;
        }
        if (any_m) diffs.push_back("finalizer expected but did not run: " + set_string(w_, fm));
        if (any_x) diffs.push_back("finalizer ran unexpectedly: " + set_string(w_, fx));

        // Clears only on what is freed.
        for (uint32_t id : ev_clear_)
            if (!freed[id]) diffs.push_back("clear ran on " + name(id) + ", which survived");

        // The uncollectable list.
        size_t unc_now = cb_uncollectable_count(heap_);
        std::vector<uint8_t> uc_new(n, 0);
        if (p.releases_unc) {
            if (unc_now != 0) diffs.push_back("uncollectable list not empty after release");
        } else if (unc_now >= p.unc_before) {
            for (size_t k = p.unc_before; k < unc_now; k++) {
                cb_uncollectable u{};
                if (cb_uncollectable_get(heap_, k, &u) != CB_OK) {
                    diffs.push_back("cb_uncollectable_get failed");
                    continue;
                }
                uint32_t id = id_of(u.object);
                if (id == kNone) {
                    diffs.push_back("uncollectable entry is not a node of the test");
                    continue;
                }
                if (uc_new[id]) diffs.push_back("uncollectable twice: " + name(id));
                uc_new[id] = 1;
                uint32_t culprit = id_of(u.culprit);
                const Obj &o = w_.objs[id];
                if (o.fin == Fin::Legacy) {
                    if (u.reason != CB_UNCOLLECTABLE_LEGACY_FINALIZER)
                        diffs.push_back("uncollectable " + name(id) + " has a legacy finalizer but reason " +
                                        std::to_string(u.reason));
                } else {
                    if (u.reason != CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY)
                        diffs.push_back("uncollectable " + name(id) + " has reason " + std::to_string(u.reason));
                    const auto &cs = id < e.culprits.size() ? e.culprits[id] : std::vector<uint32_t>{};
                    if (std::find(cs.begin(), cs.end(), culprit) == cs.end())
                        diffs.push_back("uncollectable " + name(id) + " blames " +
                                        (culprit == kNone ? std::string("a non-node") : name(culprit)) +
                                        ", which does not reach it");
                }
            }
        } else {
            diffs.push_back("uncollectable list shrank from " + std::to_string(p.unc_before) + " to " +
                            std::to_string(unc_now));
        }
        any_m = any_x = false;
        std::vector<uint8_t> um(n, 0), ux(n, 0);
        for (uint32_t i = 0; i < n; i++) {
            bool want = i < e.uc.size() && e.uc[i];
            if (want && !uc_new[i]) um[i] = any_m = 1;
            if (!want && uc_new[i]) ux[i] = any_x = 1;
        }
        if (any_m) diffs.push_back("expected uncollectable but not listed: " + set_string(w_, um));
        if (any_x) diffs.push_back("listed uncollectable unexpectedly: " + set_string(w_, ux));

        // Weakrefs.
        for (uint32_t k = 0; k < w_.weaks.size(); k++) {
            Weak &r = w_.weaks[k];
            uint32_t runs_before = k < p.before.weaks.size() ? p.before.weaks[k].cb_runs : 0;
            uint32_t ran = r.cb_runs - runs_before;
            uint8_t want_cb = k < e.weak_cb.size() ? e.weak_cb[k] : kNo;
            std::string wn = "weakref w" + std::to_string(k);
            if (ran > 1) diffs.push_back(wn + ": callback ran " + std::to_string(ran) + " times");
            if (want_cb == kYes && ran == 0) diffs.push_back(wn + ": callback expected but did not run");
            if (want_cb == kNo && ran != 0) diffs.push_back(wn + ": callback ran unexpectedly");
            if (r.freed) continue;
            bool cleared = cb_weakref_get(r.ref) == nullptr;
            uint8_t want_clear = k < e.weak_clear.size() ? e.weak_clear[k] : kNo;
            if (r.cleared && !cleared) diffs.push_back(wn + ": cleared weakref sees a target again");
            if (!r.cleared) {
                if (want_clear == kYes && !cleared) diffs.push_back(wn + ": expected cleared, still set");
                if (want_clear == kNo && cleared) diffs.push_back(wn + ": cleared unexpectedly");
                if (!cleared && cb_weakref_get(r.ref) != w_.objs[r.target].ptr)
                    diffs.push_back(wn + ": cb_weakref_get returns the wrong object");
            }
            r.cleared = cleared;
        }

        // Collection stats that the oracle pins down.
        if (e.collection && have_stats_) {
            uint64_t nuc = 0, nfin = 0;
            for (uint32_t i = 0; i < n; i++) {
                nuc += i < e.uc.size() && e.uc[i];
                nfin += i < e.finalize.size() && e.finalize[i];
            }
            if (stats_.uncollectable != nuc)
                diffs.push_back("stats.uncollectable = " + std::to_string(stats_.uncollectable) + ", expected " +
                                std::to_string(nuc));
            if (stats_.finalized != nfin)
                diffs.push_back("stats.finalized = " + std::to_string(stats_.finalized) + ", expected " +
                                std::to_string(nfin));
        }

        // The model follows: uncollectable holds, finalized flags, generations.
        for (uint32_t i = 0; i < n; i++) {
            Obj &o = w_.objs[i];
            if (uc_new[i]) o.unc = true;
            if (fin[i]) o.finalized = true;
        }
        if (e.collection) {
            for (uint32_t i = 0; i < n; i++) {
                Obj &o = w_.objs[i];
                if (!o.alive || !o.is_node() || i >= e.collected.size() || !e.collected[i]) continue;
                o.gen = std::min(e.generation + 1, (int)CB_FULL);
            }
        }

        for (auto &v : violations_) diffs.push_back(v);
        violations_.clear();
        if (diffs.empty()) check_consistency(p.desc, &diffs);
        if (!diffs.empty()) fail_op(p, diffs);
    }

    uint32_t id_of(const void *ptr) const {
        if (!ptr) return kNone;
        for (uint32_t i = 0; i < w_.objs.size(); i++)
            if (w_.objs[i].is_node() && w_.objs[i].ptr == ptr && w_.objs[i].alive) return i;
        return kNone;
    }

    // The library's counts, generations and lists against the model.
    void check_consistency(const std::string &when, std::vector<std::string> *out = nullptr) {
        if (failed_) return;
        std::vector<std::string> local;
        std::vector<std::string> &diffs = out ? *out : local;
        std::vector<int64_t> c = expected_counts(w_);
        size_t gens[CB_GENERATIONS + 1] = {0, 0, 0, 0};
        size_t hosts = 0, unc = 0;
        for (uint32_t i = 0; i < w_.objs.size(); i++) {
            const Obj &o = w_.objs[i];
            if (!o.alive) continue;
            for (uint32_t t : o.edges)
                if (t != kNone && !w_.objs[t].alive)
                    diffs.push_back(name(i) + " refers to " + name(t) + ", which is dead");
            if (o.kind == Kind::Host) {
                hosts++;
                continue;
            }
            if (o.cleared) diffs.push_back(name(i) + " survived although its clear ran");
            if (o.unc) unc++;
            gens[o.gen]++;
            intptr_t actual = cb_count(heap_, o.ptr);
            if (actual != c[i])
                diffs.push_back("count of " + name(i) + " is " + std::to_string(actual) + ", the model says " +
                                std::to_string(c[i]));
            if (!cb_is_tracked(heap_, o.ptr)) diffs.push_back(name(i) + " is not tracked");
            if (bool(cb_is_finalized(heap_, o.ptr)) != o.finalized)
                diffs.push_back("cb_is_finalized(" + name(i) + ") disagrees with the model");
        }
        if (cb_frozen_count(heap_) != gens[kFrozenGen])
            diffs.push_back("cb_frozen_count is " + std::to_string(cb_frozen_count(heap_)) + ", the model says " +
                            std::to_string(gens[kFrozenGen]));
        for (int g = 0; g < CB_GENERATIONS; g++) {
            size_t actual = cb_generation_size(heap_, g);
            if (actual != gens[g])
                diffs.push_back("generation " + std::to_string(g) + " holds " + std::to_string(actual) +
                                " nodes, the model says " + std::to_string(gens[g]));
        }
        if (rh_ && cb_refheap_live_count(rh_) != hosts)
            diffs.push_back("refheap has " + std::to_string(cb_refheap_live_count(rh_)) +
                            " live objects, the model says " + std::to_string(hosts));
        if (cb_uncollectable_count(heap_) != unc)
            diffs.push_back("uncollectable list has " + std::to_string(cb_uncollectable_count(heap_)) +
                            " entries, the model says " + std::to_string(unc));
        for (auto &v : violations_) diffs.push_back(v);
        violations_.clear();
        if (!out && !diffs.empty()) {
            Pending p;
            p.desc = when;
            p.before = w_;
            fail_op(p, diffs);
        }
    }

    // ---- the end of a scenario ---------------------------------------------------

    // Drop every root, collect, and check that only what legacy finalizers
    // hold survives; then take everything down.
    void finish() {
        // Usually thaw first; sometimes keep frozen nodes through the final
        // collection (they are roots there, and may die by refcount in it).
        if (cb_frozen_count(heap_) > 0 && src_.percent(60)) op_freeze(false);
        // Every test count, handle and resurrection-list count, one by one.
        for (uint32_t i = 0; i < w_.objs.size() && !failed_; i++) {
            while (!failed_ && w_.objs[i].alive && w_.objs[i].is_node() && w_.objs[i].res > 0) op_drop_res(i);
            while (!failed_ && w_.objs[i].alive && w_.objs[i].is_node() && w_.objs[i].ext > 0) op_drop_ext(i);
            while (!failed_ && w_.objs[i].alive && w_.objs[i].kind == Kind::Host && w_.objs[i].host_roots > 0)
                op_host_root(i, false);
        }
        if (!failed_ && cb_uncollectable_count(heap_) > 0) op_release_uncollectable();
        if (failed_) return;
        // Nodes that die by refcount during a collection (frozen ones held
        // only by swept host objects) leave what they reached marked for
        // that collection: the next one frees it.
        for (size_t i = 0; i <= w_.objs.size() && !failed_; i++) {
            collect(CB_FULL, true);
            if (!last_cascade_) break;
        }
        if (failed_) return;
        // Completeness: with no test roots left, only what the uncollectable
        // list holds and what the last finalizers resurrected remains.
        std::vector<std::string> diffs;
        std::vector<uint32_t> held;
        for (uint32_t i = 0; i < w_.objs.size(); i++) {
            const Obj &o = w_.objs[i];
            if (o.alive && o.is_node() && (o.unc || o.res > 0 || o.gen == kFrozenGen)) held.push_back(i);
        }
        std::vector<uint8_t> all(w_.objs.size(), 1);
        std::vector<uint8_t> kept = closure(w_, held, all, false);
        for (uint32_t i = 0; i < w_.objs.size(); i++)
            if (w_.objs[i].alive && !kept[i]) diffs.push_back(name(i) + " survived the final collection without a root");
        if (!diffs.empty()) {
            Pending p;
            p.desc = "completeness after the final collection";
            p.before = w_;
            return fail_op(p, diffs);
        }
        if (cb_uncollectable_count(heap_) > 0) op_release_uncollectable();
        if (failed_) return;
        // Destroying the host heap drops its slots' node references.
        {
            World pred = w_;
            for (Obj &o : pred.objs)
                if (o.kind == Kind::Host) o.alive = false;
            Pending p = begin_mutation("cb_refheap_destroy", pred);
            cb_refheap_destroy(rh_);
            rh_ = nullptr;
            for (Obj &o : w_.objs)
                if (o.kind == Kind::Host) o.alive = false;
            end_without_host(p);
        }
        if (failed_) return;
        teardown_nodes();
        uint64_t reports_before = cb_report_count(heap_);
        cb_heap_destroy(heap_);
        heap_ = nullptr;
        if (!violations_.empty() || reports_before != 0) {
            Pending p;
            p.desc = "cb_heap_destroy";
            p.before = w_;
            std::vector<std::string> d = violations_;
            if (reports_before) d.push_back(std::to_string(reports_before) + " reports during the scenario");
            violations_.clear();
            fail_op(p, d);
        }
    }

    // end() for the step that destroys the host heap (no refheap to ask).
    void end_without_host(Pending &p) {
        std::vector<std::string> diffs;
        std::vector<uint8_t> freed(w_.objs.size(), 0);
        for (uint32_t id : ev_dealloc_) freed[id] = 1;
        for (uint32_t i = 0; i < w_.objs.size(); i++) {
            if (!w_.objs[i].is_node()) continue;
            bool want = i < p.exp.freed.size() && p.exp.freed[i];
            if (want != bool(freed[i]))
                diffs.push_back(name(i) + (want ? " expected freed but survived" : " freed unexpectedly"));
        }
        for (uint32_t k = 0; k < w_.weaks.size(); k++) {
            Weak &r = w_.weaks[k];
            uint32_t ran = r.cb_runs - (k < p.before.weaks.size() ? p.before.weaks[k].cb_runs : 0);
            uint8_t want = k < p.exp.weak_cb.size() ? p.exp.weak_cb[k] : kNo;
            if ((want == kYes && ran != 1) || (want == kNo && ran != 0) || ran > 1)
                diffs.push_back("weakref w" + std::to_string(k) + ": callback ran " + std::to_string(ran) + " times");
            if (!r.freed) r.cleared = cb_weakref_get(r.ref) == nullptr;
        }
        for (auto &v : violations_) diffs.push_back(v);
        violations_.clear();
        if (!diffs.empty()) fail_op(p, diffs);
    }

    // Frees what is left without the collector: weakrefs, then nodes
    // (uncollectable cycles), untracked and released directly.
    void teardown_nodes() {
        for (Weak &r : w_.weaks) {
            if (r.freed) continue;
            cb_weakref_free(heap_, r.ref);
            r.freed = true;
        }
        for (Obj &o : w_.objs) {
            if (!o.alive || !o.is_node()) continue;
            o.edges.clear();
            if (cb_is_tracked(heap_, o.ptr)) cb_untrack(heap_, o.ptr);
            node(o.ptr)->magic = 0;
            if (o.external) delete node(o.ptr);
            else cb_free(heap_, o.ptr);
            o.alive = false;
        }
    }

    // After a failure: leave the heaps as they are if they may be corrupt,
    // but release what can be released safely.
    void teardown_hard() {
        if (!heap_) return;
        if (failed_) {
            // The library may be inconsistent: leak rather than crash.
            return;
        }
        if (rh_) cb_refheap_destroy(rh_);
        rh_ = nullptr;
        teardown_nodes();
        cb_heap_destroy(heap_);
        heap_ = nullptr;
    }

    void fail(const std::string &msg) {
        if (failed_) return;
        Pending p;
        p.desc = "setup";
        p.before = w_;
        fail_op(p, {msg});
    }

    void fail_op(const Pending &p, const std::vector<std::string> &diffs) {
        failed_ = true;
        first_mismatch_ = p.desc + ": " + (diffs.empty() ? std::string("?") : diffs[0]);
        std::string r;
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "differential mismatch: seed %llu, %s-driven, CB_HEAP_VERIFY %s, threads %d, operation %llu: %s\n",
                      (unsigned long long)opt_.seed, mode_ == CB_DRIVE_HOST ? "host" : "bridge",
                      verify_ ? "on" : "off", threads_ ? 2 : 1, (unsigned long long)ops_, p.desc.c_str());
        r += buf;
        r += "mismatches:\n";
        for (auto &d : diffs) r += "  " + d + "\n";
        r += "graph before the operation (r = refcounted, m = handle-managed, h = host):\n";
        r += dump_world(p.before);
        const Expect &e = p.exp;
        if (e.collection) {
            r += "oracle: collected " + set_string(p.before, e.collected) + "\n";
            r += "        roots " + set_string(p.before, e.roots) + "\n";
            r += "        garbage " + set_string(p.before, e.garbage) + "\n";
            r += "        uncollectable " + set_string(p.before, e.uc) + "\n";
            r += "        finalized " + set_string(p.before, e.finalize) + "\n";
            r += "        revived " + set_string(p.before, e.revived) + "\n";
        }
        if (!e.freed.empty()) r += "oracle: freed " + set_string(p.before, e.freed) + "\n";
        std::vector<uint8_t> fr(w_.objs.size(), 0);
        for (uint32_t id : ev_dealloc_) fr[id] = 1;
        r += "actual: deallocated " + set_string(w_, fr) + "\n";
        r += "operations so far:\n";
        for (size_t i = 0; i < oplog_.size(); i++) {
            std::snprintf(buf, sizeof buf, "  %3zu %s\n", i + 1, oplog_[i].c_str());
            r += buf;
        }
        if (!opt_.replay.empty()) r += "replay: " + opt_.replay + "\n";
        report_ = r;
    }

    Source &src_;
    ScenarioOptions opt_;
    cb_heap *heap_ = nullptr;
    cb_refheap *rh_ = nullptr;
    cb_drive_mode mode_ = CB_DRIVE_BRIDGE;
    bool verify_ = false;
    bool filter_ = false;              // heap has an is_node filter; traverses visit not_a_node_
    bool threads_ = false;             // counting and marking on 2 threads
    NodeObj not_a_node_{};             // what traverses visit that is not a node
    int started_generation_ = -1;      // set by the collection callback
    std::vector<TypeKey> types_;
    World w_;
    std::vector<std::unique_ptr<WeakCtx>> wctx_;

    std::vector<uint32_t> ev_dealloc_, ev_final_, ev_clear_, ev_wcb_;
    std::vector<std::string> violations_;
    std::vector<std::string> oplog_;
    cb_collection_stats stats_{};
    bool have_stats_ = false;
    bool last_cascade_ = false;        // the last collection freed nodes by refcount outside its garbage
    bool failed_ = false;
    std::string report_;
    std::string first_mismatch_;
    uint64_t ops_ = 0;
    uint64_t collections_ = 0;
};

}  // namespace cbdiff
