/* The adapter's built-in objects (builtin_types.c, in C for its designated
 * initializers) and the slot functions they point to, implemented in the
 * C++ files. */
#ifndef CBPY_BUILTIN_SLOTS_H
#define CBPY_BUILTIN_SLOTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <cyclebridge/cyclebridge.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A weakref object: CPython's layout, then the core's record. */
typedef struct cbpy_weakref {
    PyWeakReference base;
    cb_weakref *core;
} cbpy_weakref;

/* The PyObject standing for a host object in C. */
typedef struct cbpy_twin_object {
    PyObject_HEAD
    cb_host_ref host;
} cbpy_twin_object;

/* The value of a pending exception: its message. */
typedef struct cbpy_error_value {
    PyObject_HEAD
    char *message;
} cbpy_error_value;

/* types.cpp */
void cbpy_type_dealloc(PyObject *type);
int cbpy_type_traverse(PyObject *type, visitproc visit, void *arg);
int cbpy_type_clear(PyObject *type);
int cbpy_type_is_gc(PyObject *type);
void cbpy_object_dealloc(PyObject *self);
/* weakrefs.cpp */
void cbpy_weakref_dealloc(PyObject *self);
int cbpy_weakref_traverse(PyObject *self, visitproc visit, void *arg);
int cbpy_weakref_clear(PyObject *self);
/* twins.cpp */
void cbpy_twin_dealloc(PyObject *self);
int cbpy_twin_traverse(PyObject *self, visitproc visit, void *arg);
int cbpy_twin_clear(PyObject *self);
/* errors.cpp */
void cbpy_error_value_dealloc(PyObject *self);
void cbpy_none_dealloc(PyObject *self);

#ifdef __cplusplus
}
#endif
#endif /* CBPY_BUILTIN_SLOTS_H */
