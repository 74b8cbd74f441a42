// Boehm full-collection time with and without cyclebridge taking part, on
// the same heap, in one run. The heap: a binary tree of 1M host objects;
// one in `every` holds a refcounted node that refers to a host object.
// Two shapes for that reference:
//
//   back       to its own holder: the wrapper pair (a host object and its
//              foreign twin refer to each other), the shape that makes
//              cross-heap cycles
//   random     to a host object far away in the tree: each such edge sends
//              Boehm's marking somewhere new, and costs it a cache miss
//
// and two densities (one node in 10 and in 100 host objects). For each:
//
//   on         the Boehm host attached: prologue (trial deletion over the
//              nodes), the mark procedure handing nodes to the bridge,
//              retention at mark end, the teardown (cbgc_collect)
//   off        the same heap, the host detached, and what the nodes refer
//              to held as roots: what a runtime without the bridge must do
//              so that nothing the nodes reach is freed (cpyext's way, which
//              leaks every cycle through a node); the headline ratio is
//              on / off
//   unrooted   detached, the nodes' references ignored: a lower bound that
//              would be unsafe in use (host objects reachable only through
//              nodes would be freed; none are here)
//   plain      a tree of GC_malloc objects of the same shape with the
//              nodes' edges as direct pointers: what Boehm alone pays for
//              this graph
//
// Each variant is collected twice untimed first, so that Boehm's mark stack
// has grown (deep marks overflow its first sizes). The "on" rounds run
// before the host is detached (cbgc_detach forgets which host objects hold
// nodes, which "on" must scan); off and unrooted rounds alternate. Medians
// of 7 rounds. Prints a table and writes JSON (one entry per metric) to the
// path in argv[1].
#include <cyclebridge/boehm.h>
#include <gc/gc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr size_t kObjects = 1'000'000;
constexpr int kRounds = 7;
constexpr int kWarmup = 2;

enum class Shape { kBack, kRandom };

struct Scenario {
    Shape shape;
    size_t every;   // one node per `every` host objects
    const char *name;
};

struct Result {
    double plain, on, off, unrooted;
    size_t nodes;
};

cb_type *node_type = nullptr;

struct Node {
    intptr_t count;
    void *host;
};

int node_traverse(void *obj, cb_visit_fn, void *arg) {
    cb_visit_host(arg, static_cast<Node *>(obj)->host);
    return 0;
}
void node_clear(void *obj) { static_cast<Node *>(obj)->host = nullptr; }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double time_ms(void (*collect)()) {
    auto start = std::chrono::steady_clock::now();
    collect();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void boehm_collect() { GC_gcollect(); }
void bridge_collect() { cbgc_collect(); }

bool has_node(const Scenario &s, size_t i) { return i % s.every == 0; }

// Where the node of object i points.
size_t target_of(const Scenario &s, size_t i) { return s.shape == Shape::kBack ? i : (i * 7919) % kObjects; }

// Drops a tree: empties the array that roots it, frees the array.
void drop(void **objects) {
    for (size_t i = 0; i < kObjects; ++i) objects[i] = nullptr;
    GC_free(objects);
}

// A complete binary tree over objects[0..n): i's children are 2i+1, 2i+2.
// The plain one has the nodes' edges as direct pointers.
double measure_plain(const Scenario &s) {
    auto **objects = static_cast<void **>(GC_malloc_uncollectable(kObjects * sizeof(void *)));
    for (size_t i = 0; i < kObjects; ++i) objects[i] = GC_malloc(6 * sizeof(void *));
    for (size_t i = 0; i < kObjects; ++i) {
        auto **o = static_cast<void **>(objects[i]);
        if (2 * i + 1 < kObjects) o[3] = objects[2 * i + 1];
        if (2 * i + 2 < kObjects) o[4] = objects[2 * i + 2];
        if (has_node(s, i)) o[5] = objects[target_of(s, i)];
    }
    for (int w = 0; w < kWarmup; ++w) GC_gcollect();
    std::vector<double> ms;
    for (int r = 0; r < kRounds; ++r) ms.push_back(time_ms(&boehm_collect));
    drop(objects);
    GC_gcollect();
    return median(ms);
}

void **build_hosts(const Scenario &s, cb_heap *heap) {
    auto **objects = static_cast<void **>(GC_malloc_uncollectable(kObjects * sizeof(void *)));
    for (size_t i = 0; i < kObjects; ++i) objects[i] = cbgc_new(3, 0);
    for (size_t i = 0; i < kObjects; ++i) {
        if (2 * i + 1 < kObjects) cbgc_set_object(objects[i], 0, objects[2 * i + 1]);
        if (2 * i + 2 < kObjects) cbgc_set_object(objects[i], 1, objects[2 * i + 2]);
        if (has_node(s, i)) {
            auto *node = static_cast<Node *>(cb_alloc(heap, node_type, sizeof(Node)));
            node->host = objects[target_of(s, i)];
            cb_track(heap, node);
            cbgc_set_node(objects[i], 2, node);
            cb_decref(heap, node);
        }
    }
    return objects;
}

cb_heap *new_heap() {
    cb_heap_options options{};
    options.flags = CB_HEAP_NO_AUTO_COLLECT;
    cb_heap *heap = cb_heap_new(&options);
    cb_type_spec spec{};
    spec.name = "BenchNode";
    spec.kind = CB_KIND_REFCOUNTED;
    spec.traverse = node_traverse;
    spec.clear = node_clear;
    spec.count_offset = 0;
    cb_type_register(heap, &spec, &node_type);
    return heap;
}

// The scenario's heap is left behind when it ends: its nodes, still held by
// host objects when the host was detached, are never released (the
// process ends soon).
bool measure(const Scenario &s, Result &r) {
    r.plain = measure_plain(s);
    cb_heap *heap = new_heap();
    if (cbgc_attach(heap) != CB_OK) return false;
    void **hosts = build_hosts(s, heap);
    r.nodes = kObjects / s.every;

    for (int w = 0; w < kWarmup; ++w) cbgc_collect();
    std::vector<double> on_ms;
    for (int i = 0; i < kRounds; ++i) on_ms.push_back(time_ms(&bridge_collect));
    cbgc_stats stats{};
    cbgc_get_stats(&stats);
    if (stats.roots != 0 || stats.zombies != 0) return false;   // the heap is what it should be
    cbgc_detach();

    // The nodes' targets as roots for "off"; emptied for "unrooted".
    auto **roots = static_cast<void **>(GC_malloc_uncollectable(r.nodes * sizeof(void *)));
    auto root_targets = [&](bool rooted) {
        for (size_t n = 0; n < r.nodes; ++n) roots[n] = rooted ? hosts[target_of(s, n * s.every)] : nullptr;
    };
    root_targets(true);
    for (int w = 0; w < kWarmup; ++w) GC_gcollect();
    std::vector<double> off_ms, unrooted_ms;
    for (int i = 0; i < kRounds; ++i) {
        root_targets(true);
        off_ms.push_back(time_ms(&boehm_collect));
        root_targets(false);
        unrooted_ms.push_back(time_ms(&boehm_collect));
    }
    GC_free(roots);
    drop(hosts);
    GC_gcollect();
    r.on = median(on_ms);
    r.off = median(off_ms);
    r.unrooted = median(unrooted_ms);
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    GC_INIT();
    const char *out = argc > 1 ? argv[1] : nullptr;
    const Scenario scenarios[] = {
        {Shape::kBack, 10, "back_10"},
        {Shape::kRandom, 10, "random_10"},
        {Shape::kBack, 100, "back_100"},
        {Shape::kRandom, 100, "random_100"},
    };
    std::vector<Result> results;
    std::printf("Boehm full collection, %zu host objects, medians of %d rounds (ms; ratios to off)\n", kObjects,
                kRounds);
    std::printf("%-11s %7s %8s %8s %8s %8s %8s %9s %11s\n", "scenario", "nodes", "plain", "unrooted", "off", "on",
                "on/off", "on/plain", "ns/node");
    for (const Scenario &s : scenarios) {
        Result r{};
        if (!measure(s, r)) {
            std::fprintf(stderr, "boehm_bench: scenario %s failed\n", s.name);
            return 1;
        }
        results.push_back(r);
        std::printf("%-11s %7zu %8.2f %8.2f %8.2f %8.2f %8.3f %9.3f %11.1f\n", s.name, r.nodes, r.plain,
                    r.unrooted, r.off, r.on, r.on / r.off, r.on / r.plain, (r.on - r.off) * 1e6 / r.nodes);
    }

    if (out) {
        FILE *f = std::fopen(out, "w");
        if (!f) return 1;
        std::fprintf(f, "{\n  \"benchmark\": \"boehm_full_collection\",\n  \"objects\": %zu,\n  \"metrics\": [\n",
                     kObjects);
        const char *sep = "";
        auto metric = [&](const std::string &name, double value, const char *unit) {
            std::fprintf(f, "%s    {\"name\": \"%s\", \"value\": %.4f, \"unit\": \"%s\"}", sep, name.c_str(), value,
                         unit);
            sep = ",\n";
        };
        // The headline: the wrapper shape, one node in ten host objects.
        metric("boehm_ratio_on_off_1m", results[0].on / results[0].off, "ratio");
        for (size_t i = 0; i < results.size(); ++i) {
            const Result &r = results[i];
            std::string suffix = std::string("_1m_") + scenarios[i].name;
            metric("boehm_plain_ms" + suffix, r.plain, "ms");
            metric("boehm_unrooted_ms" + suffix, r.unrooted, "ms");
            metric("boehm_off_ms" + suffix, r.off, "ms");
            metric("boehm_on_ms" + suffix, r.on, "ms");
            metric("boehm_ratio_on_off" + suffix, r.on / r.off, "ratio");
            metric("boehm_ratio_on_plain" + suffix, r.on / r.plain, "ratio");
            metric("boehm_ns_per_node" + suffix, (r.on - r.off) * 1e6 / r.nodes, "ns");
        }
        std::fprintf(f, "\n  ]\n}\n");
        std::fclose(f);
    }
    return 0;
}
