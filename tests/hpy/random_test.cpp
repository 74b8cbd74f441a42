// Randomized differential test: random graphs of HPy objects, CPython-style
// objects and host objects, with random edges between any two kinds and
// random roots (open handles, C references, host roots). A reference model
// computes what is reachable; one full collection must free exactly the
// rest, in both drive modes, and dropping every root must free everything.
#include <random>

#include "support/hpy_runtime.hpp"

using namespace cbt;

namespace {

enum Kind { kHPy, kPy, kHost };

struct Vertex {
    Kind kind;
    HPy handle = HPy_NULL;       // kHPy: kept open while rooted, else closed
    long id = 0;                 // kHPy
    PyObject *py = nullptr;      // kPy
    cb_host_ref host = nullptr;  // kHost
    uint64_t host_id = 0;
    bool root = false;
    int out[2] = {-1, -1};
};

class Random : public ::testing::TestWithParam<cb_drive_mode> {};

// A new handle for vertex v, to store into an HPy field.
HPy handle_for(HpyRuntime &rt, const Vertex &v) {
    switch (v.kind) {
    case kHPy: return HPy_Dup(rt.ctx, v.handle);
    case kPy: return HPy_FromPyObject(rt.ctx, v.py);
    case kHost: return cbhpy_from_host(rt.ctx, v.host);
    }
    return HPy_NULL;
}

// A new reference for vertex v, to store into a CPython-style object.
PyObject *pyobject_for(HpyRuntime &rt, const Vertex &v) {
    HPy h = handle_for(rt, v);
    PyObject *o = HPy_AsPyObject(rt.ctx, h);
    HPy_Close(rt.ctx, h);
    return o;
}

void run_graph(cb_drive_mode mode, uint32_t seed, int &with_garbage) {
    HpyRuntime rt(mode);
    std::mt19937 rng(seed);
    const int n = 20 + int(rng() % 100);
    std::vector<Vertex> vs(size_t(n), Vertex{});
    for (Vertex &v : vs) {
        v.kind = Kind(rng() % 3);
        v.root = rng() % 6 == 0;
        if (v.kind == kHPy) {
            v.handle = hn_new(rt.ctx, HN_NODE);
            v.id = hn_id(rt.ctx, v.handle);
        } else if (v.kind == kPy) {
            v.py = cyc_node_new();
        } else {
            v.host = rt.host(2, v.root);
            v.host_id = rt.hid(v.host);
        }
    }
    for (Vertex &v : vs) {
        for (int s = 0; s < 2; ++s) {
            if (rng() % 4 == 0) continue;
            v.out[s] = int(rng() % uint32_t(n));
            const Vertex &t = vs[size_t(v.out[s])];
            if (v.kind == kHPy) {
                HPy h = handle_for(rt, t);
                ASSERT_EQ(hn_set(rt.ctx, v.handle, s, h), 0) << rt.error();
                HPy_Close(rt.ctx, h);
            } else if (v.kind == kPy) {
                PyObject *o = pyobject_for(rt, t);
                ASSERT_EQ(cyc_node_set(v.py, s, o), 0);
                Py_DECREF(o);
            } else if (t.kind == kHost) {
                ASSERT_EQ(cb_refheap_set_host(rt.rh, v.host, size_t(s), t.host), CB_OK);
            } else {
                void *node = t.kind == kHPy ? cbhpy_as_node(rt.ctx, t.handle) : t.py;
                ASSERT_EQ(cb_refheap_set_node(rt.rh, v.host, size_t(s), node), CB_OK);
            }
        }
    }
    // Drop what is not a root.
    long py_garbage_expected = 0;
    std::vector<char> reached(size_t(n), 0);
    std::vector<int> stack;
    for (int i = 0; i < n; ++i)
        if (vs[size_t(i)].root) stack.push_back(i);
    while (!stack.empty()) {
        int i = stack.back();
        stack.pop_back();
        if (reached[size_t(i)]) continue;
        reached[size_t(i)] = 1;
        for (int t : vs[size_t(i)].out)
            if (t >= 0) stack.push_back(t);
    }
    for (int i = 0; i < n; ++i) {
        Vertex &v = vs[size_t(i)];
        if (v.root) continue;
        if (v.kind == kHPy) {
            HPy_Close(rt.ctx, v.handle);
            v.handle = HPy_NULL;
        } else if (v.kind == kPy) {
            Py_DECREF(v.py);   // may die here, by count alone
        }
        if (v.kind == kPy && !reached[size_t(i)]) ++py_garbage_expected;
    }
    long py_before = cyc_deallocs(CYC_NODE);
    rt.collect();
    long hpy_garbage = 0;
    for (int i = 0; i < n; ++i) {
        const Vertex &v = vs[size_t(i)];
        bool live = reached[size_t(i)];
        if (v.kind == kHPy) {
            EXPECT_EQ(hn_was_destroyed(v.id), !live) << "seed " << seed << " vertex " << i;
            hpy_garbage += !live;
        }
        if (v.kind == kHost) {
            EXPECT_EQ(rt.host_live(v.host_id), live) << "seed " << seed << " vertex " << i;
        }
    }
    EXPECT_EQ(cyc_deallocs(CYC_NODE), py_garbage_expected) << "seed " << seed << " (" << py_before
                                                           << " died by count alone)";
    if (hpy_garbage + py_garbage_expected > 0) ++with_garbage;

    // Every root goes: everything is freed.
    for (Vertex &v : vs) {
        if (!v.root) continue;
        if (v.kind == kHPy) HPy_Close(rt.ctx, v.handle);
        if (v.kind == kPy) Py_DECREF(v.py);
        if (v.kind == kHost) cb_refheap_remove_root(rt.rh, v.host);
    }
    rt.collect();
    rt.collect();   // twins whose host objects the last sweep reclaimed
    long hpy_total = 0, py_total = 0;
    for (const Vertex &v : vs) {
        if (v.kind == kHPy) {
            EXPECT_TRUE(hn_was_destroyed(v.id)) << "seed " << seed;
            ++hpy_total;
        }
        if (v.kind == kPy) ++py_total;
        if (v.kind == kHost) {
            EXPECT_FALSE(rt.host_live(v.host_id)) << "seed " << seed;
        }
    }
    EXPECT_EQ(hn_destroyed(HN_NODE), hpy_total);
    EXPECT_EQ(cyc_deallocs(CYC_NODE), py_total);
    EXPECT_EQ(rt.holds, 0);
}

TEST_P(Random, SameObjectsDieAsInTheModel) {
    int with_garbage = 0;
    constexpr int kGraphs = 300;
    for (uint32_t seed = 1; seed <= kGraphs; ++seed) {
        run_graph(GetParam(), seed, with_garbage);
        if (::testing::Test::HasFailure()) break;
    }
    EXPECT_GT(with_garbage, kGraphs / 2) << "most graphs should hold garbage";
}

INSTANTIATE_TEST_SUITE_P(Modes, Random, ::testing::Values(CB_DRIVE_BRIDGE, CB_DRIVE_HOST), mode_name);

}  // namespace
