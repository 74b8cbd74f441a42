// References by kind: resolving handles, what holding a reference costs
// (see the table in context.hpp), how a traverse reports one, and handles
// to host objects and nodes for the runtime.
#include "context.hpp"

namespace cbhpy {

bool resolve(Context *ctx, HPy h, const char *what, const char *where, bool allow_null, Ref &out) {
    out = Ref{};
    if (HPy_IsNull(h)) {
        if (allow_null) return true;
        fail(ctx, where, "%s: HPy_NULL is not a handle", what);
        return false;
    }
    if (HandleSlot *slot = ctx->handles.find(h)) {
        out = slot->ref;
        return true;
    }
    HandleSlot *slot = ctx->handles.slot_of(h);
    auto raw = static_cast<unsigned long>(h._i);
    if (!slot) {
        fail(ctx, where, "%s: %#lx is not a handle of this context", what, raw);
    } else if (!ctx->debug) {
        fail(ctx, where, "%s: handle %#lx is closed (CBHPY_DEBUG tells where it was opened and closed)", what, raw);
    } else if (!slot->open && slot->generation == HandleTable::generation_of(h) + 1) {
        fail(ctx, where, "%s: handle %#lx was closed at %s (opened at %s)", what, raw,
             slot->closed_at ? slot->closed_at : "?", slot->opened_at ? slot->opened_at : "?");
    } else {
        fail(ctx, where, "%s: handle %#lx was closed, and its slot reused since", what, raw);
    }
    return false;
}

bool retain_strong(Context *ctx, Ref ref, const char *where) {
    switch (ref.kind()) {
    case RefKind::kObject:
        return cb_incref(ctx->heap, ref.ptr()) == CB_OK;
    case RefKind::kPyObject:
        pyobject_incref(ref.ptr());
        return true;
    case RefKind::kHost:
        if (!ctx->has_host) {
            fail(ctx, where, "a handle to a host object needs the runtime's cbhpy_host");
            return false;
        }
        if (ctx->host.hold(ctx->host.ctx, ref.ptr()) != 0) {
            fail(ctx, where, "the runtime refused to hold host object %p", ref.ptr());
            return false;
        }
        // Made by a finalizer from a garbage object's field, say: the
        // host's marking is over, and the hold alone would come too late.
        cb_write_barrier_host(ctx->heap, ref.ptr());
        return true;
    case RefKind::kInvalid:
        break;
    }
    fail(ctx, where, "corrupt reference %#lx", static_cast<unsigned long>(ref.bits));
    return false;
}

void release_strong(Context *ctx, Ref ref) {
    switch (ref.kind()) {
    case RefKind::kObject: cb_decref(ctx->heap, ref.ptr()); break;
    case RefKind::kPyObject: pyobject_decref(ref.ptr()); break;
    case RefKind::kHost: ctx->host.release(ctx->host.ctx, ref.ptr()); break;
    case RefKind::kInvalid: break;
    }
}

HPy adopt_handle(Context *ctx, Ref ref, const char *where) { return ctx->handles.open(ref, where, ctx->debug); }

HPy new_handle(Context *ctx, Ref ref, const char *where) {
    if (ref.null()) return HPy_NULL;
    if (!retain_strong(ctx, ref, where)) return HPy_NULL;
    return adopt_handle(ctx, ref, where);
}

void retain_field(Context *ctx, Ref ref) {
    switch (ref.kind()) {
    case RefKind::kObject: cb_write_barrier(ctx->heap, ref.ptr()); break;
    case RefKind::kPyObject: pyobject_incref(ref.ptr()); break;
    case RefKind::kHost: cb_write_barrier_host(ctx->heap, ref.ptr()); break;
    case RefKind::kInvalid: break;
    }
}

void release_field(Context *, Ref ref) {
    if (ref.kind() == RefKind::kPyObject) pyobject_decref(ref.ptr());
}

int visit_ref(Ref ref, cb_visit_fn visit, void *arg) {
    switch (ref.kind()) {
    case RefKind::kObject: return visit(ref.ptr(), arg);
    case RefKind::kPyObject: return pyobject_is_collectable_node(ref.ptr()) ? visit(ref.ptr(), arg) : 0;
    case RefKind::kHost: cb_visit_host(arg, ref.ptr()); return 0;
    case RefKind::kInvalid: return 0;
    }
    return 0;
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

HPy _cbhpy_from_host(HPyContext *ctx, cb_host_ref obj, const char *where) {
    if (!enter(ctx, "cbhpy_from_host", where)) return HPy_NULL;
    if (!obj || (reinterpret_cast<uintptr_t>(obj) & 3u)) {
        fail(ctx, where, "cbhpy_from_host: %p is not a 4-byte aligned host object", obj);
        return HPy_NULL;
    }
    return new_handle(ctx, Ref::make(RefKind::kHost, obj), where);
}

cb_host_ref cbhpy_as_host(HPyContext *ctx, HPy h) {
    Ref ref;
    if (!enter(ctx, "cbhpy_as_host", nullptr) || !resolve(ctx, h, "cbhpy_as_host", nullptr, false, ref)) return nullptr;
    return ref.kind() == RefKind::kHost ? ref.ptr() : nullptr;
}

HPy _cbhpy_from_node(HPyContext *ctx, void *node, const char *where) {
    if (!enter(ctx, "cbhpy_from_node", where)) return HPy_NULL;
    const cb_type *type = node ? cb_type_of(ctx->heap, node) : nullptr;
    for (const auto &record : ctx->types)
        if (type && record->node_type == type) return new_handle(ctx, Ref::make(RefKind::kObject, node), where);
    if (pyobject_is_adapter_node(node)) return new_handle(ctx, Ref::make(RefKind::kPyObject, node), where);
    fail(ctx, where, "cbhpy_from_node: %p is neither an HPy object of this context nor a tracked PyObject", node);
    return HPy_NULL;
}

void *cbhpy_as_node(HPyContext *ctx, HPy h) {
    Ref ref;
    if (!enter(ctx, "cbhpy_as_node", nullptr) || !resolve(ctx, h, "cbhpy_as_node", nullptr, false, ref)) return nullptr;
    if (ref.kind() == RefKind::kObject) return ref.ptr();
    if (ref.kind() == RefKind::kPyObject && pyobject_is_collectable_node(ref.ptr())) return ref.ptr();
    return nullptr;
}

}  // extern "C"
