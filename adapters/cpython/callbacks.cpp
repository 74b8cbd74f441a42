// Each PyTypeObject whose instances the adapter allocates gets a cb_type
// whose callbacks run the type's own slots:
//
//   traverse  tp_traverse, through a visitproc that passes on only
//             collectable objects that are tracked: CPython's collector
//             ignores visits of ints, strings, static types and untracked
//             objects, and so does this one (the core would report them);
//             types standing for foreign nodes (twins, HPy proxies) give
//             their own core traverse instead (set_core_traverse)
//   clear     tp_clear
//   finalize  tp_finalize, with the error indicator saved around it; an
//             exception it leaves is reported, as CPython's
//             PyErr_WriteUnraisable
//   legacy    tp_del: its presence alone makes a garbage cycle uncollectable
//   dealloc   tp_dealloc (the core calls it when its own release brought the
//             count to zero; Py_DECREF calls it through _Py_Dealloc)
//
// The count is ob_refcnt, at offset 0 of every PyObject.
#include <cstddef>
#include <unordered_map>

#include "interop.hpp"
#include "runtime.hpp"

namespace cbpy {

namespace {

struct VisitBridge {
    cb_visit_fn visit;
    void *arg;
    cb_heap *heap;
};

int pass_on_nodes(PyObject *o, void *bridge_ptr) {
    auto *bridge = static_cast<VisitBridge *>(bridge_ptr);
    if (!o || !is_gc(o) || !cb_is_tracked(bridge->heap, o)) return 0;
    return bridge->visit(o, bridge->arg);
}

// Types whose instances stand for foreign nodes (set_core_traverse).
std::unordered_map<const PyTypeObject *, cb_traverse_fn> &core_traverses() {
    static std::unordered_map<const PyTypeObject *, cb_traverse_fn> map{{&cbpy_TwinType, traverse_twin}};
    return map;
}

int run_traverse(void *obj, cb_visit_fn visit, void *arg) {
    auto *o = static_cast<PyObject *>(obj);
    traverseproc traverse = Py_TYPE(o)->tp_traverse;
    if (!traverse) return 0;
    VisitBridge bridge{visit, arg, runtime()->heap};
    return traverse(o, pass_on_nodes, &bridge);
}

// Runs a slot with the pending exception (if any) set aside: what the slot
// raises is its own, and is reported.
template <class Slot>
void run_slot(Slot slot, PyObject *o, const char *name) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    slot(o);
    report_unraisable(o, name);
    PyErr_Restore(type, value, traceback);
}

void run_clear(void *obj) {
    auto *o = static_cast<PyObject *>(obj);
    if (inquiry clear = Py_TYPE(o)->tp_clear) run_slot(clear, o, "tp_clear");
}

void run_finalize(void *obj) {
    auto *o = static_cast<PyObject *>(obj);
    if (destructor finalize = Py_TYPE(o)->tp_finalize) run_slot(finalize, o, "tp_finalize");
}

// Never called: the collector only needs to know a legacy finalizer exists.
void mark_legacy(void *) {}

void run_dealloc(void *obj) {
    auto *o = static_cast<PyObject *>(obj);
    run_slot(Py_TYPE(o)->tp_dealloc, o, "tp_dealloc");
}

}  // namespace

cb_type *node_type(PyTypeObject *tp) {
    Runtime *rt = runtime();
    if (!rt) {
        bound_heap("allocation");
        return nullptr;
    }
    auto it = rt->types.find(tp);
    if (it != rt->types.end()) return it->second;
    cb_type_spec spec{};
    spec.name = tp->tp_name;
    spec.kind = CB_KIND_REFCOUNTED;
    auto core = core_traverses().find(tp);
    spec.traverse = core != core_traverses().end() ? core->second : run_traverse;
    spec.clear = tp->tp_clear ? run_clear : nullptr;
    spec.finalize = tp->tp_finalize ? run_finalize : nullptr;
    spec.legacy_finalize = tp->tp_del ? mark_legacy : nullptr;
    spec.dealloc = run_dealloc;
    spec.count_offset = offsetof(PyObject, ob_refcnt);
    cb_type *type = nullptr;
    if (cb_type_register(rt->heap, &spec, &type) != CB_OK) {
        PyErr_SetString(PyExc_SystemError, "cyclebridge: cannot register the type with the heap");
        return nullptr;
    }
    rt->types.emplace(tp, type);
    return type;
}

void set_core_traverse(PyTypeObject *tp, cb_traverse_fn traverse) { core_traverses()[tp] = traverse; }

bool is_collectable_node(PyObject *o) {
    Runtime *rt = runtime();
    return o && rt && is_gc(o) && cb_is_tracked(rt->heap, o);
}

bool is_adapter_node(const void *node) {
    Runtime *rt = runtime();
    const cb_type *type = rt && node ? cb_type_of(rt->heap, node) : nullptr;
    if (!type) return false;
    for (const auto &entry : rt->types)
        if (entry.second == type) return true;
    return false;
}

}  // namespace cbpy
