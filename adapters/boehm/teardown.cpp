// After a Boehm collection, outside its lock: the bridge's teardown, which
// runs finalizers and clears (user code that may allocate and read host
// objects), then the release of the nodes that dead host objects held.
//
// Boehm runs code after a collection as finalizers, so the teardown is the
// finalizer of the retainer, an object nothing refers to: each collection
// queues it, and it registers itself again. Until it runs, Boehm collects
// nothing (marking.cpp held collections off).
#include <gc/gc_mark.h>

#include "host.hpp"

namespace cbgc {

namespace {

void GC_CALLBACK retainer_finalizer(void *obj, void *) {
    Host *h = host;
    if (!h || h->retainer_hidden != GC_HIDE_POINTER(obj)) return;   // detached since
    run_teardown(*h);
    GC_register_finalizer_no_order(obj, &retainer_finalizer, nullptr, nullptr, nullptr);
}

}  // namespace

void *make_retainer() {
    void *retainer = GC_malloc_atomic(sizeof(void *));
    if (retainer) GC_register_finalizer_no_order(retainer, &retainer_finalizer, nullptr, nullptr, nullptr);
    return retainer;
}

void drop_retainer(Host &h) {
    if (!h.retainer_hidden) return;
    GC_register_finalizer_no_order(GC_REVEAL_POINTER(h.retainer_hidden), nullptr, nullptr, nullptr, nullptr);
    h.retainer_hidden = 0;
}

// The teardown hands over host objects that nodes it marked again refer to
// (resurrection, or garbage kept alive after clear). They are alive: every
// one was marked or kept by the collection. What matters is the nodes they
// reach, which must be marked too: from_store says a program store found
// them (a write barrier), not the protocol's host round.
void trace_resurrected(Host &h, bool from_store) {
    auto *low = static_cast<char *>(GC_least_plausible_heap_addr);
    auto *high = static_cast<char *>(GC_greatest_plausible_heap_addr);
    auto reach_node = [&](uintptr_t word) {
        if (from_store)
            cb_write_barrier(h.heap, node_of(word));
        else
            cb_hd_visit_node(h.heap, node_of(word));
    };
    for (;;) {
        while (!h.found.empty()) {
            void *p = h.found.back();
            h.found.pop_back();
            if (static_cast<char *>(p) < low || static_cast<char *>(p) > high) continue;
            void *base = GC_base(p);
            if (!base || !h.resurrected.insert(base).second) continue;
            scan_contents(h, base, [&](void *object) { h.found.push_back(object); }, reach_node);
        }
        if (from_store) return;   // the barrier marked all it reached already
        int idle = 0;
        cb_hd_trace(h.heap, 0, &idle);
        if (h.found.empty()) return;
    }
}

cb_status run_teardown(Host &h) {
    if (h.phase != Phase::kPending) return CB_OK;
    h.phase = Phase::kTeardown;
    h.found.clear();
    h.resurrected.clear();
    cb_status status = CB_OK;
    for (;;) {
        int finished = 0;
        status = cb_hd_epilogue(h.heap, &finished);
        if (finished || status == CB_ERR_WRONG_PHASE) break;
        trace_resurrected(h, /*from_store=*/false);
    }
    // Dead host objects: nothing can reach them now, unless the teardown
    // made them reachable again. Either way they die in the next
    // collection at the latest.
    std::vector<Object *> zombies;
    zombies.swap(h.zombies);
    std::unordered_set<void *> reached;
    reached.swap(h.resurrected);
    h.phase = Phase::kIdle;
    for (Object *o : zombies) {
        if (reached.count(o))
            register_holder(o);
        else
            release_nodes(o);
    }
    GC_enable();
    return status;
}

}  // namespace cbgc

extern "C" {

cb_status cbgc_finish_teardown(void) {
    if (!cbgc::host) return CB_ERR_WRONG_MODE;
    return cbgc::run_teardown(*cbgc::host);
}

int cbgc_teardown_pending(void) { return cbgc::host && cbgc::host->phase == cbgc::Phase::kPending; }

cb_status cbgc_collect(void) {
    if (!cbgc::host) return CB_ERR_WRONG_MODE;
    cbgc::run_teardown(*cbgc::host);
    GC_gcollect();
    return cbgc::run_teardown(*cbgc::host);
}

}  // extern "C"
