// Weak references (weakrefobject.h). A weakref object has CPython's layout
// (PyWeakReference): extensions read wr_object through PyWeakref_GET_OBJECT
// and test their weaklist slot (tp_weaklistoffset) for NULL, so both are
// kept exactly as CPython keeps them: the slot heads a list linked through
// wr_prev/wr_next, basic references (no callback) first. Behind each one is
// a core weakref, which gives the collector's order: weakrefs to garbage
// cleared before any finalizer, a callback only if the weakref object
// itself survives. The core's on_clear hook updates wr_object and the list.
#include "builtin_slots.h"
#include "runtime.hpp"

namespace cbpy {

namespace {

PyObject **weaklist_of(PyObject *ob) {
    return reinterpret_cast<PyObject **>(reinterpret_cast<char *>(ob) + Py_TYPE(ob)->tp_weaklistoffset);
}

void unlink_from_target(PyWeakReference *ref) {
    PyObject *target = ref->wr_object;
    if (target == Py_None) return;
    if (ref->wr_prev) ref->wr_prev->wr_next = ref->wr_next;
    else *weaklist_of(target) = reinterpret_cast<PyObject *>(ref->wr_next);
    if (ref->wr_next) ref->wr_next->wr_prev = ref->wr_prev;
    ref->wr_prev = ref->wr_next = nullptr;
    ref->wr_object = Py_None;
}

void on_clear(cb_weakref *, void *data) { unlink_from_target(&static_cast<cbpy_weakref *>(data)->base); }

vectorcallfunc vectorcall_of(PyObject *callable) {
    PyTypeObject *tp = Py_TYPE(callable);
    if (!PyType_HasFeature(tp, Py_TPFLAGS_HAVE_VECTORCALL) || tp->tp_vectorcall_offset <= 0) return nullptr;
    return *reinterpret_cast<vectorcallfunc *>(reinterpret_cast<char *>(callable) + tp->tp_vectorcall_offset);
}

bool can_call(PyObject *callable) {
    Runtime *rt = runtime();
    if (cbpy_twin_host(callable)) return rt && rt->has_host && rt->host.call;
    return vectorcall_of(callable) != nullptr;
}

// As CPython's handle_callback: the callback is taken out of the weakref,
// called once with the weakref, and an exception it raises is reported.
void on_callback(cb_weakref *, void *data) {
    auto *ref = &static_cast<cbpy_weakref *>(data)->base;
    PyObject *callback = ref->wr_callback;
    if (!callback) return;
    ref->wr_callback = nullptr;
    auto *self = reinterpret_cast<PyObject *>(ref);
    if (cb_host_ref host = cbpy_twin_host(callback)) {
        Runtime *rt = runtime();
        if (rt->host.call(rt->host.ctx, host, self) != 0)
            report(CB_REPORT_CALLBACK_THREW, callback, "a weakref callback (a host object) failed");
    } else if (vectorcallfunc call = vectorcall_of(callback)) {
        PyObject *result = call(callback, &self, 1, nullptr);
        if (result) Py_DECREF(result);
        else report_unraisable(callback, "a weakref callback");
    }
    Py_DECREF(callback);
}

void forget_core(cbpy_weakref *wr) {
    if (!wr->core) return;
    if (Runtime *rt = runtime()) cb_weakref_free(rt->heap, wr->core);
    wr->core = nullptr;
}

}  // namespace

}  // namespace cbpy

extern "C" {

PyObject *PyWeakref_NewRef(PyObject *ob, PyObject *callback) {
    using namespace cbpy;
    cb_heap *heap = bound_heap("PyWeakref_NewRef");
    if (!heap) return nullptr;
    if (!ob) {
        PyErr_BadInternalCall();
        return nullptr;
    }
    if (Py_TYPE(ob)->tp_weaklistoffset <= 0) {
        PyErr_SetString(PyExc_TypeError, "cannot create weak reference to this object (its type has no tp_weaklistoffset)");
        return nullptr;
    }
    if (callback == Py_None) callback = nullptr;
    PyObject **list = weaklist_of(ob);
    auto *head = reinterpret_cast<PyWeakReference *>(*list);
    bool head_is_basic = head && !head->wr_callback && Py_IS_TYPE(reinterpret_cast<PyObject *>(head), &_PyWeakref_RefType);
    // One basic reference per object, shared, as in CPython.
    if (!callback && head_is_basic) return Py_NewRef(reinterpret_cast<PyObject *>(head));
    if (callback && !can_call(callback)) {
        PyErr_SetString(PyExc_TypeError,
                        "cyclebridge: a weakref callback must be a host object (a twin, with cbpy_host.call) or "
                        "an object whose type supports vectorcall");
        return nullptr;
    }
    auto *wr = reinterpret_cast<cbpy_weakref *>(_PyObject_GC_New(&_PyWeakref_RefType));
    if (!wr) return nullptr;
    PyWeakReference *ref = &wr->base;
    ref->wr_object = Py_None;   // until linked
    ref->wr_callback = Py_XNewRef(callback);
    ref->hash = -1;
    if (cb_weakref_new(heap, ob, wr, callback ? on_callback : nullptr, wr, &wr->core) != CB_OK) {
        Py_DECREF(reinterpret_cast<PyObject *>(wr));
        PyErr_SetString(PyExc_TypeError, "cannot create weak reference to an object the adapter did not allocate");
        return nullptr;
    }
    cb_weakref_on_clear(heap, wr->core, on_clear);
    ref->wr_object = ob;
    // Basic references at the head; others right after the basic one.
    PyWeakReference *prev = (callback && head_is_basic) ? head : nullptr;
    ref->wr_prev = prev;
    ref->wr_next = prev ? prev->wr_next : head;
    if (ref->wr_next) ref->wr_next->wr_prev = ref;
    if (prev) prev->wr_next = ref;
    else *list = reinterpret_cast<PyObject *>(ref);
    PyObject_GC_Track(wr);
    return reinterpret_cast<PyObject *>(wr);
}

PyObject *PyWeakref_GetObject(PyObject *ref) {
    if (!ref || !PyWeakref_CheckRef(ref)) {
        PyErr_BadInternalCall();
        return nullptr;
    }
    return PyWeakref_GET_OBJECT(ref);
}

void PyObject_ClearWeakRefs(PyObject *ob) {
    if (!ob || Py_TYPE(ob)->tp_weaklistoffset <= 0 || !*cbpy::weaklist_of(ob)) return;
    cb_heap *heap = cbpy::bound_heap("PyObject_ClearWeakRefs");
    if (!heap) return;
    cb_clear_weakrefs(heap, ob);
}

int cbpy_weakref_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(reinterpret_cast<PyWeakReference *>(self)->wr_callback);
    return 0;
}

// As CPython's gc_clear of a weakref: it is cleared and drops its callback.
int cbpy_weakref_clear(PyObject *self) {
    auto *wr = reinterpret_cast<cbpy_weakref *>(self);
    cbpy::unlink_from_target(&wr->base);
    cbpy::forget_core(wr);
    Py_CLEAR(wr->base.wr_callback);
    return 0;
}

void cbpy_weakref_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    cbpy_weakref_clear(self);
    PyObject_GC_Del(self);
}

}  // extern "C"
