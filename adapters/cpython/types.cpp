// Type objects: PyType_Ready for static types, PyType_FromSpec and its
// variants for heap types, and the slots of `type` itself.
//
// Heap types are nodes like any GC object (PyType_Type is a GC type whose
// tp_is_gc says "heap types only"). Their instances hold a reference to
// them, which instances visit (the rule since 3.9), so a cycle running
// through a type is collectable. What a type refers to, as far as the
// collector is concerned: its base and its module (ht_module). There is no
// tp_dict, tp_mro or tp_bases tuple: the adapter has no dicts or tuples.
#include <cstdlib>
#include <cstring>

#include "builtin_slots.h"
#include "runtime.hpp"
#include "type_slots.hpp"

namespace cbpy {

namespace {

PyObject *fail(PyObject *exception, const char *message) {
    PyErr_SetString(exception, message);
    return nullptr;
}

// The inheritance PyType_Ready does that allocation and the collector
// depend on (CPython's inherit_special and inherit_slots, in part).
void inherit(PyTypeObject *type, PyTypeObject *base) {
    if (!PyType_HasFeature(type, Py_TPFLAGS_HAVE_GC) && PyType_HasFeature(base, Py_TPFLAGS_HAVE_GC) &&
        !type->tp_traverse && !type->tp_clear) {
        type->tp_flags |= Py_TPFLAGS_HAVE_GC;
        type->tp_traverse = base->tp_traverse;
        type->tp_clear = base->tp_clear;
    }
    if (!type->tp_basicsize) type->tp_basicsize = base->tp_basicsize;
    if (!type->tp_itemsize) type->tp_itemsize = base->tp_itemsize;
    if (!type->tp_weaklistoffset) type->tp_weaklistoffset = base->tp_weaklistoffset;
    if (!type->tp_dealloc) type->tp_dealloc = base->tp_dealloc;
    if (!type->tp_alloc) type->tp_alloc = base->tp_alloc;
    if (!type->tp_finalize) type->tp_finalize = base->tp_finalize;
    if (!type->tp_del) type->tp_del = base->tp_del;
    if (!type->tp_is_gc) type->tp_is_gc = base->tp_is_gc;
    // Static types made straight on object cannot be instantiated through
    // tp_new unless they say so, as in CPython.
    bool may_inherit_new = base != &PyBaseObject_Type || PyType_HasFeature(type, Py_TPFLAGS_HEAPTYPE);
    if (!type->tp_new && may_inherit_new) type->tp_new = base->tp_new;
    if (!type->tp_free) {
        bool type_gc = PyType_HasFeature(type, Py_TPFLAGS_HAVE_GC);
        if (type_gc == PyType_HasFeature(base, Py_TPFLAGS_HAVE_GC)) type->tp_free = base->tp_free;
        else if (type_gc && base->tp_free == PyObject_Free) type->tp_free = PyObject_GC_Del;
    }
}

// The dealloc of heap types that give none (CPython's subtype_dealloc, for
// what the adapter supports): finalizer, untrack, weakrefs, clear, free,
// and the instance's reference to its type.
void heap_instance_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (tp->tp_finalize && PyObject_CallFinalizerFromDealloc(self) < 0) return;
    if (PyType_IS_GC(tp)) PyObject_GC_UnTrack(self);
    if (tp->tp_weaklistoffset > 0 &&
        *reinterpret_cast<PyObject **>(reinterpret_cast<char *>(self) + tp->tp_weaklistoffset))
        PyObject_ClearWeakRefs(self);
    if (tp->tp_clear) tp->tp_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

// Py_tp_members: the special members that set offsets, as CPython 3.11.
bool apply_special_members(PyTypeObject *type, const PyMemberDef *members) {
    for (const PyMemberDef *m = members; m && m->name; ++m) {
        if (std::strcmp(m->name, "__weaklistoffset__") == 0) type->tp_weaklistoffset = m->offset;
        else if (std::strcmp(m->name, "__vectorcalloffset__") == 0) type->tp_vectorcall_offset = m->offset;
        else if (std::strcmp(m->name, "__dictoffset__") == 0) {
            fail(PyExc_SystemError, "cyclebridge: __dictoffset__ is not supported (the adapter has no instance dicts)");
            return false;
        }
    }
    return true;
}

size_t count_members(const PyMemberDef *members) {
    size_t n = 0;
    for (const PyMemberDef *m = members; m && m->name; ++m) ++n;
    return n;
}

char *copy_string(const char *s) {
    if (!s) return nullptr;
    char *copy = static_cast<char *>(std::malloc(std::strlen(s) + 1));
    if (copy) std::strcpy(copy, s);
    return copy;
}

PyTypeObject *base_from(PyObject *bases) {
    if (!bases) return nullptr;
    if (!PyType_Check(bases)) {
        fail(PyExc_TypeError, "cyclebridge: bases must be one type object (the adapter has no tuples)");
        return nullptr;
    }
    return reinterpret_cast<PyTypeObject *>(bases);
}

}  // namespace

}  // namespace cbpy

extern "C" {

int PyType_Ready(PyTypeObject *type) {
    if (!type) {
        PyErr_BadInternalCall();
        return -1;
    }
    if (PyType_HasFeature(type, Py_TPFLAGS_READY)) return 0;
    if (!type->tp_name) {
        PyErr_SetString(PyExc_SystemError, "PyType_Ready: a type needs a tp_name");
        return -1;
    }
    PyTypeObject *base = type->tp_base;
    if (!base && type != &PyBaseObject_Type) base = type->tp_base = &PyBaseObject_Type;
    if (base && PyType_Ready(base) < 0) return -1;
    if (!Py_TYPE(type)) Py_SET_TYPE(type, base ? Py_TYPE(base) : &PyType_Type);
    if (base) cbpy::inherit(type, base);
    if (PyType_HasFeature(type, Py_TPFLAGS_HAVE_GC) && !type->tp_traverse) {
        PyErr_SetString(PyExc_SystemError, "PyType_Ready: a type with Py_TPFLAGS_HAVE_GC needs tp_traverse");
        return -1;
    }
    type->tp_flags |= Py_TPFLAGS_READY;
    return 0;
}

PyObject *PyType_FromModuleAndSpec(PyObject *module, PyType_Spec *spec, PyObject *bases) {
    using namespace cbpy;
    if (!spec || !spec->name) return fail(PyExc_SystemError, "PyType_FromSpec: a spec needs a name");
    PyTypeObject *base = base_from(bases);
    if (bases && !base) return nullptr;
    const PyMemberDef *members = nullptr;
    for (const PyType_Slot *s = spec->slots; s && s->slot; ++s) {
        if (s->slot == Py_tp_base && !base) base = static_cast<PyTypeObject *>(s->pfunc);
        else if (s->slot == Py_tp_bases && !base && !(base = base_from(static_cast<PyObject *>(s->pfunc))))
            return nullptr;
        else if (s->slot == Py_tp_members) members = static_cast<const PyMemberDef *>(s->pfunc);
        else if (s->slot <= 0 || (s->slot > Py_am_send)) {
            PyErr_SetString(PyExc_RuntimeError, "PyType_FromSpec: invalid slot id");
            return nullptr;
        }
    }
    if (!base) base = &PyBaseObject_Type;
    if (PyType_Ready(base) < 0) return nullptr;
    if (!PyType_HasFeature(base, Py_TPFLAGS_BASETYPE)) return fail(PyExc_TypeError, "type is not an acceptable base type");

    size_t nmembers = count_members(members);
    auto *ht = reinterpret_cast<PyHeapTypeObject *>(
        PyType_GenericAlloc(&PyType_Type, static_cast<Py_ssize_t>(nmembers)));
    if (!ht) return nullptr;
    PyTypeObject *type = &ht->ht_type;
    type->tp_flags = spec->flags | Py_TPFLAGS_HEAPTYPE;
    type->tp_as_async = &ht->as_async;
    type->tp_as_number = &ht->as_number;
    type->tp_as_sequence = &ht->as_sequence;
    type->tp_as_mapping = &ht->as_mapping;
    type->tp_as_buffer = &ht->as_buffer;
    ht->_ht_tpname = copy_string(spec->name);
    type->tp_name = ht->_ht_tpname;
    type->tp_basicsize = spec->basicsize;
    type->tp_itemsize = spec->itemsize;
    Py_INCREF(base);
    type->tp_base = base;
    ht->ht_module = module;
    Py_XINCREF(module);
    if (!ht->_ht_tpname) {
        Py_DECREF(type);
        return PyErr_NoMemory();
    }
    for (const PyType_Slot *s = spec->slots; s && s->slot; ++s) {
        if (s->slot == Py_tp_base || s->slot == Py_tp_bases) continue;
        if (s->slot == Py_tp_members) {
            auto *copy = reinterpret_cast<PyMemberDef *>(reinterpret_cast<char *>(ht) + PyType_Type.tp_basicsize);
            std::memcpy(copy, members, nmembers * sizeof(PyMemberDef));
            type->tp_members = copy;
            continue;
        }
        if (s->slot == Py_tp_doc) {
            type->tp_doc = copy_string(static_cast<const char *>(s->pfunc));
            continue;
        }
        *slot_field(type, s->slot) = s->pfunc;
    }
    if (!apply_special_members(type, members)) {
        Py_DECREF(type);
        return nullptr;
    }
    if (!type->tp_dealloc) type->tp_dealloc = heap_instance_dealloc;
    if (PyType_Ready(type) < 0) {
        Py_DECREF(type);
        return nullptr;
    }
    return reinterpret_cast<PyObject *>(type);
}

PyObject *PyType_FromSpecWithBases(PyType_Spec *spec, PyObject *bases) {
    return PyType_FromModuleAndSpec(nullptr, spec, bases);
}

PyObject *PyType_FromSpec(PyType_Spec *spec) { return PyType_FromModuleAndSpec(nullptr, spec, nullptr); }

// Single inheritance only: the base chain is the MRO.
int PyType_IsSubtype(PyTypeObject *a, PyTypeObject *b) {
    for (PyTypeObject *t = a; t; t = t->tp_base)
        if (t == b) return 1;
    return b == &PyBaseObject_Type;
}

void *PyType_GetSlot(PyTypeObject *type, int slot) {
    if (type) {
        // The slots that are not plain pointer fields of the table.
        if (slot == Py_tp_doc) return const_cast<char *>(type->tp_doc);
        if (slot == Py_tp_members) return type->tp_members;
        if (slot == Py_tp_base) return type->tp_base;
        if (slot > 0 && slot <= Py_am_send && slot != Py_tp_bases) {
            void **field = cbpy::slot_field(type, slot);
            return field ? *field : nullptr;
        }
    }
    PyErr_BadInternalCall();
    return nullptr;
}

PyObject *PyType_GetModule(PyTypeObject *type) {
    if (!PyType_HasFeature(type, Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "PyType_GetModule: the type is not a heap type");
        return nullptr;
    }
    PyObject *module = reinterpret_cast<PyHeapTypeObject *>(type)->ht_module;
    if (!module) PyErr_SetString(PyExc_TypeError, "PyType_GetModule: the type has no associated module");
    return module;
}

int cbpy_type_is_gc(PyObject *type) {
    return PyType_HasFeature(reinterpret_cast<PyTypeObject *>(type), Py_TPFLAGS_HEAPTYPE);
}

int cbpy_type_traverse(PyObject *self, visitproc visit, void *arg) {
    auto *type = reinterpret_cast<PyTypeObject *>(self);
    if (!PyType_HasFeature(type, Py_TPFLAGS_HEAPTYPE)) return 0;
    Py_VISIT(reinterpret_cast<PyObject *>(type->tp_base));
    Py_VISIT(reinterpret_cast<PyHeapTypeObject *>(type)->ht_module);
    return 0;
}

// As CPython's type_clear: the module stays (a type's methods need it until
// the end); the module's own clear breaks cycles through it.
int cbpy_type_clear(PyObject *) { return 0; }

void cbpy_type_dealloc(PyObject *self) {
    auto *type = reinterpret_cast<PyTypeObject *>(self);
    if (!PyType_HasFeature(type, Py_TPFLAGS_HEAPTYPE)) {
        Py_SET_REFCNT(self, 1);
        cbpy::report(CB_REPORT_API_MISUSE, self, "the count of static type %s fell to zero: a Py_DECREF too many",
                     type->tp_name);
        return;
    }
    auto *ht = reinterpret_cast<PyHeapTypeObject *>(type);
    PyObject_GC_UnTrack(self);
    cbpy::forget_type(type);
    Py_XDECREF(reinterpret_cast<PyObject *>(type->tp_base));
    Py_XDECREF(ht->ht_module);
    std::free(const_cast<char *>(type->tp_doc));
    std::free(ht->_ht_tpname);
    PyObject_GC_Del(self);
}

}  // extern "C"
