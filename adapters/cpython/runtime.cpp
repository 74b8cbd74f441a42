// Binding the adapter to a heap, and its reports.
#include "runtime.hpp"

#include <cstdarg>
#include <cstdio>
#include <string>

#include "errors.hpp"

namespace cbpy {

namespace {
Runtime *bound = nullptr;
}

Runtime *runtime() { return bound; }

cb_heap *bound_heap(const char *what) {
    if (bound) return bound->heap;
    std::fprintf(stderr, "cyclebridge (CPython adapter): %s called while no heap is bound (cbpy_init)\n", what);
    PyErr_SetString(PyExc_SystemError, "cyclebridge: the CPython adapter is not bound to a heap");
    return nullptr;
}

void forget_type(const PyTypeObject *tp) {
    if (bound) bound->types.erase(tp);
}

void report(cb_report_kind kind, PyObject *object, const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *type_name = object ? Py_TYPE(object)->tp_name : nullptr;
    if (bound) {
        cb_report_issue(bound->heap, kind, CB_OK, object, type_name, message);
    } else {
        std::fprintf(stderr, "cyclebridge (CPython adapter): %s\n", message);
    }
}

void report_unraisable(PyObject *object, const char *where) {
    if (!PyErr_Occurred()) return;
    std::string text = error_text();
    PyErr_Clear();
    report(CB_REPORT_CALLBACK_THREW, object, "%s raised %s (ignored, as CPython's PyErr_WriteUnraisable)", where,
           text.c_str());
}

}  // namespace cbpy

extern "C" {

cb_status cbpy_init(cb_heap *heap, const cbpy_host *host) {
    if (!heap) return CB_ERR_NULL_ARGUMENT;
    if (cbpy::bound) {
        cb_report_issue(heap, CB_REPORT_API_MISUSE, CB_ERR_BUSY, nullptr, nullptr,
                        "cbpy_init: the CPython adapter is bound to a heap already");
        return CB_ERR_BUSY;
    }
    auto *rt = new cbpy::Runtime;
    rt->heap = heap;
    if (host) {
        rt->host = *host;
        rt->has_host = true;
    }
    cbpy::bound = rt;
    return CB_OK;
}

void cbpy_fini(void) {
    delete cbpy::bound;
    cbpy::bound = nullptr;
    cbpy::clear_error_state();
}

cb_heap *cbpy_heap(void) { return cbpy::bound ? cbpy::bound->heap : nullptr; }

}  // extern "C"
