// The host-driven protocol: the host's collector calls the bridge at fixed
// points (see cyclebridge.h), and the same Collection runs in steps.
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

bool Collection::trace(size_t budget) { return drain(budget); }

cb_status Collection::epilogue(bool &finished) {
    if (stage_ == Stage::kMarking) phase_done(CB_PHASE_MARK);
    // The host calls epilogue with its work list drained: what it was
    // handed so far is marked.
    host_pushed_ = false;
    finished = advance();
    return status();
}

bool Collection::abandon() {
    if (stage_ != Stage::kMarking) return false;
    abort_before_teardown();
    return true;
}

}  // namespace cb

namespace {

// Marks the heap as inside a host-driven step, where callbacks run and the
// heap may not be destroyed; between steps it may (the collection is
// abandoned).
struct StepScope {
    explicit StepScope(cb_heap *h) : heap(h) { heap->in_host_step = true; }
    ~StepScope() { heap->in_host_step = false; }
    cb_heap *heap;
};

cb::Collection *host_driven(cb_heap *heap) {
    return heap && heap->host_driven && heap->running == heap->host_driven.get() ? heap->host_driven.get()
                                                                                   : nullptr;
}

}  // namespace

extern "C" cb_status cb_hd_prologue(cb_heap *heap, const cb_host_hooks *hooks) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (!hooks || !hooks->mark_host) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_hd_prologue");
    if (heap->running) {
        return heap->report(CB_REPORT_REENTRANT_COLLECT, CB_ERR_BUSY, nullptr,
                            "cb_hd_prologue while a collection runs: refused");
    }
    if (heap->has_host)
        return heap->misuse(CB_ERR_WRONG_MODE, nullptr, "cb_hd_prologue on a heap with a host interface");
    try {
        heap->host_driven = std::make_unique<cb::Collection>(*heap, CB_FULL, cb::Drive::kHost, hooks);
    } catch (const std::bad_alloc &) {
        return heap->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_hd_prologue");
    }
    StepScope step(heap);
    heap->host_driven->start();
    return CB_OK;
}

extern "C" cb_status cb_hd_visit_node(cb_heap *heap, void *node) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    cb::Collection *c = host_driven(heap);
    if (!c) return heap->misuse(CB_ERR_WRONG_PHASE, node, "cb_hd_visit_node outside a host-driven collection");
    if (!node) return heap->misuse(CB_ERR_NULL_ARGUMENT, nullptr, "cb_hd_visit_node");
    cb::Header *h = heap->visited_header(node, /*report=*/true);
    if (!h) return CB_ERR_NOT_A_NODE;
    StepScope step(heap);
    c->mark_node(h);
    return CB_OK;
}

extern "C" cb_status cb_hd_trace(cb_heap *heap, size_t budget, int *idle) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    cb::Collection *c = host_driven(heap);
    if (!c) return heap->misuse(CB_ERR_WRONG_PHASE, nullptr, "cb_hd_trace outside a host-driven collection");
    StepScope step(heap);
    bool empty = c->trace(budget);
    if (idle) *idle = empty ? 1 : 0;
    return CB_OK;
}

extern "C" cb_status cb_hd_retain(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    cb::Collection *c = host_driven(heap);
    if (!c) return heap->misuse(CB_ERR_WRONG_PHASE, nullptr, "cb_hd_retain outside a host-driven collection");
    StepScope step(heap);
    c->retain();
    return CB_OK;
}

extern "C" cb_status cb_hd_abandon(cb_heap *heap) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    cb::Collection *c = host_driven(heap);
    if (!c) return heap->misuse(CB_ERR_WRONG_PHASE, nullptr, "cb_hd_abandon outside a host-driven collection");
    bool abandoned;
    {
        StepScope step(heap);
        abandoned = c->abandon();
    }
    if (!abandoned)
        return heap->misuse(CB_ERR_WRONG_PHASE, nullptr, "cb_hd_abandon after the teardown started");
    heap->host_driven.reset();
    return CB_OK;
}

extern "C" cb_status cb_hd_epilogue(cb_heap *heap, int *finished) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    cb::Collection *c = host_driven(heap);
    if (!c) return heap->misuse(CB_ERR_WRONG_PHASE, nullptr, "cb_hd_epilogue outside a host-driven collection");
    bool done = false;
    cb_status status;
    {
        StepScope step(heap);
        status = c->epilogue(done);
    }
    if (finished) *finished = done ? 1 : 0;
    if (done) heap->host_driven.reset();
    return status;
}
