// The HPy-style API, one contract or one misuse per test: handles, fields,
// globals, types, finalizers, conversions and closing the context.
#include "support/hpy_runtime.hpp"

using namespace cbt;

namespace {

TEST(Handles, DupIsTheSameObjectAndEachHandleIsARoot) {
    HpyRuntime rt;
    HPy a = hn_new(rt.ctx, HN_NODE);
    long id = hn_id(rt.ctx, a);
    HPy b = HPy_Dup(rt.ctx, a);
    EXPECT_TRUE(HPy_Is(rt.ctx, a, b));
    EXPECT_NE(a._i, b._i) << "a duplicate is a handle of its own";
    EXPECT_EQ(cbhpy_open_handles(rt.ctx), 2u);
    HPy_Close(rt.ctx, a);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_FALSE(hn_was_destroyed(id)) << "b is still open";
    HPy_Close(rt.ctx, b);
    EXPECT_FALSE(hn_was_destroyed(id)) << "only the collector frees HPy objects";
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(id));
    EXPECT_EQ(hn_destroyed(HN_NODE), 1);
    EXPECT_EQ(cbhpy_open_handles(rt.ctx), 0u);
}

TEST(Handles, YoungCollectionsNeverFreeHPyObjects) {
    HpyRuntime rt;
    ASSERT_EQ(hn_self_cycles(rt.ctx, 100), 0);
    for (int g = 0; g < CB_FULL; ++g) ASSERT_EQ(cb_collect(rt.heap, g, nullptr), CB_OK);
    EXPECT_EQ(hn_destroyed(HN_NODE), 0);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 100);
}

TEST(Handles, ClosingNullIsAllowed) {
    HpyRuntime rt;
    HPy_Close(rt.ctx, HPy_NULL);
    EXPECT_FALSE(HPyErr_Occurred(rt.ctx));
}

TEST(Handles, ClosedHandleIsAnErrorEvenAfterItsSlotIsReused) {
    HpyRuntime rt;   // release mode: generations, no quarantine
    HPy x = hn_new(rt.ctx, HN_NODE);
    HPy a = HPy_Dup(rt.ctx, x);
    HPy_Close(rt.ctx, a);
    HPy b = HPy_Dup(rt.ctx, x);   // takes a's slot
    HPy_Close(rt.ctx, x);
    EXPECT_EQ(a._i & 0xffffffff, b._i & 0xffffffff) << "the slot is reused at once without debug mode";
    HPy c = HPy_Dup(rt.ctx, a);
    EXPECT_TRUE(HPy_IsNull(c));
    EXPECT_NE(rt.error().find("handle"), std::string::npos);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "is closed"), 1);
    HPy_Close(rt.ctx, a);   // double close: refused, b untouched
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "is closed"), 1);
    rt.error();
    EXPECT_EQ(hn_id(rt.ctx, b), hn_id(rt.ctx, b));
    EXPECT_EQ(cbhpy_open_handles(rt.ctx), 1u);
    HPy_Close(rt.ctx, b);
    HPy forged;
    forged._i = 0x7777;
    EXPECT_TRUE(HPy_IsNull(HPy_Dup(rt.ctx, forged)));
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "not a handle of this context"), 1);
    rt.error();
}

TEST(Fields, StoreLoadOverwriteAndNull) {
    HpyRuntime rt;
    HPy owner = hn_new(rt.ctx, HN_NODE), x = hn_new(rt.ctx, HN_NODE), y = hn_new(rt.ctx, HN_NODE);
    long ix = hn_id(rt.ctx, x), iy = hn_id(rt.ctx, y);
    ASSERT_EQ(hn_set(rt.ctx, owner, 0, x), 0);
    HPy loaded = hn_get(rt.ctx, owner, 0);
    EXPECT_TRUE(HPy_Is(rt.ctx, loaded, x));
    HPy_Close(rt.ctx, loaded);
    HPy_Close(rt.ctx, x);
    HPy_Close(rt.ctx, y);
    rt.collect();
    EXPECT_FALSE(hn_was_destroyed(ix)) << "the field keeps x";
    EXPECT_TRUE(hn_was_destroyed(iy));
    HPy z = hn_new(rt.ctx, HN_NODE);
    ASSERT_EQ(hn_set(rt.ctx, owner, 0, z), 0);   // overwrite
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ix));
    ASSERT_EQ(hn_set(rt.ctx, owner, 0, HPy_NULL), 0);
    EXPECT_TRUE(HPy_IsNull(hn_get(rt.ctx, owner, 0)));
    HPy_Close(rt.ctx, z);
    HPy_Close(rt.ctx, owner);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_NODE), 4);
}

TEST(Fields, StoreIntoTypeWithoutTraverseIsRefused) {
    HpyRuntime rt;
    HPy blob = hn_new(rt.ctx, HN_BLOB), x = hn_new(rt.ctx, HN_NODE);
    long ix = hn_id(rt.ctx, x);
    NodeObject *data = static_cast<NodeObject *>(_HPy_AsStruct_Object(rt.ctx, blob));
    HPyField_Store(rt.ctx, blob, &data->a, x);
    EXPECT_TRUE(HPyField_IsNull(data->a)) << "nothing stored";
    EXPECT_NE(rt.error().find("no HPy_tp_traverse"), std::string::npos);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "no HPy_tp_traverse"), 1);
    HPy_Close(rt.ctx, x);
    HPy_Close(rt.ctx, blob);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ix));
    EXPECT_EQ(hn_destroyed(HN_BLOB), 1);
}

TEST(Fields, FieldOutsideTheOwnerIsRefused) {
    HpyRuntime rt;
    HPy owner = hn_new(rt.ctx, HN_NODE), other = hn_new(rt.ctx, HN_NODE);
    HPyField on_stack = HPyField_NULL;
    HPyField_Store(rt.ctx, owner, &on_stack, other);
    EXPECT_TRUE(HPyField_IsNull(on_stack));
    auto *o = static_cast<NodeObject *>(_HPy_AsStruct_Object(rt.ctx, other));
    HPyField_Store(rt.ctx, owner, &o->a, other);   // another object's field
    EXPECT_TRUE(HPyField_IsNull(o->a));
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "is not inside"), 2);
    rt.error();
    HPy_Close(rt.ctx, owner);
    HPy_Close(rt.ctx, other);
}

TEST(Globals, AGlobalIsARootUntilOverwrittenOrTheContextCloses) {
    HpyRuntime rt;
    static HPyGlobal global;
    HPy a = hn_new(rt.ctx, HN_NODE), b = hn_new(rt.ctx, HN_NODE);
    long ia = hn_id(rt.ctx, a), ib = hn_id(rt.ctx, b);
    HPyGlobal_Store(rt.ctx, &global, a);
    HPy_Close(rt.ctx, a);
    rt.collect();
    EXPECT_FALSE(hn_was_destroyed(ia));
    HPy loaded = HPyGlobal_Load(rt.ctx, global);
    EXPECT_EQ(hn_id(rt.ctx, loaded), ia);
    HPy_Close(rt.ctx, loaded);
    HPyGlobal_Store(rt.ctx, &global, b);
    HPy_Close(rt.ctx, b);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ia));
    EXPECT_FALSE(hn_was_destroyed(ib));
    ASSERT_EQ(rt.close(), CB_OK);   // drops the global, collects
    EXPECT_TRUE(hn_was_destroyed(ib));
    EXPECT_EQ(global._i, 0);
}

TEST(Types, TypeIsAnObjectHeldByItsInstances) {
    HpyRuntime rt;
    HPy t = hn_type(rt.ctx, HN_NODE);
    HPy n = hn_new(rt.ctx, HN_NODE);
    HPy nt = HPy_Type(rt.ctx, n);
    EXPECT_TRUE(HPy_Is(rt.ctx, t, nt));
    EXPECT_TRUE(HPy_TypeCheck(rt.ctx, n, t));
    HPy other = hn_type(rt.ctx, HN_PHOENIX);
    EXPECT_FALSE(HPy_TypeCheck(rt.ctx, n, other));
    HPy meta = HPy_Type(rt.ctx, t);
    HPy meta_type = HPy_Type(rt.ctx, meta);
    EXPECT_TRUE(HPy_Is(rt.ctx, meta_type, meta)) << "the type of types is its own type";
    // HPy_New of something that is not a type.
    EXPECT_TRUE(HPy_IsNull(HPy_New(rt.ctx, n, static_cast<void **>(nullptr))));
    EXPECT_NE(rt.error().find("not a type"), std::string::npos);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "not a type"), 1);
    for (HPy h : {t, nt, other, n, meta, meta_type}) HPy_Close(rt.ctx, h);
    size_t before = cbhpy_live_objects(rt.ctx);
    rt.collect();
    EXPECT_EQ(cbhpy_live_objects(rt.ctx), before - 1) << "n is freed; its type lives in a global";
}

TEST(Types, UnsupportedSpecsAreRefused) {
    HpyRuntime rt;
    HPyType_Spec var{};
    var.name = "var";
    var.basicsize = 16;
    var.itemsize = 8;
    EXPECT_TRUE(HPy_IsNull(HPyType_FromSpec(rt.ctx, &var, nullptr)));
    HPyDef meth{};
    meth.kind = HPyDef_Kind_Meth;
    HPyDef *defs[] = {&meth, nullptr};
    HPyType_Spec with_method{};
    with_method.name = "m";
    with_method.defines = defs;
    EXPECT_TRUE(HPy_IsNull(HPyType_FromSpec(rt.ctx, &with_method, nullptr)));
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "HPyType_FromSpec"), 2);
    rt.error();
}

TEST(Finalize, RunsOnceAndMayResurrect) {
    HpyRuntime rt;
    hn_set_phoenix_action(HN_PHOENIX_RESURRECT);
    HPy p = hn_new(rt.ctx, HN_PHOENIX), q = hn_new(rt.ctx, HN_NODE);
    long ip = hn_id(rt.ctx, p), iq = hn_id(rt.ctx, q);
    ASSERT_EQ(hn_set(rt.ctx, p, 0, q), 0);
    ASSERT_EQ(hn_set(rt.ctx, q, 0, p), 0);
    HPy_Close(rt.ctx, p);
    HPy_Close(rt.ctx, q);
    cb_collection_stats stats = rt.collect();
    EXPECT_EQ(hn_finalized(), 1);
    EXPECT_EQ(stats.resurrected, 2u);
    EXPECT_FALSE(hn_was_destroyed(ip));
    EXPECT_FALSE(hn_was_destroyed(iq));
    HPy saved = hn_load_saved(rt.ctx);
    HPy field = hn_get(rt.ctx, saved, 0);
    EXPECT_EQ(hn_id(rt.ctx, field), iq) << "fields are intact after a resurrection";
    HPy_Close(rt.ctx, field);
    HPy_Close(rt.ctx, saved);
    hn_clear_globals(rt.ctx);
    rt.collect();
    EXPECT_EQ(hn_finalized(), 1) << "at most once";
    EXPECT_TRUE(hn_was_destroyed(ip));
    EXPECT_TRUE(hn_was_destroyed(iq));
}

TEST(Finalize, FieldStoredIntoALiveObjectByAFinalizerSurvives) {
    // Garbage p.a -> x; p's finalizer moves x into the keeper's field. The
    // field holds no count: only the write barrier keeps x.
    HpyRuntime rt;
    hn_set_phoenix_action(HN_PHOENIX_SAVE_FIELD);
    HPy keeper = hn_new(rt.ctx, HN_NODE);
    hn_set_keeper(rt.ctx, keeper);
    HPy p = hn_new(rt.ctx, HN_PHOENIX), x = hn_new(rt.ctx, HN_NODE);
    long ip = hn_id(rt.ctx, p), ix = hn_id(rt.ctx, x);
    ASSERT_EQ(hn_set(rt.ctx, p, 0, x), 0);
    HPy_Close(rt.ctx, p);
    HPy_Close(rt.ctx, x);
    rt.collect();
    EXPECT_EQ(hn_finalized(), 1);
    EXPECT_TRUE(hn_was_destroyed(ip));
    EXPECT_FALSE(hn_was_destroyed(ix));
    HPy moved = hn_get(rt.ctx, keeper, 0);
    EXPECT_EQ(hn_id(rt.ctx, moved), ix);
    HPy_Close(rt.ctx, moved);
    HPy_Close(rt.ctx, keeper);
    hn_clear_globals(rt.ctx);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ix));
}

TEST(Finalize, AnErrorLeftByAFinalizerIsReportedAndThePendingOneKept) {
    HpyRuntime rt;
    hn_set_phoenix_action(HN_PHOENIX_ERROR);
    HPy p = hn_new(rt.ctx, HN_PHOENIX);
    HPy_Close(rt.ctx, p);
    HPy_Dup(rt.ctx, HPy_NULL);   // a pending error of the caller's
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "HPy_NULL"), 1);
    rt.collect();
    EXPECT_EQ(hn_finalized(), 1);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "HPy_tp_finalize of hpy_nodes.Phoenix left an error"), 1);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "HPy_NULL"), 1);
    EXPECT_TRUE(HPyErr_Occurred(rt.ctx)) << "the caller's error is still pending";
    rt.error();
    EXPECT_EQ(hn_destroyed(HN_PHOENIX), 1);
}

TEST(Destroy, CallingBackIntoTheContextIsRefused) {
    HpyRuntime rt;
    HPy c = hn_new(rt.ctx, HN_CALLER);
    HPy_Close(rt.ctx, c);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_CALLER), 1);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "called from HPy_tp_destroy of hpy_nodes.Caller"), 1);
    EXPECT_FALSE(HPyErr_Occurred(rt.ctx)) << "the refusal's error is not left to the collection's caller";
}

TEST(Context, OneContextPerHeap) {
    HpyRuntime rt;
    EXPECT_EQ(cbhpy_open(rt.heap, nullptr), nullptr);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "has an HPy context already"), 1);
}

TEST(Context, CloseReportsOpenHandlesAndClosesThem) {
    HpyRuntime rt;
    HPy a = hn_new(rt.ctx, HN_NODE);
    (void)a;
    HPy b = hn_new(rt.ctx, HN_NODE);
    (void)b;
    ASSERT_EQ(rt.close(), CB_OK);
    EXPECT_EQ(rt.take(CB_REPORT_LEAKED_AT_DESTROY, "2 handles still open"), 1);
    EXPECT_EQ(hn_destroyed(HN_NODE), 2);
}

TEST(Context, CloseWithObjectsHeldFromOutsideStaysOpen) {
    HpyRuntime rt;
    HPy a = hn_new(rt.ctx, HN_NODE);
    long ia = hn_id(rt.ctx, a);
    PyObject *proxy = HPy_AsPyObject(rt.ctx, a);   // C code holds a
    HPy_Close(rt.ctx, a);
    EXPECT_EQ(rt.close(), CB_ERR_BUSY);
    EXPECT_EQ(rt.take(CB_REPORT_LEAKED_AT_DESTROY, "still alive"), 1);
    EXPECT_FALSE(hn_was_destroyed(ia));
    HPy again = HPy_FromPyObject(rt.ctx, proxy);   // the context still works
    EXPECT_EQ(hn_id(rt.ctx, again), ia);
    HPy_Close(rt.ctx, again);
    Py_DECREF(proxy);
    rt.error();
    EXPECT_EQ(rt.close(), CB_OK);
    EXPECT_TRUE(hn_was_destroyed(ia));
}

TEST(Conversions, RoundTripsKeepIdentity) {
    HpyRuntime rt;
    HPy a = hn_new(rt.ctx, HN_NODE);
    PyObject *pa = HPy_AsPyObject(rt.ctx, a);
    PyObject *pa2 = HPy_AsPyObject(rt.ctx, a);
    EXPECT_EQ(pa, pa2) << "one proxy per object";
    HPy back = HPy_FromPyObject(rt.ctx, pa);
    EXPECT_TRUE(HPy_Is(rt.ctx, back, a));
    PyObject *node = cyc_node_new();
    HPy hn = HPy_FromPyObject(rt.ctx, node);
    EXPECT_EQ(HPy_AsPyObject(rt.ctx, hn), node);
    Py_DECREF(node);
    cb_host_ref h = rt.host(1, true);
    HPy hh = cbhpy_from_host(rt.ctx, h);
    EXPECT_EQ(cbhpy_as_host(rt.ctx, hh), h);
    PyObject *twin = HPy_AsPyObject(rt.ctx, hh);
    EXPECT_EQ(cbpy_twin_host(twin), h);
    HPy hh2 = HPy_FromPyObject(rt.ctx, twin);
    EXPECT_TRUE(HPy_Is(rt.ctx, hh2, hh));
    for (HPy x : {a, back, hn, hh, hh2}) HPy_Close(rt.ctx, x);
    Py_DECREF(pa);
    Py_DECREF(pa2);
    Py_DECREF(node);
    Py_DECREF(twin);
    cb_refheap_remove_root(rt.rh, h);
    EXPECT_EQ(rt.holds, 0);
}

}  // namespace

namespace {

TEST(Context, OpenRefusesAHostWithoutRelease) {
    cb_heap *heap = cb_heap_new(nullptr);
    int reports = 0;
    cb_set_report_handler(heap, [](void *n, const cb_report *) { ++*static_cast<int *>(n); }, &reports);
    cbhpy_host half{};
    half.hold = [](void *, cb_host_ref) { return 0; };
    cbhpy_options options{};
    options.host = &half;
    EXPECT_EQ(cbhpy_open(heap, &options), nullptr);
    EXPECT_EQ(reports, 1);
    HPyContext *ctx = cbhpy_open(heap, nullptr);   // the refusal claimed nothing
    ASSERT_NE(ctx, nullptr);
    EXPECT_EQ(cbhpy_close(ctx), CB_OK);
    cb_heap_destroy(heap);
}

}  // namespace
