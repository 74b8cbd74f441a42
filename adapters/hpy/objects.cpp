// HPy objects and their types: HPyType_FromSpec, HPy_New, HPy_Type,
// HPy_TypeCheck, HPy_AsStruct, and the core callbacks of every HPy object.
//
// Every HPy object is a handle-managed node: its count is its open handles
// and globals, its edges are its type and its fields. The collector frees
// it once unreachable; tp_destroy then runs with the fields already
// cleared. A type is an HPy object too (of the type of types, which the
// context holds until it closes), so it lives while a handle, a global or
// an instance refers to it. Type records outlive their type objects until
// the context closes: an instance freed in the same collection as its type
// still finds its destroy.
#include <cstring>

#include "context.hpp"

namespace cbhpy {

namespace {

TypeRecord *described_by(ObjectPrefix *type_object) { return *static_cast<TypeRecord **>(type_object->data()); }

bool is_type_object(Context *ctx, ObjectPrefix *o) { return o->type == ctx->metatype; }

// ---- the core callbacks --------------------------------------------------

int traverse_object(void *obj, cb_visit_fn visit, void *arg) {
    auto *o = static_cast<ObjectPrefix *>(obj);
    if (ObjectPrefix *type = o->type->type_object) {
        if (int r = visit(type, arg)) return r;
    }
    return traverse_fields(o, visit, arg);
}

void clear_object(void *obj) { clear_fields(static_cast<ObjectPrefix *>(obj)); }

void finalize_object(void *obj) {
    auto *o = static_cast<ObjectPrefix *>(obj);
    Context *ctx = o->type->ctx;
    // The finalizer gets a handle of its own, as any HPy function does.
    if (cb_incref(ctx->heap, o) != CB_OK) return;
    HPy self = adopt_handle(ctx, Ref::make(RefKind::kObject, o), "HPy_tp_finalize");
    ErrorSetAside aside(ctx);
    o->type->finalize(ctx, self);
    if (ctx->error_set)
        report(ctx, CB_REPORT_API_MISUSE, o, "hpy: HPy_tp_finalize of %s left an error: %s", o->type->name.c_str(),
               ctx->error.c_str());
    // The finalizer may have closed its handle already (a misuse, reported).
    if (ctx->handles.find(self)) _cbhpy_Close(ctx, self, "HPy_tp_finalize");
}

void dealloc_object(void *obj) {
    auto *o = static_cast<ObjectPrefix *>(obj);
    TypeRecord *type = o->type;
    Context *ctx = type->ctx;
    // Fields left by the clear (an object freed without one, a traverse
    // that skipped a field) are released here, never by the extension.
    clear_fields(o);
    forget_fields(ctx, o);
    if (o->proxy) detach_proxy(o);
    if (is_type_object(ctx, o)) {
        described_by(o)->type_object = nullptr;
    } else {
        if (type->destroy) {
            // A refused call from the destroy is reported; the error it
            // sets is not left to whoever started the collection.
            ErrorSetAside aside(ctx);
            const TypeRecord *outer = ctx->destroying;
            ctx->destroying = type;
            type->destroy(o->data());
            ctx->destroying = outer;
        }
    }
    --ctx->live_objects;
    cb_free(ctx->heap, o);
}

// The context keeps every type record until it closes.
TypeRecord *keep_type(Context *ctx, TypeRecord record) {
    ctx->types.push_back(std::make_unique<TypeRecord>(std::move(record)));
    return ctx->types.back().get();
}

bool register_node_type(Context *ctx, TypeRecord *record) {
    cb_type_spec spec{};
    spec.name = record->name.c_str();
    spec.kind = CB_KIND_HANDLE_MANAGED;
    spec.traverse = traverse_object;
    spec.clear = record->traverse ? clear_object : nullptr;
    spec.finalize = record->finalize ? finalize_object : nullptr;
    spec.dealloc = dealloc_object;
    spec.count_offset = offsetof(ObjectPrefix, handles);
    return cb_type_register(ctx->heap, &spec, &record->node_type) == CB_OK;
}

// A new tracked object of record, count 1 (for the caller to adopt).
ObjectPrefix *allocate(Context *ctx, TypeRecord *record) {
    void *mem = cb_alloc(ctx->heap, record->node_type, sizeof(ObjectPrefix) + record->basicsize);
    if (!mem) return nullptr;
    auto *o = static_cast<ObjectPrefix *>(mem);
    o->type = record;   // count (handles) is 1 already, the rest zeroed
    cb_track(ctx->heap, o);
    ++ctx->live_objects;
    return o;
}

ObjectPrefix *make_type_object(Context *ctx, TypeRecord *described) {
    ObjectPrefix *o = allocate(ctx, ctx->metatype);
    if (!o) return nullptr;
    *static_cast<TypeRecord **>(o->data()) = described;
    described->type_object = o;
    return o;
}

bool take_slot(Context *ctx, TypeRecord *record, const HPySlot &slot, const char *where) {
    switch (slot.slot) {
    case HPy_tp_traverse: record->traverse = reinterpret_cast<HPyFunc_traverseproc>(slot.impl); return true;
    case HPy_tp_destroy: record->destroy = reinterpret_cast<HPyFunc_destroyfunc>(slot.impl); return true;
    case HPy_tp_finalize: record->finalize = reinterpret_cast<HPyFunc_destructor>(slot.impl); return true;
    }
    fail(ctx, where, "HPyType_FromSpec(%s): slot %d is not one of the collector's (traverse, finalize, destroy)",
         record->name.c_str(), static_cast<int>(slot.slot));
    return false;
}

}  // namespace

ObjectPrefix *object_of(Ref ref) { return static_cast<ObjectPrefix *>(ref.ptr()); }

ObjectPrefix *resolve_object(Context *ctx, HPy h, const char *what, const char *where) {
    Ref ref;
    if (!resolve(ctx, h, what, where, false, ref)) return nullptr;
    if (ref.kind() != RefKind::kObject) {
        fail(ctx, where, "%s: the handle refers to a %s, not an HPy object", what,
             ref.kind() == RefKind::kPyObject ? "PyObject" : "host object");
        return nullptr;
    }
    return object_of(ref);
}


bool init_metatype(Context *ctx) {
    TypeRecord *meta = keep_type(ctx, TypeRecord{ctx, "type", sizeof(TypeRecord *)});
    ctx->metatype = meta;
    if (!register_node_type(ctx, meta)) return false;
    // The type of types is its own type; the context holds it (count 1).
    return make_type_object(ctx, meta) != nullptr;
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

HPy _cbhpy_Type_FromSpec(HPyContext *ctx, HPyType_Spec *spec, HPyType_SpecParam *params, const char *where) {
    if (!enter(ctx, "HPyType_FromSpec", where)) return HPy_NULL;
    if (!spec || !spec->name) {
        fail(ctx, where, "HPyType_FromSpec: a spec with a name is required");
        return HPy_NULL;
    }
    if (spec->basicsize < 0 || spec->itemsize != 0 || spec->builtin_shape != HPyType_BuiltinShape_Object ||
        spec->legacy_slots) {
        fail(ctx, where,
             "HPyType_FromSpec(%s): only pure HPy types of a fixed size (basicsize >= 0, itemsize 0, "
             "HPyType_BuiltinShape_Object, no legacy slots) are supported",
             spec->name);
        return HPy_NULL;
    }
    if (params && params[0].kind != 0) {
        fail(ctx, where, "HPyType_FromSpec(%s): base classes are not supported", spec->name);
        return HPy_NULL;
    }
    TypeRecord record;
    record.ctx = ctx;
    record.name = spec->name;
    record.basicsize = static_cast<size_t>(spec->basicsize);
    for (HPyDef **def = spec->defines; def && *def; ++def) {
        if ((*def)->kind != HPyDef_Kind_Slot) {
            fail(ctx, where, "HPyType_FromSpec(%s): only slots are supported (methods, members and getsets belong "
                 "to the runtime)", spec->name);
            return HPy_NULL;
        }
        if (!take_slot(ctx, &record, (*def)->slot, where)) return HPy_NULL;
    }
    TypeRecord *added = keep_type(ctx, std::move(record));
    if (!register_node_type(ctx, added)) {
        fail(ctx, where, "HPyType_FromSpec(%s): the heap refused the type", spec->name);
        return HPy_NULL;
    }
    ObjectPrefix *type_object = make_type_object(ctx, added);
    if (!type_object) {
        fail(ctx, where, "HPyType_FromSpec(%s): out of memory", spec->name);
        return HPy_NULL;
    }
    return adopt_handle(ctx, Ref::make(RefKind::kObject, type_object), where);
}

HPy _cbhpy_New(HPyContext *ctx, HPy h_type, void **data, const char *where) {
    if (!enter(ctx, "HPy_New", where)) return HPy_NULL;
    ObjectPrefix *type_object = resolve_object(ctx, h_type, "HPy_New", where);
    if (!type_object) return HPy_NULL;
    if (!is_type_object(ctx, type_object) || described_by(type_object) == ctx->metatype) {
        fail(ctx, where, "HPy_New: the handle is not a type made by HPyType_FromSpec");
        return HPy_NULL;
    }
    TypeRecord *record = described_by(type_object);
    ObjectPrefix *o = allocate(ctx, record);
    if (!o) {
        fail(ctx, where, "HPy_New(%s): out of memory", record->name.c_str());
        return HPy_NULL;
    }
    cb_write_barrier(ctx->heap, type_object);   // the instance's edge to its type holds no count
    if (data) *data = o->data();
    return adopt_handle(ctx, Ref::make(RefKind::kObject, o), where);
}

HPy _cbhpy_Type(HPyContext *ctx, HPy obj, const char *where) {
    if (!enter(ctx, "HPy_Type", where)) return HPy_NULL;
    ObjectPrefix *o = resolve_object(ctx, obj, "HPy_Type", where);
    if (!o) return HPy_NULL;
    return new_handle(ctx, Ref::make(RefKind::kObject, o->type->type_object), where);
}

int _cbhpy_TypeCheck(HPyContext *ctx, HPy obj, HPy type, const char *where) {
    if (!enter(ctx, "HPy_TypeCheck", where)) return 0;
    ObjectPrefix *o = resolve_object(ctx, obj, "HPy_TypeCheck", where);
    ObjectPrefix *t = o ? resolve_object(ctx, type, "HPy_TypeCheck", where) : nullptr;
    return t && o->type->type_object == t;
}

void *_cbhpy_AsStruct(HPyContext *ctx, HPy h, const char *where) {
    if (!enter(ctx, "HPy_AsStruct", where)) return nullptr;
    ObjectPrefix *o = resolve_object(ctx, h, "HPy_AsStruct", where);
    if (!o) return nullptr;
    if (is_type_object(ctx, o)) {
        fail(ctx, where, "HPy_AsStruct: a type object has no struct of the extension's");
        return nullptr;
    }
    return o->data();
}

}  // extern "C"
