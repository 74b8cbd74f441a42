/*
 * The extension module "cycles": the scenarios of cycles.c exposed to the
 * real python3, so that crosscheck.py can count what CPython's collector
 * frees. Only ever built against libpython, so the whole C API is usable.
 */
#include "cycles.h"

static int count_from_args(PyObject *args, const char *format, int *n)
{
    if (!PyArg_ParseTuple(args, format, n)) {
        return -1;
    }
    if (*n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return -1;
    }
    return 0;
}

static PyObject *none_or_null(int status)
{
    if (status < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_SystemError, "scenario failed without an exception");
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *self_cycles(PyObject *module, PyObject *args)
{
    int n;
    if (count_from_args(args, "i:self_cycles", &n) < 0) {
        return NULL;
    }
    return none_or_null(cyc_self_cycles(n));
}

static PyObject *two_cycles(PyObject *module, PyObject *args)
{
    int n;
    if (count_from_args(args, "i:two_cycles", &n) < 0) {
        return NULL;
    }
    return none_or_null(cyc_two_cycles(n));
}

/* The host object is whatever the Python factory returns for the node. */
static PyObject *call_factory(PyObject *node, void *factory)
{
    return PyObject_CallOneArg((PyObject *)factory, node);
}

static PyObject *host_cycles(PyObject *module, PyObject *args)
{
    int n;
    PyObject *factory;
    if (!PyArg_ParseTuple(args, "iO:host_cycles", &n, &factory)) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    if (!PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "factory must be callable");
        return NULL;
    }
    return none_or_null(cyc_host_cycles(n, call_factory, factory));
}

static PyObject *random_graph(PyObject *module, PyObject *args)
{
    unsigned seed;
    int n;
    PyObject *factory;
    if (!PyArg_ParseTuple(args, "IiO:random_graph", &seed, &n, &factory)) {
        return NULL;
    }
    if (!PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "factory must be callable");
        return NULL;
    }
    return none_or_null(cyc_random_graph(seed, n, call_factory, factory));
}

/* The deallocated nodes of the current random graph, as a string of 0/1. */
static PyObject *random_dead(PyObject *module, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i:random_dead", &n)) {
        return NULL;
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        PyUnicode_WRITE(PyUnicode_1BYTE_KIND, PyUnicode_DATA(out), i, cyc_random_dead(i) == 1 ? '1' : '0');
    }
    return out;
}

static PyObject *random_release(PyObject *module, PyObject *unused)
{
    cyc_random_release();
    Py_RETURN_NONE;
}

static PyObject *random_forget(PyObject *module, PyObject *unused)
{
    cyc_random_forget();
    Py_RETURN_NONE;
}

static PyObject *resurrecting_cycles(PyObject *module, PyObject *args)
{
    int n;
    if (count_from_args(args, "i:resurrecting_cycles", &n) < 0) {
        return NULL;
    }
    return none_or_null(cyc_resurrecting_cycles(n));
}

static PyObject *saved_count(PyObject *module, PyObject *unused)
{
    return PyLong_FromSsize_t(cyc_saved_count());
}

static PyObject *release_saved(PyObject *module, PyObject *unused)
{
    cyc_release_saved();
    Py_RETURN_NONE;
}

static PyObject *weakref_cycles(PyObject *module, PyObject *args)
{
    int n;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iO:weakref_cycles", &n, &callback)) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable or None");
        return NULL;
    }
    return none_or_null(cyc_weakref_cycles(n, callback));
}

static PyObject *weakrefs_dead(PyObject *module, PyObject *unused)
{
    return PyLong_FromSsize_t(cyc_weakrefs_dead());
}

static PyObject *release_weakrefs(PyObject *module, PyObject *unused)
{
    cyc_release_weakrefs();
    Py_RETURN_NONE;
}

static PyObject *legacy_cycles(PyObject *module, PyObject *args)
{
    int n;
    if (count_from_args(args, "i:legacy_cycles", &n) < 0) {
        return NULL;
    }
    return none_or_null(cyc_legacy_cycles(n));
}

static PyObject *break_legacy(PyObject *module, PyObject *unused)
{
    cyc_break_legacy();
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *heap_type_cycles(PyObject *module, PyObject *args)
{
    int n;
    if (count_from_args(args, "i:heap_type_cycles", &n) < 0) {
        return NULL;
    }
    return none_or_null(cyc_heap_type_cycles(n));
}

static PyObject *deallocs(PyObject *module, PyObject *unused)
{
    PyObject *counts = PyDict_New();
    if (counts == NULL) {
        return NULL;
    }
    for (int kind = 0; kind < CYC_KINDS; kind++) {
        PyObject *count = PyLong_FromLong(cyc_deallocs((enum cyc_kind)kind));
        if (count == NULL
            || PyDict_SetItemString(counts, cyc_kind_names[kind], count) < 0) {
            Py_XDECREF(count);
            Py_DECREF(counts);
            return NULL;
        }
        Py_DECREF(count);
    }
    return counts;
}

static PyObject *finalizer_calls(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(cyc_finalizer_calls());
}

static PyObject *del_calls(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(cyc_del_calls());
}

static PyObject *reset_counts(PyObject *module, PyObject *unused)
{
    cyc_reset_counts();
    Py_RETURN_NONE;
}

static PyMethodDef cycles_methods[] = {
    {"self_cycles", self_cycles, METH_VARARGS,
     "self_cycles(n): n Nodes with node.a = node, all references dropped."},
    {"two_cycles", two_cycles, METH_VARARGS,
     "two_cycles(n): n/2 pairs of Nodes referring to each other."},
    {"host_cycles", host_cycles, METH_VARARGS,
     "host_cycles(n, factory): n Nodes with node.a = factory(node)."},
    {"random_graph", random_graph, METH_VARARGS,
     "random_graph(seed, n, factory): a random graph of n Nodes, some held."},
    {"random_dead", random_dead, METH_VARARGS,
     "random_dead(n): '0'/'1' per node of the random graph, 1 if deallocated."},
    {"random_release", random_release, METH_NOARGS,
     "random_release(): drop the random graph's held nodes."},
    {"random_forget", random_forget, METH_NOARGS,
     "random_forget(): free the record of deallocated nodes."},
    {"resurrecting_cycles", resurrecting_cycles, METH_VARARGS,
     "resurrecting_cycles(n): n/2 pairs of Resurrectors."},
    {"saved_count", saved_count, METH_NOARGS,
     "saved_count(): Resurrectors their finalizers saved."},
    {"release_saved", release_saved, METH_NOARGS,
     "release_saved(): drop the saved Resurrectors."},
    {"weakref_cycles", weakref_cycles, METH_VARARGS,
     "weakref_cycles(n, callback): n Node self-cycles, each with a kept weakref."},
    {"weakrefs_dead", weakrefs_dead, METH_NOARGS,
     "weakrefs_dead(): kept weakrefs whose referent is gone."},
    {"release_weakrefs", release_weakrefs, METH_NOARGS,
     "release_weakrefs(): drop the kept weakrefs."},
    {"legacy_cycles", legacy_cycles, METH_VARARGS,
     "legacy_cycles(n): n/2 pairs of Legacy objects (tp_del)."},
    {"break_legacy", break_legacy, METH_NOARGS,
     "break_legacy(): tp_clear on every live Legacy object."},
    {"heap_type_cycles", heap_type_cycles, METH_VARARGS,
     "heap_type_cycles(n): n HeapNodes held by their type's module (a Registry)."},
    {"deallocs", deallocs, METH_NOARGS,
     "deallocs(): {kind: tp_dealloc calls} since reset_counts()."},
    {"finalizer_calls", finalizer_calls, METH_NOARGS,
     "finalizer_calls(): tp_finalize calls since reset_counts()."},
    {"del_calls", del_calls, METH_NOARGS,
     "del_calls(): tp_del calls since reset_counts()."},
    {"reset_counts", reset_counts, METH_NOARGS,
     "reset_counts(): zero every counter."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cycles_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cycles",
    .m_doc = "Garbage cycles built by CPython-style extension types.",
    .m_size = -1,   /* the counters and C arrays are process-wide */
    .m_methods = cycles_methods,
};

PyMODINIT_FUNC PyInit_cycles(void)
{
    if (cyc_init() < 0) {
        return NULL;
    }
    return PyModule_Create(&cycles_module);
}
