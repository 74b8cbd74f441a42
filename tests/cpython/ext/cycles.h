/*
 * cycles: the garbage-collection code of a CPython extension, written
 * exactly as for CPython (PyObject_HEAD structs, static and heap types,
 * tp_traverse / tp_clear / tp_dealloc / tp_finalize / tp_del, weakrefs).
 *
 * The same cycles.c is built twice:
 *  - into the adapter tests, linked with cyclebridge's CPython adapter
 *    (adapters/cpython), no libpython;
 *  - into a real extension module (cycles_module.c) run by the system's
 *    python3, as the cross-check that CPython frees the same objects.
 *
 * Each scenario builds garbage from n instances, drops every reference it
 * made, and returns 0 (or -1 with an exception set). The counters tell
 * what the collector did.
 */
#ifndef CYCLES_H
#define CYCLES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cyc_kind {
    CYC_NODE = 0,      /* static type, tp_alloc = PyType_GenericAlloc, weakrefs */
    CYC_RESURRECTOR,   /* static type, PyObject_GC_New, tp_finalize resurrects once */
    CYC_LEGACY,        /* static type with a legacy tp_del */
    CYC_REGISTRY,      /* static var-size type (PyObject_GC_NewVar) */
    CYC_HEAP_NODE,     /* heap type from PyType_FromModuleAndSpec */
    CYC_KINDS
};
extern const char *const cyc_kind_names[CYC_KINDS];   /* "node", "resurrector", ... */

/* PyType_Ready on the static types; idempotent. */
int cyc_init(void);

/* Since the last cyc_reset_counts. */
long cyc_deallocs(enum cyc_kind kind);   /* tp_dealloc calls */
long cyc_finalizer_calls(void);          /* tp_finalize calls (Resurrector) */
long cyc_del_calls(void);                /* tp_del calls (Legacy) */
void cyc_reset_counts(void);

/* A new Node (a new reference), made through its tp_new. */
PyObject *cyc_node_new(void);
/* node.a (slot 0) or node.b (slot 1) = value (a new reference is taken;
 * the old one is dropped). value may be NULL. */
int cyc_node_set(PyObject *node, int slot, PyObject *value);
PyObject *cyc_node_get(PyObject *node, int slot);   /* borrowed */

/* ---- scenarios --------------------------------------------------------- */
int cyc_self_cycles(int n);   /* n Nodes, node.a = node */
int cyc_two_cycles(int n);    /* n/2 pairs, a.a = b, b.a = a */

/* A new reference to a host object that holds node. */
typedef PyObject *(*cyc_wrap_fn)(PyObject *node, void *ctx);
/* n Nodes, node.a = wrap(node): a cycle through a host object (a list, a
 * closure capturing node, ...). */
int cyc_host_cycles(int n, cyc_wrap_fn wrap, void *ctx);

/* n/2 pairs of Resurrectors; each finalizer stores self (a new reference)
 * in a C array the first time it runs, so the whole pair survives. */
int cyc_resurrecting_cycles(int n);
Py_ssize_t cyc_saved_count(void);
void cyc_release_saved(void);   /* drops the saved references */

/* n Node self-cycles, each with PyWeakref_NewRef(node, callback); the
 * weakrefs themselves stay alive (held in a C array). */
int cyc_weakref_cycles(int n, PyObject *callback);
Py_ssize_t cyc_weakrefs_dead(void);   /* kept weakrefs whose referent is gone */
void cyc_release_weakrefs(void);

/* n/2 pairs of Legacy objects (tp_del): uncollectable. */
int cyc_legacy_cycles(int n);
/* Runs tp_clear on every Legacy object still alive (cleanup after the
 * legacy scenario: the cycles then die by reference counting). */
void cyc_break_legacy(void);

/* A Registry of n items is the module of a heap type made with
 * PyType_FromModuleAndSpec; n instances of that type are stored in the
 * registry. Instances visit their type (the rule since 3.9), so every
 * cycle runs instance -> type -> registry -> instance. */
int cyc_heap_type_cycles(int n);

/* A random graph of n Nodes from seed (the same graph wherever it runs):
 * each node's `a` is another node half of the time, its `b` a node, a host
 * object made by wrap() holding a node, or nothing; one node in eight is
 * held from outside (until cyc_random_release). Every other reference the
 * builder made is dropped. cyc_random_dead(i) tells whether node i has been
 * deallocated since; cyc_random_forget frees that record (once every node
 * of the graph is gone). */
int cyc_random_graph(unsigned seed, int n, cyc_wrap_fn wrap, void *ctx);
int cyc_random_dead(int i);
void cyc_random_release(void);
void cyc_random_forget(void);

#ifdef __cplusplus
}
#endif
#endif /* CYCLES_H */
