// The adapter's state while it is bound to a heap, and the services every
// part of it shares: the cb_type standing for each PyTypeObject, reports,
// and the test of which visited objects are nodes.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cyclebridge/cpython.h>
#include <cyclebridge/cyclebridge.h>

#include <unordered_map>

namespace cbpy {

struct Runtime {
    cb_heap *heap = nullptr;
    cbpy_host host{};
    bool has_host = false;
    // The cb_type of each type whose instances the adapter allocated.
    std::unordered_map<const PyTypeObject *, cb_type *> types;
    // One twin per host object, for the host object's lifetime.
    std::unordered_map<cb_host_ref, PyObject *> twins;
};

// The bound runtime, or nullptr.
Runtime *runtime();
// The bound heap; when unbound, sets SystemError, prints why, and returns nullptr.
cb_heap *bound_heap(const char *what);

// The cb_type for tp's instances, registered on first use (nullptr and an
// exception set on failure).
cb_type *node_type(PyTypeObject *tp);
// The core traverse of twins: the edge to their host object.
int traverse_twin(void *obj, cb_visit_fn visit, void *arg);
// tp's instances are no longer made (a heap type is dying): forget it.
void forget_type(const PyTypeObject *tp);

// Whether o is one of the adapter's collectable objects: a GC type's
// instance (type objects: heap types only), as CPython's _PyObject_IS_GC.
inline bool is_gc(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    return PyType_HasFeature(tp, Py_TPFLAGS_HAVE_GC) && (!tp->tp_is_gc || tp->tp_is_gc(o));
}

// A report through the heap's handler (stderr when unbound).
void report(cb_report_kind kind, PyObject *object, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The pending Python exception, if any, becomes a report (CPython's
// PyErr_WriteUnraisable) and is cleared.
void report_unraisable(PyObject *object, const char *where);

}  // namespace cbpy

// The adapter's own types, defined in builtin_types.c.
extern "C" {
extern PyTypeObject cbpy_TwinType;
extern PyTypeObject cbpy_ErrorValueType;
}
