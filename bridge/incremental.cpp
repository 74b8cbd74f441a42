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
// not in the set, and are scanned in the last slice for the same uncounted
// edges. The price is precision, not safety: a node that became garbage
// while the collection ran waits for the next one.
//
// Between slices, removals from the generations leave holes (cb_heap::
// keep_positions), so the walks' positions stay valid; the partition
// compacts them away. The work list is empty between slices: each slice
// drains it.
//
// Not yet sliced: the last slice runs the check above (over the unmarked
// nodes and the new ones only), the partition (a walk over the whole set)
// and the teardown (docs/performance.md measures its length). Heaps with a host
// interface are refused: their host's marking would have to be incremental
// too.
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

namespace {

int visit_subtract_unmarked(void *target, void *arg) {
    auto *visitor = static_cast<cb_host_visitor *>(arg);
    cb_heap &heap = visitor->collection->heap();
    Header *h = counted_target(heap, target);
    if (h && !h->has(Header::kMarked))
        subtract_one(heap, h);
    return 0;
}

}  // namespace

// Calls step(h) for the set's nodes from the walk's position on, until the
// generations end (true) or `budget` nodes were stepped (false). Holes and
// nodes made during the collection are passed over.
template <class Step>
bool Collection::walk_set(size_t budget, size_t &done, Step step) {
    for (; walk_generation_ <= generation_; ++walk_generation_, walk_index_ = 0) {
        auto &gen = heap_.generations[walk_generation_];
        for (; walk_index_ < gen.size(); ++walk_index_) {
            if (budget && done >= budget) return false;
            Header *h = gen[walk_index_];
            if (!h || (walk_ != Walk::kEnter && !h->has(Header::kInCollectedSet))) continue;
            step(h);
            ++done;
            if (failed_) return true;
        }
    }
    walk_generation_ = 0;
    walk_index_ = 0;
    return true;
}

bool Collection::slice(size_t budget) {
    struct InSlice {
        explicit InSlice(cb_heap &h) : heap(h) { heap.in_slice = true; }
        ~InSlice() { heap.in_slice = false; }
        cb_heap &heap;
    } in_slice(heap_);
    if (walk_ == Walk::kNotStarted) {
        begin();
        heap_.keep_positions = true;
        first_new_ = heap_.generations[kGen0].size();
        walk_ = Walk::kEnter;
    }
    phase_start_ = std::chrono::steady_clock::now();   // the program's time is no phase's
    visitor_.follow_host = false;
    size_t done = 0;
    while (!failed_ && walk_ != Walk::kDone && (!budget || done < budget)) {
        switch (walk_) {
        case Walk::kEnter:
            if (walk_set(budget, done, [this](Header *h) {
                    enter_set(h);
                    stats_.examined++;
                }))
                walk_ = Walk::kSubtract;
            break;
        case Walk::kSubtract:
            if (walk_set(budget, done, [this](Header *h) {
                    try {
                        heap_.type_of(h).spec.traverse(object_of(h), visit_subtract, &visitor_);
                    } catch (...) {
                        traverse_failed(h, "trial deletion");
                    }
                }))
                walk_ = Walk::kMark;
            phase_done(CB_PHASE_COUNT);
            break;
        case Walk::kMark:
            in_order_ = true;
            if (walk_set(budget, done, [this](Header *h) {
                    if (!walk_reaches(h, stats_.roots)) return;
                    scan(h);
                    if (!work_.empty()) drain(0);
                }))
                walk_ = Walk::kGather;
            in_order_ = false;   // between slices, a barrier's mark is scanned at once
            phase_done(CB_PHASE_MARK);
            break;
        case Walk::kGather:
            if (walk_set(budget, done, [this](Header *h) {
                    if (!h->has(Header::kMarked))
                        unmarked_.emplace_back(uint32_t(walk_generation_), uint32_t(walk_index_));
                }))
                walk_ = Walk::kDone;
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
    if (walk_ != Walk::kDone) return false;

    // The last slice: the check, then what every full collection does.
    scan_new_nodes();
    if (!failed_) recheck_unmarked();
    if (!failed_) {
        mark_roots_outside_set();
        drain(0);
    }
    phase_done(CB_PHASE_MARK);
    advance();
    return true;
}

// Nodes made during the collection are live; what they refer to without a
// count (handle-managed nodes) is found by scanning them.
void Collection::scan_new_nodes() {
    visitor_.follow_host = false;
    auto &gen = heap_.generations[kGen0];   // where cb_track puts them, after the nodes there at the start
    for (size_t i = first_new_; i < gen.size() && !failed_; ++i) {
        Header *h = gen[i];
        if (!h || h->has(Header::kInCollectedSet)) continue;   // entered: the walk was still in generation 0
        try {
            heap_.type_of(h).spec.traverse(object_of(h), visit_mark, &visitor_);
        } catch (...) {
            traverse_failed(h, "the last slice");
        }
        drain(0);
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
        h->gc_refs = saturate(external);
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
        if (h->has(Header::kMarked) || !(h->gc_refs > 0 || h->has(Header::kForcedRoot))) continue;
        mark_node(h);
        drain(0);
    }
}

}  // namespace cb

extern "C" cb_status cb_collect_slice(cb_heap *heap, size_t budget, int *finished, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (finished) *finished = 0;
    if (heap->in_slice || (heap->running && !heap->incremental))
        return heap->report(CB_REPORT_REENTRANT_COLLECT, CB_ERR_BUSY, nullptr,
                            "cb_collect_slice while another collection runs: refused");
    if (heap->has_host)
        return heap->misuse(CB_ERR_WRONG_MODE, nullptr,
                            "cb_collect_slice on a heap with a host interface (its marking is not incremental)");
    if (!heap->incremental)
        heap->incremental = std::make_unique<cb::Collection>(*heap, CB_FULL, cb::Drive::kNone, nullptr);
    cb::Collection *c = heap->incremental.get();
    bool done = c->slice(budget);
    if (!done) return CB_OK;
    cb_status status = c->failed() ? CB_ERR_CALLBACK_FAILED : CB_OK;
    if (stats) *stats = c->stats();
    if (finished) *finished = 1;
    heap->incremental.reset();
    return status;
}
