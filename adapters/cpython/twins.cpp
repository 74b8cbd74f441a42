// Twins: the PyObject standing for a host object in C, as PyPy's cpyext
// does it. The twin is a refcounted node whose count holds the C
// references and one host reference from its host object (attach_twin);
// its traverse reports the edge back to the host object. So C code holding
// the twin keeps the host object alive (the twin is a root, and marks its
// host), the host object keeps its twin for as long as it lives, and a
// cycle running through a twin is garbage to a full collection like any
// other: the host object dies in the host's sweep, which drops the twin's
// last count. Clearing a garbage twin cuts its edge to the host object,
// which is what lets that host object die in the same collection: a
// garbage node that still refers to a host object keeps it alive.
#include "builtin_slots.h"
#include "runtime.hpp"

namespace cbpy {

int traverse_twin(void *obj, cb_visit_fn, void *arg) {
    if (cb_host_ref host = static_cast<cbpy_twin_object *>(obj)->host) cb_visit_host(arg, host);
    return 0;
}

namespace {
void forget_twin(cbpy_twin_object *twin) {
    if (!twin->host) return;
    if (Runtime *rt = runtime()) {
        auto it = rt->twins.find(twin->host);
        if (it != rt->twins.end() && it->second == reinterpret_cast<PyObject *>(twin)) rt->twins.erase(it);
    }
    twin->host = nullptr;
}
}  // namespace

}  // namespace cbpy

extern "C" {

PyObject *cbpy_twin(cb_host_ref obj) {
    cbpy::Runtime *rt = cbpy::runtime();
    if (!rt) {
        cbpy::bound_heap("cbpy_twin");
        return nullptr;
    }
    if (!obj) {
        PyErr_BadInternalCall();
        return nullptr;
    }
    auto found = rt->twins.find(obj);
    if (found != rt->twins.end()) return Py_NewRef(found->second);
    if (!rt->has_host || !rt->host.attach_twin) {
        PyErr_SetString(PyExc_SystemError, "cyclebridge: twins need cbpy_host.attach_twin");
        return nullptr;
    }
    auto *twin = reinterpret_cast<cbpy_twin_object *>(_PyObject_GC_New(&cbpy_TwinType));
    if (!twin) return nullptr;
    twin->host = obj;
    auto *o = reinterpret_cast<PyObject *>(twin);
    rt->twins.emplace(obj, o);
    PyObject_GC_Track(o);
    if (rt->host.attach_twin(rt->host.ctx, obj, o) != 0) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_SystemError, "cyclebridge: the runtime refused to attach a twin");
        return nullptr;
    }
    return o;
}

cb_host_ref cbpy_twin_host(PyObject *o) {
    return o && Py_IS_TYPE(o, &cbpy_TwinType) ? reinterpret_cast<cbpy_twin_object *>(o)->host : nullptr;
}

// A twin refers to no PyObject; its host edge is for the collector only.
int cbpy_twin_traverse(PyObject *, visitproc, void *) { return 0; }

// Only garbage twins are cleared: their host object is dead too.
int cbpy_twin_clear(PyObject *self) {
    cbpy::forget_twin(reinterpret_cast<cbpy_twin_object *>(self));
    return 0;
}

void cbpy_twin_dealloc(PyObject *self) {
    cbpy::forget_twin(reinterpret_cast<cbpy_twin_object *>(self));
    PyObject_GC_UnTrack(self);
    PyObject_GC_Del(self);
}

}  // extern "C"
