/* The built-in objects an extension can name: type, object, the weakref
 * type, None and the exception types, plus the adapter's own twin and
 * error-value types. All static and ready, as in CPython. */
#include "builtin_slots.h"

#define CBPY_READY Py_TPFLAGS_READY

PyTypeObject PyType_Type = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "type",
    .tp_basicsize = sizeof(PyHeapTypeObject),
    .tp_itemsize = sizeof(PyMemberDef),
    .tp_dealloc = cbpy_type_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_TYPE_SUBCLASS | CBPY_READY,
    .tp_traverse = cbpy_type_traverse,
    .tp_clear = cbpy_type_clear,
    .tp_base = &PyBaseObject_Type,
    .tp_free = PyObject_GC_Del,
    .tp_is_gc = cbpy_type_is_gc,
};

PyTypeObject PyBaseObject_Type = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "object",
    .tp_basicsize = sizeof(PyObject),
    .tp_dealloc = cbpy_object_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | CBPY_READY,
    .tp_alloc = PyType_GenericAlloc,
    .tp_new = PyType_GenericNew,
    .tp_free = PyObject_Free,
};

PyTypeObject _PyWeakref_RefType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "weakref.ReferenceType",
    .tp_basicsize = sizeof(cbpy_weakref),
    .tp_dealloc = cbpy_weakref_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPY_READY,
    .tp_traverse = cbpy_weakref_traverse,
    .tp_clear = cbpy_weakref_clear,
    .tp_base = &PyBaseObject_Type,
    .tp_free = PyObject_GC_Del,
};

PyTypeObject _PyNone_Type = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "NoneType",
    .tp_basicsize = 0,
    .tp_dealloc = cbpy_none_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | CBPY_READY,
    .tp_base = &PyBaseObject_Type,
};

/* Never deallocated: the count starts high, as CPython's immortal-ish
 * statics, and cbpy_none_dealloc reports a decref below zero. */
PyObject _Py_NoneStruct = {_PyObject_EXTRA_INIT 1 << 28, &_PyNone_Type};

PyTypeObject cbpy_TwinType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "cyclebridge.twin",
    .tp_basicsize = sizeof(cbpy_twin_object),
    .tp_dealloc = cbpy_twin_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | CBPY_READY,
    .tp_traverse = cbpy_twin_traverse,
    .tp_clear = cbpy_twin_clear,
    .tp_base = &PyBaseObject_Type,
    .tp_free = PyObject_GC_Del,
};

PyTypeObject cbpy_ErrorValueType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "cyclebridge.error_value",
    .tp_basicsize = sizeof(cbpy_error_value),
    .tp_dealloc = cbpy_error_value_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | CBPY_READY,
    .tp_base = &PyBaseObject_Type,
};

/* Exception types: only names and the exception flag; the adapter keeps a
 * message, not an exception object. */
#define CBPY_EXCEPTION(name)                                                          \
    static PyTypeObject cbpy_exc_##name = {                                           \
        PyVarObject_HEAD_INIT(&PyType_Type, 0)                                        \
        .tp_name = #name,                                                             \
        .tp_basicsize = sizeof(PyObject),                                             \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASE_EXC_SUBCLASS | CBPY_READY,   \
        .tp_base = &PyBaseObject_Type,                                                \
    };                                                                                \
    PyObject *PyExc_##name = (PyObject *)&cbpy_exc_##name;

CBPY_EXCEPTION(TypeError)
CBPY_EXCEPTION(ValueError)
CBPY_EXCEPTION(MemoryError)
CBPY_EXCEPTION(SystemError)
CBPY_EXCEPTION(RuntimeError)
CBPY_EXCEPTION(OverflowError)

/* Named by PyWeakref_Check; proxies are not implemented (PyWeakref_NewProxy
 * is a link error), so these types have no instances. */
PyTypeObject _PyWeakref_ProxyType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "weakref.ProxyType",
    .tp_flags = Py_TPFLAGS_DEFAULT | CBPY_READY,
    .tp_base = &PyBaseObject_Type,
};
PyTypeObject _PyWeakref_CallableProxyType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "weakref.CallableProxyType",
    .tp_flags = Py_TPFLAGS_DEFAULT | CBPY_READY,
    .tp_base = &PyBaseObject_Type,
};
