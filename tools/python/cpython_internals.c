/* See cpython_internals.h. Written against CPython 3.11's internal headers:
 * the build refuses any other version, since the layouts read here change
 * from one minor version to the next. */
#define Py_BUILD_CORE 1
#include "cpython_internals.h"

#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "the cyclebridge module reads CPython 3.11's frame and collector state"
#endif

int cbpy_collector_running(void) {
    return _PyInterpreterState_GET()->gc.collecting != 0;
}

int cbpy_has_frozen_objects(void) {
    PyGC_Head *permanent = &_PyInterpreterState_GET()->gc.permanent_generation.head;
    return permanent->_gc_next != (uintptr_t)permanent;
}

static PyGenObject *as_gen(PyObject *gen) { return (PyGenObject *)gen; }

static _PyInterpreterFrame *frame_of(PyObject *gen) {
    return (_PyInterpreterFrame *)as_gen(gen)->gi_iframe;
}

cbpy_frame_state cbpy_frame_state_of(PyObject *gen) {
    switch (as_gen(gen)->gi_frame_state) {
    case FRAME_CREATED: return CBPY_FRAME_CREATED;
    case FRAME_SUSPENDED: return CBPY_FRAME_SUSPENDED;
    case FRAME_EXECUTING: return CBPY_FRAME_EXECUTING;
    default: return CBPY_FRAME_FINISHED;
    }
}

/* gen_traverse visits the frame while its state is below FRAME_CLEARED. */
static int frame_alive(PyObject *gen) { return as_gen(gen)->gi_frame_state < FRAME_CLEARED; }

int cbpy_frame_visit(PyObject *gen, visitproc visit, void *arg) {
    if (!frame_alive(gen)) return 0;
    _PyInterpreterFrame *frame = frame_of(gen);
    Py_VISIT(frame->frame_obj);
    Py_VISIT(frame->f_locals);
    Py_VISIT(frame->f_func);
    Py_VISIT(frame->f_code);
    for (int i = 0; i < frame->stacktop; i++) Py_VISIT(frame->localsplus[i]);
    return 0;
}

PyObject *cbpy_frame_object(PyObject *gen) {
    return frame_alive(gen) ? (PyObject *)frame_of(gen)->frame_obj : NULL;
}

int cbpy_frame_instruction(PyObject *gen) {
    return _PyInterpreterFrame_LASTI(frame_of(gen));
}
