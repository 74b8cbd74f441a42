// The context: opening and closing it, its error state, and reports.
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <new>
#include <unordered_set>

#include "context.hpp"

namespace cbhpy {

namespace {

// Heaps that have a context: one each, as one interpreter per heap. Each
// heap is used by one thread, but different heaps may be used by different
// threads: the registry is shared.
std::mutex registry_mutex;
std::unordered_set<cb_heap *> &heaps_with_context() {
    static std::unordered_set<cb_heap *> heaps;
    return heaps;
}

// Claims heap for a new context; false if it has one.
bool claim(cb_heap *heap) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    return heaps_with_context().insert(heap).second;
}

void unclaim(cb_heap *heap) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    heaps_with_context().erase(heap);
}

std::string vformat(const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return buf;
}

}  // namespace

void fail(Context *ctx, const char *where, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string message = vformat(fmt, ap);
    va_end(ap);
    if (where) message += std::string(" (at ") + where + ")";
    ctx->error_set = true;
    ctx->error = "SystemError: " + message;
    cb_report_issue(ctx->heap, CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT, nullptr, nullptr, message.c_str());
}

void report(Context *ctx, cb_report_kind kind, const void *object, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string message = vformat(fmt, ap);
    va_end(ap);
    cb_report_issue(ctx->heap, kind, CB_OK, object, nullptr, message.c_str());
}

bool enter(Context *ctx, const char *what, const char *where) {
    if (!ctx) {
        std::fprintf(stderr, "cyclebridge hpy: %s with a NULL context (at %s)\n", what, where ? where : "?");
        return false;
    }
    if (ctx->destroying) {
        fail(ctx, where, "%s called from HPy_tp_destroy of %s, which may not call back into the runtime; refused",
             what, ctx->destroying->name.c_str());
        return false;
    }
    return true;
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

HPyContext *cbhpy_open(cb_heap *heap, const cbhpy_options *options) {
    if (!heap) {
        std::fprintf(stderr, "cyclebridge hpy: cbhpy_open with a NULL heap\n");
        return nullptr;
    }
    if (options && options->host && (!options->host->hold || !options->host->release)) {
        cb_report_issue(heap, CB_REPORT_API_MISUSE, CB_ERR_BAD_ARGUMENT, nullptr, nullptr,
                        "cbhpy_open: cbhpy_host needs both hold and release");
        return nullptr;
    }
    if (!claim(heap)) {
        cb_report_issue(heap, CB_REPORT_API_MISUSE, CB_ERR_BUSY, nullptr, nullptr,
                        "cbhpy_open: the heap has an HPy context already");
        return nullptr;
    }
    auto *ctx = new (std::nothrow) Context;
    if (!ctx) {
        unclaim(heap);
        return nullptr;
    }
    ctx->heap = heap;
    ctx->debug = options && (options->flags & CBHPY_DEBUG);
    if (options && options->host) {
        ctx->host = *options->host;
        ctx->has_host = true;
    }
    register_proxy_type();
    if (!init_metatype(ctx)) {
        unclaim(heap);
        delete ctx;
        return nullptr;
    }
    return ctx;
}

cb_status cbhpy_close(HPyContext *ctx) {
    if (!enter(ctx, "cbhpy_close", nullptr)) return ctx ? CB_ERR_BUSY : CB_ERR_NULL_ARGUMENT;
    if (cb_is_collecting(ctx->heap)) {
        fail(ctx, nullptr, "cbhpy_close while a collection runs: refused");
        return CB_ERR_BUSY;
    }
    if (size_t open = ctx->handles.open_count()) {
        if (ctx->debug) {
            ctx->handles.each_open([&](HPy h, const HandleSlot &slot) {
                report(ctx, CB_REPORT_LEAKED_AT_DESTROY, slot.ref.ptr(),
                       "hpy: handle %#lx still open at cbhpy_close, opened at %s", static_cast<unsigned long>(h._i),
                       slot.opened_at ? slot.opened_at : "?");
            });
        } else {
            report(ctx, CB_REPORT_LEAKED_AT_DESTROY, nullptr,
                   "hpy: %zu handles still open at cbhpy_close (open the context with CBHPY_DEBUG to see where "
                   "each was opened)",
                   open);
        }
        std::vector<HPy> leaked;
        ctx->handles.each_open([&](HPy h, const HandleSlot &) { leaked.push_back(h); });
        for (HPy h : leaked) _cbhpy_Close(ctx, h, "cbhpy_close");
    }
    drop_globals(ctx);
    if (TypeRecord *meta = ctx->metatype; meta && meta->type_object && meta->type_object->handles > 0) {
        cb_decref(ctx->heap, meta->type_object);   // the context's own hold on the type of types
    }
    if (ctx->live_objects > 0) cb_collect(ctx->heap, CB_FULL, nullptr);
    if (ctx->live_objects > 0) {
        report(ctx, CB_REPORT_LEAKED_AT_DESTROY, nullptr,
               "hpy: cbhpy_close: %zu HPy objects are still alive, held by refcounted or host objects; the "
               "context stays open",
               ctx->live_objects);
        if (ctx->metatype && ctx->metatype->type_object) cb_incref(ctx->heap, ctx->metatype->type_object);
        ctx->error_set = true;
        ctx->error = "SystemError: HPy objects are still alive";
        return CB_ERR_BUSY;
    }
    unclaim(ctx->heap);
    delete ctx;
    return CB_OK;
}

cb_heap *cbhpy_heap(const HPyContext *ctx) { return ctx ? ctx->heap : nullptr; }
int cbhpy_is_debug(const HPyContext *ctx) { return ctx && ctx->debug; }
size_t cbhpy_open_handles(const HPyContext *ctx) { return ctx ? ctx->handles.open_count() : 0; }
size_t cbhpy_live_objects(const HPyContext *ctx) { return ctx ? ctx->live_objects : 0; }

void cbhpy_each_open_handle(const HPyContext *ctx, void (*fn)(void *arg, HPy h, const char *opened_at), void *arg) {
    if (!ctx || !fn) return;
    ctx->handles.each_open([&](HPy h, const HandleSlot &slot) { fn(arg, h, slot.opened_at ? slot.opened_at : "?"); });
}

const char *cbhpy_error_message(const HPyContext *ctx) {
    return ctx && ctx->error_set ? ctx->error.c_str() : nullptr;
}

int HPyErr_Occurred(HPyContext *ctx) { return ctx && ctx->error_set; }

void HPyErr_Clear(HPyContext *ctx) {
    if (!ctx) return;
    ctx->error_set = false;
    ctx->error.clear();
}

}  // extern "C"
