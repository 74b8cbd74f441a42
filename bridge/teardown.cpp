// Teardown, in CPython's order (InternalDocs/garbage_collector.md):
//
//  1. partition     survivors join the destination generation; the
//                   unreachable nodes form the garbage list
//  2. legacy        what legacy finalizers keep (marked earlier) goes to the
//                   uncollectable list, held by the heap
//  3. weakrefs      every weakref to garbage is cleared before any user code
//                   can see a half-torn-down object; a callback runs only if
//                   its holder is not garbage
//  4. finalize      each finalizer at most once, with its object held
//  5. resurrect     trial deletion again over the garbage: what user code
//                   made reachable survives (trial_deletion.cpp)
//  6. clear         clear runs with the object held; counts reaching zero
//                   deallocate
//  7. survivors     garbage still alive after clear: referenced from outside
//                   the garbage (reported, kept with all it reaches), or
//                   held only by garbage and dead host objects (what it
//                   still reaches is kept); unreached handle-managed
//                   garbage is deallocated, and its counts released
//  8. sweep         the host reclaims its unmarked objects, last, so no host
//                   object dies before the foreign code that could touch it
//
// The garbage list is walked by index and re-read after every callback:
// any callback may deallocate garbage, which leaves a hole.
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

void Collection::to_garbage(Header *h) {
    h->set_place(kGarbage);
    h->index = static_cast<uint32_t>(heap_.garbage.size());
    heap_.garbage.push_back(h);
    heap_.garbage_left++;
}

// A survivor joins the destination generation at `index`.
void Collection::settle(Header *h, size_t index) {
    h->clear(kSettledFlags);
    h->set_place(dest_);
    h->index = static_cast<uint32_t>(index);
}

// The partition and the teardown after it cannot be undone half-way, so
// the arrays they fill are grown first, to what they could need (pages are
// touched only as they are used): the garbage list and the generation that
// takes the survivors, and the garbage's side array of counts, which a
// recount uses (after finalizers, or when garbage survives its clear).
// When that fails the collection ends as if a traverse had thrown: nothing
// is freed, and it returns CB_ERR_NO_MEMORY.
bool Collection::reserve_for_partition() {
    const Place into = walk_ == Walk::kDone ? kGen2 : dest_;   // partition_settled's, or partition's
    size_t set = 0, joining = 0;
    for (int g = 0; g <= generation_; ++g) {
        set += heap_.generations[g].size();
        if (g != int(into)) joining += heap_.generations[g].size();
    }
    const size_t garbage_at_most = walk_ == Walk::kDone ? unmarked_.size() : set;
    try {
        heap_.garbage.reserve(garbage_at_most);
        heap_.refs[kGarbage].reserve(garbage_at_most);
        heap_.generations[into].reserve(heap_.generations[into].size() + joining);
    } catch (const std::bad_alloc &) {
        out_of_memory("the partition's arrays");
        return false;
    }
    return true;
}

void Collection::partition() {
    in_legacy_ = false;
    heap_.garbage.clear();
    heap_.garbage_left = 0;
    if (walk_ == Walk::kDone) {
        partition_settled();
        return;
    }
    heap_.refs_in_headers = false;   // every position of the set is written below
    auto &dest = heap_.generations[dest_];
    const bool dest_in_set = int(dest_) <= generation_;
    size_t before = dest_in_set ? 0 : dest.size();
    auto survives = [](const Header *h) {
        // Nodes tracked while marking ran are not in the set: live.
        return h->has(Header::kMarked) || !h->has(Header::kInCollectedSet);
    };
    // As CPython merges the younger generations onto the end of the one it
    // collects: the destination first, compacted in place (a full
    // collection then allocates no new array), the younger ones after it.
    if (dest_in_set) {
        size_t kept = 0;
        for (Header *h : dest) {
            if (!survives(h)) {
                to_garbage(h);
                continue;
            }
            settle(h, kept);
            dest[kept++] = h;
        }
        dest.truncate(kept);
    }
    // dest has room for the younger generations (reserve_for_partition).
    for (int g = 0; g <= generation_; ++g) {
        if (g == int(dest_)) continue;
        for (Header *h : heap_.generations[g]) {
            if (!survives(h)) {
                to_garbage(h);
                continue;
            }
            settle(h, dest.size());
            dest.push_back(h);
        }
        heap_.generations[g].clear();
    }
    if (dest_ == kGen2 && !full()) heap_.long_lived_pending += dest.size() - before;
    stats_.garbage = heap_.garbage.size() + legacy_kept_.size();
    partitioned_ = true;
}

// The partition after an incremental collection's slices, in time
// proportional to what changed rather than to the heap: the slices already
// settled the nodes marked then (incremental.cpp), so only the nodes left
// unmarked, at the positions gathered, are looked at again; the garbage
// among them leaves holes, filled from the arrays' ends. The younger
// generations join the oldest, as in partition.
void Collection::partition_settled() {
    auto &dest = heap_.generations[kGen2];
    for (auto [g, i] : unmarked_) {
        Header *h = heap_.generations[g][i];
        if (!h || !h->has(Header::kInCollectedSet)) continue;
        if (h->has(Header::kMarked)) {   // by the last slice's check, or a barrier
            h->clear(kSettledFlags);
            continue;
        }
        heap_.remove(h);   // a hole, while positions are kept
        to_garbage(h);
    }
    heap_.close_holes();
    for (Place g : {kGen0, kGen1}) {
        for (Header *h : heap_.generations[g]) {
            settle(h, dest.size());
            dest.push_back(h);
        }
        heap_.generations[g].clear();
    }
    stats_.garbage = heap_.garbage.size() + legacy_kept_.size();
    partitioned_ = true;
}

void Collection::legacy_finish() {
    for (auto [h, culprit] : legacy_kept_) {
        bool own = heap_.type_of(h).spec.legacy_finalize != nullptr;
        heap_.hold(h);
        h->set(Header::kHeld);
        heap_.uncollectable.push_back(
            {object_of(h), own ? CB_UNCOLLECTABLE_LEGACY_FINALIZER : CB_UNCOLLECTABLE_REACHABLE_FROM_LEGACY,
             object_of(own ? h : culprit)});
        stats_.uncollectable++;
    }
    legacy_kept_.clear();
}

// CPython's bpo-38006 rule: a weakref owned by garbage is cleared before
// any user code runs, so its callback can never run later, when its target
// dies and its holder is half torn down.
void Collection::clear_weakrefs_held_by_garbage() {
    if (!heap_.weakrefs.any_held()) return;
    for (Header *h : heap_.garbage) {
        if (!h) continue;
        for (cb_weakref *r : heap_.weakrefs.held_by(object_of(h))) {
            if (!r->target) continue;
            detach_from_target(heap_, r, /*by_heap=*/true);
            stats_.weakrefs_cleared++;
        }
    }
}

// Detaches the weakrefs to each garbage node in turn, tells their owners,
// then hands them to then(refs), before the next node's. No weakref with a
// target at all: no garbage node needs a look.
template <class Then>
void Collection::detach_weakrefs_to_garbage(Then then) {
    if (!heap_.weakrefs.any_targets()) return;
    auto &garbage = heap_.garbage;
    for (size_t i = 0; i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h || !h->has(Header::kHasWeakrefs)) continue;
        auto refs = heap_.weakrefs.detach_all(object_of(h));
        h->clear(Header::kHasWeakrefs);
        tell_cleared(heap_, refs);
        stats_.weakrefs_cleared += refs.size();
        then(refs);
    }
}

void Collection::handle_weakrefs() {
    clear_weakrefs_held_by_garbage();
    auto holder_survives = [&](void *holder) {
        Header *h = heap_.quiet_header(holder);
        return !h || h->place() != kGarbage;
    };
    std::vector<cb_weakref *> queue;
    detach_weakrefs_to_garbage([&](const std::vector<cb_weakref *> &refs) {
        for (cb_weakref *r : refs) {
            if (r->callback && !r->free_requested && holder_survives(r->holder)) {
                r->queued = true;
                queue.push_back(r);
            }
        }
    });
    // Only now, with every weakref to garbage cleared, may user code run.
    for (cb_weakref *r : queue) {
        if (!r->free_requested) {
            Header *holder = heap_.quiet_header(r->holder);
            if (holder) heap_.hold(holder);
            try {
                r->callback(r, r->data);
            } catch (...) {
                heap_.report(CB_REPORT_CALLBACK_THREW, CB_OK, r->holder, "weakref callback threw");
            }
            stats_.weakref_callbacks++;
            ran_user_code_ = true;
            if (holder) heap_.release(holder);
        }
        r->queued = false;
        if (r->free_requested) delete r;
    }
    phase_done(CB_PHASE_WEAKREFS);
}

void Collection::finalize() {
    auto &garbage = heap_.garbage;
    // Most heaps' types have no finalizer: then no garbage node needs a look.
    const bool any = heap_.some_type_has(&cb_type_spec::finalize);
    for (size_t i = 0; any && i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h || h->has(Header::kFinalized)) continue;
        const cb_type &type = heap_.type_of(h);
        if (!type.spec.finalize) continue;
        h->set(Header::kFinalized);
        heap_.hold(h);
        try {
            type.spec.finalize(object_of(h));
        } catch (...) {
            heap_.report_node(CB_REPORT_CALLBACK_THREW, CB_OK, h, "finalizer threw");
        }
        stats_.finalized++;
        ran_user_code_ = true;
        heap_.release(h);
    }
    phase_done(CB_PHASE_FINALIZE);
}

void Collection::resurrect_finish() {
    auto &garbage = heap_.garbage;
    // Only a mark since the partition can have resurrected garbage.
    for (size_t i = 0; garbage_marked_ && i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h || !h->has(Header::kMarked)) continue;
        h->clear(Header::kMarked | Header::kInCollectedSet | Header::kForcedRoot);
        heap_.move(h, dest_);
        stats_.resurrected++;
    }
    phase_done(CB_PHASE_RESURRECT);
}

void Collection::start_clearing() {
    // Weakrefs that finalizers made to or from what stays garbage: cleared
    // without callbacks, which could otherwise see a half-cleared object.
    clear_weakrefs_held_by_garbage();
    detach_weakrefs_to_garbage([](const std::vector<cb_weakref *> &) {});
    next_clear_ = 0;
}

// Clears up to `budget` nodes (0: all). An incremental collection spreads
// them over slices: once the resurrection check passed, nothing outside the
// garbage refers to it and no weakref leads to it, so the program running
// in between cannot reach it.
bool Collection::clear_garbage(size_t budget) {
    auto &garbage = heap_.garbage;
    for (size_t cleared = 0; next_clear_ < garbage.size(); ++next_clear_) {
        if (budget && cleared == budget) return false;
        Header *h = garbage[next_clear_];
        // Marked: a write barrier run by an earlier clear made it live again.
        if (!h || h->has(Header::kMarked)) continue;
        const cb_type &type = heap_.type_of(h);
        if (!type.spec.clear) continue;
        heap_.hold(h);
        try {
            type.spec.clear(object_of(h));
        } catch (...) {
            heap_.report_node(CB_REPORT_CALLBACK_THREW, CB_OK, h, "clear threw");
        }
        heap_.release(h);
        ++cleared;
    }
    return true;
}

// Garbage still alive after clear. Trial deletion over what is left tells
// why: references from outside the garbage mean clear (or code it ran)
// resurrected the node, which is reported and kept with all it reaches.
// Otherwise only other garbage or dead host objects hold it, and the
// cascade of deallocations below, or the host's sweep, frees it.
void Collection::survivors_start() {
    // Mostly the clears' cascades freed it all: then there is nothing to
    // look at, and the garbage list, all holes, is not walked again.
    if (heap_.garbage_left == 0) return;
    recount_garbage();
    if (failed_) return;
    auto &garbage = heap_.garbage;
    for (Header *h : garbage) {
        if (!h || !(heap_.gc_refs(h) > 0 || h->has(Header::kForcedRoot))) continue;
        heap_.report_node(CB_REPORT_SURVIVED_CLEAR, CB_OK, h,
                     "garbage %p is referenced from outside the garbage after clear; kept", object_of(h));
        h->set(Header::kForcedRoot);   // reported
        mark_node(h);
    }
    // Refcounted garbage that stays alive until the cascade or the sweep
    // still has whatever edges its clear left: what those reach must not be
    // freed under it.
    visitor_.follow_host = drive_ != Drive::kNone;
    for (size_t i = 0; i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (h && !h->handle_managed() && !h->has(Header::kMarked)) scan(h);
    }
}

void Collection::survivors_finish() {
    auto &garbage = heap_.garbage;
    // Unreached handle-managed garbage goes first: its dealloc releases the
    // counts it holds, which frees refcounted garbage it kept alive.
    for (size_t i = 0; heap_.garbage_left && i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h || !h->handle_managed() || h->has(Header::kMarked)) continue;
        if (heap_.host_refs(h) > 0) {
            // Dead host objects still point here; their sweep releases it.
            h->set(Header::kCondemned);
            continue;
        }
        h->clear(Header::kInCollectedSet);
        heap_.deallocate(h);
    }
    for (size_t i = 0; heap_.garbage_left && i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h) continue;
        intptr_t dead_host = subtract_host_refs_ ? intptr_t(heap_.host_refs(h)) : 0;
        if (!h->has(Header::kForcedRoot) && !h->handle_managed() && heap_.count(h) > dead_host)
            heap_.report_node(CB_REPORT_SURVIVED_CLEAR, CB_OK, h,
                         "garbage %p survives: no clear broke the cycle holding it", object_of(h));
        h->clear(Header::kMarked | Header::kInCollectedSet | Header::kForcedRoot);
        heap_.move(h, dest_);
    }
    garbage.clear();
    heap_.garbage_left = 0;
    phase_done(CB_PHASE_CLEAR);
}

void Collection::sweep() {
    sweeping_ = true;
    if (drive_ == Drive::kBridge && full()) {
        try {
            heap_.host.sweep(heap_.host.ctx);
        } catch (...) {
            heap_.report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr, "host sweep threw");
        }
    }
    phase_done(CB_PHASE_SWEEP);
}

// A traverse threw after the garbage was split off: keep all that is left,
// and do not let the host sweep on marks that may be incomplete.
bool Collection::abandon_teardown() {
    auto &garbage = heap_.garbage;
    for (size_t i = 0; i < garbage.size(); ++i) {
        Header *h = garbage[i];
        if (!h) continue;
        h->clear(Header::kMarked | Header::kInCollectedSet | Header::kForcedRoot);
        heap_.move(h, dest_);
    }
    garbage.clear();
    heap_.garbage_left = 0;
    work_.clear();
    host_work_.clear();
    if (drive_ == Drive::kBridge && full() && heap_.host.reset_marks) {
        try {
            heap_.host.reset_marks(heap_.host.ctx);
        } catch (...) {
            heap_.report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr, "host reset_marks threw");
        }
    }
    finish();
    return true;
}

}  // namespace cb
