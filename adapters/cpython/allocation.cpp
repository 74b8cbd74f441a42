// Allocation, tracking and deallocation of objects (objimpl.h): every
// object the adapter makes, GC type or not, comes from cb_alloc, with the
// core's 8-byte header where CPython keeps its PyGC_Head. Untracked
// objects are nodes the collector does not scan; Py_INCREF and Py_DECREF
// work on ob_refcnt directly, which is the core's count.
#include <cstring>

#include "builtin_slots.h"
#include "runtime.hpp"

namespace cbpy {

namespace {

// Zeroed memory for an instance of tp with nitems items, its type and
// count set (the heap type held), untracked.
PyObject *allocate(PyTypeObject *tp, Py_ssize_t nitems) {
    cb_heap *heap = bound_heap("object allocation");
    if (!heap) return nullptr;
    if (!tp || nitems < 0) {
        PyErr_BadInternalCall();
        return nullptr;
    }
    if (tp->tp_itemsize && nitems > (PY_SSIZE_T_MAX - tp->tp_basicsize) / tp->tp_itemsize) return PyErr_NoMemory();
    size_t size = _PyObject_VAR_SIZE(tp, nitems);
    if (size < sizeof(PyObject)) size = sizeof(PyObject);
    cb_type *type = node_type(tp);
    if (!type) return nullptr;
    auto *o = static_cast<PyObject *>(cb_alloc(heap, type, size));
    if (!o) return PyErr_NoMemory();
    Py_SET_TYPE(o, tp);
    if (tp->tp_itemsize) Py_SET_SIZE(reinterpret_cast<PyVarObject *>(o), nitems);
    if (PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) Py_INCREF(tp);
    return o;
}

void call_finalizer(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (!tp->tp_finalize) return;
    cb_heap *heap = cbpy_heap();
    bool gc = is_gc(self) && heap;
    if (gc && cb_is_finalized(heap, self)) return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    tp->tp_finalize(self);
    report_unraisable(self, "tp_finalize");
    PyErr_Restore(type, value, traceback);
    if (gc) cb_mark_finalized(heap, self);
}

}  // namespace

}  // namespace cbpy

extern "C" {

PyObject *PyObject_Init(PyObject *op, PyTypeObject *tp) {
    if (!op) return PyErr_NoMemory();
    Py_SET_TYPE(op, tp);
    if (PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) Py_INCREF(tp);
    Py_SET_REFCNT(op, 1);
    return op;
}

PyVarObject *PyObject_InitVar(PyVarObject *op, PyTypeObject *tp, Py_ssize_t size) {
    if (!op) return reinterpret_cast<PyVarObject *>(PyErr_NoMemory());
    Py_SET_SIZE(op, size);
    PyObject_Init(reinterpret_cast<PyObject *>(op), tp);
    return op;
}

PyObject *_PyObject_New(PyTypeObject *tp) { return cbpy::allocate(tp, 0); }

PyVarObject *_PyObject_NewVar(PyTypeObject *tp, Py_ssize_t nitems) {
    return reinterpret_cast<PyVarObject *>(cbpy::allocate(tp, nitems));
}

PyObject *_PyObject_GC_New(PyTypeObject *tp) { return cbpy::allocate(tp, 0); }

PyVarObject *_PyObject_GC_NewVar(PyTypeObject *tp, Py_ssize_t nitems) {
    return reinterpret_cast<PyVarObject *>(cbpy::allocate(tp, nitems));
}

// As CPython's: one item more than asked for (a sentinel), and GC
// instances are tracked at once.
PyObject *PyType_GenericAlloc(PyTypeObject *tp, Py_ssize_t nitems) {
    PyObject *o = cbpy::allocate(tp, nitems + (tp && tp->tp_itemsize ? 1 : 0));
    if (!o) return nullptr;
    if (tp->tp_itemsize) Py_SET_SIZE(reinterpret_cast<PyVarObject *>(o), nitems);
    if (PyType_IS_GC(tp)) cb_track(cbpy::runtime()->heap, o);
    return o;
}

PyObject *PyType_GenericNew(PyTypeObject *tp, PyObject *, PyObject *) { return tp->tp_alloc(tp, 0); }

PyVarObject *_PyObject_GC_Resize(PyVarObject *op, Py_ssize_t nitems) {
    cb_heap *heap = cbpy::bound_heap("PyObject_GC_Resize");
    if (!heap) return nullptr;
    PyTypeObject *tp = Py_TYPE(op);
    if (nitems < 0 || (tp->tp_itemsize && nitems > (PY_SSIZE_T_MAX - tp->tp_basicsize) / tp->tp_itemsize)) {
        PyErr_NoMemory();
        return nullptr;
    }
    if (cb_is_tracked(heap, op)) {
        cbpy::report(CB_REPORT_API_MISUSE, reinterpret_cast<PyObject *>(op),
                     "PyObject_GC_Resize of a tracked object: refused (untrack it first)");
        PyErr_SetString(PyExc_SystemError, "PyObject_GC_Resize of a tracked object");
        return nullptr;
    }
    auto *moved = static_cast<PyVarObject *>(cb_realloc(heap, op, _PyObject_VAR_SIZE(tp, nitems)));
    if (!moved) {
        PyErr_NoMemory();
        return nullptr;
    }
    Py_SET_SIZE(moved, nitems);
    return moved;
}

void PyObject_GC_Track(void *op) {
    if (cb_heap *heap = cbpy::bound_heap("PyObject_GC_Track")) cb_track(heap, op);
}

void PyObject_GC_UnTrack(void *op) {
    // Untracking an untracked object is allowed, as in CPython.
    cb_heap *heap = cbpy::bound_heap("PyObject_GC_UnTrack");
    if (heap && cb_is_tracked(heap, op)) cb_untrack(heap, op);
}

int PyObject_GC_IsTracked(PyObject *op) {
    cb_heap *heap = cbpy_heap();
    return heap && cbpy::is_gc(op) && cb_is_tracked(heap, op);
}

int PyObject_GC_IsFinalized(PyObject *op) {
    cb_heap *heap = cbpy_heap();
    return heap && cbpy::is_gc(op) && cb_is_finalized(heap, op);
}

void PyObject_GC_Del(void *op) {
    cb_heap *heap = cbpy::bound_heap("PyObject_GC_Del");
    if (!heap || !op) return;
    if (cb_is_tracked(heap, op)) cb_untrack(heap, op);   // as CPython 3.11, silently
    cb_free(heap, op);
}

void PyObject_Free(void *op) {
    if (!op) return;
    if (cb_heap *heap = cbpy::bound_heap("PyObject_Free")) cb_free(heap, op);
}

void _Py_Dealloc(PyObject *op) { Py_TYPE(op)->tp_dealloc(op); }

void PyObject_CallFinalizer(PyObject *self) { cbpy::call_finalizer(self); }

int PyObject_CallFinalizerFromDealloc(PyObject *self) {
    if (Py_REFCNT(self) != 0) {
        cbpy::report(CB_REPORT_API_MISUSE, self,
                     "PyObject_CallFinalizerFromDealloc on an object whose count is not zero: dealloc stopped");
        return -1;
    }
    // Resurrect for the finalizer's sake, as CPython does.
    Py_SET_REFCNT(self, 1);
    cbpy::call_finalizer(self);
    Py_SET_REFCNT(self, Py_REFCNT(self) - 1);
    if (Py_REFCNT(self) == 0) return 0;
    // Resurrected. The core untracks before the deallocations it starts;
    // the object lives on as it was before: tracked.
    cb_heap *heap = cbpy_heap();
    if (heap && cbpy::is_gc(self) && !cb_is_tracked(heap, self)) cb_track(heap, self);
    return -1;
}

Py_ssize_t PyGC_Collect(void) {
    cbpy::Runtime *rt = cbpy::runtime();
    if (!rt) {
        cbpy::bound_heap("PyGC_Collect");
        return 0;
    }
    if (rt->has_host && rt->host.collect) {
        long found = rt->host.collect(rt->host.ctx);
        return found < 0 ? 0 : found;
    }
    cb_collection_stats stats{};
    if (cb_collect(rt->heap, CB_FULL, &stats) != CB_OK) return 0;
    return static_cast<Py_ssize_t>(stats.garbage);
}

void cbpy_object_dealloc(PyObject *self) { Py_TYPE(self)->tp_free(self); }

}  // extern "C"
