/*
 * The types and scenarios of cycles.h, written as for CPython: only the
 * garbage-collection part of the C API (the part cyclebridge's adapter
 * implements) and the standard C library.
 */
#include "cycles.h"

#include <stddef.h>
#include <stdlib.h>

const char *const cyc_kind_names[CYC_KINDS] = {
    "node", "resurrector", "legacy", "registry", "heap_node",
};

static long dealloc_counts[CYC_KINDS];
static long finalizer_call_count;
static long del_call_count;

long cyc_deallocs(enum cyc_kind kind)
{
    if ((int)kind < 0 || kind >= CYC_KINDS) {
        return -1;
    }
    return dealloc_counts[kind];
}

long cyc_finalizer_calls(void) { return finalizer_call_count; }
long cyc_del_calls(void) { return del_call_count; }

void cyc_reset_counts(void)
{
    for (int kind = 0; kind < CYC_KINDS; kind++) {
        dealloc_counts[kind] = 0;
    }
    finalizer_call_count = 0;
    del_call_count = 0;
}

/* ---- a growable array of strong references, owned by C ----------------- */

typedef struct {
    PyObject **items;
    Py_ssize_t count;
    Py_ssize_t capacity;
} RefArray;

/* Reserving up front lets tp_finalize store without allocating. */
static int ref_array_reserve(RefArray *array, Py_ssize_t extra)
{
    /* Small enough that doubling and the byte size cannot overflow. */
    const Py_ssize_t limit = PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) / 2;
    if (extra < 0 || extra > limit - array->count) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t needed = array->count + extra;
    if (needed <= array->capacity) {
        return 0;
    }
    Py_ssize_t capacity = array->capacity ? array->capacity : 16;
    while (capacity < needed) {
        capacity *= 2;
    }
    PyObject **items = realloc(array->items, (size_t)capacity * sizeof(PyObject *));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    array->items = items;
    array->capacity = capacity;
    return 0;
}

/* Takes a new reference to item. */
static int ref_array_append(RefArray *array, PyObject *item)
{
    if (ref_array_reserve(array, 1) < 0) {
        return -1;
    }
    array->items[array->count++] = Py_NewRef(item);
    return 0;
}

/* Py_DECREF can run deallocators (which may touch the array), so the
 * array is detached before any reference is dropped. */
static void ref_array_release(RefArray *array)
{
    PyObject **items = array->items;
    Py_ssize_t count = array->count;
    array->items = NULL;
    array->count = 0;
    array->capacity = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_DECREF(items[i]);
    }
    free(items);
}

/* ---- Node: static type, tp_alloc inherited (PyType_GenericAlloc) ------- */

typedef struct {
    PyObject_HEAD
    PyObject *a;
    PyObject *b;
    PyObject *weakreflist;
    int id;   /* 1-based index in a random graph, 0 otherwise */
} NodeObject;

/* Which nodes of the current random graph were deallocated. */
static unsigned char *random_dead;
static int random_size;

static int node_traverse(PyObject *op, visitproc visit, void *arg)
{
    NodeObject *self = (NodeObject *)op;
    Py_VISIT(self->a);
    Py_VISIT(self->b);
    return 0;
}

static int node_clear(PyObject *op)
{
    NodeObject *self = (NodeObject *)op;
    Py_CLEAR(self->a);
    Py_CLEAR(self->b);
    return 0;
}

static void node_dealloc(PyObject *op)
{
    NodeObject *self = (NodeObject *)op;
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    node_clear(op);
    dealloc_counts[CYC_NODE]++;
    if (self->id > 0 && self->id <= random_size) {
        random_dead[self->id - 1] = 1;
    }
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject NodeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cycles.Node",
    .tp_basicsize = sizeof(NodeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Two object slots (a, b) and weak reference support.",
    .tp_traverse = node_traverse,
    .tp_clear = node_clear,
    .tp_dealloc = node_dealloc,
    .tp_weaklistoffset = offsetof(NodeObject, weakreflist),
    .tp_new = PyType_GenericNew,
};

/* ---- Resurrector: PyObject_GC_New, tp_finalize resurrects once --------- */

typedef struct {
    PyObject_HEAD
    PyObject *other;
    int saved_itself;   /* "once" is this type's rule, not the collector's */
} ResurrectorObject;

static RefArray saved_resurrectors;

static int resurrector_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((ResurrectorObject *)op)->other);
    return 0;
}

static int resurrector_clear(PyObject *op)
{
    Py_CLEAR(((ResurrectorObject *)op)->other);
    return 0;
}

static void resurrector_finalize(PyObject *op)
{
    ResurrectorObject *self = (ResurrectorObject *)op;
    PyObject *error_type, *error_value, *error_traceback;
    /* A finalizer may run while an exception is being raised. */
    PyErr_Fetch(&error_type, &error_value, &error_traceback);

    finalizer_call_count++;
    if (!self->saved_itself) {
        /* Space was reserved by cyc_resurrecting_cycles; if it is missing
         * anyway the object simply is not resurrected. */
        if (ref_array_append(&saved_resurrectors, op) == 0) {
            self->saved_itself = 1;
        } else {
            PyErr_Clear();
        }
    }

    PyErr_Restore(error_type, error_value, error_traceback);
}

static void resurrector_dealloc(PyObject *op)
{
    if (PyObject_CallFinalizerFromDealloc(op) < 0) {
        return;   /* resurrected */
    }
    PyObject_GC_UnTrack(op);
    resurrector_clear(op);
    dealloc_counts[CYC_RESURRECTOR]++;
    PyObject_GC_Del(op);
}

static PyTypeObject ResurrectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cycles.Resurrector",
    .tp_basicsize = sizeof(ResurrectorObject),
    /* Py_TPFLAGS_HAVE_FINALIZE is ignored since 3.8: tp_finalize suffices. */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Its finalizer stores a reference to it the first time.",
    .tp_traverse = resurrector_traverse,
    .tp_clear = resurrector_clear,
    .tp_dealloc = resurrector_dealloc,
    .tp_finalize = resurrector_finalize,
};

static PyObject *resurrector_new(void)
{
    ResurrectorObject *self = PyObject_GC_New(ResurrectorObject, &ResurrectorType);
    if (self == NULL) {
        return NULL;
    }
    /* PyObject_GC_New leaves the fields uninitialised. */
    self->other = NULL;
    self->saved_itself = 0;
    PyObject_GC_Track((PyObject *)self);
    return (PyObject *)self;
}

/* ---- Legacy: a tp_del finalizer makes its cycles uncollectable --------- */

typedef struct LegacyObject {
    PyObject_HEAD
    PyObject *other;
    /* Every live Legacy object, for cyc_break_legacy. */
    struct LegacyObject *live_prev;
    struct LegacyObject *live_next;
} LegacyObject;

static LegacyObject *live_legacy_head;

static int legacy_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((LegacyObject *)op)->other);
    return 0;
}

static int legacy_clear(PyObject *op)
{
    Py_CLEAR(((LegacyObject *)op)->other);
    return 0;
}

/* Only counted: a collector must never call it on cyclic garbage (CPython
 * moves such cycles to gc.garbage instead), and this type's own dealloc
 * does not call it either. */
static void legacy_del(PyObject *op)
{
    (void)op;
    del_call_count++;
}

static void legacy_dealloc(PyObject *op)
{
    LegacyObject *self = (LegacyObject *)op;
    PyObject_GC_UnTrack(op);
    if (self->live_prev != NULL) {
        self->live_prev->live_next = self->live_next;
    } else {
        live_legacy_head = self->live_next;
    }
    if (self->live_next != NULL) {
        self->live_next->live_prev = self->live_prev;
    }
    legacy_clear(op);
    dealloc_counts[CYC_LEGACY]++;
    PyObject_GC_Del(op);
}

static PyTypeObject LegacyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cycles.Legacy",
    .tp_basicsize = sizeof(LegacyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Has a legacy tp_del finalizer.",
    .tp_traverse = legacy_traverse,
    .tp_clear = legacy_clear,
    .tp_dealloc = legacy_dealloc,
    .tp_del = legacy_del,
};

static PyObject *legacy_new(void)
{
    LegacyObject *self = PyObject_GC_New(LegacyObject, &LegacyType);
    if (self == NULL) {
        return NULL;
    }
    self->other = NULL;
    self->live_prev = NULL;
    self->live_next = live_legacy_head;
    if (live_legacy_head != NULL) {
        live_legacy_head->live_prev = self;
    }
    live_legacy_head = self;
    PyObject_GC_Track((PyObject *)self);
    return (PyObject *)self;
}

void cyc_break_legacy(void)
{
    LegacyObject *current = live_legacy_head;
    while (current != NULL) {
        /* Held so that clearing (which may free other Legacy objects, and
         * unlink them) cannot free current before its successor is read. */
        Py_INCREF(current);
        legacy_clear((PyObject *)current);
        LegacyObject *next = current->live_next;
        Py_DECREF(current);   /* frees only current: its member is cleared */
        current = next;
    }
}

/* ---- Registry: static var-size type ------------------------------------ */

typedef struct {
    PyObject_VAR_HEAD
    PyObject *items[1];
} RegistryObject;

static int registry_traverse(PyObject *op, visitproc visit, void *arg)
{
    RegistryObject *self = (RegistryObject *)op;
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        Py_VISIT(self->items[i]);
    }
    return 0;
}

static int registry_clear(PyObject *op)
{
    RegistryObject *self = (RegistryObject *)op;
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        Py_CLEAR(self->items[i]);
    }
    return 0;
}

static void registry_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    registry_clear(op);
    dealloc_counts[CYC_REGISTRY]++;
    PyObject_GC_Del(op);
}

static PyTypeObject RegistryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cycles.Registry",
    .tp_basicsize = offsetof(RegistryObject, items),
    .tp_itemsize = sizeof(PyObject *),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A fixed number of object slots.",
    .tp_traverse = registry_traverse,
    .tp_clear = registry_clear,
    .tp_dealloc = registry_dealloc,
};

static RegistryObject *registry_new(Py_ssize_t size)
{
    RegistryObject *self = PyObject_GC_NewVar(RegistryObject, &RegistryType, size);
    if (self == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        self->items[i] = NULL;
    }
    PyObject_GC_Track((PyObject *)self);
    return self;
}

/* ---- HeapNode: heap type from a spec ----------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *other;
} HeapNodeObject;

static int heap_node_traverse(PyObject *op, visitproc visit, void *arg)
{
    /* Since 3.9 instances of heap types visit their type. */
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((HeapNodeObject *)op)->other);
    return 0;
}

static int heap_node_clear(PyObject *op)
{
    Py_CLEAR(((HeapNodeObject *)op)->other);
    return 0;
}

static void heap_node_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    heap_node_clear(op);
    dealloc_counts[CYC_HEAP_NODE]++;
    freefunc free_instance = (freefunc)PyType_GetSlot(type, Py_tp_free);
    free_instance(op);
    /* Instances of heap types own a reference to their type. */
    Py_DECREF(type);
}

static PyType_Slot heap_node_slots[] = {
    {Py_tp_traverse, heap_node_traverse},
    {Py_tp_clear, heap_node_clear},
    {Py_tp_dealloc, heap_node_dealloc},
    {0, NULL},
};

static PyType_Spec heap_node_spec = {
    .name = "cycles.HeapNode",
    .basicsize = sizeof(HeapNodeObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = heap_node_slots,
};

static PyObject *heap_node_new(PyTypeObject *type)
{
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    if (alloc == NULL) {
        alloc = PyType_GenericAlloc;
    }
    /* Zeroed and tracked by PyType_GenericAlloc, which also takes the
     * instance's reference to its (heap) type. */
    return alloc(type, 0);
}

/* ---- setup and Node access --------------------------------------------- */

int cyc_init(void)
{
    static int ready;
    if (ready) {
        return 0;
    }
    if (PyType_Ready(&NodeType) < 0 || PyType_Ready(&ResurrectorType) < 0
        || PyType_Ready(&LegacyType) < 0 || PyType_Ready(&RegistryType) < 0) {
        return -1;
    }
    ready = 1;
    return 0;
}

PyObject *cyc_node_new(void)
{
    if (cyc_init() < 0) {
        return NULL;
    }
    return NodeType.tp_new(&NodeType, NULL, NULL);
}

static PyObject **node_slot(PyObject *node, int slot)
{
    if (node == NULL || Py_TYPE(node) != &NodeType) {
        PyErr_SetString(PyExc_TypeError, "expected a cycles.Node");
        return NULL;
    }
    if (slot != 0 && slot != 1) {
        PyErr_SetString(PyExc_ValueError, "a Node slot is 0 (a) or 1 (b)");
        return NULL;
    }
    NodeObject *self = (NodeObject *)node;
    return slot == 0 ? &self->a : &self->b;
}

int cyc_node_set(PyObject *node, int slot, PyObject *value)
{
    PyObject **field = node_slot(node, slot);
    if (field == NULL) {
        return -1;
    }
    Py_XSETREF(*field, Py_XNewRef(value));
    return 0;
}

/* NULL for an empty slot, or (with an exception set) for a bad argument. */
PyObject *cyc_node_get(PyObject *node, int slot)
{
    PyObject **field = node_slot(node, slot);
    return field == NULL ? NULL : *field;
}

static int check_count(int n)
{
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "the instance count must be >= 0");
        return -1;
    }
    return cyc_init();
}

/* ---- scenarios --------------------------------------------------------- */

int cyc_self_cycles(int n)
{
    if (check_count(n) < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *node = cyc_node_new();
        if (node == NULL) {
            return -1;
        }
        int status = cyc_node_set(node, 0, node);
        Py_DECREF(node);
        if (status < 0) {
            return -1;
        }
    }
    return 0;
}

int cyc_two_cycles(int n)
{
    if (check_count(n) < 0) {
        return -1;
    }
    for (int i = 0; i < n / 2; i++) {
        PyObject *first = cyc_node_new();
        if (first == NULL) {
            return -1;
        }
        PyObject *second = cyc_node_new();
        if (second == NULL) {
            Py_DECREF(first);
            return -1;
        }
        int status = cyc_node_set(first, 0, second);
        if (status == 0) {
            status = cyc_node_set(second, 0, first);
        }
        Py_DECREF(first);
        Py_DECREF(second);
        if (status < 0) {
            return -1;
        }
    }
    return 0;
}

int cyc_host_cycles(int n, cyc_wrap_fn wrap, void *ctx)
{
    if (check_count(n) < 0) {
        return -1;
    }
    if (wrap == NULL) {
        PyErr_SetString(PyExc_TypeError, "cyc_host_cycles needs a wrap function");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *node = cyc_node_new();
        if (node == NULL) {
            return -1;
        }
        PyObject *host = wrap(node, ctx);
        if (host == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_SystemError, "wrap returned NULL without an exception");
            }
            Py_DECREF(node);
            return -1;
        }
        int status = cyc_node_set(node, 0, host);
        Py_DECREF(host);
        Py_DECREF(node);
        if (status < 0) {
            return -1;
        }
    }
    return 0;
}

int cyc_resurrecting_cycles(int n)
{
    if (check_count(n) < 0) {
        return -1;
    }
    int pairs = n / 2;
    if (ref_array_reserve(&saved_resurrectors, 2 * (Py_ssize_t)pairs) < 0) {
        return -1;
    }
    for (int i = 0; i < pairs; i++) {
        PyObject *first = resurrector_new();
        if (first == NULL) {
            return -1;
        }
        PyObject *second = resurrector_new();
        if (second == NULL) {
            Py_DECREF(first);
            return -1;
        }
        ((ResurrectorObject *)first)->other = Py_NewRef(second);
        ((ResurrectorObject *)second)->other = Py_NewRef(first);
        Py_DECREF(first);
        Py_DECREF(second);
    }
    return 0;
}

Py_ssize_t cyc_saved_count(void) { return saved_resurrectors.count; }

void cyc_release_saved(void) { ref_array_release(&saved_resurrectors); }

static RefArray kept_weakrefs;

int cyc_weakref_cycles(int n, PyObject *callback)
{
    if (check_count(n) < 0) {
        return -1;
    }
    if (ref_array_reserve(&kept_weakrefs, n) < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *node = cyc_node_new();
        if (node == NULL) {
            return -1;
        }
        if (cyc_node_set(node, 0, node) < 0) {
            Py_DECREF(node);
            return -1;
        }
        PyObject *weakref = PyWeakref_NewRef(node, callback);
        Py_DECREF(node);
        if (weakref == NULL) {
            return -1;
        }
        int status = ref_array_append(&kept_weakrefs, weakref);
        Py_DECREF(weakref);
        if (status < 0) {
            return -1;
        }
    }
    return 0;
}

Py_ssize_t cyc_weakrefs_dead(void)
{
    Py_ssize_t dead = 0;
    for (Py_ssize_t i = 0; i < kept_weakrefs.count; i++) {
        if (PyWeakref_GetObject(kept_weakrefs.items[i]) == Py_None) {
            dead++;
        }
    }
    return dead;
}

void cyc_release_weakrefs(void) { ref_array_release(&kept_weakrefs); }

int cyc_legacy_cycles(int n)
{
    if (check_count(n) < 0) {
        return -1;
    }
    for (int i = 0; i < n / 2; i++) {
        PyObject *first = legacy_new();
        if (first == NULL) {
            return -1;
        }
        PyObject *second = legacy_new();
        if (second == NULL) {
            Py_DECREF(first);
            return -1;
        }
        ((LegacyObject *)first)->other = Py_NewRef(second);
        ((LegacyObject *)second)->other = Py_NewRef(first);
        Py_DECREF(first);
        Py_DECREF(second);
    }
    return 0;
}

int cyc_heap_type_cycles(int n)
{
    if (check_count(n) < 0) {
        return -1;
    }
    RegistryObject *registry = registry_new(n);
    if (registry == NULL) {
        return -1;
    }
    /* The registry stands in for the module: the type keeps it alive and
     * PyType_GetModule returns it. */
    PyObject *type = PyType_FromModuleAndSpec((PyObject *)registry, &heap_node_spec, NULL);
    if (type == NULL) {
        Py_DECREF(registry);
        return -1;
    }
    int status = 0;
    if (PyType_GetModule((PyTypeObject *)type) != (PyObject *)registry) {
        PyErr_SetString(PyExc_RuntimeError, "PyType_GetModule lost the registry");
        status = -1;
    }
    for (int i = 0; status == 0 && i < n; i++) {
        PyObject *instance = heap_node_new((PyTypeObject *)type);
        if (instance == NULL) {
            status = -1;
            break;
        }
        registry->items[i] = instance;
    }
    Py_DECREF(type);
    Py_DECREF(registry);
    return status;
}

/* ---- random graphs: the same graph for every collector ------------------ */

static RefArray random_roots;

/* xorshift32: the same sequence on every platform, for a given seed. */
static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

int cyc_random_graph(unsigned seed, int n, cyc_wrap_fn wrap, void *ctx)
{
    if (check_count(n) < 0) {
        return -1;
    }
    cyc_random_release();
    cyc_random_forget();
    random_dead = calloc(n ? (size_t)n : 1, 1);
    PyObject **nodes = calloc(n ? (size_t)n : 1, sizeof(PyObject *));
    if (random_dead == NULL || nodes == NULL) {
        free(nodes);
        PyErr_NoMemory();
        return -1;
    }
    random_size = n;
    uint32_t state = seed * 2654435761u + 1u;
    int status = 0;
    for (int i = 0; i < n && status == 0; i++) {
        nodes[i] = cyc_node_new();
        if (nodes[i] == NULL) {
            status = -1;
            break;
        }
        ((NodeObject *)nodes[i])->id = i + 1;
    }
    for (int i = 0; i < n && status == 0; i++) {
        uint32_t r = next_random(&state);
        /* a: another node half of the time */
        if (r % 2 == 0) {
            status = cyc_node_set(nodes[i], 0, nodes[next_random(&state) % (uint32_t)n]);
        }
        /* b: a node, a host object holding a node, or nothing */
        uint32_t kind = (r >> 1) % 4;
        PyObject *target = nodes[next_random(&state) % (uint32_t)n];
        if (status == 0 && kind == 0) {
            status = cyc_node_set(nodes[i], 1, target);
        } else if (status == 0 && kind == 1 && wrap != NULL) {
            PyObject *host = wrap(target, ctx);
            status = host == NULL ? -1 : cyc_node_set(nodes[i], 1, host);
            Py_XDECREF(host);
        }
        /* one node in eight is held from outside */
        if (status == 0 && (r >> 3) % 8 == 0) {
            status = ref_array_append(&random_roots, nodes[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        Py_XDECREF(nodes[i]);
    }
    free(nodes);
    return status;
}

int cyc_random_dead(int i)
{
    return i >= 0 && i < random_size ? random_dead[i] : -1;
}

void cyc_random_release(void)
{
    ref_array_release(&random_roots);
}

void cyc_random_forget(void)
{
    free(random_dead);
    random_dead = NULL;
    random_size = 0;
}
