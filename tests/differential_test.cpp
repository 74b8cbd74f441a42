// Differential test: random graphs over refcounted, handle-managed and host
// objects, collected by cyclebridge and checked against a brute-force
// oracle (tests/differential/random_graph.hpp). See docs/testing.md.
//
// Environment:
//   CB_DIFF_GRAPHS   graphs in total over all shards (default 100000;
//                    20000 when built with AddressSanitizer)
//   CB_DIFF_SEED     base seed; graph i uses seed base + i (default 20240601)
//   CB_DIFF_VERBOSE  1: print every operation of every graph to stderr
//   CB_DIFF_KEEP_GOING  1: do not stop a shard at its first failing graph;
//                    each graph runs in a child process (a crash is one more
//                    failing seed), every failing seed is printed with its
//                    first mismatch, and the smallest one with its replay line
//   CB_DIFF_DISABLE  comma-separated features to leave out while triaging:
//                    hm host host-hm weakref weak-holder finalizer resurrect
//                    legacy young host-driven bridge-driven verify threads incremental (and the
//                    rest listed in differential/random_graph.hpp)
//   CB_DIFF_MAX_OBJECTS  largest initial graph (default 40); small values
//                    help to find a minimal failing graph
#include "differential/random_graph.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#define CB_DIFF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CB_DIFF_ASAN 1
#endif
#endif
#ifndef CB_DIFF_ASAN
#define CB_DIFF_ASAN 0
#endif

namespace {

using namespace cbdiff;

constexpr uint64_t kDefaultGraphs = CB_DIFF_ASAN ? 20000 : 100000;
constexpr uint64_t kDefaultSeed = 20240601;
constexpr int kShards = 4;

uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = std::getenv(name);
    if (!v || !*v) return fallback;
    char *end = nullptr;
    unsigned long long x = std::strtoull(v, &end, 0);
    if (end == v) return fallback;
    return x;
}

std::string replay_command(uint64_t seed, uint32_t max_objects) {
    std::string cmd = "CB_DIFF_SEED=" + std::to_string(seed) + " CB_DIFF_GRAPHS=1 CB_DIFF_VERBOSE=1 ";
    if (max_objects != 40) cmd += "CB_DIFF_MAX_OBJECTS=" + std::to_string(max_objects) + " ";
    if (const char *d = std::getenv("CB_DIFF_DISABLE")) cmd += std::string("CB_DIFF_DISABLE=") + d + " ";
    return cmd + "tests/differential_test --gtest_filter='Differential/Shard.RandomGraphs/0'";
}

// ---------------------------------------------------------------------
// The oracle on hand-built graphs: the model must be right before it can
// judge the library.
// ---------------------------------------------------------------------

struct Builder {
    World w;
    uint32_t add(Kind k, uint32_t ext = 0, Fin fin = Fin::None, int gen = CB_FULL) {
        Obj o;
        o.kind = k;
        o.ext = ext;
        o.fin = fin;
        o.gen = k == Kind::Host ? CB_FULL : gen;
        w.objs.push_back(o);
        return uint32_t(w.objs.size() - 1);
    }
    uint32_t host(uint32_t roots = 0) {
        uint32_t id = add(Kind::Host);
        w.objs[id].host_roots = roots;
        return id;
    }
    void edge(uint32_t a, uint32_t b) { w.objs[a].edges.push_back(b); }
};

std::string S(const World &w, const std::vector<uint8_t> &s) { return set_string(w, s); }

TEST(DifferentialOracle, RefcountedCycleIsFreed) {
    Builder b;
    uint32_t a = b.add(Kind::RC), c = b.add(Kind::RC), r = b.add(Kind::RC, 1);
    b.edge(a, c);
    b.edge(c, a);
    b.edge(r, r);
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e.freed), "{r0 r1}");
    EXPECT_EQ(S(b.w, e.uc), "{}");
}

TEST(DifferentialOracle, CycleThroughHostNeedsFullCollection) {
    // r0 -> h1 -> r0: the host slot holds a count on r0.
    Builder b;
    uint32_t r = b.add(Kind::RC, 0, Fin::None, 0), h = b.host();
    b.edge(r, h);
    b.edge(h, r);
    EXPECT_EQ(expected_counts(b.w)[r], 1);
    Expect young = oracle_collect(b.w, 1, true);
    EXPECT_EQ(S(b.w, young.freed), "{}");   // host-held: a root in young collections
    Expect full = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, full.freed), "{r0 h1}");
    b.w.objs[h].host_roots = 1;
    EXPECT_EQ(S(b.w, oracle_collect(b.w, CB_FULL, true).freed), "{}");
}

TEST(DifferentialOracle, HandleManagedRootedByHandlesOnly) {
    Builder b;
    uint32_t m = b.add(Kind::HM, 0), r = b.add(Kind::RC), m2 = b.add(Kind::HM, 1);
    b.edge(m, r);
    b.edge(r, m);
    b.edge(m2, m2);
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e.freed), "{m0 r1}");
    // Young: HM nodes are roots (old nodes may point at them uncounted).
    for (auto &o : b.w.objs) o.gen = 0;
    EXPECT_EQ(S(b.w, oracle_collect(b.w, 0, true).freed), "{}");
}

TEST(DifferentialOracle, LegacyFinalizerKeepsWhatItReaches) {
    Builder b;
    uint32_t l = b.add(Kind::RC, 0, Fin::Legacy), x = b.add(Kind::RC), h = b.host(), y = b.add(Kind::HM);
    uint32_t z = b.add(Kind::RC);   // refers to l, l does not reach it
    b.edge(l, x);
    b.edge(x, l);
    b.edge(x, h);
    b.edge(h, y);
    b.edge(z, l);
    b.edge(z, z);
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e.uc), "{r0 r1 m3}");
    EXPECT_EQ(S(b.w, e.freed), "{r4}");
    EXPECT_EQ(e.culprits[y], std::vector<uint32_t>{l});
}

TEST(DifferentialOracle, ResurrectionKeepsClosure) {
    Builder b;
    uint32_t f = b.add(Kind::RC, 0, Fin::Resurrect), a = b.add(Kind::RC, 0, Fin::Finalizer), h = b.host();
    uint32_t c = b.add(Kind::RC), d = b.add(Kind::RC);
    b.edge(f, a);
    b.edge(a, f);
    b.edge(a, h);
    b.edge(h, c);
    b.edge(d, f);
    b.edge(d, d);
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e.finalize), "{r0 r1}");
    EXPECT_EQ(S(b.w, e.revived), "{r0 r1 h2 r3}");
    EXPECT_EQ(S(b.w, e.freed), "{r4}");
    // Finalized before: no second run, no resurrection.
    b.w.objs[f].finalized = b.w.objs[a].finalized = true;
    Expect e2 = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e2.finalize), "{}");
    EXPECT_EQ(S(b.w, e2.freed), "{r0 r1 h2 r3 r4}");
}

TEST(DifferentialOracle, YoungCollectionCountsOutsideReferencesAsExternal) {
    Builder b;
    uint32_t old = b.add(Kind::RC, 1, Fin::None, 2);
    uint32_t y1 = b.add(Kind::RC, 0, Fin::None, 0), y2 = b.add(Kind::RC, 0, Fin::None, 1);
    uint32_t g1 = b.add(Kind::RC, 0, Fin::None, 0), g2 = b.add(Kind::RC, 0, Fin::None, 1);
    b.edge(old, y1);
    b.edge(y1, y2);
    b.edge(y2, y1);
    b.edge(g1, g2);
    b.edge(g2, g1);
    Expect e0 = oracle_collect(b.w, 0, true);
    EXPECT_EQ(S(b.w, e0.collected), "{r1 r3}");
    EXPECT_EQ(S(b.w, e0.freed), "{}");   // g1 is held by g2, outside gen 0
    Expect e1 = oracle_collect(b.w, 1, true);
    EXPECT_EQ(S(b.w, e1.freed), "{r3 r4}");
}

TEST(DifferentialOracle, YoungGarbageReleasesOldNodes) {
    // Young garbage holding the only reference to an old node frees it by refcount.
    Builder b;
    uint32_t g = b.add(Kind::RC, 0, Fin::None, 0), old = b.add(Kind::RC, 0, Fin::None, 2);
    b.edge(g, g);
    b.edge(g, old);
    Expect e = oracle_collect(b.w, 0, true);
    EXPECT_EQ(S(b.w, e.freed), "{r0 r1}");
    EXPECT_EQ(S(b.w, e.cascade), "{r1}");
}

TEST(DifferentialOracle, WeakrefCallbackNeedsASurvivingHolder) {
    Builder b;
    uint32_t t = b.add(Kind::RC), live = b.add(Kind::RC, 1), dead = b.add(Kind::RC);
    b.edge(t, t);
    b.edge(dead, dead);
    Weak w1{t, live, true}, w2{t, dead, true}, w3{t, kNone, true}, w4{live, dead, true};
    b.w.weaks = {w1, w2, w3, w4};
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(e.weak_cb, (std::vector<uint8_t>{kYes, kNo, kYes, kNo}));
    EXPECT_EQ(e.weak_clear, (std::vector<uint8_t>{kYes, kYes, kYes, kMaybe}));
}

TEST(DifferentialOracle, MutationCascade) {
    Builder b;
    uint32_t a = b.add(Kind::RC, 1), c = b.add(Kind::RC), m = b.add(Kind::HM), d = b.add(Kind::RC, 1);
    b.edge(a, c);
    b.edge(c, m);
    b.edge(m, d);
    World pred = b.w;
    pred.objs[a].ext = 0;
    Expect e = oracle_mutation(pred);
    EXPECT_EQ(S(b.w, e.freed), "{r0 r1}");   // m is handle-managed: only the collector frees it
}

TEST(DifferentialOracle, FrozenNodesAreRootsAndNeverCollected) {
    Builder b;
    uint32_t f = b.add(Kind::RC, 0, Fin::None, kFrozenGen), m = b.add(Kind::HM), g = b.add(Kind::RC);
    b.edge(f, f);
    b.edge(f, m);
    b.edge(g, g);
    Expect e = oracle_collect(b.w, CB_FULL, true);
    EXPECT_EQ(S(b.w, e.collected), "{m1 r2}");
    EXPECT_EQ(S(b.w, e.freed), "{r2}");
}

TEST(DifferentialOracle, FullCollectionWithoutTheHostKeepsHostHeldNodes) {
    // Host-driven heap, cb_collect(CB_FULL): host references are external.
    Builder b;
    uint32_t m = b.add(Kind::HM), h = b.host(), m2 = b.add(Kind::HM), r = b.add(Kind::RC);
    b.edge(h, m);
    b.edge(m2, r);
    b.edge(r, m2);
    b.edge(r, h);
    Expect e = oracle_collect(b.w, CB_FULL, false);
    EXPECT_EQ(S(b.w, e.collected), "{m0 m2 r3}");
    EXPECT_EQ(S(b.w, e.freed), "{m2 r3}");   // h is never freed without host marking
    EXPECT_EQ(S(b.w, oracle_collect(b.w, CB_FULL, true).freed), "{m0 h1 m2 r3}");
}

// ---------------------------------------------------------------------
// The random graphs
// ---------------------------------------------------------------------

class Shard : public ::testing::TestWithParam<int> {};

struct GraphResult {
    bool ok = true;
    size_t objects = 0;
    uint64_t collections = 0, operations = 0;
    std::string mismatch;   // first mismatch, one line
    std::string report;     // full report (in-process runs only)
};

uint32_t disabled_features() {
    const char *v = std::getenv("CB_DIFF_DISABLE");
    if (!v) return 0;
    std::string bad;
    uint32_t mask = parse_features(v, &bad);
    if (!bad.empty()) ADD_FAILURE() << "CB_DIFF_DISABLE: unknown feature(s) " << bad;
    return mask;
}

GraphResult run_graph(uint64_t seed, uint32_t max_objects, bool verbose) {
    PrngSource src(seed);
    ScenarioOptions opt;
    static const uint32_t disabled = disabled_features();
    opt.disabled = disabled;
    opt.seed = seed;
    opt.verbose = verbose;
    opt.max_objects = max_objects;
    opt.replay = replay_command(seed, max_objects);
    if (verbose) std::fprintf(stderr, "=== graph seed %llu\n", (unsigned long long)seed);
    Scenario sc(src, opt);
    GraphResult r;
    r.ok = sc.run();
    r.objects = sc.objects();
    r.collections = sc.collections();
    r.operations = sc.operations();
    if (!r.ok) {
        r.mismatch = sc.first_mismatch();
        r.report = sc.report();
    }
    return r;
}

// Keep-going mode runs each graph in a child process, so that a crash in
// the library (a use after free in a release build) is one more failing
// seed rather than the end of the run.
// A sanitizer's report, shortened to one line: the error and the first
// frames (for sorting failures into bugs).
std::string summarize_sanitizer(const std::string &err) {
    size_t at = err.find("ERROR: AddressSanitizer: ");
    if (at == std::string::npos) at = err.find("runtime error: ");
    if (at == std::string::npos) return {};
    std::string out = err.substr(at, err.find('\n', at) - at);
    size_t addr = out.find(" on address");
    if (addr != std::string::npos) out.resize(addr);
    size_t pos = at;
    for (int frames = 0; frames < 4;) {
        pos = err.find(" in ", err.find("    #", pos));
        if (pos == std::string::npos) break;
        size_t e = err.find_first_of("(/\n", pos + 4);
        std::string fn = err.substr(pos + 4, e - pos - 4);
        while (!fn.empty() && fn.back() == ' ') fn.pop_back();
        if (fn.find("__") != 0 && fn.find("cb::Header::") == std::string::npos) {
            out += (frames ? " < " : ": ") + fn;
            frames++;
        }
        pos += 4;
    }
    return out;
}

GraphResult run_graph_isolated(uint64_t seed, uint32_t max_objects) {
    int fds[2], errfds[2];
    if (pipe(fds) != 0) return run_graph(seed, max_objects, false);
    if (pipe(errfds) != 0) return run_graph(seed, max_objects, false);
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        close(errfds[0]);
        dup2(errfds[1], 2);
        close(errfds[1]);
        GraphResult r = run_graph(seed, max_objects, false);
        std::string msg = std::to_string(r.objects) + " " + std::to_string(r.collections) + " " +
                          std::to_string(r.operations) + " " + r.mismatch;
        ssize_t unused = write(fds[1], msg.data(), msg.size());
        (void)unused;
        close(fds[1]);
        _exit(r.ok ? 0 : 1);
    }
    close(fds[1]);
    close(errfds[1]);
    std::string msg, err;
    char buf[4096];
    ssize_t n;
    while ((n = read(errfds[0], buf, sizeof buf)) > 0) err.append(buf, size_t(n));
    close(errfds[0]);
    while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    GraphResult r;
    unsigned long long objs = 0, colls = 0, ops = 0;
    int used = 0;
    if (std::sscanf(msg.c_str(), "%llu %llu %llu %n", &objs, &colls, &ops, &used) >= 3) {
        r.objects = objs;
        r.collections = colls;
        r.operations = ops;
        r.mismatch = msg.substr(size_t(used));
    }
    std::string sanitizer = summarize_sanitizer(err);
    if (WIFSIGNALED(status) || !sanitizer.empty()) {
        r.ok = false;
        r.mismatch = !sanitizer.empty() ? sanitizer : "crashed with signal " + std::to_string(WTERMSIG(status));
        if (!r.objects) r.objects = SIZE_MAX / 2000;
    } else {
        r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!r.ok && r.mismatch.empty()) r.mismatch = "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    return r;
}

TEST_P(Shard, RandomGraphs) {
    const uint64_t total = env_u64("CB_DIFF_GRAPHS", kDefaultGraphs);
    const uint64_t base = env_u64("CB_DIFF_SEED", kDefaultSeed);
    const bool verbose = env_u64("CB_DIFF_VERBOSE", 0) != 0;
    const bool keep_going = env_u64("CB_DIFF_KEEP_GOING", 0) != 0;
    const uint32_t max_objects = uint32_t(env_u64("CB_DIFF_MAX_OBJECTS", 40));
    const int shard = GetParam();

    auto t0 = std::chrono::steady_clock::now();
    uint64_t graphs = 0, collections = 0, operations = 0, failures = 0;
    size_t smallest = SIZE_MAX;
    uint64_t smallest_seed = 0;
    std::string smallest_mismatch;
    // Graph i runs in shard i % kShards, so graph 0 is always in shard 0.
    for (uint64_t i = uint64_t(shard); i < total; i += kShards) {
        const uint64_t seed = base + i;
        GraphResult r = keep_going ? run_graph_isolated(seed, max_objects) : run_graph(seed, max_objects, verbose);
        graphs++;
        collections += r.collections;
        operations += r.operations;
        if (r.ok) continue;
        failures++;
        if (!keep_going) {
            ADD_FAILURE() << r.report;
            break;
        }
        std::fprintf(stderr, "FAILED seed %llu (%zu objects, %llu operations): %s\n", (unsigned long long)seed,
                     r.objects, (unsigned long long)r.operations, r.mismatch.c_str());
        if (r.objects * 1000 + r.operations < smallest) {
            smallest = r.objects * 1000 + r.operations;
            smallest_seed = seed;
            smallest_mismatch = r.mismatch;
        }
    }
    if (keep_going && failures) {
        ADD_FAILURE() << failures << " failing graphs; the smallest is seed " << smallest_seed << " ("
                      << smallest_mismatch << "); replay: " << replay_command(smallest_seed, max_objects);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("shard %d: %llu graphs (seeds %llu + i, i %% %d == %d), %llu collections, %llu operations, %.1f s%s\n",
                shard, (unsigned long long)graphs, (unsigned long long)base, kShards, shard,
                (unsigned long long)collections, (unsigned long long)operations, secs,
                CB_DIFF_ASAN ? " (AddressSanitizer build)" : "");
    RecordProperty("graphs", std::to_string(graphs));
    RecordProperty("collections", std::to_string(collections));
}

INSTANTIATE_TEST_SUITE_P(Differential, Shard, ::testing::Range(0, kShards));

}  // namespace
