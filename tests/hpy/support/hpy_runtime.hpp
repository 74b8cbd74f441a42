// A small runtime for the HPy adapter tests: the CPython adapter tests'
// runtime (a cyclebridge heap, the reference host heap, the CPython-style
// adapter bound to it, report capture) plus an HPy context whose host hooks
// make handles to host objects refheap roots.
//
//   cbt::HpyRuntime rt(CB_DRIVE_BRIDGE);        // CBHPY_DEBUG: rt(mode, true)
//   HPy n = hn_new(rt.ctx, HN_NODE);
//   rt.collect();                                // one full collection
//
// Tests must take() every report, or the destructor fails. The destructor
// closes the context, which must succeed.
#pragma once

#include <cyclebridge/hpy_runtime.h>

#include "cpython/support/adapter_runtime.hpp"
#include "hpy_nodes.h"

namespace cbt {

class HpyRuntime : public AdapterRuntime {
public:
    HPyContext *ctx = nullptr;
    bool closed = false;
    int holds = 0;   // host holds not yet released

    explicit HpyRuntime(cb_drive_mode mode = CB_DRIVE_BRIDGE, bool debug = false) : AdapterRuntime(mode) {
        host_hooks.ctx = this;
        host_hooks.hold = &HpyRuntime::hold;
        host_hooks.release = &HpyRuntime::release;
        cbhpy_options options{};
        options.flags = debug ? CBHPY_DEBUG : 0;
        options.host = &host_hooks;
        ctx = cbhpy_open(heap, &options);
        EXPECT_NE(ctx, nullptr);
        hn_reset();
        hn_set_caller_context(ctx);
        EXPECT_EQ(hn_init(ctx), 0) << cbhpy_error_message(ctx);
    }

    ~HpyRuntime() override {
        if (!closed) {
            EXPECT_EQ(close(), CB_OK);
        }
    }

    // Closes the context now (the test checks the result).
    cb_status close() {
        hn_clear_globals(ctx);
        cb_status status = cbhpy_close(ctx);
        closed = status == CB_OK;
        return status;
    }

    uint64_t hid(cb_host_ref h) const { return cb_refheap_id(rh, h); }
    bool host_live(uint64_t id) const { return cb_refheap_is_live(rh, id) != 0; }
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
    // The pending error's message, cleared.
    std::string error() {
        const char *e = cbhpy_error_message(ctx);
        std::string s = e ? e : "";
        HPyErr_Clear(ctx);
        return s;
    }

private:
    cbhpy_host host_hooks{};

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
