// A small runtime for the HPy adapter tests: a cyclebridge heap, the
// reference host heap standing for the runtime's own objects, the
// CPython-style adapter bound to the same heap, and an HPy context whose
// host hooks make handles to host objects refheap roots.
//
//   cbt::HpyRuntime rt(CB_DRIVE_BRIDGE);        // CBHPY_DEBUG: rt(mode, true)
//   HPy n = hn_new(rt.ctx, HN_NODE);
//   rt.collect();                                // one full collection
//
// Host objects made by host() get one extra slot, the last, for their twin.
// Every report is captured; tests must take() them or the destructor
// fails. The destructor closes the context, which must succeed.
#pragma once

#include <cyclebridge/cpython.h>
#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/hpy_runtime.h>
#include <cyclebridge/refheap.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cycles.h"
#include "hpy_nodes.h"

namespace cbt {

struct HpyReport {
    cb_report_kind kind;
    std::string message;
};

class HpyRuntime {
public:
    cb_heap *heap = nullptr;
    cb_refheap *rh = nullptr;
    HPyContext *ctx = nullptr;
    std::vector<HpyReport> reports;
    bool closed = false;

    explicit HpyRuntime(cb_drive_mode mode = CB_DRIVE_BRIDGE, bool debug = false) {
        cb_heap_options options{};
        options.flags = CB_HEAP_NO_AUTO_COLLECT;
        heap = cb_heap_new(&options);
        cb_set_report_handler(heap, &HpyRuntime::on_report, this);
        rh = cb_refheap_new(heap, mode);
        cbpy_host py{};
        py.ctx = this;
        py.attach_twin = &HpyRuntime::attach_twin;
        EXPECT_EQ(cbpy_init(heap, &py), CB_OK);
        EXPECT_EQ(cyc_init(), 0);
        cyc_reset_counts();
        host_hooks.ctx = this;
        host_hooks.hold = &HpyRuntime::hold;
        host_hooks.release = &HpyRuntime::release;
        cbhpy_options hopts{};
        hopts.flags = debug ? CBHPY_DEBUG : 0;
        hopts.host = &host_hooks;
        ctx = cbhpy_open(heap, &hopts);
        EXPECT_NE(ctx, nullptr);
        hn_reset();
        hn_set_caller_context(ctx);
        EXPECT_EQ(hn_init(ctx), 0) << cbhpy_error_message(ctx);
    }

    ~HpyRuntime() {
        if (!closed) {
            hn_clear_globals(ctx);
            EXPECT_EQ(cbhpy_close(ctx), CB_OK);
        }
        collect();
        cb_refheap_destroy(rh);
        cb_collect(heap, CB_FULL, nullptr);   // what only host objects held
        EXPECT_EQ(tracked(), 0u) << "objects left tracked at the end of the test";
        cbpy_fini();
        cb_heap_destroy(heap);
        for (const HpyReport &r : reports)
            ADD_FAILURE() << "unexpected report (kind " << r.kind << "): " << r.message;
    }
    HpyRuntime(const HpyRuntime &) = delete;
    HpyRuntime &operator=(const HpyRuntime &) = delete;

    // Closes the context now (the test checks the result).
    cb_status close() {
        hn_clear_globals(ctx);
        cb_status status = cbhpy_close(ctx);
        closed = status == CB_OK;
        return status;
    }

    // A host object with nslots slots for the test, and one for its twin.
    cb_host_ref host(size_t nslots, bool rooted = false) {
        cb_host_ref h = cb_refheap_alloc(rh, nslots + 1);
        if (rooted) cb_refheap_add_root(rh, h);
        return h;
    }
    uint64_t hid(cb_host_ref h) const { return cb_refheap_id(rh, h); }
    bool host_live(uint64_t id) const { return cb_refheap_is_live(rh, id) != 0; }
    size_t host_objects() const { return cb_refheap_live_count(rh); }
    // A host slot refers to what handle h refers to.
    void set(cb_host_ref obj, size_t slot, HPy h) {
        if (cb_host_ref target = cbhpy_as_host(ctx, h)) {
            EXPECT_EQ(cb_refheap_set_host(rh, obj, slot, target), CB_OK);
            return;
        }
        void *node = cbhpy_as_node(ctx, h);
        ASSERT_NE(node, nullptr);
        EXPECT_EQ(cb_refheap_set_node(rh, obj, slot, node), CB_OK);
    }

    cb_collection_stats collect() {
        cb_collection_stats stats{};
        EXPECT_EQ(cb_refheap_collect(rh, &stats), CB_OK);
        return stats;
    }
    size_t tracked() const {
        size_t n = 0;
        for (int g = 0; g <= CB_FULL; ++g) n += cb_generation_size(heap, g);
        return n;
    }
    // Reports of this kind (whose message contains `text`), consumed.
    int take(cb_report_kind kind, const std::string &text = "") {
        int n = 0;
        for (auto it = reports.begin(); it != reports.end();) {
            if (it->kind == kind && it->message.find(text) != std::string::npos) {
                ++n;
                it = reports.erase(it);
            } else {
                ++it;
            }
        }
        return n;
    }
    std::string error() {
        const char *e = cbhpy_error_message(ctx);
        std::string s = e ? e : "";
        HPyErr_Clear(ctx);
        return s;
    }

    cbhpy_host host_hooks{};
    int holds = 0;

private:
    static void on_report(void *self, const cb_report *r) {
        static_cast<HpyRuntime *>(self)->reports.push_back({r->kind, r->message});
    }
    static int attach_twin(void *self, cb_host_ref obj, PyObject *twin) {
        auto *rt = static_cast<HpyRuntime *>(self);
        size_t slots = cb_refheap_slot_count(rt->rh, obj);
        return cb_refheap_set_node(rt->rh, obj, slots - 1, twin) == CB_OK ? 0 : -1;
    }
    static int hold(void *self, cb_host_ref obj) {
        auto *rt = static_cast<HpyRuntime *>(self);
        rt->holds++;
        return cb_refheap_add_root(rt->rh, obj) == CB_OK ? 0 : -1;
    }
    static void release(void *self, cb_host_ref obj) {
        auto *rt = static_cast<HpyRuntime *>(self);
        rt->holds--;
        cb_refheap_remove_root(rt->rh, obj);
    }
};

inline std::string mode_name(const ::testing::TestParamInfo<cb_drive_mode> &info) {
    return info.param == CB_DRIVE_BRIDGE ? "BridgeDriven" : "HostDriven";
}

}  // namespace cbt
