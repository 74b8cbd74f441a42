// The adapter's C API, call by call: allocation and tracking, types,
// finalizers, weakrefs, twins, the error indicator, and misuse. The types
// below are written as a CPython extension would write them.
#include <cstring>

#include "support/adapter_runtime.hpp"

#include <structmember.h>

namespace {

// ---- test types, as for CPython ------------------------------------------

int pair_deallocs = 0;
int pair_finalizes = 0;
bool pair_resurrect = false;   // the finalizer stores self in `saved`
bool pair_raise = false;       // the finalizer raises ValueError
PyObject *saved = nullptr;

struct PairObject {
    PyObject_HEAD
    PyObject *a;
    PyObject *b;
    PyObject *weakreflist;
};

int pair_traverse(PyObject *op, visitproc visit, void *arg) {
    auto *self = reinterpret_cast<PairObject *>(op);
    Py_VISIT(self->a);
    Py_VISIT(self->b);
    return 0;
}

int pair_clear(PyObject *op) {
    auto *self = reinterpret_cast<PairObject *>(op);
    Py_CLEAR(self->a);
    Py_CLEAR(self->b);
    return 0;
}

void pair_finalize(PyObject *op) {
    ++pair_finalizes;
    if (pair_resurrect && !saved) saved = Py_NewRef(op);
    if (pair_raise) PyErr_SetString(PyExc_ValueError, "finalizer failed");
}

void pair_dealloc(PyObject *op) {
    if (PyObject_CallFinalizerFromDealloc(op) < 0) return;
    PyObject_GC_UnTrack(op);
    if (reinterpret_cast<PairObject *>(op)->weakreflist) PyObject_ClearWeakRefs(op);
    pair_clear(op);
    ++pair_deallocs;
    Py_TYPE(op)->tp_free(op);
}

PyTypeObject PairType = [] {
    PyTypeObject t{};
    Py_SET_REFCNT(reinterpret_cast<PyObject *>(&t), 1);
    t.tp_name = "test.Pair";
    t.tp_basicsize = sizeof(PairObject);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE;
    t.tp_traverse = pair_traverse;
    t.tp_clear = pair_clear;
    t.tp_finalize = pair_finalize;
    t.tp_dealloc = pair_dealloc;
    t.tp_weaklistoffset = offsetof(PairObject, weakreflist);
    t.tp_new = PyType_GenericNew;
    return t;
}();

// A subtype that adds nothing: it inherits GC support and the slots.
PyTypeObject SubPairType = [] {
    PyTypeObject t{};
    Py_SET_REFCNT(reinterpret_cast<PyObject *>(&t), 1);
    t.tp_name = "test.SubPair";
    t.tp_flags = Py_TPFLAGS_DEFAULT;
    t.tp_base = &PairType;
    return t;
}();

struct BagObject {
    PyObject_VAR_HEAD
    PyObject *items[1];
};

int bag_traverse(PyObject *op, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < Py_SIZE(op); ++i) Py_VISIT(reinterpret_cast<BagObject *>(op)->items[i]);
    return 0;
}

PyTypeObject BagType = [] {
    PyTypeObject t{};
    Py_SET_REFCNT(reinterpret_cast<PyObject *>(&t), 1);
    t.tp_name = "test.Bag";
    t.tp_basicsize = offsetof(BagObject, items);
    t.tp_itemsize = sizeof(PyObject *);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    t.tp_traverse = bag_traverse;
    t.tp_dealloc = [](PyObject *op) {
        PyObject_GC_UnTrack(op);
        for (Py_ssize_t i = 0; i < Py_SIZE(op); ++i) Py_CLEAR(reinterpret_cast<BagObject *>(op)->items[i]);
        PyObject_GC_Del(op);
    };
    return t;
}();

// A callable through vectorcall: counts calls and remembers the argument.
struct CounterObject {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int calls;
    PyObject *last_arg;   // borrowed
    PyObject *referent_seen;
};

PyObject *counter_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *) {
    auto *c = reinterpret_cast<CounterObject *>(self);
    ++c->calls;
    c->last_arg = PyVectorcall_NARGS(nargsf) == 1 ? args[0] : nullptr;
    c->referent_seen = c->last_arg ? PyWeakref_GET_OBJECT(c->last_arg) : nullptr;
    return Py_NewRef(Py_None);
}

PyTypeObject CounterType = [] {
    PyTypeObject t{};
    Py_SET_REFCNT(reinterpret_cast<PyObject *>(&t), 1);
    t.tp_name = "test.Counter";
    t.tp_basicsize = sizeof(CounterObject);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL;
    t.tp_vectorcall_offset = offsetof(CounterObject, vectorcall);
    t.tp_dealloc = [](PyObject *op) { PyObject_Free(op); };
    return t;
}();

// ---- fixture ---------------------------------------------------------------

class Api : public ::testing::Test {
protected:
    cbt::AdapterRuntime rt;
    void SetUp() override {
        ASSERT_EQ(PyType_Ready(&PairType), 0);
        ASSERT_EQ(PyType_Ready(&SubPairType), 0);
        ASSERT_EQ(PyType_Ready(&BagType), 0);
        ASSERT_EQ(PyType_Ready(&CounterType), 0);
        pair_deallocs = pair_finalizes = 0;
        pair_resurrect = pair_raise = false;
        saved = nullptr;
    }
    void TearDown() override { Py_CLEAR(saved); }

    PyObject *pair() { return PairType.tp_new(&PairType, nullptr, nullptr); }
    static void set_a(PyObject *p, PyObject *v) { Py_XSETREF(reinterpret_cast<PairObject *>(p)->a, Py_XNewRef(v)); }
    PyObject *counter() {
        auto *c = PyObject_New(CounterObject, &CounterType);
        c->vectorcall = counter_call;
        c->calls = 0;
        return reinterpret_cast<PyObject *>(c);
    }
};

// ---- allocation and tracking -------------------------------------------------

TEST_F(Api, GcNewIsUntrackedWithOneReferenceAndTrackingIsExplicit) {
    PairObject *p = PyObject_GC_New(PairObject, &PairType);
    ASSERT_NE(p, nullptr);
    auto *o = reinterpret_cast<PyObject *>(p);
    EXPECT_EQ(Py_REFCNT(o), 1);
    EXPECT_EQ(Py_TYPE(o), &PairType);
    EXPECT_FALSE(PyObject_GC_IsTracked(o));
    PyObject_GC_Track(o);
    EXPECT_TRUE(PyObject_GC_IsTracked(o));
    PyObject_GC_Track(o);   // CPython aborts; here a report, and nothing changes
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE), 1);
    EXPECT_TRUE(PyObject_GC_IsTracked(o));
    PyObject_GC_UnTrack(o);
    PyObject_GC_UnTrack(o);   // allowed, as in CPython
    EXPECT_FALSE(PyObject_GC_IsTracked(o));
    p->a = p->b = p->weakreflist = nullptr;
    Py_DECREF(o);
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, GenericAllocZeroesTracksAndSizesVarObjects) {
    PyObject *bag = PyType_GenericAlloc(&BagType, 5);
    ASSERT_NE(bag, nullptr);
    EXPECT_EQ(Py_SIZE(bag), 5);
    EXPECT_TRUE(PyObject_GC_IsTracked(bag));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(reinterpret_cast<BagObject *>(bag)->items[i], nullptr);
    Py_DECREF(bag);
    EXPECT_EQ(rt.tracked(), 0u);
}

TEST_F(Api, ResizeKeepsItemsAndIsRefusedWhileTracked) {
    BagObject *bag = PyObject_GC_NewVar(BagObject, &BagType, 2);
    ASSERT_NE(bag, nullptr);
    PyObject *x = pair(), *y = pair();
    bag->items[0] = x;
    bag->items[1] = y;
    bag = PyObject_GC_Resize(BagObject, bag, 50);
    ASSERT_NE(bag, nullptr);
    EXPECT_EQ(Py_SIZE(bag), 50);
    EXPECT_EQ(bag->items[0], x);
    EXPECT_EQ(bag->items[1], y);
    for (int i = 2; i < 50; ++i) bag->items[i] = nullptr;
    PyObject_GC_Track(bag);
    EXPECT_EQ(PyObject_GC_Resize(BagObject, bag, 60), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_SystemError);
    PyErr_Clear();
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE), 1);
    Py_DECREF(reinterpret_cast<PyObject *>(bag));
    EXPECT_EQ(pair_deallocs, 2);
}

TEST_F(Api, DecrefToZeroDeallocatesAtOnce) {
    PyObject *a = pair(), *b = pair();
    set_a(a, b);
    Py_DECREF(b);
    EXPECT_EQ(pair_deallocs, 0);
    Py_DECREF(a);   // a's dealloc drops b
    EXPECT_EQ(pair_deallocs, 2);
    EXPECT_EQ(rt.tracked(), 0u);
}

// ---- types -----------------------------------------------------------------

TEST_F(Api, TypeReadyInheritsWhatAllocationAndCollectionNeed) {
    EXPECT_EQ(PairType.tp_base, &PyBaseObject_Type);
    EXPECT_EQ(PairType.tp_alloc, PyType_GenericAlloc);
    EXPECT_EQ(PairType.tp_free, PyObject_GC_Del);   // GC type on a non-GC base
    EXPECT_TRUE(PyType_IS_GC(&SubPairType));
    EXPECT_EQ(SubPairType.tp_traverse, pair_traverse);
    EXPECT_EQ(SubPairType.tp_basicsize, PairType.tp_basicsize);
    EXPECT_TRUE(PyType_IsSubtype(&SubPairType, &PairType));
    EXPECT_FALSE(PyType_IsSubtype(&PairType, &SubPairType));
    // A SubPair self-cycle is collected with Pair's callbacks.
    PyObject *s = PyType_GenericAlloc(&SubPairType, 0);
    set_a(s, s);
    Py_DECREF(s);
    rt.collect();
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, TypeReadyRefusesAGcTypeWithoutTraverse) {
    static PyTypeObject bad{};
    bad.tp_name = "test.Bad";
    bad.tp_basicsize = sizeof(PyObject);
    bad.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    EXPECT_EQ(PyType_Ready(&bad), -1);
    ASSERT_NE(cbpy_error_message(), nullptr);
    EXPECT_NE(std::strstr(cbpy_error_message(), "SystemError"), nullptr);
    PyErr_Clear();
}

int heap_deallocs = 0;
int heap_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(reinterpret_cast<PairObject *>(op)->a);
    return 0;
}
int heap_clear(PyObject *op) {
    Py_CLEAR(reinterpret_cast<PairObject *>(op)->a);
    return 0;
}
void heap_dealloc(PyObject *op) {
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    heap_clear(op);
    ++heap_deallocs;
    reinterpret_cast<freefunc>(PyType_GetSlot(tp, Py_tp_free))(op);
    Py_DECREF(tp);
}
PyMemberDef heap_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PairObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};
PyType_Slot heap_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void *>(heap_traverse)},
    {Py_tp_clear, reinterpret_cast<void *>(heap_clear)},
    {Py_tp_dealloc, reinterpret_cast<void *>(heap_dealloc)},
    {Py_tp_members, heap_members},
    {Py_tp_doc, const_cast<char *>("a heap type")},
    {0, nullptr},
};
PyType_Spec heap_spec = {"test.Heap", sizeof(PairObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, heap_slots};

TEST_F(Api, HeapTypesFromSpecHoldTheirSlotsAndAreHeldByInstances) {
    heap_deallocs = 0;
    PyObject *module = pair();
    auto *type = reinterpret_cast<PyTypeObject *>(PyType_FromModuleAndSpec(module, &heap_spec, nullptr));
    ASSERT_NE(type, nullptr);
    EXPECT_TRUE(PyType_HasFeature(type, Py_TPFLAGS_HEAPTYPE));
    EXPECT_STREQ(type->tp_name, "test.Heap");
    EXPECT_STREQ(type->tp_doc, "a heap type");
    EXPECT_EQ(type->tp_weaklistoffset, static_cast<Py_ssize_t>(offsetof(PairObject, weakreflist)));
    EXPECT_EQ(PyType_GetSlot(type, Py_tp_traverse), reinterpret_cast<void *>(heap_traverse));
    EXPECT_EQ(PyType_GetSlot(type, Py_nb_add), nullptr);
    EXPECT_EQ(PyType_GetModule(type), module);
    EXPECT_TRUE(PyObject_GC_IsTracked(reinterpret_cast<PyObject *>(type)));
    Py_ssize_t type_refs = Py_REFCNT(type);
    PyObject *inst = type->tp_alloc(type, 0);
    EXPECT_EQ(Py_REFCNT(type), type_refs + 1) << "an instance holds its heap type";
    Py_DECREF(inst);
    EXPECT_EQ(Py_REFCNT(type), type_refs);
    EXPECT_EQ(heap_deallocs, 1);
    size_t before = rt.tracked();
    Py_DECREF(type);   // the last reference: the type goes, and drops its module
    EXPECT_EQ(rt.tracked(), before - 1);
    EXPECT_EQ(Py_REFCNT(module), 1);
    Py_DECREF(module);
}

TEST_F(Api, HeapTypeSpecsTheAdapterCannotHonourAreRefused) {
    PyType_Spec no_module = {"test.Plain", sizeof(PairObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                             heap_slots};
    auto *plain = reinterpret_cast<PyTypeObject *>(PyType_FromSpec(&no_module));
    ASSERT_NE(plain, nullptr);
    EXPECT_EQ(PyType_GetModule(plain), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_TypeError);
    PyErr_Clear();

    PyMemberDef dict_members[] = {{"__dictoffset__", T_PYSSIZET, 0, READONLY, nullptr}, {nullptr, 0, 0, 0, nullptr}};
    PyType_Slot dict_slots[] = {{Py_tp_traverse, reinterpret_cast<void *>(heap_traverse)},
                                {Py_tp_members, dict_members}, {0, nullptr}};
    PyType_Spec with_dict = {"test.Dict", sizeof(PairObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, dict_slots};
    EXPECT_EQ(PyType_FromSpec(&with_dict), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_SystemError);
    PyErr_Clear();

    PyType_Slot bad_slots[] = {{999, nullptr}, {0, nullptr}};
    PyType_Spec bad = {"test.BadSlot", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, bad_slots};
    EXPECT_EQ(PyType_FromSpec(&bad), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_RuntimeError);
    PyErr_Clear();

    PyObject *not_a_type = pair();
    EXPECT_EQ(PyType_FromSpecWithBases(&no_module, not_a_type), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_TypeError);
    PyErr_Clear();
    Py_DECREF(not_a_type);

    auto *sub = reinterpret_cast<PyTypeObject *>(
        PyType_FromSpecWithBases(&no_module, reinterpret_cast<PyObject *>(&PairType)));
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->tp_base, &PairType);
    EXPECT_TRUE(PyType_IsSubtype(sub, &PairType));
    Py_DECREF(sub);
    Py_DECREF(plain);
}

// ---- finalizers ----------------------------------------------------------------

TEST_F(Api, DeallocRunsTheFinalizerOnceAndAResurrectedObjectStaysTracked) {
    pair_resurrect = true;
    PyObject *p = pair();
    Py_DECREF(p);   // finalizer runs from dealloc and resurrects
    EXPECT_EQ(pair_finalizes, 1);
    EXPECT_EQ(pair_deallocs, 0);
    ASSERT_EQ(saved, p);
    EXPECT_TRUE(PyObject_GC_IsTracked(p));
    EXPECT_TRUE(PyObject_GC_IsFinalized(p));
    Py_CLEAR(saved);   // dies now, without a second finalizer call
    EXPECT_EQ(pair_finalizes, 1);
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, TheCollectorDoesNotRerunAFinalizerDeallocRan) {
    pair_resurrect = true;
    PyObject *p = pair();
    Py_DECREF(p);
    ASSERT_EQ(saved, p);
    set_a(p, p);   // now a cycle
    Py_CLEAR(saved);
    rt.collect();
    EXPECT_EQ(pair_finalizes, 1);
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, AnExceptionFromAFinalizerIsReportedAndThePendingOneKept) {
    pair_raise = true;
    PyObject *p = pair();
    set_a(p, p);
    Py_DECREF(p);
    PyErr_SetString(PyExc_TypeError, "pending");
    rt.collect();
    EXPECT_EQ(pair_deallocs, 1);
    EXPECT_EQ(rt.take(CB_REPORT_CALLBACK_THREW), 1);
    ASSERT_NE(cbpy_error_message(), nullptr);
    EXPECT_STREQ(cbpy_error_message(), "TypeError: pending");
    PyErr_Clear();
}

// ---- weakrefs ----------------------------------------------------------------

TEST_F(Api, BasicWeakrefsAreSharedAndCallbackOnesAreNot) {
    PyObject *p = pair();
    PyObject *cb = counter();
    PyObject *w1 = PyWeakref_NewRef(p, nullptr);
    PyObject *w2 = PyWeakref_NewRef(p, Py_None);
    PyObject *w3 = PyWeakref_NewRef(p, cb);
    ASSERT_TRUE(w1 && w2 && w3);
    EXPECT_EQ(w1, w2);
    EXPECT_NE(w1, w3);
    EXPECT_EQ(reinterpret_cast<PairObject *>(p)->weakreflist, w1) << "basic reference first, as in CPython";
    EXPECT_EQ(PyWeakref_GetObject(w3), p);
    Py_DECREF(p);
    EXPECT_EQ(PyWeakref_GetObject(w1), Py_None);
    EXPECT_EQ(PyWeakref_GET_OBJECT(w3), Py_None);
    auto *c = reinterpret_cast<CounterObject *>(cb);
    EXPECT_EQ(c->calls, 1);
    EXPECT_EQ(c->last_arg, w3);
    EXPECT_EQ(c->referent_seen, Py_None) << "the callback sees its weakref already cleared";
    Py_DECREF(w1);
    Py_DECREF(w2);
    Py_DECREF(w3);
    Py_DECREF(cb);
}

TEST_F(Api, AWeakrefThatDiesFirstUnlinksItselfAndNeverCalls) {
    PyObject *p = pair();
    PyObject *cb = counter();
    PyObject *w = PyWeakref_NewRef(p, cb);
    Py_DECREF(w);
    EXPECT_EQ(reinterpret_cast<PairObject *>(p)->weakreflist, nullptr);
    Py_DECREF(p);
    EXPECT_EQ(reinterpret_cast<CounterObject *>(cb)->calls, 0);
    Py_DECREF(cb);
}

TEST_F(Api, AWeakrefOwnedByGarbageNeverCalls) {
    // The weakref sits in a cycle with its own target (bpo-38006's shape).
    PyObject *p = pair();
    PyObject *cb = counter();
    PyObject *w = PyWeakref_NewRef(p, cb);
    set_a(p, w);
    Py_XSETREF(reinterpret_cast<PairObject *>(p)->b, Py_NewRef(p));
    Py_DECREF(w);
    Py_DECREF(p);
    rt.collect();
    EXPECT_EQ(pair_deallocs, 1);
    EXPECT_EQ(reinterpret_cast<CounterObject *>(cb)->calls, 0);
    Py_DECREF(cb);
}

TEST_F(Api, WeakrefsTheAdapterCannotServeAreRefused) {
    PyObject *p = pair();
    PyObject *plain = pair();   // not callable
    EXPECT_EQ(PyWeakref_NewRef(p, plain), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_TypeError);
    PyErr_Clear();
    PyObject *cb = counter();   // no tp_weaklistoffset
    EXPECT_EQ(PyWeakref_NewRef(cb, nullptr), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_TypeError);
    PyErr_Clear();
    EXPECT_EQ(PyWeakref_GetObject(p), nullptr);   // not a weakref
    EXPECT_EQ(PyErr_Occurred(), PyExc_SystemError);
    PyErr_Clear();
    Py_DECREF(cb);
    Py_DECREF(plain);
    Py_DECREF(p);
}

// ---- twins -------------------------------------------------------------------

TEST_F(Api, OneTwinPerHostObjectHoldingItAlive) {
    cb_host_ref h = rt.host(0);
    PyObject *t1 = cbpy_twin(h);
    ASSERT_NE(t1, nullptr);
    PyObject *t2 = cbpy_twin(h);
    EXPECT_EQ(t1, t2);
    EXPECT_EQ(cbpy_twin_host(t1), h);
    EXPECT_EQ(Py_REFCNT(t1), 3) << "two C references and the host object's";
    Py_DECREF(t2);
    uint64_t id = cb_refheap_id(rt.rh, h);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_TRUE(cb_refheap_is_live(rt.rh, id)) << "C holds the twin: the host object must live";
    Py_DECREF(t1);
    rt.collect();
    EXPECT_FALSE(cb_refheap_is_live(rt.rh, id));
    EXPECT_EQ(rt.tracked(), 0u) << "the twin dies with its host object";
    EXPECT_EQ(cbpy_twin_host(nullptr), nullptr);
}

TEST_F(Api, AHostObjectHoldingAnExtensionObjectKeepsItAlive) {
    cb_host_ref root = rt.host(1, /*rooted=*/true);
    PyObject *p = pair();
    rt.set(root, 0, p);
    Py_DECREF(p);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_EQ(pair_deallocs, 0);
    cb_refheap_remove_root(rt.rh, root);
    rt.collect();
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, ARefusedTwinIsAnError) {
    rt.refuse_twins = true;
    EXPECT_EQ(cbpy_twin(rt.host(0)), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_SystemError);
    PyErr_Clear();
    EXPECT_EQ(rt.tracked(), 0u);
}

TEST_F(Api, WeakrefCallbacksThroughTwinsGoToTheRuntime) {
    cb_host_ref fn = rt.host(0, /*rooted=*/true);
    PyObject *callback = cbpy_twin(fn);
    PyObject *p = pair();
    PyObject *w = PyWeakref_NewRef(p, callback);
    Py_DECREF(callback);
    Py_DECREF(p);
    EXPECT_EQ(rt.calls[fn], 1);
    ASSERT_EQ(rt.call_args.size(), 1u);
    EXPECT_EQ(rt.call_args[0], w);
    Py_DECREF(w);
    cb_refheap_remove_root(rt.rh, fn);
}

// ---- the error indicator and PyGC_Collect ------------------------------------

TEST_F(Api, ErrorsRoundTripThroughFetchAndRestore) {
    EXPECT_EQ(PyErr_Occurred(), nullptr);
    EXPECT_EQ(cbpy_error_message(), nullptr);
    PyErr_SetString(PyExc_ValueError, "bad value");
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    EXPECT_EQ(PyErr_Occurred(), nullptr);
    EXPECT_EQ(type, PyExc_ValueError);
    PyErr_Restore(type, value, traceback);
    EXPECT_STREQ(cbpy_error_message(), "ValueError: bad value");
    EXPECT_EQ(PyErr_NoMemory(), nullptr);
    EXPECT_STREQ(cbpy_error_message(), "MemoryError: out of memory");
    PyErr_Clear();
}

TEST_F(Api, PyGCCollectRunsAFullCollectionOfBothHeaps) {
    cb_host_ref h = rt.host(1);
    PyObject *p = pair();
    PyObject *t = cbpy_twin(h);
    set_a(p, t);
    rt.set(h, 0, p);
    Py_DECREF(t);
    Py_DECREF(p);
    EXPECT_EQ(PyGC_Collect(), 2);   // p and the twin
    EXPECT_EQ(pair_deallocs, 1);
    EXPECT_EQ(rt.host_objects(), 0u);
}

// ---- misuse -----------------------------------------------------------------------

TEST_F(Api, AnExtraDecrefIsReportedAndTheObjectKept) {
    PyObject *p = pair();
    set_a(p, p);           // count 2: ours and its own
    Py_SET_REFCNT(p, 0);   // as if decref'd twice too often, without reaching dealloc
    rt.collect();
    EXPECT_EQ(rt.take(CB_REPORT_REFS_EXCEED_COUNT), 1);
    EXPECT_EQ(pair_deallocs, 0) << "an object whose count is wrong is kept";
    Py_SET_REFCNT(p, 2);
    Py_DECREF(p);
    rt.collect();
    EXPECT_EQ(pair_deallocs, 1);
}

TEST_F(Api, VisitsOfStaticObjectsAndUntrackedObjectsAreIgnoredAsInCPython) {
    PyObject *p = pair();
    set_a(p, reinterpret_cast<PyObject *>(&PairType));   // a static type: not collectable
    BagObject *loose = PyObject_GC_NewVar(BagObject, &BagType, 0);   // a GC object never tracked
    reinterpret_cast<PairObject *>(p)->b = reinterpret_cast<PyObject *>(loose);
    PyObject *holder = PyObject_GC_New(PyObject, &PairType);   // untracked too
    set_a(holder, p);
    Py_DECREF(p);   // held by `holder` only, which the collector cannot see
    rt.collect();
    EXPECT_TRUE(rt.reports.empty());
    EXPECT_EQ(pair_deallocs, 0);
    Py_DECREF(holder);
    EXPECT_EQ(pair_deallocs, 2);
}

TEST_F(Api, AStaticTypeDecrefedToZeroIsReportedNotFreed) {
    Py_ssize_t refs = Py_REFCNT(&BagType);
    Py_SET_REFCNT(&BagType, 1);
    Py_DECREF(&BagType);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE), 1);
    EXPECT_GE(Py_REFCNT(&BagType), 1);
    Py_SET_REFCNT(&BagType, refs);
}

TEST_F(Api, FinalizerFromDeallocOnALiveObjectIsRefused) {
    PyObject *p = pair();
    EXPECT_EQ(PyObject_CallFinalizerFromDealloc(p), -1);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE), 1);
    EXPECT_EQ(pair_finalizes, 0);
    Py_DECREF(p);
}

TEST(ApiBinding, UseWithoutABoundHeapIsAnErrorAndBindingTwiceIsRefused) {
    ASSERT_EQ(cbpy_heap(), nullptr);
    EXPECT_EQ(PyType_GenericAlloc(&PairType, 0), nullptr);
    EXPECT_EQ(PyErr_Occurred(), PyExc_SystemError);
    PyErr_Clear();
    cb_heap *heap = cb_heap_new(nullptr);
    int reports = 0;
    cb_set_report_handler(heap, [](void *ctx, const cb_report *) { ++*static_cast<int *>(ctx); }, &reports);
    EXPECT_EQ(cbpy_init(heap, nullptr), CB_OK);
    EXPECT_EQ(cbpy_heap(), heap);
    EXPECT_EQ(cbpy_init(heap, nullptr), CB_ERR_BUSY);
    EXPECT_EQ(reports, 1);
    EXPECT_EQ(cbpy_twin(reinterpret_cast<cb_host_ref>(&reports)), nullptr) << "no host: no twins";
    PyErr_Clear();
    cbpy_fini();
    cb_heap_destroy(heap);
}

TEST(ApiAutomatic, AutomaticCollectionsFreeCyclesAsObjectsAreAllocated) {
    cbt::AdapterRuntime rt(CB_DRIVE_BRIDGE, /*flags=*/0);
    ASSERT_EQ(PyType_Ready(&PairType), 0);
    pair_deallocs = 0;
    for (int i = 0; i < 10000; ++i) {
        PyObject *p = PairType.tp_new(&PairType, nullptr, nullptr);
        Py_XSETREF(reinterpret_cast<PairObject *>(p)->a, Py_NewRef(p));
        Py_DECREF(p);
    }
    EXPECT_GT(pair_deallocs, 9000) << "young collections started by allocation free the cycles";
    EXPECT_LT(rt.tracked(), 1000u);
}

}  // namespace
