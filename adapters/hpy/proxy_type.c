/* The type of the proxies of HPy objects (see pyobjects.cpp). */
#include "proxy.h"

PyTypeObject cbhpy_ProxyType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    .tp_name = "cyclebridge.hpy_proxy",
    .tp_basicsize = sizeof(cbhpy_proxy_object),
    .tp_dealloc = cbhpy_proxy_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_READY,
    .tp_traverse = cbhpy_proxy_traverse,
    .tp_clear = cbhpy_proxy_clear,
    .tp_base = &PyBaseObject_Type,
    .tp_free = PyObject_GC_Del,
};
