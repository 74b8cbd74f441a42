// Write barriers: the collector learns of edges it cannot count.
//
// Edges into handle-managed nodes and edges to host objects hold no count,
// so trial deletion cannot see new ones. Before the garbage is known, a new
// edge could hide a node from marking that is done (a host that lets its
// mutator run between cb_hd_* steps); afterwards, user code run by the
// teardown (a finalizer, a weakref callback, a clear) could store garbage
// into a live object, and the recount that finds resurrected refcounted
// garbage would miss it. Both are the same fix, the insertion barrier of
// incremental collectors: the target is marked at once, with all it
// reaches. Marking garbage after the split is resurrection: resurrect_finish
// (or survivors_finish) moves it back among the survivors.
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

void Collection::note_edge(Header *h) {
    if (analysis_ || done()) return;
    if (counting_in_slices()) {   // a mark now would be undone when h enters the set
        if (h->place() <= kGen2) early_nodes_.emplace_back(uint32_t(h->place()), h->index);
        return;
    }
    if (!h->has(Header::kInCollectedSet) || h->has(Header::kMarked)) return;
    // Set after the resurrection check, this makes survivors_start report
    // the store as a resurrection by clear; before it, resurrect_finish
    // clears it with the mark.
    if (h->place() == kGarbage) h->set(Header::kForcedRoot);
    // What the barrier keeps is not kept by a legacy finalizer.
    bool in_legacy = in_legacy_;
    in_legacy_ = false;
    mark_node(h);
    drain(0);
    in_legacy_ = in_legacy;
}

void Collection::note_host_edge(cb_host_ref ref) {
    if (analysis_ || done() || sweeping_ || !full() || drive_ == Drive::kNone) return;
    if (counting_in_slices()) {   // tracing it now would pass over nodes not in the set yet
        early_hosts_.push_back(ref);
        return;
    }
    bool in_legacy = in_legacy_;
    in_legacy_ = false;
    mark_host(ref);
    drain(0);
    in_legacy_ = in_legacy;
}

}  // namespace cb

extern "C" {

void cb_write_barrier(cb_heap *heap, void *node) {
    if (!heap || !heap->running || !node) return;
    cb::Header *h = heap->checked_header(node, "cb_write_barrier");
    if (h) heap->running->note_edge(h);
}

void cb_write_barrier_host(cb_heap *heap, cb_host_ref ref) {
    if (!heap || !heap->running || !ref) return;
    heap->running->note_host_edge(ref);
}

}  // extern "C"
