/*
 * hpy_nodes: the garbage-collection code of an HPy extension, written as
 * for HPy (HPyField members, HPy_tp_traverse with HPy_VISIT,
 * HPy_tp_destroy, HPy_tp_finalize, types from HPyType_FromSpec kept in
 * HPyGlobals), for the HPy-style adapter's tests.
 *
 * Types:
 *   Node       fields a and b, an id; traverse, destroy
 *   Phoenix    field a; its finalizer runs the action chosen below
 *   Blob       no traverse: fields cannot be stored into it
 *   Stray      traverse visits a static HPyField, outside the object
 *   Forged     traverse visits the `fake` member, never stored into
 *   Forgetful  fields a and b; traverse visits only a
 *   Caller     destroy calls back into the context (forbidden)
 */
#ifndef HPY_NODES_H
#define HPY_NODES_H

#include "hpy.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hn_kind { HN_NODE = 0, HN_PHOENIX, HN_BLOB, HN_STRAY, HN_FORGED, HN_FORGETFUL, HN_CALLER, HN_KINDS };

typedef struct {
    HPyField a;
    HPyField b;
    long id;
} NodeObject;

typedef struct {
    HPyField a;
    intptr_t fake;   /* HPyField-sized, never stored into */
} ForgedObject;

/* Makes the types (kept in HPyGlobals). 0, or -1 with an error set. */
int hn_init(HPyContext *ctx);
/* A new instance of kind; its id (Node, Phoenix) is the next in sequence. */
HPy hn_new(HPyContext *ctx, enum hn_kind kind);
HPy hn_type(HPyContext *ctx, enum hn_kind kind);   /* a new handle */
long hn_id(HPyContext *ctx, HPy obj);
/* obj.a (slot 0) or obj.b (slot 1) = value (may be HPy_NULL); load back. */
int hn_set(HPyContext *ctx, HPy obj, int slot, HPy value);
HPy hn_get(HPyContext *ctx, HPy obj, int slot);   /* HPy_NULL when empty */

/* Counters since hn_reset. */
long hn_destroyed(enum hn_kind kind);
long hn_finalized(void);
int hn_was_destroyed(long id);   /* Node and Phoenix ids */
void hn_reset(void);

/* What Phoenix's finalizer does. */
enum hn_phoenix_action {
    HN_PHOENIX_NOTHING = 0,
    HN_PHOENIX_RESURRECT,       /* self goes into a global, the first time */
    HN_PHOENIX_SAVE_FIELD,      /* its field a goes into the keeper's field a */
    HN_PHOENIX_ERROR            /* leaves an error behind */
};
void hn_set_phoenix_action(enum hn_phoenix_action action);
/* The global the resurrecting finalizer fills, and the keeper object. */
HPy hn_load_saved(HPyContext *ctx);   /* HPy_NULL when empty */
void hn_set_keeper(HPyContext *ctx, HPy keeper);   /* stored in a global */
void hn_clear_globals(HPyContext *ctx);            /* saved and keeper */

/* The handle Caller's destroy tries to duplicate. */
void hn_set_caller_context(HPyContext *ctx);

/* Scenarios: build n objects of garbage and close every handle. */
int hn_self_cycles(HPyContext *ctx, int n);
int hn_two_cycles(HPyContext *ctx, int n);
int hn_rings(HPyContext *ctx, int n, int length);

#ifdef __cplusplus
}
#endif
#endif /* HPY_NODES_H */
