/*
 * The few facts about CPython 3.11's private structures that the mirror
 * needs and the public API does not give: whether the collector is running,
 * and the state of a generator's frame. Implemented in C because CPython's
 * internal headers do not compile as C++ (pycore_atomic.h).
 *
 * Every `gen` argument is an object of exact type generator, coroutine or
 * async generator.
 */
#ifndef CYCLEBRIDGE_CPYTHON_INTERNALS_H
#define CYCLEBRIDGE_CPYTHON_INTERNALS_H

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Nonzero while gc.collect() (or an automatic collection) runs, which
 * includes the finalizers and gc.callbacks it calls: the objects it is
 * examining are then in none of the generations gc.get_objects() lists. */
int cbpy_collector_running(void);

/* Nonzero if gc.freeze() left objects in the permanent generation: they are
 * tracked, but neither listed by gc.get_objects() nor collected. */
int cbpy_has_frozen_objects(void);

typedef enum cbpy_frame_state {
    CBPY_FRAME_CREATED,    /* never started */
    CBPY_FRAME_SUSPENDED,  /* stopped at a yield or await */
    CBPY_FRAME_EXECUTING,
    CBPY_FRAME_FINISHED    /* completed or cleared: finalizing does nothing */
} cbpy_frame_state;

cbpy_frame_state cbpy_frame_state_of(PyObject *gen);

/* Visits what the generator's frame holds, exactly as CPython's
 * _PyFrame_Traverse does (the frame object, f_locals, the function, the
 * code, locals and value stack): the references that clearing the frame
 * releases. Visits nothing once the frame is cleared. */
int cbpy_frame_visit(PyObject *gen, visitproc visit, void *arg);

/* The frame object attached to the generator's frame, or NULL (borrowed). */
PyObject *cbpy_frame_object(PyObject *gen);

/* Index, in code units, of the instruction an exception thrown into the
 * generator is raised at (CPython's INSTR_OFFSET()-1 after resuming). */
int cbpy_frame_instruction(PyObject *gen);

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_CPYTHON_INTERNALS_H */
