#include "weakrefs.hpp"

#include <algorithm>

#include "collection.hpp"

namespace cb {

WeakrefTable::~WeakrefTable() {
    // Weakrefs die with their heap: nothing could free them afterwards.
    for (cb_weakref *r : all_) delete r;
}

void WeakrefTable::add(cb_weakref *ref) {
    all_.insert(ref);
    if (ref->holder) held_[ref->holder].push_back(ref);
    auto [tail_it, inserted] = tails_.try_emplace(ref->target, ref);
    if (inserted) {
        heads_[ref->target] = ref;
        return;
    }
    cb_weakref *tail = tail_it->second;
    tail->next = ref;
    ref->prev = tail;
    tail_it->second = ref;
}

void WeakrefTable::forget(cb_weakref *ref) {
    unlink(ref);
    all_.erase(ref);
    if (!ref->holder) return;
    auto it = held_.find(ref->holder);
    if (it == held_.end()) return;
    auto &refs = it->second;
    refs.erase(std::find(refs.begin(), refs.end(), ref));
    if (refs.empty()) held_.erase(it);
}

void WeakrefTable::orphan(const void *holder) {
    if (held_.empty()) return;   // every free asks; most heaps hold no weakref
    auto it = held_.find(holder);
    if (it == held_.end()) return;
    for (cb_weakref *r : it->second) r->holder = nullptr;
    held_.erase(it);
}

std::vector<cb_weakref *> WeakrefTable::held_by(const void *holder) const {
    auto it = held_.find(holder);
    return it == held_.end() ? std::vector<cb_weakref *>{} : it->second;
}

void WeakrefTable::unlink(cb_weakref *ref) {
    if (!ref->target) return;
    const void *target = ref->target;
    if (ref->prev) ref->prev->next = ref->next;
    else if (ref->next) heads_[target] = ref->next;
    else heads_.erase(target);
    if (ref->next) ref->next->prev = ref->prev;
    else if (ref->prev) tails_[target] = ref->prev;
    else tails_.erase(target);
    ref->prev = ref->next = nullptr;
    ref->target = nullptr;
}

std::vector<cb_weakref *> WeakrefTable::detach_all(const void *target) {
    std::vector<cb_weakref *> out;
    auto it = heads_.find(target);
    if (it == heads_.end()) return out;
    for (cb_weakref *r = it->second; r;) {
        cb_weakref *next = r->next;
        r->prev = r->next = nullptr;
        r->target = nullptr;
        out.push_back(r);
        r = next;
    }
    heads_.erase(it);
    tails_.erase(target);
    return out;
}

}  // namespace cb

#include "heap.hpp"

namespace cb {

void detach_from_target(cb_heap &heap, cb_weakref *ref, bool by_heap) {
    void *target = ref->target;
    if (!target) return;
    heap.weakrefs.unlink(ref);
    if (!heap.weakrefs.has(target))
        if (Header *h = heap.quiet_header(target)) h->clear(Header::kHasWeakrefs);
    if (by_heap) tell_cleared(heap, {ref});
}

void tell_cleared(cb_heap &heap, const std::vector<cb_weakref *> &refs) {
    for (cb_weakref *r : refs) {
        if (!r->on_clear) continue;
        try {
            r->on_clear(r, r->data);
        } catch (...) {
            heap.report(CB_REPORT_CALLBACK_THREW, CB_OK, r->holder, "weakref on_clear hook threw");
        }
    }
}

void clear_weakrefs(cb_heap &heap, void *obj, bool run_callbacks) {
    if (Header *h = heap.quiet_header(obj)) h->clear(Header::kHasWeakrefs);
    std::vector<cb_weakref *> refs = heap.weakrefs.detach_all(obj);
    tell_cleared(heap, refs);
    if (!run_callbacks) return;
    for (cb_weakref *r : refs) r->queued = r->callback != nullptr;
    for (cb_weakref *r : refs) {
        if (!r->queued) continue;
        Header *holder = heap.quiet_header(r->holder);
        // A holder in a running collection's garbage may be half cleared
        // (CPython, bpo-38006); one whose count is zero is being
        // deallocated (perhaps it is obj itself). Neither survives, so
        // neither callback runs.
        bool holder_dying = holder && (holder->place() == kGarbage ||
                                       (!holder->handle_managed() && heap.count(holder) <= 0));
        if (!r->free_requested && !holder_dying) {
            if (holder) heap.hold(holder);
            try {
                r->callback(r, r->data);
            } catch (...) {
                heap.report(CB_REPORT_CALLBACK_THREW, CB_OK, r->holder, "weakref callback threw");
            }
            if (heap.running) heap.running->stats().weakref_callbacks++;
            if (holder) heap.release(holder);
        }
        r->queued = false;
        if (r->free_requested) delete r;
    }
}

}  // namespace cb
