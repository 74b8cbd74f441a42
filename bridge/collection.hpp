// One collection, as a state machine that both drivers run:
//
//   count      trial deletion over the collected set: gc_refs = count minus
//              the references the collector sees (trial_deletion.cpp)
//   mark       from the roots to a fixed point across nodes and, in full
//              collections, host objects (marking.cpp)
//   teardown   CPython's order: legacy finalizers set aside, weakrefs
//              cleared, finalizers, resurrection check, clear, deallocation;
//              then host objects only garbage held go back to the host
//              (teardown.cpp)
//
// Bridge-driven (and young, and host-less full) collections run start to end
// in Collection::run. Host-driven collections stop wherever the host must
// mark its own heap: the host calls prologue, then alternates its marking
// with trace, then calls epilogue until it reports finished (host_driven.cpp).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "cyclebridge/cyclebridge.h"
#include "header.hpp"

struct cb_heap;
namespace cb {
class Collection;
}

// The `arg` of every traverse the collector starts, and the visitor handed
// to host traces. The magic lets cb_visit_host reject a foreign arg.
struct cb_host_visitor {
    static constexpr uint64_t kMagic = 0x63796362726467ull;   // "cycbrdg"
    uint64_t magic = kMagic;
    cb::Collection *collection = nullptr;
    bool follow_host = false;
};

namespace cb {

inline uint64_t ns_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

enum class Drive { kNone, kBridge, kHost };

// The in-order walk's step for a node of the set (marking.cpp,
// parallel.cpp): the node is passed, and is to be scanned now if it was
// marked ahead of the walk or is a root (then marked, and counted).
// gc_refs is read only for nodes not marked yet (most are, ahead of the walk).
inline bool walk_reaches(Header *h, const uint32_t &gc_refs, uint64_t &roots) {
    bool scan = h->has(Header::kMarked);
    if (!scan && (gc_refs > 0 || h->has(Header::kForcedRoot))) {
        roots++;
        h->set(Header::kMarked);
        scan = true;
    }
    h->set(Header::kPassed);
    return scan;
}

// Trial deletion's step for one visited edge, serial or parallel
// (trial_deletion.cpp, parallel.cpp). counted_target is the target when
// its gc_refs counts this edge, else nullptr (reported when the visit is
// wrong).
Header *counted_target(cb_heap &heap, void *target);
int visit_subtract(void *target, void *arg);   // counted_target, then subtract_one
int visit_mark(void *target, void *arg);       // marks the target if it is a node
void report_refs_exceed_count(cb_heap &heap, Header *h);
// One reference to h found: gc_refs loses one. At zero, more references
// were visited than the count holds: h is kept alive (a forced root) and,
// with `report`, reported once.
inline void subtract_one(cb_heap &heap, Header *h, uint32_t &gc_refs, bool report = true) {
    if (gc_refs == 0) {
        if (report && !h->has(Header::kForcedRoot)) report_refs_exceed_count(heap, h);
        h->set(Header::kForcedRoot);
        return;
    }
    if (gc_refs != kCountSaturated) --gc_refs;
}
// A count as gc_refs, capped at kCountSaturated.
inline uint32_t saturate(intptr_t v) {
    return v >= intptr_t(kCountSaturated) ? kCountSaturated : static_cast<uint32_t>(v);
}

// What a node of the set that survives no longer needs once it is known to.
constexpr uint32_t kSettledFlags =
    Header::kMarked | Header::kInCollectedSet | Header::kForcedRoot | Header::kCondemned;

class Collection {
public:
    // Sets smaller than this are counted and marked on one thread unless
    // cb_set_threads says otherwise.
    static constexpr size_t kParallelMinimum = size_t(1) << 15;

    Collection(cb_heap &heap, int generation, Drive drive, const cb_host_hooks *hooks);
    ~Collection();
    Collection(const Collection &) = delete;
    Collection &operator=(const Collection &) = delete;

    // Runs a whole collection (any drive but kHost).
    cb_status run();
    // Counts and marks only, then puts everything back: appends the
    // unreachable nodes to out. Runs no callback but traverses; frees
    // nothing (analysis.cpp).
    cb_status find_unreachable(std::vector<void *> &out);

    // An incremental full collection (incremental.cpp): the first call
    // starts it; each runs about `budget` nodes' worth of work, or for
    // about `max_ns` (0: no limit of that kind), the program running in
    // between; true when the collection has ended.
    bool slice(size_t budget, uint64_t max_ns = 0);

    // Host-driven steps (start is also run's beginning).
    void start();
    bool trace(size_t budget);            // true when the node work list is empty
    cb_status epilogue(bool &finished);
    void retain();                        // host refs of unmarked nodes to the host
    bool abandon();                       // false once the teardown started

    cb_heap &heap() { return heap_; }
    cb_collection_stats &stats() { return stats_; }
    bool full() const { return generation_ == CB_FULL; }
    Drive drive() const { return drive_; }
    bool done() const { return stage_ == Stage::kDone; }
    // The garbage is known and being torn down (cb_is_collecting's 2).
    bool tearing_down() const { return partitioned_ && !done(); }
    bool failed() const { return failed_; }
    // CB_OK, or why the collection freed nothing: a callback threw
    // (CB_ERR_CALLBACK_FAILED), or memory was short (CB_ERR_NO_MEMORY).
    cb_status status() const {
        return out_of_memory_ ? CB_ERR_NO_MEMORY : failed_ ? CB_ERR_CALLBACK_FAILED : CB_OK;
    }

    // Called from visits.
    void mark_node(Header *h);
    void mark_host(cb_host_ref ref);
    void traverse_failed(Header *h, const char *phase);
    // Write barriers (cb_write_barrier): keep what a new edge reaches.
    void note_edge(Header *h);
    void note_host_edge(cb_host_ref ref);

private:
    enum class Stage { kMarking, kLegacy, kResurrect, kClearing, kSurvivors, kDone };

    // trial_deletion.cpp
    void begin();
    void count();
    void enter_set(Header *h);
    bool size_side_arrays();
    void out_of_memory(const char *what);
    void recount_garbage();
    intptr_t external_count(const Header *h, intptr_t count) const;
    // marking.cpp
    void scan(Header *h);
    void mark_set_in_order();
    bool drain(size_t budget, size_t *scanned = nullptr);
    void mark_roots_outside_set();
    void mark_host_roots();
    void find_legacy_culprits();
    // parallel.cpp: the count and the first marking on the heap's workers,
    // for sets of at least heap.parallel_minimum nodes, all from cb_alloc.
    bool parallel_ok(size_t set_size) const;
    void parallel_count();
    void parallel_mark();
    bool mark_next_culprit();
    // teardown.cpp
    bool reserve_for_partition();
    void partition();
    void partition_settled();
    void to_garbage(Header *h);
    void settle(Header *h, size_t index);
    void legacy_finish();
    void clear_weakrefs_held_by_garbage();
    template <class Then>
    void detach_weakrefs_to_garbage(Then then);
    void handle_weakrefs();
    void finalize();
    void resurrect_start();
    void resurrect_finish();
    void start_clearing();
    bool clear_garbage(size_t budget);   // true when every garbage node had its turn
    void survivors_start();
    void survivors_finish();
    void sweep();
    bool abandon_teardown();   // ends the collection; returns true (finished)
    // incremental.cpp
    template <class Step>
    bool walk_set(int last_generation, size_t budget, size_t &done, Step step);
    bool drain_within(size_t budget, size_t &done);
    bool counting_in_slices() const { return walk_ == Walk::kEnter || walk_ == Walk::kSubtract; }
    void mark_early_barriers();
    void park_work();
    void unpark_work();
    void recheck_unmarked();
    void scan_new_nodes();
    // collection.cpp
    bool advance();                       // runs stages; false when the host must mark
    bool yield_to_host();
    void abort_before_teardown();
    void finish();
    void phase_done(cb_phase phase);

    cb_heap &heap_;
    int generation_;
    Place dest_;
    Drive drive_;
    cb_host_hooks hooks_{};
    Stage stage_ = Stage::kMarking;
    bool subtract_host_refs_;

    cb_host_visitor visitor_;
    std::vector<Header *> work_;
    std::vector<cb_host_ref> host_work_;
    bool host_pushed_ = false;
    bool in_order_ = false;   // mark_set_in_order is scanning: nodes ahead of it wait for it

    bool failed_ = false;
    bool out_of_memory_ = false;   // with failed_: an array could not grow before the partition
    bool partitioned_ = false;
    bool ran_user_code_ = false;
    bool garbage_marked_ = false;   // a node of the garbage list was marked since the partition
    bool in_legacy_ = false;
    bool sweeping_ = false;   // the host is reclaiming: too late for barriers
    bool analysis_ = false;   // find_unreachable: no events, no bookkeeping
    size_t next_clear_ = 0;          // the garbage list's next node to clear
    size_t teardown_budget_ = 0;     // clears per call of advance (incremental slices); 0: all
    Header *culprit_ = nullptr;
    std::vector<Header *> culprits_;
    size_t next_culprit_ = 0;
    std::vector<std::pair<Header *, Header *>> legacy_kept_;   // node, culprit
    std::vector<uintptr_t> parallel_cuts_;   // where the workers' parts of memory meet (parallel.cpp)
    // Incremental: which walk runs, and where it stands.
    enum class Walk { kNotStarted, kEnter, kSubtract, kRoots, kMark, kSettle, kDone };
    Walk walk_ = Walk::kNotStarted;
    int walk_generation_ = 0;
    size_t walk_index_ = 0;
    // Generation 0's first node not yet scanned as new: nodes tracked during
    // the collection come after those there at its start.
    size_t next_new_ = 0;
    // The incremental set: the nodes of each array up to here.
    std::array<size_t, 3> set_end_{};
    // Where the nodes the marking left unmarked are (generation, index):
    // positions, since the program may free any of them before the last
    // slice, which leaves a hole there.
    std::vector<std::pair<uint32_t, uint32_t>> unmarked_;
    // The nodes the marking walk passed unmarked (by position), and the
    // next of them to settle.
    std::vector<std::pair<uint32_t, uint32_t>> passed_unmarked_;
    size_t settle_next_ = 0;
    // The work list between slices, by position for the same reason.
    std::vector<std::pair<uint32_t, uint32_t>> parked_;
    // Barriers between slices before the marking began, marked when it
    // begins: a node by position, a host object as is (it lives until the
    // sweep).
    std::vector<std::pair<uint32_t, uint32_t>> early_nodes_;
    std::vector<cb_host_ref> early_hosts_;

    cb_collection_stats stats_{};
    std::chrono::steady_clock::time_point start_, phase_start_;
};

}  // namespace cb
