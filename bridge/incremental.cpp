// Incremental full collections (cb_collect_slice): the count and the first
// marking run in slices of bounded work, and the program runs in between,
// changing counts and edges, making and freeing nodes.
//
// What the slices compute is therefore only an estimate: a count read in
// one slice may have changed by the next, an edge may have moved after its
// holder was scanned. Safety does not rest on it. The last slice checks
// the estimate against the heap as it is then, as CPython's
// handle_resurrected_objects checks the garbage after finalizers ran:
//
//   every node of the set left unmarked gets gc_refs = its count now, less
//   the references from other unmarked nodes (their traverses now); one
//   with references left is reachable from outside, and so is all it
//   reaches: marked.
//
// What remains unmarked then has no reference from outside itself, whatever
// happened before: it is garbage. Write barriers (required for edges the
// counts do not show, into handle-managed nodes) mark their targets at once,
// with what those reach; nodes the program made during the collection are
// not in the set, and are scanned in the first slice after they were made
// for the same uncounted edges. The price is precision, not safety: a node
// that became garbage while the collection ran waits for the next one.
//
// The walks, each in slices: enter the set, subtract (the count), the
// frozen nodes as roots, and the in-order marking, which settles what it
// scans: marks only grow, so a scanned node survives and leaves the set
// there and then. The nodes it passed unmarked are settled after it (no
// walk over the set: they are remembered by position), and those still
// unmarked are remembered for the check. The slice that finishes the
// marking then costs what the unmarked nodes cost (the check, the partition
// of Collection::partition_settled, the teardown's stages up to the
// resurrection check), not what the heap does; the clears follow, a quarter
// of the budget's worth a slice (Collection::clear_garbage).
//
// Between slices, removals from the generations leave holes (cb_heap::
// keep_positions), so positions stay valid; the partition fills them from
// the arrays' ends. The marking's work list waits between slices by
// position too (park_work). A slice counts a node entered, traversed,
// walked past or scanned as one unit of its budget.
//
// On a heap with a host interface, host objects are marked in the slices
// too; the host's changes between slices come through barriers
// (cb_host_acquire, cb_write_barrier_host), and its roots are marked again
// in the last slice (design.md §6b).
#include <algorithm>

#include "collection.hpp"
#include "heap.hpp"

namespace cb {

namespace {

// The sliced count's visit. A count read in one slice may be followed, in
// a later one, by the traverse of a holder that took its reference in
// between: more references than the count held, and not the traverse's
// fault. The node is kept (a forced root), unreported; a traverse that
// does visit too much is still reported by the last slice's check.
int visit_subtract_sliced(void *target, void *arg) {
    cb_heap &heap = static_cast<cb_host_visitor *>(arg)->collection->heap();
    if (Header *h = counted_target(heap, target)) subtract_one(heap, h, heap.gc_refs(h), /*report=*/false);
    return 0;
}

int visit_subtract_unmarked(void *target, void *arg) {
    auto *visitor = static_cast<cb_host_visitor *>(arg);
    cb_heap &heap = visitor->collection->heap();
    Header *h = counted_target(heap, target);
    if (h && !h->has(Header::kMarked))
        subtract_one(heap, h, heap.gc_refs(h));
    return 0;
}

}  // namespace

// Calls step(h) for the nodes from the walk's position on, up to the end of
// last_generation, until they end (true) or `budget` nodes were stepped
// (false). Holes are passed over, and so are nodes outside the set except
// in the walks that take every node (kEnter, and kRoots over the permanent
// generation); nodes made during the collection, past the set's end, are
// walked by kRoots alone.
template <class Step>
bool Collection::walk_set(int last_generation, size_t budget, size_t &done, Step step) {
    const bool every_node = walk_ == Walk::kEnter || walk_ == Walk::kRoots;
    for (; walk_generation_ <= last_generation; ++walk_generation_, walk_index_ = 0) {
        auto &gen = heap_.generations[walk_generation_];
        const size_t end = walk_ == Walk::kRoots ? gen.size() : std::min(gen.size(), set_end_[walk_generation_]);
        for (; walk_index_ < end; ++walk_index_) {
            if (budget && done >= budget) return false;
            Header *h = gen[walk_index_];
            if (!h || (!every_node && !h->has(Header::kInCollectedSet))) continue;
            step(h);
            ++done;
            if (failed_) return true;
        }
    }
    walk_generation_ = 0;
    walk_index_ = 0;
    return true;
}

constexpr size_t kUnitsPerClear = 4;
// A slice with a time budget runs as work budgets of this many steps (a
// node walked or scanned, a host object traced; a clear is four), the
// clock read between them. A reading costs about 27 ns here and a step 5
// to 20, so a slice overruns its time by about 20 microseconds at most,
// and the readings cost a fraction of a percent.
constexpr size_t kStepsPerClockRead = 1024;

bool Collection::slice(size_t budget, uint64_t max_ns) {
    struct InSlice {
        explicit InSlice(cb_heap &h) : heap(h) { heap.in_slice = true; }
        ~InSlice() { heap.in_slice = false; }
        cb_heap &heap;
    } in_slice(heap_);
    if (walk_ == Walk::kNotStarted) {
        begin();
        heap_.keep_positions = true;
        // The set is what the arrays hold now; nodes made later are new
        // (scan_new_nodes), beyond its end.
        for (int g = 0; g <= generation_; ++g) set_end_[g] = heap_.generations[g].size();
        size_side_arrays();   // on failure, the loop below does not run
        next_new_ = set_end_[kGen0];
        walk_ = Walk::kEnter;
    }
    phase_start_ = std::chrono::steady_clock::now();   // the program's time is no phase's
    const bool timed = max_ns != 0;
    // Beyond about 146 years a budget is as good as none (and would overflow).
    const auto deadline = phase_start_ + std::chrono::nanoseconds(std::min<uint64_t>(max_ns, uint64_t(1) << 62));
    auto time_left = [&] { return std::chrono::steady_clock::now() < deadline; };
    if (timed) budget = kStepsPerClockRead;
    // A clear runs the clear callback and, mostly, a deallocation: about
    // four times a marking step here (docs/performance.md), so it counts
    // as four units of the budget.
    teardown_budget_ = budget ? std::max<size_t>(1, budget / kUnitsPerClear) : 0;
    auto tear_down = [&] {
        advance();
        // Collection::done: the slice's step count below is also named done.
        while (timed && !Collection::done() && time_left()) advance();
        return Collection::done();
    };
    if (walk_ == Walk::kDone) return tear_down();   // where the last slice's budget ended it
    unpark_work();
    // Marks mean something once the count is done (entering the set clears them).
    if (walk_ > Walk::kSubtract) scan_new_nodes();
    size_t done = 0;
    while (!failed_ && walk_ != Walk::kDone) {
        if (budget && done >= budget) {
            if (!timed || !time_left()) break;
            budget = done + kStepsPerClockRead;
        }
        // What the marking reached is scanned before the walks go on, so a
        // walk ends only with the work list empty.
        if (!drain_within(budget, done)) break;
        switch (walk_) {
        case Walk::kEnter:
            if (walk_set(generation_, budget, done, [this](Header *h) {
                    enter_set(h);
                    stats_.examined++;
                }))
                walk_ = Walk::kSubtract;
            break;
        case Walk::kSubtract:
            visitor_.follow_host = false;
            if (walk_set(generation_, budget, done, [this](Header *h) {
                    try {
                        heap_.type_of(h).spec.traverse(object_of(h), visit_subtract_sliced, &visitor_);
                    } catch (...) {
                        traverse_failed(h, "trial deletion");
                    }
                })) {
                walk_ = Walk::kRoots;
                walk_generation_ = kPermanent;
                mark_early_barriers();
            }
            phase_done(CB_PHASE_COUNT);
            break;
        case Walk::kRoots:
            // The frozen nodes are roots, scanned for edges into the set that
            // no count shows, and then the host's roots are marked; before
            // the marking walk, so the nodes they reach are only flagged for
            // it.
            visitor_.follow_host = drive_ != Drive::kNone;
            in_order_ = true;
            if (walk_set(kPermanent, budget, done, [this](Header *h) { scan(h); })) {
                mark_host_roots();
                walk_ = Walk::kMark;
            }
            in_order_ = false;
            phase_done(CB_PHASE_MARK);
            break;
        case Walk::kMark:
            visitor_.follow_host = drive_ != Drive::kNone;
            in_order_ = true;
            // Marks only grow: a node the walk scans survives, and leaves
            // the set there and then. One it passes unmarked may be marked
            // later, behind the walk: settled afterwards (kSettle).
            if (walk_set(generation_, budget, done, [this, budget, &done](Header *h) {
                    if (!walk_reaches(h, heap_.gc_refs(h), stats_.roots)) {
                        passed_unmarked_.emplace_back(uint32_t(walk_generation_), uint32_t(walk_index_));
                        return;
                    }
                    scan(h);
                    drain_within(budget, done);
                    h->clear(kSettledFlags);
                })) {
                walk_ = Walk::kSettle;
                settle_next_ = 0;
            }
            in_order_ = false;   // between slices, a barrier's mark is scanned at once
            phase_done(CB_PHASE_MARK);
            break;
        case Walk::kSettle:
            // The nodes the marking walk passed unmarked: marked since, they
            // survive and leave the set; still unmarked, they are remembered
            // for the last slice's check (a hole there by then: freed
            // meanwhile). Positions are not reused while the collection
            // runs (cb_heap::keep_positions).
            for (; settle_next_ < passed_unmarked_.size() && (!budget || done < budget); ++settle_next_, ++done) {
                auto [g, i] = passed_unmarked_[settle_next_];
                Header *h = heap_.generations[g][i];
                if (!h || !h->has(Header::kInCollectedSet)) continue;
                if (h->has(Header::kMarked)) h->clear(kSettledFlags);
                else unmarked_.emplace_back(g, i);
            }
            if (settle_next_ == passed_unmarked_.size()) {
                walk_ = Walk::kDone;
                passed_unmarked_.clear();
            }
            phase_done(CB_PHASE_MARK);
            break;
        case Walk::kNotStarted:
        case Walk::kDone:
            break;
        }
    }
    if (walk_ == Walk::kEnter) phase_done(CB_PHASE_COUNT);
    if (failed_) {
        abort_before_teardown();
        return true;
    }
    if (walk_ != Walk::kDone) {
        park_work();
        return false;
    }

    // The last marking slice: the check, then the teardown every full
    // collection runs, its partition limited to the unmarked nodes
    // (partition_settled), and its clears spread over as many slices as
    // their budget asks.
    // Roots the host gained meanwhile: marked now, rather than asking the
    // host for a barrier on each (the last slice costs the host's roots).
    mark_host_roots();
    drain(0);
    recheck_unmarked();
    drain(0);
    phase_done(CB_PHASE_MARK);
    return tear_down();
}

// Drains within what is left of the slice's budget (counting what it
// scans); true when the work list is empty.
bool Collection::drain_within(size_t budget, size_t &done) {
    if (work_.empty() && host_work_.empty()) return true;
    if (!budget) return drain(0, &done);
    return done < budget && drain(budget - done, &done);
}

// Barriers met while the count ran (write_barrier.cpp) take effect as the
// marking begins; what they mark is drained with the rest of the work.
void Collection::mark_early_barriers() {
    for (auto [g, i] : early_nodes_)
        if (Header *h = heap_.generations[g][i]) mark_node(h);
    for (cb_host_ref ref : early_hosts_) mark_host(ref);
    early_nodes_.clear();
    early_hosts_.clear();
}

// Between slices the program may free a node the work list holds: it waits
// there by position, where a freed node leaves a hole.
void Collection::park_work() {
    for (Header *h : work_) parked_.emplace_back(uint32_t(h->place()), h->index);
    work_.clear();
}

void Collection::unpark_work() {
    for (auto [g, i] : parked_) {
        Header *h = heap_.generations[g][i];
        if (h && h->has(Header::kInCollectedSet) && h->has(Header::kMarked)) work_.push_back(h);
    }
    parked_.clear();
}

// Nodes made during the collection are live; what they refer to without a
// count (handle-managed nodes) is found by scanning them, each once, in the
// first slice after it was made (edges stored later need their barrier, as
// for every other node).
void Collection::scan_new_nodes() {
    visitor_.follow_host = drive_ != Drive::kNone;
    auto &gen = heap_.generations[kGen0];   // where cb_track puts them, after the nodes there at the start
    for (; next_new_ < gen.size() && !failed_; ++next_new_) {
        Header *h = gen[next_new_];
        if (!h || h->has(Header::kInCollectedSet)) continue;   // entered: the walk was still in generation 0
        try {
            heap_.type_of(h).spec.traverse(object_of(h), visit_mark, &visitor_);
        } catch (...) {
            traverse_failed(h, "scanning a node made during the collection");
        }
    }
}

// Trial deletion again, over the nodes the marking left unmarked (gathered
// by position in the slices before) and with the heap as it is now (see
// the top of this file).
void Collection::recheck_unmarked() {
    std::vector<Header *> unmarked;
    for (auto [g, i] : unmarked_) {
        Header *h = heap_.generations[g][i];
        if (h && h->has(Header::kInCollectedSet) && !h->has(Header::kMarked)) unmarked.push_back(h);
    }
    for (Header *h : unmarked) {
        // A forced root stays one: its count was found wrong once already.
        intptr_t external = external_count(h, heap_.count(h));
        if (external < 0) {
            h->set(Header::kForcedRoot);
            external = 0;
        }
        heap_.gc_refs(h) = saturate(external);
    }
    visitor_.follow_host = false;
    for (Header *h : unmarked) {
        try {
            heap_.type_of(h).spec.traverse(object_of(h), visit_subtract_unmarked, &visitor_);
        } catch (...) {
            traverse_failed(h, "the last slice");
            return;
        }
    }
    for (Header *h : unmarked) {
        if (h->has(Header::kMarked) || !(heap_.gc_refs(h) > 0 || h->has(Header::kForcedRoot))) continue;
        mark_node(h);
        drain(0);
    }
}

}  // namespace cb

namespace {

cb_status run_slice(cb_heap *heap, size_t budget, uint64_t max_ns, int *finished, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (finished) *finished = 0;
    if (heap->in_slice || (heap->running && !heap->incremental))
        return heap->report(CB_REPORT_REENTRANT_COLLECT, CB_ERR_BUSY, nullptr,
                            "cb_collect_slice while another collection runs: refused");
    if (!heap->incremental) {
        try {
            heap->incremental = std::make_unique<cb::Collection>(
                *heap, CB_FULL, heap->has_host ? cb::Drive::kBridge : cb::Drive::kNone, nullptr);
        } catch (const std::bad_alloc &) {
            return heap->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_collect_slice");
        }
    }
    cb::Collection *c = heap->incremental.get();
    bool done = c->slice(budget, max_ns);
    if (!done) return CB_OK;
    cb_status status = c->status();
    if (stats) *stats = c->stats();
    if (finished) *finished = 1;
    heap->incremental.reset();
    return status;
}

}  // namespace

extern "C" cb_status cb_collect_slice(cb_heap *heap, size_t budget, int *finished, cb_collection_stats *stats) {
    return run_slice(heap, budget, 0, finished, stats);
}

extern "C" cb_status cb_collect_slice_for(cb_heap *heap, uint64_t nanoseconds, int *finished,
                                          cb_collection_stats *stats) {
    return run_slice(heap, 0, nanoseconds, finished, stats);
}
