// The cases, each over 10,000 instances of extension types written
// exactly as for CPython (ext/cycles.c), freed by ONE full collection of
// cyclebridge through the CPython adapter, in both drive modes; then the
// same counts compared with what the real CPython does with the same
// source built as an extension module (ext/crosscheck.py).
#include <cstdio>
#include <map>
#include <string>

#include "support/adapter_runtime.hpp"
#include "support/mini_json.hpp"

namespace {

constexpr int kInstances = 10000;

struct Outcome {
    std::map<std::string, long> deallocs;
    long finalizer_calls = 0;
    long del_calls = 0;
    std::map<std::string, long> extra;
};
using Results = std::map<std::string, Outcome>;

Outcome counters() {
    Outcome o;
    for (int k = 0; k < CYC_KINDS; ++k) o.deallocs[cyc_kind_names[k]] = cyc_deallocs(static_cast<cyc_kind>(k));
    o.finalizer_calls = cyc_finalizer_calls();
    o.del_calls = cyc_del_calls();
    return o;
}

// A host object holding the node, standing for a Python list [node].
PyObject *wrap_in_host(PyObject *node, void *ctx) {
    auto *rt = static_cast<cbt::AdapterRuntime *>(ctx);
    cb_host_ref list = rt->host(1);
    rt->set(list, 0, node);
    return cbpy_twin(list);
}

// A host closure capturing the node: closure -> cell -> node.
PyObject *wrap_in_closure(PyObject *node, void *ctx) {
    auto *rt = static_cast<cbt::AdapterRuntime *>(ctx);
    cb_host_ref cell = rt->host(1), closure = rt->host(1);
    rt->set(cell, 0, node);
    rt->set(closure, 0, cell);
    return cbpy_twin(closure);
}

void expect_no_error(const char *scenario) {
    const char *message = cbpy_error_message();
    EXPECT_EQ(message, nullptr) << scenario << ": " << (message ? message : "");
    PyErr_Clear();
}

// Runs every scenario in a fresh runtime; after each, checks that the
// collection left the heaps exactly as they were before it was built.
Results run_scenarios(cb_drive_mode mode, int n) {
    Results results;
    cbt::AdapterRuntime rt(mode);
    auto scenario = [&](const char *name, auto build, auto after) {
        rt.collect();
        size_t tracked_before = rt.tracked(), hosts_before = rt.host_objects();
        cyc_reset_counts();
        EXPECT_EQ(build(), 0) << name;
        expect_no_error(name);
        rt.collect();   // the one collection under test
        Outcome o = counters();
        after(o);
        if (o.extra.count("keep") == 0) {
            EXPECT_EQ(rt.tracked(), tracked_before) << name << ": tracked objects left after one collection";
            EXPECT_EQ(rt.host_objects(), hosts_before) << name << ": host objects left after one collection";
        }
        o.extra.erase("keep");
        results[name] = o;
    };
    auto nothing = [](Outcome &) {};

    scenario("self_cycle", [&] { return cyc_self_cycles(n); }, nothing);
    scenario("two_cycle", [&] { return cyc_two_cycles(n); }, nothing);
    scenario("host_cycle", [&] { return cyc_host_cycles(n, wrap_in_host, &rt); }, nothing);
    scenario("host_closure", [&] { return cyc_host_cycles(n, wrap_in_closure, &rt); }, nothing);

    size_t before_resurrection = 0;
    scenario("resurrect_first",
             [&] {
                 before_resurrection = rt.tracked();
                 return cyc_resurrecting_cycles(n);
             },
             [&](Outcome &o) {
                 o.extra["saved"] = cyc_saved_count();
                 o.extra["keep"] = 1;
             });
    // The survivors are freed later, by the next collection once released;
    // their finalizers do not run again.
    scenario("resurrect_second",
             [&] {
                 cyc_release_saved();
                 return 0;
             },
             [&](Outcome &o) {
                 EXPECT_EQ(rt.tracked(), before_resurrection);
                 o.extra["keep"] = 1;
             });

    cb_host_ref callback_fn = rt.host(0, /*rooted=*/true);
    scenario("weakref",
             [&] {
                 PyObject *callback = cbpy_twin(callback_fn);
                 int status = cyc_weakref_cycles(n, callback);
                 Py_XDECREF(callback);
                 return status;
             },
             [&](Outcome &o) {
                 o.extra["callbacks"] = rt.calls[callback_fn];
                 o.extra["weakrefs_dead"] = cyc_weakrefs_dead();
                 o.extra["keep"] = 1;   // the weakrefs themselves are kept
                 // Each callback got its weakref, already dead.
                 for (PyObject *arg : rt.call_args) {
                     ASSERT_TRUE(PyWeakref_CheckRef(arg));
                     EXPECT_EQ(PyWeakref_GET_OBJECT(arg), Py_None);
                 }
                 cyc_release_weakrefs();
             });
    rt.call_args.clear();
    cb_refheap_remove_root(rt.rh, callback_fn);

    scenario("legacy", [&] { return cyc_legacy_cycles(n); },
             [&](Outcome &o) {
                 long own = 0;
                 for (size_t i = 0; i < cb_uncollectable_count(rt.heap); ++i) {
                     cb_uncollectable u{};
                     cb_uncollectable_get(rt.heap, i, &u);
                     own += u.reason == CB_UNCOLLECTABLE_LEGACY_FINALIZER;
                 }
                 o.extra["uncollectable"] = own;
                 o.extra["keep"] = 1;
                 cb_uncollectable_release(rt.heap);
                 cyc_break_legacy();
             });
    scenario("heap_type", [&] { return cyc_heap_type_cycles(n); }, nothing);
    return results;
}

const Results &results_for(cb_drive_mode mode) {
    static std::map<int, Results> cache;
    auto it = cache.find(mode);
    if (it == cache.end()) it = cache.emplace(mode, run_scenarios(mode, kInstances)).first;
    return it->second;
}

class Scenarios : public ::testing::TestWithParam<cb_drive_mode> {};

long dealloc(const Results &r, const char *scenario, const char *kind) { return r.at(scenario).deallocs.at(kind); }

TEST_P(Scenarios, CyclesOfExtensionObjectsAreFreedByOneFullCollection) {
    const Results &r = results_for(GetParam());
    for (const char *name : {"self_cycle", "two_cycle", "host_cycle", "host_closure"})
        EXPECT_EQ(dealloc(r, name, "node"), kInstances) << name;
}

TEST_P(Scenarios, AResurrectedCycleSurvivesOnceAndIsFreedLater) {
    const Results &r = results_for(GetParam());
    EXPECT_EQ(dealloc(r, "resurrect_first", "resurrector"), 0);
    EXPECT_EQ(r.at("resurrect_first").finalizer_calls, kInstances);
    EXPECT_EQ(r.at("resurrect_first").extra.at("saved"), kInstances);
    EXPECT_EQ(dealloc(r, "resurrect_second", "resurrector"), kInstances);
    EXPECT_EQ(r.at("resurrect_second").finalizer_calls, 0) << "a finalizer ran twice";
}

TEST_P(Scenarios, AWeakrefCallbackStillReachableRunsOnce) {
    const Results &r = results_for(GetParam());
    EXPECT_EQ(dealloc(r, "weakref", "node"), kInstances);
    EXPECT_EQ(r.at("weakref").extra.at("callbacks"), kInstances);
    EXPECT_EQ(r.at("weakref").extra.at("weakrefs_dead"), kInstances);
}

TEST_P(Scenarios, ALegacyFinalizerCycleIsKeptAndReported) {
    const Results &r = results_for(GetParam());
    EXPECT_EQ(dealloc(r, "legacy", "legacy"), 0);
    EXPECT_EQ(r.at("legacy").extra.at("uncollectable"), kInstances);
    EXPECT_EQ(r.at("legacy").del_calls, 0) << "the collector must never call tp_del";
}

TEST_P(Scenarios, HeapTypeInstancesInCyclesOnlyThroughTheirType) {
    const Results &r = results_for(GetParam());
    EXPECT_EQ(dealloc(r, "heap_type", "heap_node"), kInstances);
    EXPECT_EQ(dealloc(r, "heap_type", "registry"), 1);
}

INSTANTIATE_TEST_SUITE_P(DriveModes, Scenarios, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST),
                         [](const auto &info) { return info.param == CB_DRIVE_BRIDGE ? "Bridge" : "Host"; });

// ---- the same source under the real CPython --------------------------------

std::string run_crosscheck(const std::string &options) {
    std::string command =
        std::string(CB_PYTHON3) + " " + CYC_CROSSCHECK_SCRIPT + " --module-dir " + CYC_MODULE_DIR + " --json " + options;
    std::string out;
    if (FILE *p = popen(command.c_str(), "r")) {
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
        EXPECT_EQ(pclose(p), 0) << command;
    }
    return out;
}

TEST(CrossCheck, CPythonFreesTheSameObjectsAsTheAdapter) {
#if !CYC_HAVE_MODULE
    GTEST_SKIP() << "the real extension module is not built in sanitizer builds";
#else
    cbt::json::Value py = cbt::json::parse(run_crosscheck("-n " + std::to_string(kInstances)));
    ASSERT_EQ(py.at("n").number, kInstances);
    const auto &scenarios = py.at("scenarios").members;
    ASSERT_EQ(scenarios.size(), 9u);
    for (cb_drive_mode mode : {CB_DRIVE_BRIDGE, CB_DRIVE_HOST}) {
        const Results &ours = results_for(mode);
        ASSERT_EQ(ours.size(), scenarios.size());
        for (const auto &[name, expected] : scenarios) {
            SCOPED_TRACE(name + (mode == CB_DRIVE_BRIDGE ? " (bridge-driven)" : " (host-driven)"));
            const Outcome &got = ours.at(name);
            for (const auto &[kind, count] : expected.at("deallocs").members)
                EXPECT_EQ(got.deallocs.at(kind), count.number) << "tp_dealloc calls of " << kind;
            EXPECT_EQ(got.finalizer_calls, expected.at("finalizer_calls").number);
            EXPECT_EQ(got.del_calls, expected.at("del_calls").number);
            EXPECT_EQ(got.extra.size(), expected.at("extra").members.size());
            for (const auto &[key, value] : expected.at("extra").members)
                EXPECT_EQ(got.extra.count(key) ? got.extra.at(key) : -1, value.number) << key;
        }
    }
#endif
}

// Which nodes of each random graph one full collection frees, as a string
// of 0/1 per node (ext/cycles.c builds the same graph for the same seed).
std::map<std::string, std::string> adapter_random_graphs(cb_drive_mode mode, int seeds, int size) {
    std::map<std::string, std::string> graphs;
    cbt::AdapterRuntime rt(mode);
    for (int seed = 1; seed <= seeds; ++seed) {
        rt.collect();
        EXPECT_EQ(cyc_random_graph(static_cast<unsigned>(seed), size, wrap_in_host, &rt), 0);
        expect_no_error("random graph");
        rt.collect();
        std::string dead(static_cast<size_t>(size), '0');
        for (int i = 0; i < size; ++i) dead[i] = cyc_random_dead(i) == 1 ? '1' : '0';
        graphs[std::to_string(seed)] = dead;
        cyc_random_release();
        rt.collect();
        for (int i = 0; i < size; ++i) EXPECT_EQ(cyc_random_dead(i), 1) << "seed " << seed << " node " << i;
        cyc_random_forget();
    }
    return graphs;
}

// A randomized differential test against CPython itself: the same random
// graphs of extension objects, host objects (Python lists there) and
// outside references; the same nodes must die.
TEST(CrossCheck, RandomGraphsLoseTheSameNodesAsUnderCPython) {
#if !CYC_HAVE_MODULE
    GTEST_SKIP() << "the real extension module is not built in sanitizer builds";
#else
    constexpr int kSeeds = 300, kSize = 200;
    cbt::json::Value py = cbt::json::parse(
        run_crosscheck("-n 2 --random " + std::to_string(kSeeds) + " --random-size " + std::to_string(kSize)));
    const auto &expected = py.at("random").at("graphs").members;
    ASSERT_EQ(expected.size(), size_t(kSeeds));
    for (cb_drive_mode mode : {CB_DRIVE_BRIDGE, CB_DRIVE_HOST}) {
        auto ours = adapter_random_graphs(mode, kSeeds, kSize);
        size_t freed_somewhere = 0;
        for (const auto &[seed, dead] : expected) {
            EXPECT_EQ(ours.at(seed), dead.text) << "seed " << seed << (mode == CB_DRIVE_BRIDGE ? " bridge" : " host");
            freed_somewhere += dead.text.find('1') != std::string::npos;
        }
        EXPECT_GT(freed_somewhere, size_t(kSeeds / 2)) << "the graphs should hold garbage";
    }
#endif
}

// The same graphs in sanitizer builds, checked against themselves: every
// node dies once released (and ASan watches every step).
TEST(RandomGraphs, EverythingDiesOnceReleased) {
    for (cb_drive_mode mode : {CB_DRIVE_BRIDGE, CB_DRIVE_HOST}) adapter_random_graphs(mode, 50, 200);
}

}  // namespace
