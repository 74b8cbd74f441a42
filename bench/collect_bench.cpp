// Full and young collections over graphs of refcounted nodes, by shape and
// size: the starting point of the comparison set (issue 6). Figures are
// reported per object (counter "ns_per_obj").
#include <benchmark/benchmark.h>
#include <cyclebridge/cyclebridge.h>

#include <cstddef>
#include <random>
#include <vector>

namespace {

struct Node {
    intptr_t refcnt;
    void *edges[4];
};

int traverse(void *obj, cb_visit_fn visit, void *arg) {
    for (void *e : static_cast<Node *>(obj)->edges)
        if (e) visit(e, arg);
    return 0;
}

enum class Shape { kList, kTree, kRandom };

// A heap of n live nodes of one shape; one node is held from outside.
struct Graph {
    cb_heap *heap;
    cb_type *type;
    std::vector<Node *> nodes;

    Graph(size_t n, Shape shape) {
        cb_heap_options options{};
        options.flags = CB_HEAP_NO_AUTO_COLLECT;
        heap = cb_heap_new(&options);
        cb_type_spec spec{};
        spec.name = "bench.Node";
        spec.traverse = traverse;
        spec.count_offset = offsetof(Node, refcnt);
        cb_type_register(heap, &spec, &type);
        nodes.resize(n);
        for (size_t i = 0; i < n; ++i) {
            nodes[i] = static_cast<Node *>(cb_alloc(heap, type, sizeof(Node)));
            cb_track(heap, nodes[i]);
        }
        std::mt19937_64 rng(42);
        auto link = [&](size_t from, int slot, size_t to) {
            nodes[from]->edges[slot] = nodes[to];
            nodes[to]->refcnt++;
        };
        for (size_t i = 0; i < n; ++i) {
            switch (shape) {
            case Shape::kList:   // containers pointing at their neighbours
                if (i + 1 < n) link(i, 0, i + 1);
                break;
            case Shape::kTree:
                if (2 * i + 1 < n) link(i, 0, 2 * i + 1);
                if (2 * i + 2 < n) link(i, 1, 2 * i + 2);
                break;
            case Shape::kRandom: {
                int edges = 2 + int(rng() % 3);
                for (int k = 0; k < edges; ++k) link(i, k, rng() % n);
                break;
            }
            }
        }
        // Every node keeps its creator's reference except the first, which
        // the benchmark holds: all nodes are live.
        for (size_t i = 1; i < n; ++i)
            if (nodes[i]->refcnt > 1) nodes[i]->refcnt--;
    }
    ~Graph() {
        for (Node *node : nodes) {
            cb_untrack(heap, node);
            cb_free(heap, node);
        }
        cb_heap_destroy(heap);
    }
};

void full_collection(benchmark::State &state, Shape shape) {
    size_t n = size_t(state.range(0));
    Graph graph(n, shape);
    for (auto _ : state) cb_collect(graph.heap, CB_FULL, nullptr);
    // Inverted rate of (objects / 1e9): nanoseconds per object.
    state.counters["ns_per_obj"] = benchmark::Counter(double(n) * double(state.iterations()) / 1e9,
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_FullList(benchmark::State &s) { full_collection(s, Shape::kList); }
void BM_FullTree(benchmark::State &s) { full_collection(s, Shape::kTree); }
void BM_FullRandom(benchmark::State &s) { full_collection(s, Shape::kRandom); }

BENCHMARK(BM_FullList)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FullTree)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FullRandom)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
