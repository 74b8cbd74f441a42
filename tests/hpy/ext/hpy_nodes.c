/* See hpy_nodes.h. Written as an HPy extension would be. */
#include "hpy_nodes.h"

#include <stdlib.h>
#include <string.h>

static HPyGlobal type_globals[HN_KINDS];
static HPyGlobal saved_global;
static HPyGlobal keeper_global;

static long destroyed[HN_KINDS];
static long finalized;
static long next_id = 1;
static unsigned char *destroyed_ids;
static long destroyed_ids_size;
static enum hn_phoenix_action phoenix_action;
static HPyContext *caller_ctx;
static HPyField stray_field;   /* what Stray's traverse visits */

static void record_destroyed(enum hn_kind kind, long id) {
    destroyed[kind]++;
    if (id <= 0) return;
    if (id >= destroyed_ids_size) {
        long size = destroyed_ids_size ? destroyed_ids_size : 1024;
        while (size <= id) size *= 2;
        destroyed_ids = realloc(destroyed_ids, (size_t)size);
        memset(destroyed_ids + destroyed_ids_size, 0, (size_t)(size - destroyed_ids_size));
        destroyed_ids_size = size;
    }
    destroyed_ids[id] = 1;
}

/* ---- Node ------------------------------------------------------------- */

HPyType_HELPERS(NodeObject)

HPyDef_SLOT(Node_traverse, HPy_tp_traverse)
static int Node_traverse_impl(void *self, HPyFunc_visitproc visit, void *arg) {
    NodeObject *node = (NodeObject *)self;
    HPy_VISIT(&node->a);
    HPy_VISIT(&node->b);
    return 0;
}

HPyDef_SLOT(Node_destroy, HPy_tp_destroy)
static void Node_destroy_impl(void *self) { record_destroyed(HN_NODE, ((NodeObject *)self)->id); }

static HPyDef *Node_defines[] = {&Node_traverse, &Node_destroy, NULL};

/* ---- Phoenix ---------------------------------------------------------- */

HPyDef_SLOT(Phoenix_finalize, HPy_tp_finalize)
static void Phoenix_finalize_impl(HPyContext *ctx, HPy self) {
    finalized++;
    NodeObject *me = NodeObject_AsStruct(ctx, self);
    switch (phoenix_action) {
    case HN_PHOENIX_NOTHING:
        break;
    case HN_PHOENIX_RESURRECT: {
        if (saved_global._i == 0) HPyGlobal_Store(ctx, &saved_global, self);
        break;
    }
    case HN_PHOENIX_SAVE_FIELD: {
        HPy keeper = HPyGlobal_Load(ctx, keeper_global);
        HPy target = HPyField_Load(ctx, self, me->a);
        NodeObject *k = NodeObject_AsStruct(ctx, keeper);
        HPyField_Store(ctx, keeper, &k->a, target);
        HPy_Close(ctx, target);
        HPy_Close(ctx, keeper);
        break;
    }
    case HN_PHOENIX_ERROR:
        HPy_Close(ctx, HPy_NULL);   /* fine: closing NULL is allowed */
        HPy_Dup(ctx, HPy_NULL);     /* an error */
        break;
    }
}

HPyDef_SLOT(Phoenix_destroy, HPy_tp_destroy)
static void Phoenix_destroy_impl(void *self) { record_destroyed(HN_PHOENIX, ((NodeObject *)self)->id); }

static HPyDef *Phoenix_defines[] = {&Node_traverse, &Phoenix_finalize, &Phoenix_destroy, NULL};

/* ---- Blob: no traverse -------------------------------------------------- */

HPyDef_SLOT(Blob_destroy, HPy_tp_destroy)
static void Blob_destroy_impl(void *self) {
    (void)self;
    record_destroyed(HN_BLOB, 0);
}
static HPyDef *Blob_defines[] = {&Blob_destroy, NULL};

/* ---- Stray: visits a field outside the object ---------------------------- */

HPyDef_SLOT(Stray_traverse, HPy_tp_traverse)
static int Stray_traverse_impl(void *self, HPyFunc_visitproc visit, void *arg) {
    NodeObject *node = (NodeObject *)self;
    HPy_VISIT(&node->a);
    stray_field._i = 16;   /* looks like a reference; must never be read as one */
    HPy_VISIT(&stray_field);
    return 0;
}
static HPyDef *Stray_defines[] = {&Stray_traverse, NULL};

/* ---- Forged: visits a member that HPyField_Store never wrote ------------- */

HPyType_HELPERS(ForgedObject)

HPyDef_SLOT(Forged_traverse, HPy_tp_traverse)
static int Forged_traverse_impl(void *self, HPyFunc_visitproc visit, void *arg) {
    ForgedObject *f = (ForgedObject *)self;
    HPy_VISIT(&f->a);
    HPy_VISIT((HPyField *)&f->fake);
    return 0;
}
static HPyDef *Forged_defines[] = {&Forged_traverse, NULL};

/* ---- Forgetful: never visits b ------------------------------------------ */

HPyDef_SLOT(Forgetful_traverse, HPy_tp_traverse)
static int Forgetful_traverse_impl(void *self, HPyFunc_visitproc visit, void *arg) {
    HPy_VISIT(&((NodeObject *)self)->a);
    return 0;
}
HPyDef_SLOT(Forgetful_destroy, HPy_tp_destroy)
static void Forgetful_destroy_impl(void *self) { record_destroyed(HN_FORGETFUL, ((NodeObject *)self)->id); }
static HPyDef *Forgetful_defines[] = {&Forgetful_traverse, &Forgetful_destroy, NULL};

/* ---- Caller: destroy calls the API ---------------------------------------- */

HPyDef_SLOT(Caller_destroy, HPy_tp_destroy)
static void Caller_destroy_impl(void *self) {
    (void)self;
    record_destroyed(HN_CALLER, 0);
    HPy h = HPyGlobal_Load(caller_ctx, saved_global);   /* refused */
    (void)h;
}
static HPyDef *Caller_defines[] = {&Caller_destroy, NULL};

/* ---- module --------------------------------------------------------------- */

static HPyType_Spec specs[HN_KINDS] = {
    [HN_NODE] = {.name = "hpy_nodes.Node", .basicsize = sizeof(NodeObject),
                 .flags = HPy_TPFLAGS_DEFAULT | HPy_TPFLAGS_HAVE_GC, .defines = Node_defines},
    [HN_PHOENIX] = {.name = "hpy_nodes.Phoenix", .basicsize = sizeof(NodeObject),
                    .flags = HPy_TPFLAGS_DEFAULT | HPy_TPFLAGS_HAVE_GC, .defines = Phoenix_defines},
    [HN_BLOB] = {.name = "hpy_nodes.Blob", .basicsize = sizeof(NodeObject),
                 .flags = HPy_TPFLAGS_DEFAULT, .defines = Blob_defines},
    [HN_STRAY] = {.name = "hpy_nodes.Stray", .basicsize = sizeof(NodeObject),
                  .flags = HPy_TPFLAGS_DEFAULT | HPy_TPFLAGS_HAVE_GC, .defines = Stray_defines},
    [HN_FORGED] = {.name = "hpy_nodes.Forged", .basicsize = sizeof(ForgedObject),
                   .flags = HPy_TPFLAGS_DEFAULT | HPy_TPFLAGS_HAVE_GC, .defines = Forged_defines},
    [HN_FORGETFUL] = {.name = "hpy_nodes.Forgetful", .basicsize = sizeof(NodeObject),
                      .flags = HPy_TPFLAGS_DEFAULT | HPy_TPFLAGS_HAVE_GC, .defines = Forgetful_defines},
    [HN_CALLER] = {.name = "hpy_nodes.Caller", .basicsize = sizeof(NodeObject),
                   .flags = HPy_TPFLAGS_DEFAULT, .defines = Caller_defines},
};

int hn_init(HPyContext *ctx) {
    for (int k = 0; k < HN_KINDS; ++k) {
        HPy type = HPyType_FromSpec(ctx, &specs[k], NULL);
        if (HPy_IsNull(type)) return -1;
        HPyGlobal_Store(ctx, &type_globals[k], type);
        HPy_Close(ctx, type);
    }
    return 0;
}

HPy hn_type(HPyContext *ctx, enum hn_kind kind) { return HPyGlobal_Load(ctx, type_globals[kind]); }

HPy hn_new(HPyContext *ctx, enum hn_kind kind) {
    HPy type = hn_type(ctx, kind);
    if (HPy_IsNull(type)) return HPy_NULL;
    NodeObject *data;
    HPy obj = HPy_New(ctx, type, &data);
    HPy_Close(ctx, type);
    if (!HPy_IsNull(obj) && kind != HN_FORGED) data->id = next_id++;
    return obj;
}

long hn_id(HPyContext *ctx, HPy obj) { return NodeObject_AsStruct(ctx, obj)->id; }

int hn_set(HPyContext *ctx, HPy obj, int slot, HPy value) {
    NodeObject *node = NodeObject_AsStruct(ctx, obj);
    if (!node) return -1;
    HPyField_Store(ctx, obj, slot ? &node->b : &node->a, value);
    return HPyErr_Occurred(ctx) ? -1 : 0;
}

HPy hn_get(HPyContext *ctx, HPy obj, int slot) {
    NodeObject *node = NodeObject_AsStruct(ctx, obj);
    HPyField f = slot ? node->b : node->a;
    return HPyField_IsNull(f) ? HPy_NULL : HPyField_Load(ctx, obj, f);
}

long hn_destroyed(enum hn_kind kind) { return destroyed[kind]; }
long hn_finalized(void) { return finalized; }
int hn_was_destroyed(long id) { return id > 0 && id < destroyed_ids_size && destroyed_ids[id]; }

void hn_reset(void) {
    memset(destroyed, 0, sizeof destroyed);
    finalized = 0;
    if (destroyed_ids) memset(destroyed_ids, 0, (size_t)destroyed_ids_size);
    phoenix_action = HN_PHOENIX_NOTHING;
}

void hn_set_phoenix_action(enum hn_phoenix_action action) { phoenix_action = action; }

HPy hn_load_saved(HPyContext *ctx) {
    if (saved_global._i == 0) return HPy_NULL;
    return HPyGlobal_Load(ctx, saved_global);
}

void hn_set_keeper(HPyContext *ctx, HPy keeper) { HPyGlobal_Store(ctx, &keeper_global, keeper); }

void hn_clear_globals(HPyContext *ctx) {
    HPyGlobal_Store(ctx, &saved_global, HPy_NULL);
    HPyGlobal_Store(ctx, &keeper_global, HPy_NULL);
}

void hn_set_caller_context(HPyContext *ctx) { caller_ctx = ctx; }

int hn_self_cycles(HPyContext *ctx, int n) {
    for (int i = 0; i < n; ++i) {
        HPy node = hn_new(ctx, HN_NODE);
        if (HPy_IsNull(node) || hn_set(ctx, node, 0, node) < 0) return -1;
        HPy_Close(ctx, node);
    }
    return 0;
}

int hn_two_cycles(HPyContext *ctx, int n) {
    for (int i = 0; i < n / 2; ++i) {
        HPy a = hn_new(ctx, HN_NODE), b = hn_new(ctx, HN_NODE);
        if (HPy_IsNull(a) || HPy_IsNull(b) || hn_set(ctx, a, 0, b) < 0 || hn_set(ctx, b, 0, a) < 0) return -1;
        HPy_Close(ctx, a);
        HPy_Close(ctx, b);
    }
    return 0;
}

int hn_rings(HPyContext *ctx, int n, int length) {
    for (int r = 0; r < n / length; ++r) {
        HPy first = hn_new(ctx, HN_NODE);
        HPy prev = HPy_Dup(ctx, first);
        for (int i = 1; i < length; ++i) {
            HPy node = hn_new(ctx, HN_NODE);
            if (hn_set(ctx, prev, 0, node) < 0) return -1;
            HPy_Close(ctx, prev);
            prev = node;
        }
        if (hn_set(ctx, prev, 0, first) < 0) return -1;
        HPy_Close(ctx, prev);
        HPy_Close(ctx, first);
    }
    return 0;
}
