// The heap: the shadow graph's registry of nodes (generations as dense
// arrays), counts, host references, reports and collection settings. The
// collection itself lives in collection.hpp.
#pragma once

#include <array>
#include <cassert>
#include <cstdarg>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cyclebridge/cyclebridge.h"
#include "header.hpp"
#include "node_allocator.hpp"
#include "node_array.hpp"
#include "refs_array.hpp"
#include "type_info.hpp"
#include "weakrefs.hpp"

namespace cb {
class Collection;
class WorkerPool;
}

struct cb_heap {
    explicit cb_heap(const cb_heap_options &options);
    ~cb_heap();

    // ---- reports --------------------------------------------------------
    // Every error goes through here; returns `status` for tail calls.
    // `report` never reads memory at `object` (it may be anything); the
    // `_node` forms name the type from a header known to be valid.
    cb_status report(cb_report_kind kind, cb_status status, const void *object, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
    cb_status report_node(cb_report_kind kind, cb_status status, const cb::Header *h, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
    cb_status misuse(cb_status status, const void *object, const char *what) {
        return report(CB_REPORT_API_MISUSE, status, object, "%s: %s", what, cb_status_name(status));
    }
    cb_status misuse_node(cb_status status, const cb::Header *h, const char *what) {
        return report_node(CB_REPORT_API_MISUSE, status, h, "%s: %s", what, cb_status_name(status));
    }

    // ---- types and headers ---------------------------------------------
    cb_type &type_of(const cb::Header *h) { return *types[h->type_id()]; }
    // Some registered type has this callback (a collection skips walks
    // looking for it otherwise).
    bool some_type_has(cb_object_fn cb_type_spec::*callback) const {
        for (const auto &type : types)
            if (type->spec.*callback) return true;
        return false;
    }
    const cb_type &type_of(const cb::Header *h) const { return *types[h->type_id()]; }
    // Header of a pointer handed to the API, or nullptr (reported) when it
    // is not a live object of this heap as far as can be checked.
    cb::Header *checked_header(const void *obj, const char *what);
    // What an API call returns when checked_header gave nullptr.
    cb_status no_header_status(const void *obj) const {
        return workers_running ? CB_ERR_BUSY : obj ? CB_ERR_NOT_A_NODE : CB_ERR_NULL_ARGUMENT;
    }
    // Header of a pointer visited by a traverse: nullptr for non-nodes
    // (and, with `report`, a report for pointers that cannot be nodes).
    // Inline for the common heap, where every node is intrusive and nothing
    // filters or verifies visits: traverses call it for every edge.
    cb::Header *visited_header(const void *ptr, bool report) {
        if (ptr && !options.is_node && externals.empty() && ever_intrusive && !verify()) {
            cb::Header *h = cb::intrusive_header_of(ptr);
            if (h->place() != cb::kFreed && h->type_id() < types.size()) return h;
        }
        return visited_header_checked(ptr, report);
    }
    cb::Header *visited_header_checked(const void *ptr, bool report);
    // Header of an object of this heap, or nullptr; reports nothing.
    cb::Header *quiet_header(const void *obj);

    // ---- membership -----------------------------------------------------
    cb::NodeArray &array_of(cb::Place p) {
        return p == cb::kGarbage ? garbage : generations[p];
    }
    void append(cb::Header *h, cb::Place p);   // throws std::bad_alloc, changing nothing
    void remove(cb::Header *h);   // from its array; place becomes untracked
    // While an incremental collection walks the generations between the
    // program's turns, a removal from a generation (the permanent one too)
    // leaves a hole (nullptr) instead of moving the last node into the gap;
    // every walk of those arrays skips holes. `holes` keeps their
    // positions, so close_holes fills them from the arrays' ends in time
    // proportional to their number, not to the arrays'.
    bool keep_positions = false;
    std::array<std::vector<uint32_t>, 4> holes;
    void close_holes();
    size_t generation_size(int g) const { return generations[g].size() - holes[g].size(); }
    void move(cb::Header *h, cb::Place p) { remove(h); append(h, p); }

    // ---- side tables ------------------------------------------------------
    // Trial deletion's scratch (CPython's gc_refs): for each node of the
    // collected set, its count less the references found so far. Valid
    // during a collection, for nodes of the set only. Two homes:
    // - a stop-the-world collection keeps it in the header's `index` from
    //   the count to the partition, which writes every position afresh (as
    //   CPython borrows _gc_prev): nothing moves nodes in between but a
    //   hostile traverse, which remove() handles;
    // - collections the program runs in the middle of (incremental,
    //   host-driven) and the teardown's recounts keep it beside the arrays,
    //   at the node's place and position; remove() carries an entry along
    //   when it moves a node. These arrays stay from one collection to the
    //   next while collections use them (refs_array.hpp).
    bool refs_in_headers = false;
    std::array<cb::RefsArray, 5> refs;   // generations 0-3, the garbage list
    uint32_t &gc_refs(cb::Header *h) {
        if (refs_in_headers) return h->index;
        assert(h->place() <= cb::kGarbage && h->index < refs[h->place()].size());
        return refs[h->place()][h->index];
    }
    // Ends refs_in_headers early (no partition): positions written again.
    void restore_positions(int last_generation);
    void size_refs(cb::Place p) { refs[p].cover(array_of(p).size()); }
    // A node of place p moves from one position to another: its side entry
    // goes along (when the side array reaches that far).
    void carry_refs(cb::Place p, uint32_t from, uint32_t to) {
        if (refs[p].size() > from) refs[p][to] = refs[p][from];
    }
    // References held by host objects (cb_host_acquire), for the few nodes
    // that have any (flag kHostHeld).
    std::unordered_map<const cb::Header *, uint32_t> host_held;
    uint32_t host_refs(const cb::Header *h) const {
        return h->has(cb::Header::kHostHeld) ? host_held.find(h)->second : 0;
    }
    void set_host_refs(cb::Header *h, uint32_t n);

    // ---- counts -----------------------------------------------------------
    intptr_t count(cb::Header *h) { return type_of(h).count(cb::object_of(h)); }
    void set_count(cb::Header *h, intptr_t v) { type_of(h).set_count(cb::object_of(h), v); }
    // Collector-side hold and release around a callback (CPython's
    // Py_INCREF/Py_DECREF around tp_clear). Release of a refcounted node to
    // zero deallocates it.
    void hold(cb::Header *h) { set_count(h, count(h) + 1); }
    void release(cb::Header *h);
    // Untrack, clear weakrefs, run the type's dealloc. Deallocations nest
    // (a dealloc releases what it holds) at most kDeallocDepth deep; deeper
    // ones run their dealloc callback when the outermost returns, as
    // CPython's trashcan does, so a long chain cannot overflow the stack.
    void deallocate(cb::Header *h);
    static constexpr uint32_t kDeallocDepth = 50;
    void free_memory(cb::Header *h);

    cb_status deliver(cb_report_kind kind, cb_status status, const void *object, const char *type_name,
                      const char *fmt, va_list ap);

    // ---- state ------------------------------------------------------------
    cb_heap_options options;
    // Memory of the objects from cb_alloc; declared before the tables that
    // point into it, so it is destroyed after them.
    cb::NodeAllocator blocks;
    bool verify() const { return (options.flags & CB_HEAP_VERIFY) != 0; }

    std::vector<std::unique_ptr<cb_type>> types;
    std::array<cb::NodeArray, 4> generations;   // 0, 1, 2, permanent
    cb::NodeArray garbage;                      // the running collection's
    size_t garbage_left = 0;                    // its entries that are not holes

    std::unordered_map<const void *, cb::ExternalRecord *> externals;
    bool ever_intrusive = false;
    std::unordered_set<const void *> live_objects;          // CB_HEAP_VERIFY only
    uint64_t live_allocations = 0;

    cb::WeakrefTable weakrefs;

    uint32_t dealloc_depth = 0;
    std::vector<cb::Header *> deferred_deallocs;   // untracked, weakrefs cleared, dealloc not run

    cb_report_fn report_handler = nullptr;
    void *report_ctx = nullptr;
    uint64_t reports = 0;

    // Automatic collection, as CPython's gcstate.
    bool automatic = true;
    std::array<uint32_t, CB_GENERATIONS> thresholds{700, 10, 10};
    std::array<uint64_t, CB_GENERATIONS> counts{0, 0, 0};
    uint64_t long_lived_total = 0;
    uint64_t long_lived_pending = 0;

    std::vector<std::pair<cb_collection_callback, void *>> callbacks;
    // Calls the collection callbacks; one removed by an earlier one in the
    // same round is not called.
    void notify(cb_collection_event event, const cb_collection_stats &stats);
    std::vector<cb_uncollectable> uncollectable;

    bool has_host = false;
    cb_host_interface host{};

    // cb_set_threads: helpers for counting and marking (null: serial).
    std::unique_ptr<cb::WorkerPool> workers;
    size_t parallel_minimum = 0;   // smallest set counted and marked on the workers
    // Held by deliver while workers run, so reports stay one at a time.
    std::mutex report_mutex;
    bool workers_running = false;

    cb::Collection *running = nullptr;     // the collection in progress
    std::unique_ptr<cb::Collection> host_driven;   // owns a host-driven one
    std::unique_ptr<cb::Collection> incremental;   // owns an incremental one (cb_collect_slice)
    bool in_slice = false;                          // inside cb_collect_slice
    bool in_host_step = false;                      // inside a cb_hd_* call
    cb_collection_stats last_stats{};
    bool has_last_stats = false;
};
