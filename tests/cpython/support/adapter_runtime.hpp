// A small runtime for the CPython adapter tests: a cyclebridge heap, the
// reference host heap standing for the runtime's own objects (a PyPy heap),
// and the cbpy_host hooks a runtime gives the adapter.
//
//   cbt::AdapterRuntime rt(CB_DRIVE_BRIDGE);
//   cb_host_ref h = rt.host(1);                // one slot, plus one for its twin
//   PyObject *twin = cbpy_twin(h);             // C's view of h
//   rt.collect();                              // one full collection of both heaps
//
// Host objects made by host() get one extra slot, the last, where
// attach_twin stores their twin (a host reference on it, as the protocol
// asks). call() counts the calls each host object receives. Every report
// is captured; tests must consume them (take) or the destructor fails.
#pragma once

#include <cyclebridge/cpython.h>
#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/refheap.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cycles.h"

namespace cbt {

struct CapturedReport {
    cb_report_kind kind;
    std::string message;
    const void *object;
};

class AdapterRuntime {
public:
    cb_heap *heap = nullptr;
    cb_refheap *rh = nullptr;
    std::vector<CapturedReport> reports;
    std::map<cb_host_ref, int> calls;         // host object -> calls received
    std::vector<PyObject *> call_args;        // the argument of each call
    bool refuse_twins = false;

    explicit AdapterRuntime(cb_drive_mode mode = CB_DRIVE_BRIDGE, uint32_t flags = CB_HEAP_NO_AUTO_COLLECT) {
        cb_heap_options options{};
        options.flags = flags;
        heap = cb_heap_new(&options);
        cb_set_report_handler(heap, &AdapterRuntime::on_report, this);
        rh = cb_refheap_new(heap, mode);
        cbpy_host host{};
        host.ctx = this;
        host.attach_twin = &AdapterRuntime::attach_twin;
        host.call = &AdapterRuntime::call;
        host.collect = &AdapterRuntime::collect_hook;
        EXPECT_EQ(cbpy_init(heap, &host), CB_OK);
        EXPECT_EQ(cyc_init(), 0);
        cyc_reset_counts();
    }

    virtual ~AdapterRuntime() {
        PyErr_Clear();
        cb_uncollectable_release(heap);
        cyc_break_legacy();
        cyc_release_saved();
        cyc_release_weakrefs();
        collect();
        cb_refheap_destroy(rh);
        rh = nullptr;
        cb_collect(heap, CB_FULL, nullptr);   // what only host objects held
        EXPECT_EQ(tracked(), 0u) << "objects left tracked at the end of the test";
        cbpy_fini();
        cb_heap_destroy(heap);
        for (const CapturedReport &r : reports)
            ADD_FAILURE() << "unexpected report (kind " << r.kind << "): " << r.message;
    }
    AdapterRuntime(const AdapterRuntime &) = delete;
    AdapterRuntime &operator=(const AdapterRuntime &) = delete;

    // A host object with nslots slots for the test and one for its twin.
    cb_host_ref host(size_t nslots, bool rooted = false) {
        cb_host_ref h = cb_refheap_alloc(rh, nslots + 1);
        if (rooted) cb_refheap_add_root(rh, h);
        return h;
    }
    void set(cb_host_ref h, size_t slot, PyObject *node) { EXPECT_EQ(cb_refheap_set_node(rh, h, slot, node), CB_OK); }
    void set(cb_host_ref h, size_t slot, cb_host_ref target) {
        EXPECT_EQ(cb_refheap_set_host(rh, h, slot, target), CB_OK);
    }
    size_t host_objects() const { return cb_refheap_live_count(rh); }

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

private:
    static void on_report(void *ctx, const cb_report *r) {
        static_cast<AdapterRuntime *>(ctx)->reports.push_back({r->kind, r->message, r->object});
    }
    static int attach_twin(void *ctx, cb_host_ref obj, PyObject *twin) {
        auto *self = static_cast<AdapterRuntime *>(ctx);
        size_t slots = cb_refheap_slot_count(self->rh, obj);
        if (self->refuse_twins || slots == 0) return -1;
        return cb_refheap_set_node(self->rh, obj, slots - 1, twin) == CB_OK ? 0 : -1;
    }
    static int call(void *ctx, cb_host_ref fn, PyObject *arg) {
        auto *self = static_cast<AdapterRuntime *>(ctx);
        self->calls[fn]++;
        self->call_args.push_back(arg);
        return 0;
    }
    static long collect_hook(void *ctx) {
        return static_cast<long>(static_cast<AdapterRuntime *>(ctx)->collect().garbage);
    }
};

}  // namespace cbt
