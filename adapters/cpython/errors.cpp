// The error indicator: one pending exception per thread, a type and a
// message. Its value objects are plain malloc'd objects, not nodes, so that
// errors can be raised when no heap is bound or memory is short.
#include "errors.hpp"

#include <cstdlib>
#include <cstring>

#include "builtin_slots.h"

namespace cbpy {

namespace {

struct Pending {
    PyObject *type = nullptr;    // a new reference
    PyObject *value = nullptr;   // a new reference, or nullptr
    PyObject *traceback = nullptr;
};
thread_local Pending pending;
thread_local std::string last_text;

PyObject *new_error_value(const char *message) {
    auto *v = static_cast<cbpy_error_value *>(std::calloc(1, sizeof(cbpy_error_value)));
    if (!v) return nullptr;
    v->message = strdup(message ? message : "");
    if (!v->message) {
        std::free(v);
        return nullptr;
    }
    Py_SET_TYPE(reinterpret_cast<PyObject *>(v), &cbpy_ErrorValueType);
    Py_SET_REFCNT(reinterpret_cast<PyObject *>(v), 1);
    return reinterpret_cast<PyObject *>(v);
}

void replace(PyObject *type, PyObject *value, PyObject *traceback) {
    Pending old = pending;
    pending = {type, value, traceback};
    Py_XDECREF(old.type);
    Py_XDECREF(old.value);
    Py_XDECREF(old.traceback);
}

}  // namespace

std::string error_text() {
    if (!pending.type) return "";
    std::string text = reinterpret_cast<PyTypeObject *>(pending.type)->tp_name;
    if (pending.value && Py_IS_TYPE(pending.value, &cbpy_ErrorValueType))
        text += std::string(": ") + reinterpret_cast<cbpy_error_value *>(pending.value)->message;
    return text;
}

void clear_error_state() { replace(nullptr, nullptr, nullptr); }

}  // namespace cbpy

extern "C" {

void cbpy_error_value_dealloc(PyObject *self) {
    std::free(reinterpret_cast<cbpy_error_value *>(self)->message);
    std::free(self);
}

void cbpy_none_dealloc(PyObject *self) {
    // A decref too many on None: CPython aborts; keep None alive and say so.
    Py_SET_REFCNT(self, 1 << 28);
    cbpy::report(CB_REPORT_API_MISUSE, nullptr, "the count of None fell to zero: a Py_DECREF(Py_None) too many");
}

void PyErr_SetString(PyObject *exception, const char *message) {
    if (!exception) exception = PyExc_SystemError;
    Py_INCREF(exception);
    cbpy::replace(exception, cbpy::new_error_value(message), nullptr);
}

PyObject *PyErr_Occurred(void) { return cbpy::pending.type; }

void PyErr_Clear(void) { cbpy::clear_error_state(); }

PyObject *PyErr_NoMemory(void) {
    PyErr_SetString(PyExc_MemoryError, "out of memory");
    return nullptr;
}

void _PyErr_BadInternalCall(const char *filename, int lineno) {
    char message[256];
    std::snprintf(message, sizeof message, "%s:%d: bad argument to internal function", filename, lineno);
    PyErr_SetString(PyExc_SystemError, message);
}

void (PyErr_BadInternalCall)(void) { PyErr_SetString(PyExc_SystemError, "bad argument to internal function"); }

void PyErr_Fetch(PyObject **type, PyObject **value, PyObject **traceback) {
    *type = cbpy::pending.type;
    *value = cbpy::pending.value;
    *traceback = cbpy::pending.traceback;
    cbpy::pending = {};
}

void PyErr_Restore(PyObject *type, PyObject *value, PyObject *traceback) {
    // Steals the three references, as CPython's.
    cbpy::replace(type, value, traceback);
}

const char *cbpy_error_message(void) {
    if (!cbpy::pending.type) return nullptr;
    cbpy::last_text = cbpy::error_text();
    return cbpy::last_text.c_str();
}

}  // extern "C"
