// Boehm full-collection time with and without cyclebridge taking part, on
// the same heap, in one run: a binary tree of host objects, one in ten
// holding a refcounted node that refers back to a host object.
//
//   with       the Boehm host attached: prologue (trial deletion over the
//              nodes), the mark procedure handing nodes to the bridge,
//              retention at mark end, the teardown (cbgc_collect)
//   without    the same heap, the host detached: Boehm marks host objects
//              with the same mark procedure, which skips the nodes
//   plain      a tree of the same shape and sizes made of GC_malloc objects
//              (Boehm's own conservative scan), built and measured first
//
// Rounds alternate with and without; the medians give the ratio. Prints a
// table and writes JSON (one entry per metric) to the path in argv[1].
#include <cyclebridge/boehm.h>
#include <gc/gc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

constexpr size_t kObjects = 1'000'000;
constexpr size_t kNodeEvery = 10;
constexpr int kRounds = 7;

cb_heap *heap = nullptr;
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

// A complete binary tree over objects[0..n): i's children are 2i+1, 2i+2.
void **build_plain(size_t n) {
    auto **objects = static_cast<void **>(GC_malloc_uncollectable(n * sizeof(void *)));
    for (size_t i = 0; i < n; ++i) objects[i] = GC_malloc(6 * sizeof(void *));
    for (size_t i = 0; i < n; ++i) {
        auto **o = static_cast<void **>(objects[i]);
        if (2 * i + 1 < n) o[3] = objects[2 * i + 1];
        if (2 * i + 2 < n) o[4] = objects[2 * i + 2];
    }
    return objects;
}

void **build_hosts(size_t n) {
    auto **objects = static_cast<void **>(GC_malloc_uncollectable(n * sizeof(void *)));
    for (size_t i = 0; i < n; ++i) objects[i] = cbgc_new(3, 0);
    for (size_t i = 0; i < n; ++i) {
        if (2 * i + 1 < n) cbgc_set_object(objects[i], 0, objects[2 * i + 1]);
        if (2 * i + 2 < n) cbgc_set_object(objects[i], 1, objects[2 * i + 2]);
        if (i % kNodeEvery == 0) {
            auto *node = static_cast<Node *>(cb_alloc(heap, node_type, sizeof(Node)));
            node->host = objects[(i * 7919) % n];
            cb_track(heap, node);
            cbgc_set_node(objects[i], 2, node);
            cb_decref(heap, node);
        }
    }
    return objects;
}

}  // namespace

int main(int argc, char **argv) {
    GC_INIT();
    const char *out = argc > 1 ? argv[1] : nullptr;

    // Plain Boehm, for reference.
    void **plain = build_plain(kObjects);
    std::vector<double> plain_ms;
    for (int r = 0; r < kRounds; ++r) plain_ms.push_back(time_ms(&boehm_collect));
    GC_free(plain);
    plain = nullptr;
    GC_gcollect();

    cb_heap_options options{};
    options.flags = CB_HEAP_NO_AUTO_COLLECT;
    heap = cb_heap_new(&options);
    cb_type_spec spec{};
    spec.name = "BenchNode";
    spec.kind = CB_KIND_REFCOUNTED;
    spec.traverse = node_traverse;
    spec.clear = node_clear;
    spec.count_offset = 0;
    cb_type_register(heap, &spec, &node_type);
    if (cbgc_attach(heap) != CB_OK) return 1;
    void **hosts = build_hosts(kObjects);

    std::vector<double> with_ms, without_ms;
    for (int r = 0; r < kRounds; ++r) {
        with_ms.push_back(time_ms(&bridge_collect));
        cbgc_detach();
        without_ms.push_back(time_ms(&boehm_collect));
        cbgc_attach(heap);
    }
    cbgc_stats stats{};
    cbgc_get_stats(&stats);
    cb_collection_stats last{};
    cb_last_stats(heap, &last);
    std::printf("bridge's last collection: %.2f ms in all; by phase (ms):", last.total_ns / 1e6);
    for (int p = 0; p < CB_PHASE_COUNT_; ++p) std::printf(" %.2f", last.phase_ns[p] / 1e6);
    std::printf("; host objects marked %llu\n", static_cast<unsigned long long>(last.host_marked));

    double with = median(with_ms), without = median(without_ms), base = median(plain_ms);
    size_t nodes = kObjects / kNodeEvery;
    std::printf("Boehm full collection, %zu host objects, %zu nodes (medians of %d rounds)\n", kObjects, nodes,
                kRounds);
    std::printf("  plain Boehm objects        %8.2f ms  %6.2f ns/object\n", base, base * 1e6 / kObjects);
    std::printf("  host objects, bridge off   %8.2f ms  %6.2f ns/object\n", without, without * 1e6 / kObjects);
    std::printf("  host objects, bridge on    %8.2f ms  %6.2f ns/object\n", with, with * 1e6 / kObjects);
    std::printf("  ratio on/off               %8.3f\n", with / without);
    std::printf("  ratio on/plain             %8.3f\n", with / base);
    std::printf("  roots from nodes, last     %8llu\n", static_cast<unsigned long long>(stats.roots));

    if (out) {
        FILE *f = std::fopen(out, "w");
        if (!f) return 1;
        std::fprintf(f,
                     "{\n  \"benchmark\": \"boehm_full_collection\",\n  \"objects\": %zu,\n  \"nodes\": %zu,\n"
                     "  \"metrics\": [\n"
                     "    {\"name\": \"boehm_plain_ms_1m\", \"value\": %.3f, \"unit\": \"ms\"},\n"
                     "    {\"name\": \"boehm_bridge_off_ms_1m\", \"value\": %.3f, \"unit\": \"ms\"},\n"
                     "    {\"name\": \"boehm_bridge_on_ms_1m\", \"value\": %.3f, \"unit\": \"ms\"},\n"
                     "    {\"name\": \"boehm_ratio_on_off_1m\", \"value\": %.4f, \"unit\": \"ratio\"},\n"
                     "    {\"name\": \"boehm_ratio_on_plain_1m\", \"value\": %.4f, \"unit\": \"ratio\"}\n"
                     "  ]\n}\n",
                     kObjects, nodes, base, without, with, with / without, with / base);
        std::fclose(f);
    }
    for (size_t i = 0; i < kObjects; ++i) hosts[i] = nullptr;
    GC_free(hosts);
    return 0;
}
