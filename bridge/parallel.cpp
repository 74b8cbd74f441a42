// Counting and the first marking on several threads (cb_set_threads).
//
// Every node of the collected set has one owner among the workers: the
// workers own contiguous stretches of memory, cut at quantiles of the
// set's addresses, so telling a node's owner from a pointer reads nothing.
// A worker reads and writes the headers of its own nodes only; a visited
// pointer into another worker's stretch is written to a buffer for that
// worker, which reads it after the next barrier. No header is touched by
// two threads, so no atomic operation touches a node, and each worker
// streams through memory of its own. The price is a pointer sent for every
// edge between stretches.
//
// Count (one round): each worker enters its nodes into the set; barrier;
// it traverses them, subtracting for targets of its own and sending the
// others'; barrier; it subtracts what it was sent.
//
// Mark (rounds): each worker walks the generations in order, acting on its
// own nodes as the serial walk does (marking.cpp): a node is scanned when
// the walk reaches it if it is a root or already marked, and a node marked
// after the walk passed it goes on the worker's stack. Then, until a round
// in which nobody sent anything: barrier; each worker marks what it was
// sent, and all that reaches in its own stretch, sending on what crosses.
// Rounds, rather than a flow of small messages, because here a cache line
// that another core has just written costs far more to read than one from
// memory: a round's buffers are read long after they were written.
//
// Only heaps whose nodes all come from cb_alloc take this path (the header
// of an external object could not be found without reading its record),
// and host objects are marked through host callbacks, which are not made
// to be called from several threads at once: with a host, only the count
// is parallel (trial_deletion.cpp decides).
#include <algorithm>
#include <atomic>
#include <barrier>
#include <memory>

#include "collection.hpp"
#include "heap.hpp"
#include "worker_pool.hpp"

namespace cb {

namespace {

// Who owns which node, and the walk over one worker's nodes. Owners hold
// contiguous stretches of memory, cut at quantiles of a sample of the
// set's addresses.
struct Owners {
    int generations;
    const std::vector<uintptr_t> &cuts;   // worker i owns headers in [cuts[i-1], cuts[i])

    // Once per collection: the count and the marking share them.
    static std::vector<uintptr_t> cut(cb_heap &heap, int generation, unsigned workers) {
        std::vector<uintptr_t> sample, cuts;
        size_t total = 0;
        for (int g = 0; g <= generation; ++g) total += heap.generations[g].size();
        size_t step = std::max<size_t>(1, total / 4096);
        for (int g = 0; g <= generation; ++g) {
            auto &gen = heap.generations[g];
            for (size_t i = 0; i < gen.size(); i += step) sample.push_back(uintptr_t(gen[i]));
        }
        std::sort(sample.begin(), sample.end());
        for (unsigned i = 1; i < workers; ++i) cuts.push_back(sample.empty() ? 0 : sample[sample.size() * i / workers]);
        return cuts;
    }
    unsigned of(const Header *h) const {
        return unsigned(std::upper_bound(cuts.begin(), cuts.end(), uintptr_t(h)) - cuts.begin());
    }
    // Nodes are intrusive: a visited object's header is found by subtraction.
    unsigned of(const void *obj) const { return of(intrusive_header_of(obj)); }
    // Calls f(h) for the nodes `self` owns, in the generations' order.
    template <class F>
    void for_each(cb_heap &heap, unsigned self, F f) const {
        for (int g = 0; g < generations; ++g)
            for (Header *h : heap.generations[g])
                if (of(h) == self) f(h);
    }
};

struct Shared;

// A worker's visitor: what traverses get as arg. It starts with the
// collector's visitor, so cb_visit_host recognizes it (follow_host is
// false: host references are not followed here). Its buffers live in the
// pool, from one collection to the next.
struct alignas(64) Worker : cb_host_visitor {
    Worker(Shared &s, Collection &c, unsigned i, WorkerBuffers &b)
        : shared(&s), self(i), sent(b.sent), sending(b.sending), stack(b.stack) {
        collection = &c;
        follow_host = false;
    }
    Shared *shared;
    unsigned self;
    std::vector<std::vector<void *>> &sent;      // for each worker: to read in this round
    std::vector<std::vector<void *>> &sending;   // for each worker: for the next round
    std::vector<Header *> &stack;                // own nodes to scan
    uint64_t roots = 0;
    Header *failed_at = nullptr;                 // its traverse threw
};

struct Shared {
    Shared(cb_heap &h, Collection &c, int generation, const std::vector<uintptr_t> &cuts, WorkerPool &p)
        : heap(h), owners{generation + 1, cuts}, barrier(p.size()) {
        workers.reserve(p.size());
        for (unsigned i = 0; i < p.size(); ++i) {
            WorkerBuffers &buffers = p.buffers[i];
            for (auto *list : {&buffers.sent, &buffers.sending}) {
                list->resize(p.size());
                for (auto &pointers : *list) pointers.clear();
            }
            buffers.stack.clear();
            workers.emplace_back(*this, c, i, buffers);
        }
    }
    cb_heap &heap;
    Owners owners;
    std::vector<Worker> workers;
    std::barrier<> barrier;
    std::atomic<bool> abort{false};   // a traverse threw: scanning stops
};

Worker &worker_of(void *arg) { return *static_cast<Worker *>(static_cast<cb_host_visitor *>(arg)); }

void traverse(Worker &w, Header *h, cb_visit_fn visit) {
    if (w.shared->abort.load(std::memory_order_relaxed)) return;
    try {
        w.shared->heap.type_of(h).spec.traverse(object_of(h), visit, static_cast<cb_host_visitor *>(&w));
    } catch (...) {
        w.failed_at = h;
        w.shared->abort.store(true, std::memory_order_relaxed);
    }
}

// Calls act(w, target) for every pointer the other workers sent this one
// in the last round.
template <class Act>
void read_sent(Worker &w, Act act) {
    for (Worker &from : w.shared->workers)
        for (void *target : from.sent[w.self]) act(w, target);
}

// ---- count --------------------------------------------------------------


// A visited pointer of this worker's: subtracted if it is a counted node.
void subtract_visited(Worker &w, void *target) {
    if (Header *h = counted_target(w.shared->heap, target)) subtract_one(w.shared->heap, h, w.shared->heap.gc_refs(h));
}

// A visit: a pointer of this worker's is acted on at once, another's goes
// to the buffer for its owner.
template <void (*Act)(Worker &, void *), std::vector<std::vector<void *>> &(*Out)(Worker &)>
int visit_routed(void *target, void *arg) {
    Worker &w = worker_of(arg);
    if (!target) return 0;
    unsigned owner = w.shared->owners.of(target);
    if (owner == w.self) Act(w, target);
    else Out(w)[owner].push_back(target);
    return 0;
}

// The count's pointers are read after the next barrier; marking's in the
// next round, while this one's are being read.
std::vector<std::vector<void *>> &this_round(Worker &w) { return w.sent; }
std::vector<std::vector<void *>> &next_round(Worker &w) { return w.sending; }

constexpr cb_visit_fn visit_subtract_parallel = visit_routed<subtract_visited, this_round>;

template <class Enter>
void count_own_nodes(Worker &w, Enter enter) {
    Shared &s = *w.shared;
    s.owners.for_each(s.heap, w.self, enter);
    s.barrier.arrive_and_wait();
    s.owners.for_each(s.heap, w.self, [&](Header *h) { traverse(w, h, visit_subtract_parallel); });
    s.barrier.arrive_and_wait();
    read_sent(w, subtract_visited);
}

// ---- mark ---------------------------------------------------------------

// A visited pointer of this worker's: marked if it is a node of the set;
// on the stack if the walk has passed it.
void mark_visited(Worker &w, void *target) {
    Header *h = w.shared->heap.visited_header(target, /*report=*/false);
    if (!h || !h->has(Header::kInCollectedSet) || h->has(Header::kMarked)) return;
    h->set(Header::kMarked);
    if (h->has(Header::kPassed)) w.stack.push_back(h);
}

constexpr cb_visit_fn visit_mark_parallel = visit_routed<mark_visited, next_round>;

void drain_stack(Worker &w) {
    while (!w.stack.empty()) {
        Header *h = w.stack.back();
        w.stack.pop_back();
        traverse(w, h, visit_mark_parallel);
    }
}

void mark_own_nodes(Worker &w) {
    Shared &s = *w.shared;
    s.owners.for_each(s.heap, w.self, [&](Header *h) {
        if (!h->has(Header::kInCollectedSet) || !walk_reaches(h, w.shared->heap.gc_refs(h), w.roots)) return;
        traverse(w, h, visit_mark_parallel);
        drain_stack(w);
    });
    for (;;) {
        w.sent.swap(w.sending);   // what this round produced, for the others to read
        s.barrier.arrive_and_wait();
        bool any = false;
        for (Worker &from : s.workers)
            for (auto &pointers : from.sent) any = any || !pointers.empty();
        if (!any) return;
        read_sent(w, [](Worker &w, void *target) {
            mark_visited(w, target);
            drain_stack(w);
        });
        s.barrier.arrive_and_wait();   // everyone has read: the buffers may be reused
        for (auto &pointers : w.sent) pointers.clear();
    }
}

// Runs job on every worker with the heap's reports serialized.
template <class Job>
void run_workers(cb_heap &heap, Shared &shared, Job job) {
    heap.workers_running = true;
    std::function<void(unsigned)> f = [&](unsigned i) { job(shared.workers[i]); };
    heap.workers->run(f);
    heap.workers_running = false;
}

}  // namespace

bool Collection::parallel_ok(size_t set_size) const {
    return heap_.workers && set_size >= heap_.parallel_minimum && !heap_.verify() && heap_.externals.empty();
}

void Collection::parallel_count() {
    parallel_cuts_ = Owners::cut(heap_, generation_, heap_.workers->size());
    Shared shared(heap_, *this, generation_, parallel_cuts_, *heap_.workers);
    run_workers(heap_, shared, [&](Worker &w) { count_own_nodes(w, [this](Header *h) { enter_set(h); }); });
    for (Worker &w : shared.workers)
        if (w.failed_at) {
            traverse_failed(w.failed_at, "trial deletion");
            break;
        }
}

void Collection::parallel_mark() {
    if (parallel_cuts_.empty()) parallel_cuts_ = Owners::cut(heap_, generation_, heap_.workers->size());
    Shared shared(heap_, *this, generation_, parallel_cuts_, *heap_.workers);
    run_workers(heap_, shared, [](Worker &w) { mark_own_nodes(w); });
    for (Worker &w : shared.workers) {
        stats_.roots += w.roots;
        if (w.failed_at && !failed_) traverse_failed(w.failed_at, "marking");
    }
}

}  // namespace cb

extern "C" cb_status cb_set_threads(cb_heap *heap, unsigned threads, size_t min_nodes) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (heap->running) return heap->misuse(CB_ERR_BUSY, nullptr, "cb_set_threads during a collection");
    if (threads == 0 || threads > CB_MAX_THREADS) return heap->misuse(CB_ERR_BAD_ARGUMENT, nullptr, "cb_set_threads");
    heap->workers.reset();
    heap->parallel_minimum = min_nodes ? min_nodes : cb::Collection::kParallelMinimum;
    if (threads > 1) {
        try {
            heap->workers = std::make_unique<cb::WorkerPool>(threads);
        } catch (...) {
            return heap->misuse(CB_ERR_NO_MEMORY, nullptr, "cb_set_threads: no thread could be started");
        }
    }
    return CB_OK;
}

extern "C" unsigned cb_get_threads(const cb_heap *heap) {
    return heap && heap->workers ? heap->workers->size() : 1;
}
