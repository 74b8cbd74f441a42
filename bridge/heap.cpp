#include "heap.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "collection.hpp"
#include "worker_pool.hpp"

using cb::Header;

cb_heap::cb_heap(const cb_heap_options &opts) : options(opts) {
    automatic = (options.flags & CB_HEAP_NO_AUTO_COLLECT) == 0;
}

cb_heap::~cb_heap() {
    for (auto &[obj, record] : externals) delete record;
    if (live_allocations != 0) blocks.leak_regions();   // the program may still use them
    if (live_allocations != 0)
        report(CB_REPORT_LEAKED_AT_DESTROY, CB_OK, nullptr,
               "heap destroyed with %llu objects from cb_alloc still allocated",
               static_cast<unsigned long long>(live_allocations));
}

cb_status cb_heap::report(cb_report_kind kind, cb_status status, const void *object, const char *fmt, ...) {
    // Only a side table can name the type of an arbitrary pointer safely.
    const char *type_name = nullptr;
    auto ext = object ? externals.find(object) : externals.end();
    if (ext != externals.end()) type_name = type_of(&ext->second->header).name.c_str();
    va_list ap;
    va_start(ap, fmt);
    deliver(kind, status, object, type_name, fmt, ap);
    va_end(ap);
    return status;
}

cb_status cb_heap::report_node(cb_report_kind kind, cb_status status, const Header *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    deliver(kind, status, cb::object_of(const_cast<Header *>(h)), type_of(h).name.c_str(), fmt, ap);
    va_end(ap);
    return status;
}

cb_status cb_heap::deliver(cb_report_kind kind, cb_status status, const void *object, const char *type_name,
                           const char *fmt, va_list ap) {
    std::unique_lock<std::mutex> one_at_a_time(report_mutex, std::defer_lock);
    if (workers_running) one_at_a_time.lock();
    char message[512];
    std::vsnprintf(message, sizeof message, fmt, ap);
    ++reports;
    if (running) running->stats().reports++;
    cb_report r{kind, status, message, object, type_name};
    if (report_handler) report_handler(report_ctx, &r);
    else if (type_name) std::fprintf(stderr, "cyclebridge: %s (type %s)\n", message, type_name);
    else std::fprintf(stderr, "cyclebridge: %s\n", message);
    return status;
}

void cb_heap::notify(cb_collection_event event, const cb_collection_stats &stats) {
    auto round = callbacks;
    for (auto entry : round) {
        if (std::find(callbacks.begin(), callbacks.end(), entry) == callbacks.end()) continue;
        try {
            entry.first(entry.second, event, &stats);
        } catch (...) {
            report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr, "collection callback threw at %s",
                   event == CB_COLLECTION_START ? "start" : "stop");
        }
    }
}

Header *cb_heap::checked_header(const void *obj, const char *what) {
    if (!obj) {
        misuse(CB_ERR_NULL_ARGUMENT, nullptr, what);
        return nullptr;
    }
    if (workers_running) {   // from a traverse, on any thread: the heap is not to change
        report(CB_REPORT_API_MISUSE, CB_ERR_BUSY, obj, "%s from a traverse while threads count or mark: %s", what,
               cb_status_name(CB_ERR_BUSY));
        return nullptr;
    }
    if (!externals.empty()) {   // a hash lookup on every API call otherwise
        auto ext = externals.find(obj);
        if (ext != externals.end()) return &ext->second->header;
    }
    if (verify() ? !live_objects.count(obj) : !ever_intrusive) {
        misuse(CB_ERR_NOT_A_NODE, obj, what);
        return nullptr;
    }
    Header *h = cb::intrusive_header_of(obj);
    if (h->place() == cb::kFreed || h->type_id() >= types.size()) {
        misuse(CB_ERR_NOT_A_NODE, obj, what);
        return nullptr;
    }
    return h;
}

Header *cb_heap::visited_header_checked(const void *ptr, bool report_invalid) {
    if (!ptr) return nullptr;
    if (options.is_node && !options.is_node(options.is_node_ctx, ptr)) return nullptr;
    if (!externals.empty()) {
        auto ext = externals.find(ptr);
        if (ext != externals.end()) return &ext->second->header;
    }
    if (verify() ? !live_objects.count(ptr) : !ever_intrusive) {
        if (report_invalid)
            report(CB_REPORT_VISIT_INVALID, CB_OK, ptr,
                   "traverse visited %p, which is not a live object of this heap; ignored", ptr);
        return nullptr;
    }
    Header *h = cb::intrusive_header_of(ptr);
    if (h->place() == cb::kFreed || h->type_id() >= types.size()) {
        if (report_invalid)
            report(CB_REPORT_VISIT_INVALID, CB_OK, ptr, "traverse visited %p, which was freed; ignored", ptr);
        return nullptr;
    }
    return h;
}

Header *cb_heap::quiet_header(const void *obj) {
    if (!obj) return nullptr;
    if (!externals.empty()) {
        auto ext = externals.find(obj);
        if (ext != externals.end()) return &ext->second->header;
    }
    if (verify() ? !live_objects.count(obj) : !ever_intrusive) return nullptr;
    Header *h = cb::intrusive_header_of(obj);
    if (h->place() == cb::kFreed || h->type_id() >= types.size()) return nullptr;
    return h;
}

void cb_heap::append(Header *h, cb::Place p) {
    auto &arr = array_of(p);
    arr.push_back(h);   // first: when growing fails (std::bad_alloc), nothing has changed
    h->index = static_cast<uint32_t>(arr.size() - 1);
    h->set_place(p);
}

void cb_heap::remove(Header *h) {
    cb::Place p = h->place();
    if (p == cb::kGarbage) {
        // The garbage list is walked by index while callbacks run: leave a hole.
        garbage[h->index] = nullptr;
        garbage_left--;
    } else if (keep_positions && p <= cb::kPermanent) {
        generations[p][h->index] = nullptr;
        holes[p].push_back(h->index);
    } else if (p <= cb::kPermanent) {
        auto &arr = generations[p];
        Header *last = arr.back();
        if (refs_in_headers) {
            // The set's nodes hold gc_refs where their position would be
            // (a traverse untracking a node: hostile, and rare).
            auto holds_refs = [](const Header *n) { return n->has(Header::kInCollectedSet); };
            uint32_t position = holds_refs(h) ? uint32_t(std::find(arr.begin(), arr.end(), h) - arr.begin())
                                              : h->index;
            arr[position] = last;
            if (!holds_refs(last)) last->index = position;
        } else {
            arr[h->index] = last;
            carry_refs(p, last->index, h->index);
            last->index = h->index;
        }
        arr.pop_back();
    }
    h->set_place(cb::kUntracked);
}

void cb_heap::restore_positions(int last_generation) {
    for (int g = 0; g <= last_generation; ++g)
        for (size_t i = 0; i < generations[g].size(); ++i)
            if (Header *h = generations[g][i]) h->index = uint32_t(i);
    refs_in_headers = false;
}

void cb_heap::close_holes() {
    for (int g = 0; g < int(holes.size()); ++g) {
        auto &gen = generations[g];
        // Each hole is either at the end by its turn (dropped) or filled
        // with the last node; the order of the holes does not matter.
        for (uint32_t position : holes[g]) {
            while (!gen.empty() && !gen.back()) gen.pop_back();
            if (position >= gen.size()) continue;
            Header *last = gen.back();
            gen[position] = last;
            carry_refs(cb::Place(g), last->index, position);
            last->index = position;
            gen.pop_back();
        }
        holes[g].clear();
    }
    keep_positions = false;
}

void cb_heap::release(Header *h) {
    intptr_t c = count(h) - 1;
    set_count(h, c);
    if (c == 0 && !h->handle_managed()) deallocate(h);
}

namespace {

// The second half of a deallocation: the type's dealloc (or the memory's
// release), then the side record of an external object.
void run_dealloc(cb_heap &heap, Header *h) {
    void *obj = cb::object_of(h);
    const cb_type &type = heap.type_of(h);
    bool external = h->has(Header::kExternal);
    // Memory from cb_alloc is counted when it is released (free_memory),
    // which also catches deallocations that bypass this function (a
    // runtime's own decrement to zero, CPython's Py_DECREF).
    if (heap.running && external) heap.running->stats().freed++;
    if (type.spec.dealloc) {
        try {
            type.spec.dealloc(obj);
        } catch (...) {
            heap.report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr,
                        "dealloc of an object of type %s threw; its memory may leak", type.name.c_str());
        }
    } else if (!external) {
        heap.free_memory(h);
    }
    // An external object's record outlives its dealloc, so that code the
    // dealloc runs (weakref callbacks of what it releases) still finds an
    // untracked object with count zero, not a pointer it cannot resolve.
    if (external) {
        heap.weakrefs.orphan(obj);
        auto it = heap.externals.find(obj);
        if (it != heap.externals.end() && &it->second->header == h) {
            heap.externals.erase(it);
            if (heap.verify()) heap.live_objects.erase(obj);
        }
        if (h->has(Header::kHostHeld)) heap.set_host_refs(h, 0);
        delete reinterpret_cast<cb::ExternalRecord *>(h);
    }
}

}  // namespace

void cb_heap::deallocate(Header *h) {
    // First half, at once: nothing can reach the object afterwards, not a
    // weakref and not a walk of the garbage list (it leaves a hole there).
    if (h->has(Header::kHasWeakrefs)) cb::clear_weakrefs(*this, cb::object_of(h), /*run_callbacks=*/true);
    if (h->tracked()) {
        remove(h);
        if (counts[0] > 0) counts[0]--;
    }
    if (dealloc_depth >= kDeallocDepth) {
        deferred_deallocs.push_back(h);
        return;
    }
    ++dealloc_depth;
    run_dealloc(*this, h);
    if (dealloc_depth == 1) {
        while (!deferred_deallocs.empty()) {
            Header *next = deferred_deallocs.back();
            deferred_deallocs.pop_back();
            run_dealloc(*this, next);
        }
    }
    --dealloc_depth;
}

void cb_heap::free_memory(Header *h) {
    void *obj = cb::object_of(h);
    weakrefs.orphan(obj);
    if (running) running->stats().freed++;
    if (verify()) live_objects.erase(obj);
    if (h->has(Header::kHostHeld)) set_host_refs(h, 0);   // a later node may take this address
    h->meta = (h->meta & ~Header::kPlaceMask) | (uint32_t(cb::kFreed) << Header::kPlaceShift);
    --live_allocations;
    blocks.release(h);
}

void cb_heap::set_host_refs(Header *h, uint32_t n) {
    if (n == 0) {
        host_held.erase(h);
        h->clear(Header::kHostHeld);
    } else {
        host_held[h] = n;
        h->set(Header::kHostHeld);
    }
}
