/* The PyObject standing for an HPy object in CPython-style code
 * (HPy_AsPyObject): its type is defined in C (proxy_type.c, for the
 * designated initializers), its slots in pyobjects.cpp. */
#ifndef CBHPY_PROXY_H
#define CBHPY_PROXY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbhpy_proxy_object {
    PyObject_HEAD
    void *target;   /* the HPy object (its node), or NULL once cut */
} cbhpy_proxy_object;

extern PyTypeObject cbhpy_ProxyType;

int cbhpy_proxy_traverse(PyObject *self, visitproc visit, void *arg);
int cbhpy_proxy_clear(PyObject *self);
void cbhpy_proxy_dealloc(PyObject *self);

#ifdef __cplusplus
}
#endif
#endif /* CBHPY_PROXY_H */
