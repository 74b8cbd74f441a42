// Fields: HPyField_Store and HPyField_Load, and what the collector does
// with fields through the type's HPy_tp_traverse: report them as edges,
// and clear them to break cycles (HPy has no tp_clear).
//
// A visited HPyField must lie inside the object being traversed; in debug
// mode it must also be one HPyField_Store wrote into that object. Anything
// else is reported once and not followed: reading it could crash.
#include "context.hpp"

namespace cbhpy {

namespace {

struct FieldVisit {
    Context *ctx;
    ObjectPrefix *owner;
    cb_visit_fn visit;   // nullptr: clear each field instead
    void *arg;
};

// Whether the visit of f from owner's traverse may be followed.
bool visit_is_valid(Context *ctx, ObjectPrefix *owner, const HPyField *f) {
    const char *problem = nullptr;
    if (!owner->contains(f, sizeof(HPyField))) {
        problem = "which is not inside the object";
    } else if (ctx->debug) {
        auto it = ctx->fields.find(f);
        if (it == ctx->fields.end() || it->second != owner) problem = "which HPyField_Store never wrote";
    }
    if (!problem && Ref::from(f->_i).kind() == RefKind::kInvalid) problem = "which holds a corrupt value";
    if (!problem) return true;
    if (ctx->reported.insert(f).second)
        report(ctx, CB_REPORT_VISIT_INVALID, owner,
               "hpy: HPy_tp_traverse of %s (object %p) visited an HPyField at %p, %s; not followed",
               owner->type->name.c_str(), owner->data(), static_cast<const void *>(f), problem);
    return false;
}

int on_field(HPyField *f, void *state) {
    auto *v = static_cast<FieldVisit *>(state);
    if (!visit_is_valid(v->ctx, v->owner, f)) return 0;
    Ref ref = Ref::from(f->_i);
    if (v->visit) return visit_ref(ref, v->visit, v->arg);
    // Cleared before the release, as Py_CLEAR: the release may run code.
    f->_i = 0;
    release_field(v->ctx, ref);
    return 0;
}

// The object owning an HPyField argument, checked.
ObjectPrefix *field_owner(Context *ctx, HPy h, const char *what, const char *where) {
    ObjectPrefix *owner = resolve_object(ctx, h, what, where);
    if (owner && owner->type == ctx->metatype) {
        fail(ctx, where, "%s: fields belong to instances of HPy types, not to type objects", what);
        return nullptr;
    }
    return owner;
}

}  // namespace

int traverse_fields(ObjectPrefix *o, cb_visit_fn visit, void *arg) {
    if (!o->type->traverse) return 0;
    FieldVisit state{o->type->ctx, o, visit, arg};
    return o->type->traverse(o->data(), on_field, &state);
}

void clear_fields(ObjectPrefix *o) {
    if (!o->type->traverse) return;
    FieldVisit state{o->type->ctx, o, nullptr, nullptr};
    o->type->traverse(o->data(), on_field, &state);
}

void forget_fields(Context *ctx, ObjectPrefix *o) {
    auto *begin = static_cast<const void *>(o->data());
    auto *end = static_cast<const void *>(static_cast<const char *>(o->data()) + o->type->basicsize);
    auto it = ctx->fields.lower_bound(static_cast<const HPyField *>(begin));
    while (it != ctx->fields.end() && static_cast<const void *>(it->first) < end) {
        auto *f = const_cast<HPyField *>(it->first);
        if (f->_i != 0) {
            report(ctx, CB_REPORT_VISIT_INVALID, o,
                   "hpy: %s object %p freed with its field at %p still set: HPy_tp_traverse never visits it",
                   o->type->name.c_str(), o->data(), static_cast<void *>(f));
            Ref ref = Ref::from(f->_i);
            f->_i = 0;
            release_field(ctx, ref);
        }
        it = ctx->fields.erase(it);
    }
    ctx->reported.erase(ctx->reported.lower_bound(begin), ctx->reported.lower_bound(end));
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

void _cbhpy_Field_Store(HPyContext *ctx, HPy target_object, HPyField *target_field, HPy h, const char *where) {
    if (!enter(ctx, "HPyField_Store", where)) return;
    ObjectPrefix *owner = field_owner(ctx, target_object, "HPyField_Store", where);
    if (!owner) return;
    if (!owner->type->traverse) {
        fail(ctx, where,
             "HPyField_Store: type %s has no HPy_tp_traverse, so the collector could never see the field; refused",
             owner->type->name.c_str());
        return;
    }
    if (!target_field || !owner->contains(target_field, sizeof(HPyField))) {
        fail(ctx, where, "HPyField_Store: the field at %p is not inside the %s object",
             static_cast<void *>(target_field), owner->type->name.c_str());
        return;
    }
    Ref value;
    if (!resolve(ctx, h, "HPyField_Store", where, true, value)) return;
    Ref old = Ref::from(target_field->_i);
    target_field->_i = value.raw();
    retain_field(ctx, value);
    if (ctx->debug) ctx->fields[target_field] = owner;
    release_field(ctx, old);
}

HPy _cbhpy_Field_Load(HPyContext *ctx, HPy source_object, HPyField source_field, const char *where) {
    if (!enter(ctx, "HPyField_Load", where)) return HPy_NULL;
    ObjectPrefix *owner = field_owner(ctx, source_object, "HPyField_Load", where);
    if (!owner) return HPy_NULL;
    Ref ref = Ref::from(source_field._i);
    if (ref.null()) {
        fail(ctx, where, "HPyField_Load: the field is NULL");
        return HPy_NULL;
    }
    if (ref.kind() == RefKind::kInvalid) {
        fail(ctx, where, "HPyField_Load: the field holds a corrupt value");
        return HPy_NULL;
    }
    if (ctx->debug) {
        // The value must be held by one of the owner's stored fields.
        bool found = false;
        for (auto it = ctx->fields.lower_bound(static_cast<const HPyField *>(owner->data()));
             it != ctx->fields.end() && it->second == owner && !found; ++it)
            found = it->first->_i == source_field._i;
        if (!found) {
            fail(ctx, where, "HPyField_Load: no field of the %s object holds this value (a copied or stale HPyField?)",
                 owner->type->name.c_str());
            return HPy_NULL;
        }
    }
    return new_handle(ctx, ref, where);
}

}  // extern "C"
