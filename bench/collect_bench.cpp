// cyclebridge's collections, by graph and size (bench/graphs.hpp), for the
// comparison with CPython's and PyPy's collectors that scripts/bench runs
// (bench/report.py sets them side by side). Each case reports a counter in
// nanoseconds per object: full and cross collections per live node (and
// host object), garbage per node freed, young per young node.
//
// Every case builds its graph once and runs a fixed number of iterations,
// so Google Benchmark does not rebuild a 4M-node graph to find a count.
// Each times the collection alone with its own clock (manual time; Google
// Benchmark's PauseTiming/ResumeTiming cost more than a young collection's
// 150 microseconds can hide) and reports the median iteration, as the peer
// script reports the median repetition.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "graphs.hpp"
#include "support/process_memory.hpp"

namespace {

using bench::Node;
using bench::NodeHeap;
using bench::Shape;
using cbt::resident_bytes;

constexpr size_t kYoung = 10'000;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

int iterations_for(size_t n) { return n <= 10'000 ? 200 : n <= 100'000 ? 40 : n <= 1'000'000 ? 8 : 4; }

// Nanoseconds per object of the median iteration, which a page fault or a
// neighbour's burst on this shared machine does not move. Every case times
// its collections with its own clock (manual time).
void per_object(benchmark::State &state, const char *name, size_t objects, std::vector<double> seconds) {
    std::sort(seconds.begin(), seconds.end());
    state.counters[name] = seconds[seconds.size() / 2] * 1e9 / double(objects);
}

// Where the last collection's time went, per object: trial deletion, marking,
// and the rest (partition and teardown), from the collector's own clock.
void phases(benchmark::State &state, const cb_collection_stats &stats, size_t objects) {
    double count = double(stats.phase_ns[CB_PHASE_COUNT]);
    double mark = double(stats.phase_ns[CB_PHASE_MARK]);
    state.counters["count_ns"] = count / double(objects);
    state.counters["mark_ns"] = mark / double(objects);
    state.counters["rest_ns"] = (double(stats.total_ns) - count - mark) / double(objects);
}

// A full collection of n live nodes.
void BM_Full(benchmark::State &state, Shape shape) {
    size_t n = size_t(state.range(0));
    NodeHeap heap;
    std::vector<Node *> nodes = heap.build(n, shape);
    cb_collect(heap.heap(), CB_FULL, nullptr);   // every node in the oldest generation, as in the peers
    cb_collection_stats stats{};
    std::vector<double> timed;
    for (auto _ : state) {
        auto start = Clock::now();
        cb_collect(heap.heap(), CB_FULL, &stats);
        timed.push_back(seconds_since(start));
        state.SetIterationTime(timed.back());
    }
    per_object(state, "ns_per_obj", n, timed);
    phases(state, stats, n);
    heap.destroy(nodes);
}

// Freeing n nodes of garbage in cycles, teardown (clears, deallocs) included.
// The same full collection on one thread and on two (cb_set_threads at
// its default minimum), alternating on one heap so that both see the same
// memory and the same moments of this shared machine; the ratio of the
// medians is the speedup.
void BM_Threads(benchmark::State &state, Shape shape) {
    size_t n = size_t(state.range(0));
    NodeHeap heap;
    std::vector<Node *> nodes = heap.build(n, shape);
    cb_collect(heap.heap(), CB_FULL, nullptr);
    std::vector<double> one, two;
    for (auto _ : state) {
        for (unsigned threads : {1u, 2u}) {
            cb_set_threads(heap.heap(), threads, 0);
            cb_collect(heap.heap(), CB_FULL, nullptr);   // untimed: the helpers awake, the caches as they will be
            auto start = Clock::now();
            cb_collect(heap.heap(), CB_FULL, nullptr);
            (threads == 1 ? one : two).push_back(seconds_since(start));
        }
        state.SetIterationTime(one.back() + two.back());
    }
    per_object(state, "one_thread_ns", n, one);
    per_object(state, "two_threads_ns", n, two);
    state.counters["speedup"] = state.counters["one_thread_ns"] / state.counters["two_threads_ns"];
    heap.destroy(nodes);
}

// An incremental full collection beside a stop-the-world one on the same
// heap, alternating: the longest slice but the last, the last, and all
// slices' time over the stop-the-world collection's (medians over the
// iterations). Slices of `budget` nodes (cb_collect_slice), or, with
// `timed`, of `budget` microseconds (cb_collect_slice_for).
void BM_Incremental(benchmark::State &state, Shape shape, bool timed) {
    size_t n = size_t(state.range(0));
    size_t budget = size_t(state.range(1));
    NodeHeap heap;
    std::vector<Node *> nodes = heap.build(n, shape);
    cb_collect(heap.heap(), CB_FULL, nullptr);
    std::vector<double> whole, longest, last, total, slices;
    for (auto _ : state) {
        auto start = Clock::now();
        cb_collect(heap.heap(), CB_FULL, nullptr);
        whole.push_back(seconds_since(start));
        double sum = 0, most = 0, one = 0;
        int count = 0, finished = 0;
        while (!finished) {
            start = Clock::now();
            if (timed) cb_collect_slice_for(heap.heap(), uint64_t(budget) * 1000, &finished, nullptr);
            else cb_collect_slice(heap.heap(), budget, &finished, nullptr);
            one = seconds_since(start);
            sum += one;
            ++count;
            if (!finished) most = std::max(most, one);
        }
        longest.push_back(most);
        last.push_back(one);
        total.push_back(sum);
        slices.push_back(count);
        state.SetIterationTime(whole.back() + sum);
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    state.counters["stw_ms"] = median(whole) * 1e3;
    state.counters["max_slice_ms"] = median(longest) * 1e3;
    state.counters["last_slice_ms"] = median(last) * 1e3;
    state.counters["total_ratio"] = median(total) / median(whole);
    state.counters["slices"] = median(slices);
    heap.destroy(nodes);
}

size_t tracked(cb_heap *heap) {
    size_t n = 0;
    for (int g = 0; g < CB_GENERATIONS; ++g) n += cb_generation_size(heap, g);
    return n;
}

// A steady workload: a live tree of n nodes, and every tick 1,000 new nodes
// of garbage in 2-cycles. A full collection starts whenever 100,000 nodes
// of garbage were made since the last one started: stop-the-world, or
// incremental with one slice a tick, paced to end within half the ticks
// until the next start (its work is about four steps per node: enter,
// subtract, mark, settle). The peak of tracked nodes over 2,000 ticks,
// incremental over stop-the-world: the garbage made while a collection
// runs waits for the next. Also the longest slice, and the longest last
// slice, which checks and tears down the collection's garbage.
void BM_SteadyMemory(benchmark::State &state) {
    size_t n = size_t(state.range(0));
    constexpr size_t kPerTick = 1000, kTrigger = 100'000, kTicks = 2000;
    double ratio = 0, peak_stw = 0, peak_incremental = 0, longest = 0, longest_last = 0;
    for (auto _ : state) {
        size_t peaks[2] = {0, 0};
        for (int incremental = 0; incremental < 2; ++incremental) {
            NodeHeap heap;
            std::vector<Node *> nodes = heap.build(n, Shape::kTree);
            cb_collect(heap.heap(), CB_FULL, nullptr);
            size_t since_start = 0, budget = 0;
            bool running = false;
            for (size_t tick = 0; tick < kTicks; ++tick) {
                heap.build_garbage(kPerTick, 2);
                since_start += kPerTick;
                if (!running && since_start >= kTrigger) {
                    since_start = 0;
                    if (incremental) {
                        running = true;
                        budget = 2 * 4 * tracked(heap.heap()) / (kTrigger / kPerTick);
                    } else {
                        cb_collect(heap.heap(), CB_FULL, nullptr);
                    }
                }
                if (running) {
                    int finished = 0;
                    auto start = Clock::now();
                    cb_collect_slice(heap.heap(), budget, &finished, nullptr);
                    double took = seconds_since(start);
                    (finished ? longest_last : longest) = std::max(finished ? longest_last : longest, took);
                    running = !finished;
                }
                peaks[incremental] = std::max(peaks[incremental], tracked(heap.heap()));
            }
            int finished = 0;
            while (running && !finished) cb_collect_slice(heap.heap(), 0, &finished, nullptr);
            cb_collect(heap.heap(), CB_FULL, nullptr);
            heap.destroy(nodes);
        }
        peak_stw = double(peaks[0]);
        peak_incremental = double(peaks[1]);
        ratio = peak_incremental / peak_stw;
    }
    state.counters["peak_stw_nodes"] = peak_stw;
    state.counters["peak_incremental_nodes"] = peak_incremental;
    state.counters["peak_ratio"] = ratio;
    state.counters["max_slice_ms"] = longest * 1e3;
    state.counters["max_last_slice_ms"] = longest_last * 1e3;
}

void BM_Garbage(benchmark::State &state, size_t cycle_length) {
    size_t n = size_t(state.range(0));
    NodeHeap heap;
    uint64_t freed = 0;
    std::vector<double> timed;
    cb_collection_stats stats{};
    for (auto _ : state) {
        heap.build_garbage(n, cycle_length);
        auto start = Clock::now();
        cb_collect(heap.heap(), CB_FULL, &stats);
        double seconds = seconds_since(start);
        state.SetIterationTime(seconds);
        timed.push_back(seconds);
        freed += stats.freed;
    }
    if (freed != n * state.iterations()) state.SkipWithError("not all the garbage was freed");
    per_object(state, "ns_per_obj", n, timed);
    phases(state, stats, n);
}

// A young collection of kYoung new nodes (a chain the program holds) over
// n_old old ones.
void BM_Young(benchmark::State &state) {
    size_t n_old = size_t(state.range(0));
    NodeHeap heap;
    std::vector<Node *> old = heap.build(n_old, Shape::kTree);
    cb_collect(heap.heap(), CB_FULL, nullptr);
    cb_collect(heap.heap(), CB_FULL, nullptr);
    cb_collection_stats stats{};
    std::vector<double> timed;
    for (auto _ : state) {
        std::vector<Node *> young = heap.build(kYoung, Shape::kList);
        auto start = Clock::now();
        cb_collect(heap.heap(), 0, &stats);
        double seconds = seconds_since(start);
        state.SetIterationTime(seconds);
        timed.push_back(seconds);
        heap.destroy(young);
    }
    per_object(state, "ns_per_young_obj", kYoung, timed);
    phases(state, stats, kYoung);
    heap.destroy(old);
}

// A full collection of a tree whose elements alternate between nodes and
// host objects of the reference host heap: every edge crosses.
void BM_Cross(benchmark::State &state) {
    size_t n = size_t(state.range(0));
    bench::CrossHeap heap(n);
    cb_refheap_collect(heap.host(), nullptr);
    std::vector<double> timed;
    for (auto _ : state) {
        auto start = Clock::now();
        cb_refheap_collect(heap.host(), nullptr);
        timed.push_back(seconds_since(start));
        state.SetIterationTime(timed.back());
    }
    per_object(state, "ns_per_obj", n, timed);
}

// The resident memory that `fill` adds, measured in a child process forked
// for it, so that each measure starts from the same memory (what one side
// freed cannot serve the other) and pages mapped but never touched count
// for nothing. The child exits without freeing.
template <class Fill>
double resident_growth_in_child(Fill fill) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        // Free memory the benchmarks before left in malloc's heap would
        // serve malloc's side and not the heap's regions: given back first.
        malloc_trim(0);
        size_t before = resident_bytes();
        if (before == 0) _exit(1);   // no /proc/self/statm: nothing written, the parent reports it
        fill();
        size_t grown = resident_bytes() - before;
        ssize_t written = write(fds[1], &grown, sizeof grown);
        _exit(written == sizeof grown ? 0 : 1);
    }
    size_t grown = 0;
    ssize_t got = pid > 0 ? read(fds[0], &grown, sizeof grown) : -1;
    if (pid > 0) waitpid(pid, nullptr, 0);
    close(fds[0]);
    close(fds[1]);
    return got == sizeof grown ? double(grown) : -1;
}

// Bytes the collector adds to each tracked object: the resident memory of
// n tracked objects, with everything the heap keeps for them (its arrays
// of nodes are mappings of their own, which malloc's statistics do not
// see), less that of the same payloads allocated with malloc. Averaged
// over payload sizes from 16 to 128 bytes, since malloc rounds each size
// up to its own 16-byte class and one size alone would show rounding, not
// overhead.
void BM_Overhead(benchmark::State &state) {
    size_t n = size_t(state.range(0));
    double total = 0;
    int sizes = 0;
    for (auto _ : state) {
        for (size_t payload = 16; payload <= 128; payload += 8, ++sizes) {
            // Both sides include their vector of n pointers.
            double plain = resident_growth_in_child([&] {
                std::vector<void *> objects(n);
                for (auto &p : objects) p = malloc(payload);
            });
            double tracked = resident_growth_in_child([&] {
                auto *heap = new NodeHeap;
                std::vector<Node *> nodes(n);
                for (auto &node : nodes) node = heap->make(payload);
            });
            if (plain < 0 || tracked < 0) {
                state.SkipWithError("no /proc/self/statm, or the child failed");
                return;
            }
            total += (tracked - plain) / double(n);
        }
    }
    state.counters["bytes_per_obj"] = total / sizes;
}

const int64_t kSizes[] = {10'000, 100'000, 1'000'000, 4'000'000};

// One case at every size, its iterations fixed by the size.
template <class... Args>
void register_sized(const std::string &name, Args... args) {
    for (int64_t n : kSizes)
        benchmark::RegisterBenchmark(name.c_str(), args...)
            ->Arg(n)
            ->Iterations(iterations_for(n))
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
}

void register_all() {
    for (auto [name, shape] : {std::pair{"list", Shape::kList}, {"tree", Shape::kTree}, {"random", Shape::kRandom}})
        register_sized(std::string("BM_Full/") + name, BM_Full, shape);
    for (auto [name, shape] : {std::pair{"list", Shape::kList}, {"tree", Shape::kTree}, {"random", Shape::kRandom}})
        for (int64_t n : {100'000, 1'000'000, 4'000'000})
            benchmark::RegisterBenchmark((std::string("BM_Threads/") + name).c_str(), BM_Threads, shape)
                ->Arg(n)
                ->Iterations(iterations_for(n) + 1)
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond);
    for (auto [name, length] : {std::pair{"cycle2", size_t(2)}, {"cycle_long", size_t(1000)}})
        register_sized(std::string("BM_Garbage/") + name, BM_Garbage, length);
    for (int64_t n : {100'000, 1'000'000, 4'000'000})
        benchmark::RegisterBenchmark("BM_Young", BM_Young)
            ->Arg(n)
            ->Iterations(100)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    register_sized("BM_Cross", BM_Cross);
    benchmark::RegisterBenchmark("BM_SteadyMemory", BM_SteadyMemory)->Arg(1'000'000)->Iterations(1);
    // Work budgets (50,000 nodes a slice, the figures since session 7), and
    // time budgets of 900 microseconds, what a program would ask for to keep
    // slices under 1 ms (the clock is read every 1,024 steps).
    for (auto [name, timed, budget] : {std::tuple{"BM_Incremental/tree", false, int64_t(50'000)},
                                       std::tuple{"BM_Incremental/timed", true, int64_t(900)}})
        for (int64_t n : {1'000'000, 4'000'000})
            benchmark::RegisterBenchmark(name, BM_Incremental, Shape::kTree, timed)
                ->Args({n, budget})
                ->Iterations(n <= 1'000'000 ? 5 : 3)
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Overhead", BM_Overhead)->Arg(1'000'000)->Iterations(1);
}

}  // namespace

int main(int argc, char **argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
