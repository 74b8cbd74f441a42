// What the other adapters of this repository (adapters/hpy) need from this
// one: PyObjects that stand for their nodes, and the test of which
// PyObjects a traverse should pass on to the collector. Not public API.
#pragma once

#include <cyclebridge/cyclebridge.h>

struct _object;
struct _typeobject;

namespace cbpy {

// Instances of tp report their edges with `traverse`, which visits nodes of
// any kind (and cb_visit_host) for the core directly, instead of with
// tp_traverse through the visitproc that passes on only collectable
// PyObjects. For PyObjects standing for foreign nodes: twins, HPy proxies.
// Call before the first instance is allocated; the setting outlives
// bindings.
void set_core_traverse(_typeobject *tp, cb_traverse_fn traverse);

// Whether a visit of o concerns the collector: o is collectable and
// tracked (CPython ignores visits of ints, static types, untracked objects).
bool is_collectable_node(_object *o);

// Whether node, a node of the bound heap, is a PyObject this adapter
// allocated (of a type it registered).
bool is_adapter_node(const void *node);

}  // namespace cbpy
