/*
 * The HPy-style API of cyclebridge: HPy's handles, fields, globals and
 * garbage-collection slots, with HPy's names and meanings, on a
 * cyclebridge heap. A type's GC code written for HPy compiles here
 * unchanged: put this directory on the include path and #include "hpy.h".
 *
 *   HPy        a short-lived handle: a root while open; close it
 *   HPyField   a reference stored in an object: an edge, reported by the
 *              type's HPy_tp_traverse (HPy_VISIT); no tp_clear exists, the
 *              collector breaks cycles by clearing the fields it visits
 *   HPyGlobal  a reference in a C global: a root until overwritten
 *
 * What is here is what touches the collector; the rest of HPy (methods,
 * numbers, strings, ...) belongs to the runtime. The runtime opens the
 * context (cyclebridge/hpy_runtime.h). See docs/hpy.md for what an
 * extension may rely on.
 *
 * Every function taking a context records the call site (file:line), which
 * debug mode reports: the names below are macros over _cbhpy_* functions.
 */
#ifndef CYCLEBRIDGE_HPY_HPY_H
#define CYCLEBRIDGE_HPY_HPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef intptr_t HPy_ssize_t;
typedef struct _HPyContext_s HPyContext;

/* Opaque values; 0 is NULL. Compare handles with HPy_Is, never by value. */
typedef struct _HPy_s { intptr_t _i; } HPy;
typedef struct { intptr_t _i; } HPyField;
typedef struct { intptr_t _i; } HPyGlobal;

static inline HPy _cbhpy_null(void) { HPy h = {0}; return h; }
static inline HPyField _cbhpy_null_field(void) { HPyField f = {0}; return f; }
#define HPy_NULL (_cbhpy_null())
#define HPyField_NULL (_cbhpy_null_field())
static inline int HPy_IsNull(HPy h) { return h._i == 0; }
static inline int HPyField_IsNull(HPyField f) { return f._i == 0; }

#define _CBHPY_STR2(x) #x
#define _CBHPY_STR(x) _CBHPY_STR2(x)
#define _CBHPY_HERE __FILE__ ":" _CBHPY_STR(__LINE__)

/* ---- handles ---------------------------------------------------------- */

HPy _cbhpy_Dup(HPyContext *ctx, HPy h, const char *where);
void _cbhpy_Close(HPyContext *ctx, HPy h, const char *where);
int _cbhpy_Is(HPyContext *ctx, HPy a, HPy b, const char *where);
#define HPy_Dup(ctx, h) _cbhpy_Dup((ctx), (h), _CBHPY_HERE)
#define HPy_Close(ctx, h) _cbhpy_Close((ctx), (h), _CBHPY_HERE)
#define HPy_Is(ctx, a, b) _cbhpy_Is((ctx), (a), (b), _CBHPY_HERE)

/* ---- fields and globals ----------------------------------------------- */

/* target_field must lie inside target_object's struct, and the object's
 * type must have HPy_tp_traverse (else the store is refused). h may be
 * HPy_NULL. */
void _cbhpy_Field_Store(HPyContext *ctx, HPy target_object, HPyField *target_field, HPy h, const char *where);
HPy _cbhpy_Field_Load(HPyContext *ctx, HPy source_object, HPyField source_field, const char *where);
#define HPyField_Store(ctx, obj, field, h) _cbhpy_Field_Store((ctx), (obj), (field), (h), _CBHPY_HERE)
#define HPyField_Load(ctx, obj, field) _cbhpy_Field_Load((ctx), (obj), (field), _CBHPY_HERE)

/* global must live until the context closes (a C global). */
void _cbhpy_Global_Store(HPyContext *ctx, HPyGlobal *global, HPy h, const char *where);
HPy _cbhpy_Global_Load(HPyContext *ctx, HPyGlobal global, const char *where);
#define HPyGlobal_Store(ctx, global, h) _cbhpy_Global_Store((ctx), (global), (h), _CBHPY_HERE)
#define HPyGlobal_Load(ctx, global) _cbhpy_Global_Load((ctx), (global), _CBHPY_HERE)

/* ---- slots ------------------------------------------------------------ */

typedef int (*HPyFunc_visitproc)(HPyField *, void *);
typedef int (*HPyFunc_traverseproc)(void *object, HPyFunc_visitproc visit, void *arg);
typedef void (*HPyFunc_destroyfunc)(void *object);
typedef void (*HPyFunc_destructor)(HPyContext *ctx, HPy h);

/* In a traverse: report one field (skipped when NULL). */
#define HPy_VISIT(hpyfield)                                  \
    do {                                                     \
        if (!HPyField_IsNull(*(hpyfield))) {                 \
            int vret = visit((hpyfield), arg);               \
            if (vret) return vret;                           \
        }                                                    \
    } while (0)

/* The slots that touch the collector, numbered as in HPy. */
typedef enum {
    HPy_tp_traverse = 71,
    HPy_tp_finalize = 80,
    HPy_tp_destroy = 1000
} HPySlot_Slot;

/* Any function; cast to the slot's own type before the call. */
typedef void (*HPyCFunction)(void);

typedef struct {
    HPySlot_Slot slot;
    HPyCFunction impl;
    void *cpy_trampoline;   /* unused: there is no CPython underneath */
} HPySlot;

typedef enum {
    HPyDef_Kind_Slot = 1,
    HPyDef_Kind_Meth = 2,
    HPyDef_Kind_Member = 3,
    HPyDef_Kind_GetSet = 4
} HPyDef_Kind;

typedef struct {
    HPyDef_Kind kind;
    union {
        HPySlot slot;
    };
} HPyDef;

/* The implementation's signature, checked by the compiler. */
#define _CBHPY_SLOT_DECL_HPy_tp_traverse(IMPL) static int IMPL(void *, HPyFunc_visitproc, void *)
#define _CBHPY_SLOT_DECL_HPy_tp_finalize(IMPL) static void IMPL(HPyContext *, HPy)
#define _CBHPY_SLOT_DECL_HPy_tp_destroy(IMPL) static void IMPL(void *)

/* HPyDef_SLOT(Point_traverse, HPy_tp_traverse) defines the HPyDef
 * Point_traverse for the function Point_traverse_impl. */
#define HPyDef_SLOT_IMPL(SYM, IMPL, SLOT)                                        \
    _CBHPY_SLOT_DECL_##SLOT(IMPL);                                               \
    static HPyDef SYM = {HPyDef_Kind_Slot, {{SLOT, (HPyCFunction)IMPL, NULL}}};
#define HPyDef_SLOT(SYM, SLOT) HPyDef_SLOT_IMPL(SYM, SYM##_impl, SLOT)

/* ---- types ------------------------------------------------------------ */

typedef enum {
    HPyType_BuiltinShape_Legacy = -1,   /* not supported: no PyObject_HEAD here */
    HPyType_BuiltinShape_Object = 0
} HPyType_BuiltinShape;

typedef struct {
    const char *name;
    int basicsize;
    int itemsize;                        /* must be 0 */
    unsigned long flags;
    HPyType_BuiltinShape builtin_shape;  /* must be HPyType_BuiltinShape_Object */
    void *legacy_slots;                  /* must be NULL */
    HPyDef **defines;                    /* NULL-terminated */
    const char *doc;
} HPyType_Spec;

typedef enum { HPyType_SpecParam_Base = 1, HPyType_SpecParam_BasesTuple = 2 } HPyType_SpecParam_Kind;
typedef struct {
    HPyType_SpecParam_Kind kind;
    HPy object;
} HPyType_SpecParam;

#define HPy_TPFLAGS_DEFAULT ((1UL << 9) | (1UL << 18))
#define HPy_TPFLAGS_BASETYPE (1UL << 10)
#define HPy_TPFLAGS_HAVE_GC (1UL << 14)

/* params must be NULL (no base classes). The type is itself an object,
 * collected like any other once no handle, global or instance holds it. */
HPy _cbhpy_Type_FromSpec(HPyContext *ctx, HPyType_Spec *spec, HPyType_SpecParam *params, const char *where);
#define HPyType_FromSpec(ctx, spec, params) _cbhpy_Type_FromSpec((ctx), (spec), (params), _CBHPY_HERE)

/* A new instance, zeroed; *data receives its struct. */
HPy _cbhpy_New(HPyContext *ctx, HPy h_type, void **data, const char *where);
#define HPy_New(ctx, h_type, data) _cbhpy_New((ctx), (h_type), (void **)(data), _CBHPY_HERE)

HPy _cbhpy_Type(HPyContext *ctx, HPy obj, const char *where);
int _cbhpy_TypeCheck(HPyContext *ctx, HPy obj, HPy type, const char *where);
void *_cbhpy_AsStruct(HPyContext *ctx, HPy h, const char *where);
#define HPy_Type(ctx, obj) _cbhpy_Type((ctx), (obj), _CBHPY_HERE)
#define HPy_TypeCheck(ctx, obj, type) _cbhpy_TypeCheck((ctx), (obj), (type), _CBHPY_HERE)
#define _HPy_AsStruct_Object(ctx, h) _cbhpy_AsStruct((ctx), (h), _CBHPY_HERE)

/* HPyType_HELPERS(PointObject) defines PointObject_AsStruct(ctx, h). */
#define HPyType_HELPERS(TYPE)                                                    \
    static const HPyType_BuiltinShape TYPE##_SHAPE __attribute__((unused)) =     \
        HPyType_BuiltinShape_Object;                                             \
    __attribute__((unused)) static inline TYPE *TYPE##_AsStruct(HPyContext *ctx, HPy h) { \
        return (TYPE *)_cbhpy_AsStruct(ctx, h, _CBHPY_HERE);                     \
    }

/* ---- errors ----------------------------------------------------------- */

/* Nonzero when the last failing call left an error (every misuse does). */
int HPyErr_Occurred(HPyContext *ctx);
void HPyErr_Clear(HPyContext *ctx);

/* ---- the CPython-style adapter ---------------------------------------- */

/* Conversions with adapters/cpython, bound to the same heap. A handle to
 * an HPy object becomes a proxy PyObject (one per object, a refcounted
 * node whose only edge is the HPy object); a handle to a host object
 * becomes its twin; a PyObject stays itself. HPy_FromPyObject undoes each,
 * so identity survives a round trip. Both return new references. */
struct _object;
typedef struct _object cpy_PyObject;
HPy _cbhpy_FromPyObject(HPyContext *ctx, cpy_PyObject *obj, const char *where);
cpy_PyObject *_cbhpy_AsPyObject(HPyContext *ctx, HPy h, const char *where);
#define HPy_FromPyObject(ctx, obj) _cbhpy_FromPyObject((ctx), (obj), _CBHPY_HERE)
#define HPy_AsPyObject(ctx, h) _cbhpy_AsPyObject((ctx), (h), _CBHPY_HERE)

#ifdef __cplusplus
}
#endif
#endif /* CYCLEBRIDGE_HPY_HPY_H */
