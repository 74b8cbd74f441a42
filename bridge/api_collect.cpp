// C entry points for collections: running them, automatic collection,
// freezing, statistics, callbacks, the uncollectable list and the host.
#include <algorithm>

#include "collection.hpp"
#include "heap.hpp"

using cb::Header;

namespace {

cb_status refuse_reentrant(cb_heap *heap, const char *what) {
    return heap->report(CB_REPORT_REENTRANT_COLLECT, CB_ERR_BUSY, nullptr,
                        "%s while a collection runs: refused", what);
}

}  // namespace

extern "C" {

cb_status cb_collect(cb_heap *heap, int generation, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (generation < 0 || generation > CB_FULL)
        return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_collect: generation out of range");
    if (heap->running) return refuse_reentrant(heap, "cb_collect");
    cb::Drive drive = generation == CB_FULL && heap->has_host ? cb::Drive::kBridge : cb::Drive::kNone;
    cb::Collection collection(*heap, generation, drive, nullptr);
    cb_status status = collection.run();
    if (stats) *stats = collection.stats();
    return status;
}

cb_status cb_find_unreachable(cb_heap *heap, cb_found_fn found, void *ctx, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!found) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_find_unreachable");
    if (heap->running) return refuse_reentrant(heap, "cb_find_unreachable");
    // The host heap takes part only if its marks can be put back.
    bool with_host = heap->has_host && heap->host.reset_marks;
    std::vector<void *> unreachable;
    cb_status status;
    {
        cb::Collection analysis(*heap, CB_FULL, with_host ? cb::Drive::kBridge : cb::Drive::kNone, nullptr);
        status = analysis.find_unreachable(unreachable);
        if (stats) *stats = analysis.stats();
    }
    for (void *obj : unreachable) found(ctx, obj);
    return status;
}

cb_status cb_last_stats(const cb_heap *heap, cb_collection_stats *stats) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!stats) return const_cast<cb_heap *>(heap)->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_last_stats");
    if (!heap->has_last_stats) return CB_ERR_WRONG_PHASE;
    *stats = heap->last_stats;
    return CB_OK;
}

int cb_is_collecting(const cb_heap *heap) {
    if (!heap || !heap->running) return 0;
    return heap->running->tearing_down() ? 2 : 1;
}

cb_status cb_set_thresholds(cb_heap *heap, uint32_t t0, uint32_t t1, uint32_t t2) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    heap->thresholds = {t0, t1, t2};
    return CB_OK;
}

void cb_get_thresholds(const cb_heap *heap, uint32_t out[CB_GENERATIONS]) {
    if (!heap || !out) return;
    std::copy(heap->thresholds.begin(), heap->thresholds.end(), out);
}

// CPython's gc_collect_generations: the oldest generation over its
// threshold, except that a full collection also waits for the survivors
// since the last one to exceed a quarter of the old generation, which keeps
// the cost of full collections linear in allocation.
cb_status cb_collect_if_due(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return refuse_reentrant(heap, "cb_collect_if_due");
    if (heap->thresholds[0] == 0) return CB_OK;
    for (int g = CB_FULL; g >= 0; --g) {
        if (heap->counts[g] <= heap->thresholds[g]) continue;
        if (g == CB_FULL && heap->long_lived_pending < heap->long_lived_total / 4) continue;
        return cb_collect(heap, g, nullptr);
    }
    return CB_OK;
}

void cb_set_automatic(cb_heap *heap, int enabled) {
    if (heap) heap->automatic = enabled != 0;
}

size_t cb_generation_size(const cb_heap *heap, int generation) {
    if (!heap || generation < 0 || generation > CB_FULL) return 0;
    return heap->generation_size(generation);
}

cb_status cb_freeze(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return refuse_reentrant(heap, "cb_freeze");
    for (int g = 0; g <= CB_FULL; ++g) {
        while (!heap->generations[g].empty()) heap->move(heap->generations[g].back(), cb::kPermanent);
        heap->counts[g] = 0;
    }
    return CB_OK;
}

cb_status cb_unfreeze(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return refuse_reentrant(heap, "cb_unfreeze");
    auto &permanent = heap->generations[cb::kPermanent];
    while (!permanent.empty()) heap->move(permanent.back(), cb::kGen2);
    return CB_OK;
}

size_t cb_frozen_count(const cb_heap *heap) { return heap ? heap->generation_size(cb::kPermanent) : 0; }

cb_status cb_add_collection_callback(cb_heap *heap, cb_collection_callback fn, void *ctx) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!fn) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_add_collection_callback");
    heap->callbacks.emplace_back(fn, ctx);
    return CB_OK;
}

cb_status cb_remove_collection_callback(cb_heap *heap, cb_collection_callback fn, void *ctx) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    auto it = std::find(heap->callbacks.begin(), heap->callbacks.end(), std::make_pair(fn, ctx));
    if (it == heap->callbacks.end())
        return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_remove_collection_callback: not registered");
    heap->callbacks.erase(it);
    return CB_OK;
}

size_t cb_uncollectable_count(const cb_heap *heap) { return heap ? heap->uncollectable.size() : 0; }

cb_status cb_uncollectable_get(const cb_heap *heap, size_t index, cb_uncollectable *out) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    auto *mutable_heap = const_cast<cb_heap *>(heap);
    if (!out) return mutable_heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_uncollectable_get");
    if (index >= heap->uncollectable.size())
        return mutable_heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_uncollectable_get: index out of range");
    *out = heap->uncollectable[index];
    return CB_OK;
}

cb_status cb_uncollectable_release(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return refuse_reentrant(heap, "cb_uncollectable_release");
    // Releasing may deallocate, and deallocation may run code: detach first.
    std::vector<cb_uncollectable> list;
    list.swap(heap->uncollectable);
    for (const cb_uncollectable &u : list) {
        Header *h = heap->quiet_header(u.object);
        if (!h) continue;
        h->clear(Header::kHeld);
        heap->release(h);
    }
    return CB_OK;
}

cb_status cb_set_host(cb_heap *heap, const cb_host_interface *host) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return refuse_reentrant(heap, "cb_set_host");
    if (!host) {
        heap->has_host = false;
        heap->host = {};
        return CB_OK;
    }
    if (!host->trace || !host->mark || !host->sweep)
        return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_set_host: trace, mark and sweep are required");
    heap->host = *host;
    heap->has_host = true;
    return CB_OK;
}

}  // extern "C"
