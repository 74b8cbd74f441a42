// Attaching the Boehm host to a heap, and its statistics.
#include <gc/gc_mark.h>

#include "host.hpp"

namespace cbgc {

Host *host = nullptr;

namespace {

cb_status refuse(cb_heap *heap, cb_status status, const char *why) {
    cb_report_issue(heap, CB_REPORT_API_MISUSE, status, nullptr, nullptr, why);
    return status;
}

// The bridge's own collections (young ones, say) run user code that may
// allocate from Boehm: no Boehm collection may start in the middle, when
// the heap could not take part. Its host-driven ones are Boehm's already.
void on_bridge_collection(void *ctx, cb_collection_event event, const cb_collection_stats *) {
    auto *h = static_cast<Host *>(ctx);
    if (h->phase != Phase::kIdle) return;
    if (event == CB_COLLECTION_START)
        GC_disable();
    else
        GC_enable();
}

}  // namespace

}  // namespace cbgc

using namespace cbgc;

extern "C" {

cb_status cbgc_attach(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (host) return refuse(heap, CB_ERR_BUSY, "cbgc_attach: the Boehm host is attached already");
    if (!GC_is_init_called()) return refuse(heap, CB_ERR_WRONG_MODE, "cbgc_attach: call GC_INIT() first");
    if (GC_is_incremental_mode())
        return refuse(heap, CB_ERR_WRONG_MODE,
                      "cbgc_attach: Boehm's incremental mode marks while the program runs, which the "
                      "bridge cannot follow; it is not supported");
    if (cb_is_collecting(heap)) return refuse(heap, CB_ERR_BUSY, "cbgc_attach: a collection is running");
    static int kind = make_kind();   // Boehm cannot forget a kind: one for the process
    auto *h = new Host;
    static uint64_t attaches = 0;
    h->heap = heap;
    h->kind = kind;
    h->serial = ++attaches;
    void *retainer = make_retainer();
    if (!retainer) {
        delete h;
        return refuse(heap, CB_ERR_NO_MEMORY, "cbgc_attach: out of memory");
    }
    h->retainer_hidden = GC_HIDE_POINTER(retainer);
    retainer = nullptr;
    cb_status status = cb_add_collection_callback(heap, &on_bridge_collection, h);
    if (status != CB_OK) {
        drop_retainer(*h);
        delete h;
        return status;
    }
    host = h;
    install_hooks(*h);
    return CB_OK;
}

cb_status cbgc_detach(void) {
    Host *h = host;
    if (!h) return CB_ERR_WRONG_MODE;
    if (h->phase != Phase::kIdle)
        return refuse(h->heap, CB_ERR_BUSY, "cbgc_detach: a Boehm collection's teardown is pending");
    remove_hooks(*h);
    drop_retainer(*h);
    cb_remove_collection_callback(h->heap, &on_bridge_collection, h);
    for (Object *o : h->registry) o->flags &= ~Object::kRegistered;
    host = nullptr;
    delete h;
    return CB_OK;
}

void cbgc_get_stats(cbgc_stats *out) {
    if (!out) return;
    *out = host ? host->stats : cbgc_stats{};
    if (host) out->mark_threads = host->mark_threads.load(std::memory_order_relaxed);
}

}  // extern "C"
