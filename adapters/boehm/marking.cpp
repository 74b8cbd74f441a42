// Inside a Boehm collection, with Boehm's lock held and the world stopped:
// the bridge's prologue in the root push, the nodes of host objects handed
// to the bridge by their mark procedure, and at mark end the retention of
// what the teardown may still read. No user code runs here but traverses,
// which may not allocate.
#include <gc/gc_mark.h>

#include <thread>

#include "host.hpp"

namespace cbgc {

namespace {

// The mark stack of the marker thread running a mark procedure, where the
// host objects the bridge finds go.
struct MarkStack {
    GC_ms_entry *top;
    GC_ms_entry *limit;
};
thread_local MarkStack *current_stack = nullptr;
thread_local uint64_t counted_for = 0;   // the attach whose mark_threads counts this thread

// Hands one node of a host object to the bridge, which marks what it
// reaches; the host objects among that arrive at on_mark_host.
void visit_node(Host &h, void *node) {
    cb_hd_visit_node(h.heap, node);
    int idle = 0;
    cb_hd_trace(h.heap, 0, &idle);
}

// Hands the nodes of o to the bridge; the host objects they reach go on the
// mark stack.
GC_ms_entry *push_through_nodes(Host &h, Object *o, GC_ms_entry *top, GC_ms_entry *limit) {
    if (counted_for != h.serial) {
        counted_for = h.serial;
        h.mark_threads.fetch_add(1, std::memory_order_relaxed);
    }
    // One marker thread (Boehm's default until a thread is created) needs
    // no lock; parallel markers start only outside a collection.
    std::unique_lock<std::mutex> lock(h.bridge_lock, std::defer_lock);
    if (h.parallel) lock.lock();
    MarkStack stack{top, limit};
    current_stack = &stack;
    if (o->twin) visit_node(h, node_of(o->twin));
    for (uint32_t i = 0; i < o->slots; ++i)
        if (is_node(o->slot[i])) visit_node(h, node_of(o->slot[i]));
    current_stack = nullptr;
    return stack.top;
}

bool holds_nodes(const Object *o) {
    if (o->twin) return true;
    for (uint32_t i = 0; i < o->slots; ++i)
        if (is_node(o->slot[i])) return true;
    return false;
}

GC_ms_entry *mark_object(GC_word *addr, GC_ms_entry *top, GC_ms_entry *limit, GC_word) {
    auto *o = reinterpret_cast<Object *>(addr);
    Host *h = host;
    // Nodes matter only while the bridge marks: after mark end, objects
    // marked for finalization hold no nodes (those were all kept already).
    // They go first, so that what they reach lies under the object's own
    // slots on the (last in, first out) mark stack (docs/boehm.md, "Choices
    // and limits").
    // Only registered objects can hold nodes: the others, most of the
    // heap, cost one test.
    if (h && (o->flags & Object::kRegistered) && h->phase == Phase::kMarking) {
        if (!h->parallel && o->epoch() != h->mark_epoch) {
            o->set_epoch(h->mark_epoch);
            h->registered_seen++;
        }
        if (holds_nodes(o)) top = push_through_nodes(*h, o, top, limit);
    }
    for (uint32_t i = 0; i < o->slots; ++i) {
        uintptr_t word = o->slot[i];
        if (word && !is_node(word))
            top = GC_MARK_AND_PUSH(reinterpret_cast<void *>(word), top, limit,
                                   reinterpret_cast<void **>(&o->slot[i]));
    }
    return top;
}

// Marks p's object, and all it reaches, for the retention at mark end. Boehm
// has finished marking, so this is a small marker of its own: exact in host
// objects, conservative elsewhere, as Boehm's own scan would be.
void retain_closure(Host &h, std::vector<void *> &work) {
    auto *low = static_cast<char *>(GC_least_plausible_heap_addr);
    auto *high = static_cast<char *>(GC_greatest_plausible_heap_addr);
    auto push = [&](void *p) {
        if (static_cast<char *>(p) < low || static_cast<char *>(p) > high) return;
        void *base = GC_base(p);
        if (!base || GC_is_marked(base)) return;
        GC_set_mark_bit(base);
        h.stats.retained++;
        work.push_back(base);
    };
    std::vector<void *> pending;
    pending.swap(work);
    for (void *p : pending) push(p);
    while (!work.empty()) {
        void *base = work.back();
        work.pop_back();
        scan_contents(h, base, push, [](uintptr_t) {});   // nodes are garbage already
    }
}

// Mark end: every node the bridge did not mark is garbage. What such nodes
// refer to, and every dead host object that holds nodes, must outlive this
// sweep: the teardown that follows runs their finalizers and clears, and
// releases the nodes those host objects hold.
void retain_for_teardown(Host &h) {
    h.phase = Phase::kRetain;
    int idle = 0;
    cb_hd_trace(h.heap, 0, &idle);
    h.found.clear();
    cb_hd_retain(h.heap);   // into found, through on_mark_host
    std::vector<void *> work;
    work.swap(h.found);

    // One marker saw every registered object (each once): none died, and
    // the registry needs no look.
    bool none_died = !h.parallel && h.registered_seen == h.registry.size();
    if (!none_died) {
        size_t kept = 0;
        for (Object *o : h.registry) {
            if (GC_is_marked(o)) {
                h.registry[kept++] = o;
            } else {
                o->flags &= ~Object::kRegistered;
                h.zombies.push_back(o);
                work.push_back(o);
            }
        }
        h.registry.resize(kept);
    }
    h.stats.zombies = h.zombies.size();
    h.stats.retained = 0;
    retain_closure(h, work);

    // The retainer must be found unmarked by finalization, or the teardown
    // would not be queued: a stray word that looked like a pointer to it
    // marked nothing else (it holds no pointers).
    void *retainer = h.retainer_hidden ? GC_REVEAL_POINTER(h.retainer_hidden) : nullptr;
    if (retainer && GC_is_marked(retainer)) GC_clear_mark_bit(retainer);
    // No collection until the teardown ran: it must see this one's marks.
    // GC_disable would take the lock Boehm holds here; this is its body.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    GC_dont_gc++;
#pragma GCC diagnostic pop
    h.phase = Phase::kPending;
}

void push_roots() {
    Host *h = host;
    if (h->previous_push_other_roots) h->previous_push_other_roots();
    if (h->phase == Phase::kIdle) {
        h->roots.clear();
        static const cb_host_hooks hooks{nullptr, &on_mark_host};
        h->parallel = GC_get_parallel() != 0;
        h->mark_epoch = (h->mark_epoch + 1) & ((1u << (32 - Object::kEpochShift)) - 1);
        if (h->mark_epoch == 0) h->mark_epoch = 1;   // 0 is a new object's
        h->registered_seen = 0;
        h->phase = Phase::kPrologue;
        cb_hd_prologue(h->heap, &hooks);
        h->phase = Phase::kMarking;
        h->stats.roots = h->roots.size();
        h->stats.collections++;
        h->held_roots.clear();
        for (auto &[obj, count] : h->holds) h->held_roots.push_back(obj);
    } else if (h->phase != Phase::kMarking) {
        return;
    }
    // Again after a mark stack overflow: Boehm rescans the roots.
    if (!h->roots.empty()) GC_push_all(h->roots.data(), h->roots.data() + h->roots.size());
    if (!h->held_roots.empty()) GC_push_all(h->held_roots.data(), h->held_roots.data() + h->held_roots.size());
}

void on_event(GC_EventType event) {
    Host *h = host;
    if (h->previous_on_event) h->previous_on_event(event);
    if (event == GC_EVENT_MARK_START && h->phase == Phase::kMarking) {
        // Boehm gave up the last marking (a stop function said so): so does
        // the bridge, freeing nothing.
        cb_hd_abandon(h->heap);
        h->stats.abandoned++;
        h->phase = Phase::kIdle;
    } else if (event == GC_EVENT_MARK_END && h->phase == Phase::kMarking) {
        retain_for_teardown(*h);
    }
}

}  // namespace

void on_mark_host(void *, cb_host_ref ref) {
    Host *h = host;
    switch (h->phase) {
    case Phase::kPrologue:
        h->roots.push_back(ref);
        break;
    case Phase::kMarking:
        if (current_stack) {
            current_stack->top = GC_MARK_AND_PUSH(ref, current_stack->top, current_stack->limit, nullptr);
        } else {
            // Only mark procedures reach the bridge while Boehm marks.
            cb_report_issue(h->heap, CB_REPORT_API_MISUSE, CB_ERR_WRONG_PHASE, ref, nullptr,
                            "cbgc: a host object reached outside a mark procedure while Boehm marks");
        }
        break;
    case Phase::kRetain:
    case Phase::kTeardown:
        h->found.push_back(ref);
        break;
    case Phase::kIdle:
    case Phase::kPending:
        break;   // nothing is marking: every host object is alive
    }
}

int make_kind() {
    unsigned proc = GC_new_proc(&mark_object);
    return static_cast<int>(GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(proc, 0), 0, 1));
}

void install_hooks(Host &h) {
    h.previous_push_other_roots = GC_get_push_other_roots();
    h.previous_on_event = GC_get_on_collection_event();
    GC_set_push_other_roots(&push_roots);
    GC_set_on_collection_event(&on_event);
}

void remove_hooks(Host &h) {
    GC_set_push_other_roots(h.previous_push_other_roots);
    GC_set_on_collection_event(h.previous_on_event);
}

}  // namespace cbgc
