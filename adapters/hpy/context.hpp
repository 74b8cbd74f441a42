// The HPy-style adapter's state: the context, its handle table, its types
// and its objects, and the services every part of the adapter shares.
//
// A reference, wherever it is held (a handle, an HPyField, an HPyGlobal),
// is one word: the pointer, with what it points to in the two low bits:
//
//   kObject    an HPy object: a handle-managed node of the heap, allocated
//              here (ObjectPrefix, then the extension's struct)
//   kPyObject  a PyObject of the CPython-style adapter (refcounted)
//   kHost      an object of the runtime's own heap
//
// What holding one costs, by holder and kind:
//
//              handle, global          field
//   kObject    one count (cb_incref)   nothing: an edge, found by traverse
//   kPyObject  one reference           one reference
//   kHost      host hold               nothing: an edge, found by traverse
//
// Uncounted edges made while a collection may run go through the core's
// write barriers.
#pragma once

#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/hpy_runtime.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

namespace cbhpy {

enum class RefKind : uintptr_t { kObject = 0, kPyObject = 1, kHost = 2, kInvalid = 3 };

struct Ref {
    uintptr_t bits = 0;

    static Ref make(RefKind kind, const void *ptr) {
        return Ref{reinterpret_cast<uintptr_t>(ptr) | static_cast<uintptr_t>(kind)};
    }
    static Ref from(intptr_t raw) { return Ref{static_cast<uintptr_t>(raw)}; }
    intptr_t raw() const { return static_cast<intptr_t>(bits); }
    bool null() const { return bits == 0; }
    RefKind kind() const { return static_cast<RefKind>(bits & 3u); }
    void *ptr() const { return reinterpret_cast<void *>(bits & ~uintptr_t(3)); }
    bool operator==(const Ref &other) const { return bits == other.bits; }
};

using Context = _HPyContext_s;

// One per HPy type (and one for the type of types).
struct TypeRecord {
    Context *ctx = nullptr;
    std::string name;
    size_t basicsize = 0;
    HPyFunc_traverseproc traverse = nullptr;
    HPyFunc_destroyfunc destroy = nullptr;
    HPyFunc_destructor finalize = nullptr;
    cb_type *node_type = nullptr;
    // The type object, an HPy object itself; nullptr once it is freed.
    struct ObjectPrefix *type_object = nullptr;
};

// In front of every HPy object's struct. The node pointer the core sees is
// the prefix; its count (open handles and globals) is its first word.
struct alignas(16) ObjectPrefix {
    intptr_t handles;
    TypeRecord *type;
    void *proxy;   // the PyObject standing for it (HPy_AsPyObject), or nullptr
    uintptr_t reserved;

    void *data() { return this + 1; }
    bool contains(const void *p, size_t size) const {
        auto *begin = reinterpret_cast<const char *>(this + 1);
        auto *q = static_cast<const char *>(p);
        return q >= begin && q + size <= begin + type->basicsize;
    }
};
static_assert(sizeof(ObjectPrefix) == 32, "keeps the extension's struct 16-byte aligned");

struct HandleSlot {
    Ref ref;
    uint32_t generation = 1;
    bool open = false;
    const char *opened_at = nullptr;   // debug mode
    const char *closed_at = nullptr;   // debug mode
};

// Handles: an index into the table (plus one, so that 0 stays NULL) and
// the slot's generation, which every close advances: a closed handle no
// longer matches its slot even after the slot is reused.
class HandleTable {
public:
    HPy open(Ref ref, const char *where, bool debug);
    // The open slot h names, or nullptr.
    HandleSlot *find(HPy h);
    // The slot h's index names, whoever owns it now (for error messages),
    // or nullptr; and the generation h was opened in.
    HandleSlot *slot_of(HPy h);
    static uint32_t generation_of(HPy h);
    void close(HandleSlot *slot, const char *where, bool debug);
    size_t open_count() const { return open_; }
    template <class Fn>
    void each_open(Fn fn) const {
        for (size_t i = 0; i < slots_.size(); ++i)
            if (slots_[i].open) fn(encode(i), slots_[i]);
    }

private:
    HPy encode(size_t index) const;
    std::vector<HandleSlot> slots_;
    std::vector<uint32_t> free_;
    std::deque<uint32_t> quarantine_;   // debug mode: closed slots wait here
    size_t open_ = 0;
};

}  // namespace cbhpy

struct _HPyContext_s {
    cb_heap *heap = nullptr;
    bool debug = false;
    bool has_host = false;
    cbhpy_host host{};

    cbhpy::HandleTable handles;
    std::unordered_set<HPyGlobal *> globals;
    std::vector<std::unique_ptr<cbhpy::TypeRecord>> types;
    cbhpy::TypeRecord *metatype = nullptr;
    size_t live_objects = 0;

    bool error_set = false;
    std::string error;   // "SystemError: message"

    // Inside an HPy_tp_destroy: the API refuses every call.
    const cbhpy::TypeRecord *destroying = nullptr;

    // Debug mode: every field ever stored (its owner), and the fields and
    // handles already reported, so each misuse is reported once.
    std::map<const HPyField *, cbhpy::ObjectPrefix *> fields;
    std::set<const void *> reported;
};

namespace cbhpy {

// ---- errors and reports (context.cpp) ----------------------------------
// Sets the context's error and reports a misuse through the heap.
void fail(Context *ctx, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void report(Context *ctx, cb_report_kind kind, const void *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Every API entry: false (error set) when ctx is null or inside a destroy.
bool enter(Context *ctx, const char *what, const char *where);
// Around an extension callback the collector runs: the caller's pending
// error is set aside, and put back afterwards whatever the callback left.
class ErrorSetAside {
public:
    explicit ErrorSetAside(Context *ctx) : ctx_(ctx), had_(ctx->error_set), saved_(std::move(ctx->error)) {
        ctx->error_set = false;
        ctx->error.clear();
    }
    ~ErrorSetAside() {
        ctx_->error_set = had_;
        ctx_->error = std::move(saved_);
    }
    ErrorSetAside(const ErrorSetAside &) = delete;
    ErrorSetAside &operator=(const ErrorSetAside &) = delete;

private:
    Context *ctx_;
    bool had_;
    std::string saved_;
};

// ---- references (references.cpp) ---------------------------------------
// The reference an open handle holds, or a null Ref (error set, reported)
// for HPy_NULL when !allow_null, or for a closed or invalid handle.
bool resolve(Context *ctx, HPy h, const char *what, const char *where, bool allow_null, Ref &out);
// Take or drop the strong reference of a handle or a global.
bool retain_strong(Context *ctx, Ref ref, const char *where);
void release_strong(Context *ctx, Ref ref);
// A new handle holding ref (retained here), or HPy_NULL.
HPy new_handle(Context *ctx, Ref ref, const char *where);
// A new handle for a reference already retained (HPy_New's first count).
HPy adopt_handle(Context *ctx, Ref ref, const char *where);
// Take or drop what a field holds (a PyObject reference), and the barrier.
void retain_field(Context *ctx, Ref ref);
void release_field(Context *ctx, Ref ref);
// A traverse visit of a field's reference.
int visit_ref(Ref ref, cb_visit_fn visit, void *arg);

// ---- objects (objects.cpp) ----------------------------------------------
ObjectPrefix *object_of(Ref ref);   // kObject refs only
// The HPy object handle h refers to, or nullptr (error set, reported).
ObjectPrefix *resolve_object(Context *ctx, HPy h, const char *what, const char *where);
// Registers the type of types and makes its object.
bool init_metatype(Context *ctx);

// ---- fields (fields.cpp) ------------------------------------------------
// Core callbacks of HPy instances: their fields through HPy_tp_traverse.
int traverse_fields(ObjectPrefix *o, cb_visit_fn visit, void *arg);
void clear_fields(ObjectPrefix *o);
// Forget what was recorded about the fields of a freed object. In debug
// mode, fields still holding a reference (traverse never visits them) are
// reported and released.
void forget_fields(Context *ctx, ObjectPrefix *o);

// ---- globals (globals.cpp) ------------------------------------------------
void drop_globals(Context *ctx);

// ---- PyObjects (pyobjects.cpp) -------------------------------------------
void pyobject_incref(void *o);
void pyobject_decref(void *o);
bool pyobject_is_collectable_node(void *o);
bool pyobject_is_adapter_node(void *node);   // any node: not read unless it is one
// The proxy of a freed HPy object no longer refers to it.
void detach_proxy(ObjectPrefix *o);
void register_proxy_type();

}  // namespace cbhpy
