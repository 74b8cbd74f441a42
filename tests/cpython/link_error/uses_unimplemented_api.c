/* An extension that calls outside the adapter's part of the C API
 * (PyList_New): linking it with the adapter must fail, naming the
 * function, rather than link and misbehave at run time. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int main(void) {
    PyObject *list = PyList_New(0);
    Py_XDECREF(list);
    return 0;
}
