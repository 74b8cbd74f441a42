// Debug mode (CBHPY_DEBUG): leaked handles with where they were opened,
// closed handles with where they were closed, stores the collector could
// not see, and traverses that visit what is not a field.
#include "support/hpy_runtime.hpp"

using namespace cbt;

namespace {

TEST(Debug, HandlesOpenAtCloseAreReportedWithWhereTheyWereOpened) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, /*debug=*/true);
    ASSERT_TRUE(cbhpy_is_debug(rt.ctx));
    HPy t = hn_type(rt.ctx, HN_NODE);
    HPy a = HPy_New(rt.ctx, t, static_cast<void **>(nullptr)); int line_a = __LINE__;
    HPy b = HPy_Dup(rt.ctx, a); int line_b = __LINE__;
    HPy_Close(rt.ctx, t);
    std::vector<std::string> open;
    cbhpy_each_open_handle(rt.ctx, [](void *arg, HPy, const char *at) {
        static_cast<std::vector<std::string> *>(arg)->push_back(at); }, &open);
    ASSERT_EQ(open.size(), 2u);
    ASSERT_EQ(rt.close(), CB_OK);
    EXPECT_EQ(rt.take(CB_REPORT_LEAKED_AT_DESTROY, "opened at " + std::string(__FILE__) + ":" + std::to_string(line_a)), 1);
    EXPECT_EQ(rt.take(CB_REPORT_LEAKED_AT_DESTROY, "opened at " + std::string(__FILE__) + ":" + std::to_string(line_b)), 1);
    (void)b;
    EXPECT_EQ(hn_destroyed(HN_NODE), 1);
}

TEST(Debug, UseOfAClosedHandleSaysWhereItWasOpenedAndClosed) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, true);
    HPy x = hn_new(rt.ctx, HN_NODE);
    HPy a = HPy_Dup(rt.ctx, x); int opened = __LINE__;
    HPy_Close(rt.ctx, a); int closed = __LINE__;
    // Quarantine: the next handles do not take a's slot.
    HPy others[8];
    for (HPy &o : others) o = HPy_Dup(rt.ctx, x);
    for (HPy o : others) EXPECT_NE(o._i & 0xffffffff, a._i & 0xffffffff);
    HPy c = HPy_Dup(rt.ctx, a); int used = __LINE__;
    EXPECT_TRUE(HPy_IsNull(c));
    std::string expected = "HPy_Dup: handle " + [&] {
        char buf[32];
        snprintf(buf, sizeof buf, "%#lx", static_cast<unsigned long>(a._i));
        return std::string(buf);
    }() + " was closed at " + __FILE__ + ":" + std::to_string(closed) + " (opened at " + __FILE__ + ":" +
                           std::to_string(opened) + ") (at " + __FILE__ + ":" + std::to_string(used) + ")";
    EXPECT_EQ(rt.error(), "SystemError: " + expected);
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, expected), 1);
    HPy_Close(rt.ctx, a);   // a double close: the same error, nothing else changes
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "was closed at"), 1);
    rt.error();
    EXPECT_EQ(cbhpy_open_handles(rt.ctx), 9u);
    for (HPy o : others) HPy_Close(rt.ctx, o);
    HPy_Close(rt.ctx, x);
}

TEST(Debug, StoreIntoATypeWithoutTraverseIsRefused) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, true);
    HPy blob = hn_new(rt.ctx, HN_BLOB), x = hn_new(rt.ctx, HN_NODE);
    long ix = hn_id(rt.ctx, x);
    auto *data = static_cast<NodeObject *>(_HPy_AsStruct_Object(rt.ctx, blob));
    HPyField_Store(rt.ctx, blob, &data->b, x);
    EXPECT_TRUE(HPyField_IsNull(data->b));
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "type hpy_nodes.Blob has no HPy_tp_traverse"), 1);
    rt.error();
    HPy_Close(rt.ctx, x);
    HPy_Close(rt.ctx, blob);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ix));
}

class DebugModes : public ::testing::TestWithParam<bool> {};

TEST_P(DebugModes, TraverseVisitingAFieldOutsideTheObjectIsReportedAndNotFollowed) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, GetParam());
    HPy s = hn_new(rt.ctx, HN_STRAY), x = hn_new(rt.ctx, HN_NODE);
    long ix = hn_id(rt.ctx, x);
    ASSERT_EQ(hn_set(rt.ctx, s, 0, x), 0);
    HPy_Close(rt.ctx, x);
    for (int i = 0; i < 3; ++i) rt.collect();
    EXPECT_FALSE(hn_was_destroyed(ix)) << "the real field is still followed";
    EXPECT_EQ(rt.take(CB_REPORT_VISIT_INVALID, "HPy_tp_traverse of hpy_nodes.Stray"), 1) << "reported once";
    HPy_Close(rt.ctx, s);
    rt.collect();
    EXPECT_TRUE(hn_was_destroyed(ix));
    rt.take(CB_REPORT_VISIT_INVALID, "not inside the object");
}

TEST_P(DebugModes, FieldsTraverseNeverVisitsAreReleasedAtFree) {
    // Forgetful's traverse skips b. In debug mode that is reported when the
    // object is freed, and b's PyObject is released; without debug mode the
    // adapter cannot know, and the PyObject leaks (as it would in HPy).
    HpyRuntime rt(CB_DRIVE_BRIDGE, GetParam());
    HPy f = hn_new(rt.ctx, HN_FORGETFUL);
    PyObject *py = cyc_node_new();
    HPy hp = HPy_FromPyObject(rt.ctx, py);
    ASSERT_EQ(hn_set(rt.ctx, f, 1, hp), 0);
    HPy_Close(rt.ctx, hp);
    Py_DECREF(py);
    HPy_Close(rt.ctx, f);
    rt.collect();
    EXPECT_EQ(hn_destroyed(HN_FORGETFUL), 1);
    if (GetParam()) {
        EXPECT_EQ(rt.take(CB_REPORT_VISIT_INVALID, "HPy_tp_traverse never visits it"), 1);
        EXPECT_EQ(cyc_deallocs(CYC_NODE), 1);
    } else {
        EXPECT_EQ(cyc_deallocs(CYC_NODE), 0);
        // The leaked PyObject: the test frees it by hand.
        EXPECT_EQ(Py_REFCNT(py), 1);
        Py_DECREF(py);
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, DebugModes, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) { return info.param ? "Debug" : "Release"; });

TEST(Debug, TraverseVisitingAMemberNeverStoredIsReported) {
    // Forged's traverse also visits `fake`, which holds a value that would
    // crash the collector if it were read as a reference.
    HpyRuntime rt(CB_DRIVE_BRIDGE, true);
    HPy f = hn_new(rt.ctx, HN_FORGED);
    auto *data = static_cast<ForgedObject *>(_HPy_AsStruct_Object(rt.ctx, f));
    data->fake = 0x1000;
    HPy_Close(rt.ctx, f);
    for (int i = 0; i < 2; ++i) rt.collect();
    EXPECT_EQ(rt.take(CB_REPORT_VISIT_INVALID, "which HPyField_Store never wrote"), 1);
}

TEST(Debug, LoadingAValueNoFieldHoldsIsRefused) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, true);
    HPy owner = hn_new(rt.ctx, HN_NODE), x = hn_new(rt.ctx, HN_NODE), y = hn_new(rt.ctx, HN_NODE);
    ASSERT_EQ(hn_set(rt.ctx, owner, 0, x), 0);
    auto *data = static_cast<NodeObject *>(_HPy_AsStruct_Object(rt.ctx, owner));
    HPyField copy = data->a;   // a copy, as HPy forbids
    ASSERT_EQ(hn_set(rt.ctx, owner, 0, y), 0);
    HPy stale = HPyField_Load(rt.ctx, owner, copy);
    EXPECT_TRUE(HPy_IsNull(stale));
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "no field of the hpy_nodes.Node object holds this value"), 1);
    rt.error();
    for (HPy h : {owner, x, y}) HPy_Close(rt.ctx, h);
}

TEST(Debug, DestroyCallingBackIsRefused) {
    HpyRuntime rt(CB_DRIVE_BRIDGE, true);
    HPy c = hn_new(rt.ctx, HN_CALLER);
    HPy_Close(rt.ctx, c);
    rt.collect();
    EXPECT_EQ(rt.take(CB_REPORT_API_MISUSE, "HPyGlobal_Load called from HPy_tp_destroy"), 1);
    EXPECT_FALSE(HPyErr_Occurred(rt.ctx));
}

}  // namespace
