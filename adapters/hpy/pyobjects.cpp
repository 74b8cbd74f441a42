// Conversions with the CPython-style adapter (adapters/cpython), bound to
// the same heap: HPy_AsPyObject and HPy_FromPyObject, and the proxies.
//
// A proxy is the PyObject standing for an HPy object in CPython-style
// code, as cpyext's PyObject stands for a PyPy object: a refcounted node,
// one per HPy object at a time, whose only edge is the HPy object and
// which holds no count on it (edges into handle-managed nodes never do).
// So C code holding the proxy keeps the HPy object alive (the proxy is a
// root and marks it), and a cycle through a proxy is garbage like any
// other: clearing a garbage proxy cuts its edge.
#include "../cpython/interop.hpp"
#include "context.hpp"
#include "proxy.h"

#include <cyclebridge/cpython.h>

namespace cbhpy {

namespace {

int traverse_proxy(void *obj, cb_visit_fn visit, void *arg) {
    void *target = static_cast<cbhpy_proxy_object *>(obj)->target;
    return target ? visit(target, arg) : 0;
}

void cut(cbhpy_proxy_object *proxy) {
    if (auto *target = static_cast<ObjectPrefix *>(proxy->target)) {
        if (target->proxy == proxy) target->proxy = nullptr;
        proxy->target = nullptr;
    }
}

bool bound_to(Context *ctx, const char *what, const char *where) {
    if (cbpy_heap() == ctx->heap) return true;
    fail(ctx, where, "%s: the CPython-style adapter is not bound to this context's heap (cbpy_init)", what);
    return false;
}

}  // namespace

void pyobject_incref(void *o) { Py_INCREF(static_cast<PyObject *>(o)); }
void pyobject_decref(void *o) { Py_DECREF(static_cast<PyObject *>(o)); }
bool pyobject_is_collectable_node(void *o) { return cbpy::is_collectable_node(static_cast<PyObject *>(o)); }
bool pyobject_is_adapter_node(void *node) { return cbpy::is_adapter_node(node); }

void detach_proxy(ObjectPrefix *o) { cut(static_cast<cbhpy_proxy_object *>(o->proxy)); }

void register_proxy_type() { cbpy::set_core_traverse(&cbhpy_ProxyType, traverse_proxy); }

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

// The proxy's edge is reported by traverse_proxy, for the core; CPython-
// style code sees no PyObject inside.
int cbhpy_proxy_traverse(PyObject *, visitproc, void *) { return 0; }

// Only garbage proxies are cleared: their HPy object is garbage too.
int cbhpy_proxy_clear(PyObject *self) {
    cut(reinterpret_cast<cbhpy_proxy_object *>(self));
    return 0;
}

void cbhpy_proxy_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    cut(reinterpret_cast<cbhpy_proxy_object *>(self));
    PyObject_GC_Del(self);
}

HPy _cbhpy_FromPyObject(HPyContext *ctx, PyObject *obj, const char *where) {
    if (!enter(ctx, "HPy_FromPyObject", where)) return HPy_NULL;
    if (!obj) {
        fail(ctx, where, "HPy_FromPyObject: NULL");
        return HPy_NULL;
    }
    if (Py_IS_TYPE(obj, &cbhpy_ProxyType)) {
        void *target = reinterpret_cast<cbhpy_proxy_object *>(obj)->target;
        if (!target) {
            fail(ctx, where, "HPy_FromPyObject: the HPy object behind this proxy was freed");
            return HPy_NULL;
        }
        return new_handle(ctx, Ref::make(RefKind::kObject, target), where);
    }
    if (cb_host_ref host = cbpy_twin_host(obj)) return new_handle(ctx, Ref::make(RefKind::kHost, host), where);
    return new_handle(ctx, Ref::make(RefKind::kPyObject, obj), where);
}

PyObject *_cbhpy_AsPyObject(HPyContext *ctx, HPy h, const char *where) {
    Ref ref;
    if (!enter(ctx, "HPy_AsPyObject", where) || !resolve(ctx, h, "HPy_AsPyObject", where, false, ref)) return nullptr;
    switch (ref.kind()) {
    case RefKind::kPyObject:
        return Py_NewRef(static_cast<PyObject *>(ref.ptr()));
    case RefKind::kHost: {
        if (!bound_to(ctx, "HPy_AsPyObject", where)) return nullptr;
        PyObject *twin = cbpy_twin(ref.ptr());
        if (!twin) fail(ctx, where, "HPy_AsPyObject: no twin for host object %p: %s", ref.ptr(),
                        cbpy_error_message() ? cbpy_error_message() : "?");
        return twin;
    }
    case RefKind::kObject: {
        if (!bound_to(ctx, "HPy_AsPyObject", where)) return nullptr;
        ObjectPrefix *o = object_of(ref);
        if (o->proxy) return Py_NewRef(static_cast<PyObject *>(o->proxy));
        auto *proxy = PyObject_GC_New(cbhpy_proxy_object, &cbhpy_ProxyType);
        if (!proxy) {
            fail(ctx, where, "HPy_AsPyObject: cannot allocate a proxy");
            return nullptr;
        }
        proxy->target = o;
        o->proxy = proxy;
        PyObject_GC_Track(proxy);
        cb_write_barrier(ctx->heap, o);   // the proxy's edge holds no count
        return reinterpret_cast<PyObject *>(proxy);
    }
    case RefKind::kInvalid:
        break;
    }
    return nullptr;
}

}  // extern "C"
