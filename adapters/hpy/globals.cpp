// Globals: HPyGlobal_Store and HPyGlobal_Load. A global holds a strong
// reference, as a handle does, until it is overwritten or the context
// closes; the context remembers every global it stored into, to drop them
// at close.
#include "context.hpp"

namespace cbhpy {

void drop_globals(Context *ctx) {
    for (HPyGlobal *global : ctx->globals) {
        Ref ref = Ref::from(global->_i);
        global->_i = 0;
        if (!ref.null()) release_strong(ctx, ref);
    }
    ctx->globals.clear();
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

void _cbhpy_Global_Store(HPyContext *ctx, HPyGlobal *global, HPy h, const char *where) {
    if (!enter(ctx, "HPyGlobal_Store", where)) return;
    if (!global) {
        fail(ctx, where, "HPyGlobal_Store: NULL global");
        return;
    }
    Ref value;
    if (!resolve(ctx, h, "HPyGlobal_Store", where, true, value)) return;
    if (!value.null() && !retain_strong(ctx, value, where)) return;
    bool known = !ctx->globals.insert(global).second;
    Ref old = known ? Ref::from(global->_i) : Ref{};
    global->_i = value.raw();
    if (!old.null()) release_strong(ctx, old);
}

HPy _cbhpy_Global_Load(HPyContext *ctx, HPyGlobal global, const char *where) {
    if (!enter(ctx, "HPyGlobal_Load", where)) return HPy_NULL;
    Ref ref = Ref::from(global._i);
    if (ref.null()) {
        fail(ctx, where, "HPyGlobal_Load: the global is NULL");
        return HPy_NULL;
    }
    if (ref.kind() == RefKind::kInvalid) {
        fail(ctx, where, "HPyGlobal_Load: the global holds a corrupt value");
        return HPy_NULL;
    }
    if (ctx->debug) {
        bool found = false;
        for (const HPyGlobal *g : ctx->globals) found = found || g->_i == global._i;
        if (!found) {
            fail(ctx, where, "HPyGlobal_Load: no global stored with HPyGlobal_Store holds this value (stale?)");
            return HPy_NULL;
        }
    }
    return new_handle(ctx, ref, where);
}

}  // extern "C"
