// Trial deletion (CPython's update_refs + subtract_refs): for every node in
// the collected set, gc_refs starts at its count and loses one for every
// reference the collector can see from another node of the set (and, in
// full collections with a host, from host objects). What is left are
// references from outside: the node is a root when gc_refs > 0.
//
// Handle-managed nodes are not counted by their referrers: their count is
// their open handles and globals, which are roots by definition. In young
// collections they are roots outright, since references from old nodes to
// them are invisible without a write barrier.
#include <algorithm>

#include "collection.hpp"
#include "heap.hpp"

namespace cb {

int visit_subtract(void *target, void *arg) {
    auto *visitor = static_cast<cb_host_visitor *>(arg);
    cb_heap &heap = visitor->collection->heap();
    if (Header *h = counted_target(heap, target))
        subtract_one(heap, h, heap.gc_refs(h));
    return 0;
}

Header *counted_target(cb_heap &heap, void *target) {
    Header *h = heap.visited_header(target, /*report=*/true);
    if (!h) return nullptr;
    if (!h->has(Header::kInCollectedSet)) {
        if (h->place() == kUntracked)
            heap.report_node(CB_REPORT_VISIT_UNTRACKED, CB_OK, h,
                             "traverse visited %p, which is not tracked; ignored", target);
        return nullptr;
    }
    return h->handle_managed() ? nullptr : h;
}

void report_refs_exceed_count(cb_heap &heap, Header *h) {
    heap.report_node(CB_REPORT_REFS_EXCEED_COUNT, CB_OK, h,
                     "more references to %p were visited than its count holds; kept alive", object_of(h));
}

// Walk 1 for one node: it joins the set, its gc_refs its external count.
void Collection::enter_set(Header *h) {
    h->clear(Header::kMarked | Header::kForcedRoot | Header::kPassed);
    h->set(Header::kInCollectedSet);
    intptr_t c = heap_.count(h);
    if (c < 0) {
        heap_.report_node(CB_REPORT_REFS_EXCEED_COUNT, CB_OK, h,
                          "count of %p is negative (%ld); kept alive", object_of(h), long(c));
        h->set(Header::kForcedRoot);
        c = 0;
    }
    if (h->handle_managed() && !full()) h->set(Header::kForcedRoot);
    intptr_t external = external_count(h, c);
    if (external < 0) {
        heap_.report_node(CB_REPORT_REFS_EXCEED_COUNT, CB_OK, h,
                          "host references to %p exceed its count; kept alive", object_of(h));
        h->set(Header::kForcedRoot);
        external = 0;
    }
    heap_.gc_refs(h) = saturate(external);
}

// A node's count less the references the collector will account for
// itself. A refcounted count includes host references, which are edges
// when a host is marked; a handle-managed count holds only handles, and its
// host references are roots when no host is marked.
intptr_t Collection::external_count(const Header *h, intptr_t count) const {
    intptr_t host = intptr_t(heap_.host_refs(h));
    if (h->handle_managed()) return count + (subtract_host_refs_ ? 0 : host);
    return count - (subtract_host_refs_ ? host : 0);
}

// The side arrays of gc_refs for the set, grown before anything changes.
// False when memory is short: the collection fails (CB_ERR_NO_MEMORY).
bool Collection::size_side_arrays() {
    try {
        for (int g = 0; g <= generation_; ++g) heap_.size_refs(Place(g));
    } catch (const std::bad_alloc &) {
        out_of_memory("the side arrays of counts");
        return false;
    }
    return true;
}

// Ends the collection as a failed one: nothing will be freed.
void Collection::out_of_memory(const char *what) {
    failed_ = out_of_memory_ = true;
    heap_.report(CB_REPORT_API_MISUSE, CB_ERR_NO_MEMORY, nullptr,
                 "no memory for %s; the collection frees nothing", what);
}

void Collection::begin() {
    start_ = phase_start_ = std::chrono::steady_clock::now();
    if (!analysis_) heap_.notify(CB_COLLECTION_START, stats_);
}

void Collection::count() {
    size_t set_size = 0;
    for (int g = 0; g <= generation_; ++g) set_size += heap_.generations[g].size();
    stats_.examined += set_size;
    // Until the partition the program does not run, unless the host drives
    // (heap.hpp, refs).
    heap_.refs_in_headers = drive_ != Drive::kHost;
    if (!heap_.refs_in_headers && !size_side_arrays()) return;
    const bool parallel = parallel_ok(set_size);
    if (parallel) {
        parallel_count();
    } else {
        for (int g = 0; g <= generation_; ++g)
            for (Header *h : heap_.generations[g]) enter_set(h);
        visitor_.follow_host = false;
        for (int g = 0; g <= generation_ && !failed_; ++g) {
            // A traverse may (wrongly) track or untrack: walk by index.
            auto &gen = heap_.generations[g];
            for (size_t i = 0; i < gen.size(); ++i) {
                Header *h = gen[i];
                const cb_type &type = heap_.type_of(h);
                try {
                    type.spec.traverse(object_of(h), visit_subtract, &visitor_);
                } catch (...) {
                    traverse_failed(h, "trial deletion");
                    break;
                }
            }
        }
    }
    phase_done(CB_PHASE_COUNT);
    if (failed_) return;
    // Host objects are marked through host callbacks, which may not be
    // called from several threads: with a host, marking is serial.
    if (parallel && drive_ == Drive::kNone) parallel_mark();
    else mark_set_in_order();
}

// Trial deletion over the garbage alone: gc_refs = count minus references
// from dead host objects and from other garbage. What is left are
// references from outside the garbage, which user code made.
void Collection::recount_garbage() {
    auto &garbage = heap_.garbage;
    heap_.size_refs(kGarbage);
    for (Header *h : garbage) {
        if (!h) continue;
        intptr_t external = external_count(h, heap_.count(h));
        heap_.gc_refs(h) = saturate(external < 0 ? 0 : external);
    }
    visitor_.follow_host = false;
    for (size_t i = 0; i < garbage.size() && !failed_; ++i) {
        Header *h = garbage[i];
        if (!h) continue;
        try {
            heap_.type_of(h).spec.traverse(object_of(h), visit_subtract, &visitor_);
        } catch (...) {
            traverse_failed(h, "a recount of the garbage");
        }
    }
}

// CPython's handle_resurrected_objects: after user code ran, a garbage node
// with references from outside the garbage was resurrected, and so is all
// it reaches (marked in drain).
void Collection::resurrect_start() {
    if (!ran_user_code_) return;
    recount_garbage();
    if (failed_) return;
    for (Header *h : heap_.garbage)
        if (h && (heap_.gc_refs(h) > 0 || h->has(Header::kForcedRoot))) mark_node(h);
}

void Collection::traverse_failed(Header *h, const char *phase) {
    failed_ = true;
    heap_.report_node(CB_REPORT_CALLBACK_THREW, CB_ERR_CALLBACK_FAILED, h,
                 "traverse threw during %s; the collection frees nothing it cannot prove dead", phase);
}

}  // namespace cb
