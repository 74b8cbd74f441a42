// Cycles through HPy objects, in both drive modes: through fields alone,
// HPy <-> CPython-style objects, HPy <-> host objects, and all three. Each
// kind of garbage is freed by one full collection; live ones survive.
#include "support/hpy_runtime.hpp"

using namespace cbt;

namespace {

class Cycles : public ::testing::TestWithParam<cb_drive_mode> {};

constexpr int kN = 10000;

// hpy.a = py; py.a = proxy(hpy). Returns py (a new reference) and the HPy
// object's id; no handle is left open.
PyObject *hpy_py_cycle(HpyRuntime &rt, long *id) {
    HPy node = hn_new(rt.ctx, HN_NODE);
    *id = hn_id(rt.ctx, node);
    PyObject *py = cyc_node_new();
    HPy hpy_py = HPy_FromPyObject(rt.ctx, py);
    EXPECT_EQ(hn_set(rt.ctx, node, 0, hpy_py), 0);
    PyObject *proxy = HPy_AsPyObject(rt.ctx, node);
    EXPECT_EQ(cyc_node_set(py, 0, proxy), 0);
    Py_DECREF(proxy);
    HPy_Close(rt.ctx, hpy_py);
    HPy_Close(rt.ctx, node);
    return py;
}

TEST_P(Cycles, FieldOnlyCyclesAreFreedByOneCollection) {
    HpyRuntime rt(GetParam());
    size_t baseline = cbhpy_live_objects(rt.ctx);
    ASSERT_EQ(hn_self_cycles(rt.ctx, kN), 0);
    ASSERT_EQ(hn_two_cycles(rt.ctx, kN), 0);
    ASSERT_EQ(hn_rings(rt.ctx, kN, 100), 0);
    EXPECT_EQ(cbhpy_open_handles(rt.ctx), 0u);
    cb_collection_stats stats = rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 3 * kN);
    EXPECT_EQ(stats.garbage, uint64_t(3 * kN));
    EXPECT_EQ(cbhpy_live_objects(rt.ctx), baseline);
}

TEST_P(Cycles, LiveCyclesSurvive) {
    // Four rings of 10: held by a handle, a global, a rooted host object,
    // and a PyObject C holds. None dies in five collections.
    HpyRuntime rt(GetParam());
    static HPyGlobal global;
    std::vector<HPy> heads;
    for (int r = 0; r < 4; ++r) {
        HPy first = hn_new(rt.ctx, HN_NODE), prev = HPy_Dup(rt.ctx, first);
        for (int i = 1; i < 10; ++i) {
            HPy node = hn_new(rt.ctx, HN_NODE);
            ASSERT_EQ(hn_set(rt.ctx, prev, 0, node), 0);
            HPy_Close(rt.ctx, prev);
            prev = node;
        }
        ASSERT_EQ(hn_set(rt.ctx, prev, 0, first), 0);
        HPy_Close(rt.ctx, prev);
        heads.push_back(first);
    }
    HPyGlobal_Store(rt.ctx, &global, heads[1]);
    HPy_Close(rt.ctx, heads[1]);
    cb_host_ref h = rt.host(1, /*rooted=*/true);
    rt.set(h, 0, heads[2]);
    HPy_Close(rt.ctx, heads[2]);
    PyObject *held = cyc_node_new();
    PyObject *proxy = HPy_AsPyObject(rt.ctx, heads[3]);
    ASSERT_EQ(cyc_node_set(held, 0, proxy), 0);
    Py_DECREF(proxy);
    HPy_Close(rt.ctx, heads[3]);
    for (int i = 0; i < 5; ++i) rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 0);

    HPy_Close(rt.ctx, heads[0]);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 10);
    HPyGlobal_Store(rt.ctx, &global, HPy_NULL);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 20);
    cb_refheap_remove_root(rt.rh, h);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 30);
    Py_DECREF(held);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 40);
    EXPECT_EQ(cyc_deallocs(CYC_NODE), 1);
}

TEST_P(Cycles, HPyAndCPythonStyleCyclesAreFreedByOneCollection) {
    // hpy.a = py; py.a = proxy(hpy), kN times.
    HpyRuntime rt(GetParam());
    long id;
    for (int i = 0; i < kN; ++i) Py_DECREF(hpy_py_cycle(rt, &id));
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), kN);
    EXPECT_EQ(cyc_deallocs(CYC_NODE), kN);
}

TEST_P(Cycles, LiveHPyAndCPythonStyleCycleSurvivesUntilCDropsIt) {
    HpyRuntime rt(GetParam());
    long id;
    PyObject *py = hpy_py_cycle(rt, &id);
    for (int i = 0; i < 3; ++i) rt.collect();   // C still holds py
    EXPECT_FALSE(hn_was_destroyed(id));
    EXPECT_EQ(cyc_deallocs(CYC_NODE), 0);
    HPy again = HPy_FromPyObject(rt.ctx, cyc_node_get(py, 0));
    EXPECT_EQ(hn_id(rt.ctx, again), id) << "the proxy still leads to the same HPy object";
    HPy_Close(rt.ctx, again);
    Py_DECREF(py);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(id));
    EXPECT_EQ(cyc_deallocs(CYC_NODE), 1);
}

TEST_P(Cycles, HPyAndHostCyclesAreFreedByOneCollection) {
    // hpy.a = host object h; h's slot holds hpy.
    HpyRuntime rt(GetParam());
    size_t hosts_before = rt.host_objects();
    for (int i = 0; i < kN; ++i) {
        HPy node = hn_new(rt.ctx, HN_NODE);
        cb_host_ref h = rt.host(1);
        HPy hh = cbhpy_from_host(rt.ctx, h);
        ASSERT_EQ(hn_set(rt.ctx, node, 0, hh), 0);
        rt.set(h, 0, node);
        HPy_Close(rt.ctx, hh);
        HPy_Close(rt.ctx, node);
    }
    EXPECT_EQ(rt.holds, 0);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), kN);
    EXPECT_EQ(rt.host_objects(), hosts_before);
}

TEST_P(Cycles, LiveHPyAndHostCycleSurvives) {
    HpyRuntime rt(GetParam());
    HPy node = hn_new(rt.ctx, HN_NODE);
    long id = hn_id(rt.ctx, node);
    cb_host_ref h = rt.host(1, /*rooted=*/true);
    uint64_t ih = rt.hid(h);
    HPy hh = cbhpy_from_host(rt.ctx, h);
    ASSERT_EQ(hn_set(rt.ctx, node, 0, hh), 0);
    rt.set(h, 0, node);
    HPy_Close(rt.ctx, hh);
    HPy_Close(rt.ctx, node);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_FALSE(hn_was_destroyed(id));
    EXPECT_TRUE(rt.host_live(ih));
    cb_refheap_remove_root(rt.rh, h);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(id));
    EXPECT_FALSE(rt.host_live(ih));
}

TEST_P(Cycles, HostObjectReachedOnlyThroughAnHPyFieldLives) {
    // A handle roots hpy; hpy.a = h is h's only holder.
    HpyRuntime rt(GetParam());
    HPy node = hn_new(rt.ctx, HN_NODE);
    cb_host_ref h = rt.host(1);
    uint64_t ih = rt.hid(h);
    HPy hh = cbhpy_from_host(rt.ctx, h);
    ASSERT_EQ(hn_set(rt.ctx, node, 0, hh), 0);
    HPy_Close(rt.ctx, hh);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_TRUE(rt.host_live(ih));
    HPy loaded = hn_get(rt.ctx, node, 0);
    EXPECT_EQ(cbhpy_as_host(rt.ctx, loaded), h);
    HPy_Close(rt.ctx, loaded);
    HPy_Close(rt.ctx, node);
    rt.collect();
    EXPECT_FALSE(rt.host_live(ih));
}

TEST_P(Cycles, ThreeHeapCyclesAreFreedByOneCollection) {
    // hpy.a = py; py.a = twin(h); h's slot holds hpy: HPy -> CPython-style
    // -> host -> HPy. And the other way round: hpy.a = h; h -> py; py.a =
    // proxy(hpy).
    HpyRuntime rt(GetParam());
    size_t hosts_before = rt.host_objects();
    constexpr int n = 1000;
    for (int i = 0; i < n; ++i) {
        HPy node = hn_new(rt.ctx, HN_NODE);
        PyObject *py = cyc_node_new();
        cb_host_ref h = rt.host(1);
        HPy hpy_py = HPy_FromPyObject(rt.ctx, py);
        HPy hh = cbhpy_from_host(rt.ctx, h);
        if (i % 2 == 0) {
            ASSERT_EQ(hn_set(rt.ctx, node, 0, hpy_py), 0);
            PyObject *twin = HPy_AsPyObject(rt.ctx, hh);
            ASSERT_EQ(cyc_node_set(py, 0, twin), 0);
            Py_DECREF(twin);
            rt.set(h, 0, node);
        } else {
            ASSERT_EQ(hn_set(rt.ctx, node, 0, hh), 0);
            rt.set(h, 0, hpy_py);
            PyObject *proxy = HPy_AsPyObject(rt.ctx, node);
            ASSERT_EQ(cyc_node_set(py, 0, proxy), 0);
            Py_DECREF(proxy);
        }
        Py_DECREF(py);
        for (HPy x : {node, hpy_py, hh}) HPy_Close(rt.ctx, x);
    }
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), n);
    EXPECT_EQ(cyc_deallocs(CYC_NODE), n);
    rt.collect();   // twins the host's sweep released
    EXPECT_EQ(rt.host_objects(), hosts_before);
    EXPECT_EQ(rt.tracked(), cbhpy_live_objects(rt.ctx)) << "only the types are left";
}

INSTANTIATE_TEST_SUITE_P(Modes, Cycles, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

}  // namespace
