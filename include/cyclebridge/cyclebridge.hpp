// cyclebridge.hpp: a thin, header-only C++20 layer over the C API in
// cyclebridge.h. It adds types and ownership, nothing else: every call
// forwards to one C function, and anything not wrapped here is reached with
// Heap::raw() and check().
//
//   struct Pair : cyclebridge::RefCounted {
//       cyclebridge::Ref<Pair> left, right;
//       static void traverse(Pair &p, cyclebridge::Visitor &v) { v.node(p.left); v.node(p.right); }
//       static void clear(Pair &p) { p.left.reset(); p.right.reset(); }
//   };
//   cyclebridge::Heap heap;
//   auto a = heap.make<Pair>();
//   a->left = a;          // a self-cycle
//   a.reset();            // unreachable now
//   heap.collect();       // clear() breaks it, ~Pair() and cb_free follow
//
// The rules (docs/api.md, "The C++ API", says the same at more length):
//  - A node type T derives publicly, non-virtually, from RefCounted, which
//    holds the count (intptr_t) and the owning cb_heap*. Its offset in T is
//    taken with offsetof and passed as count_offset, so the core reads the
//    count directly; a virtual or private base is a compile-time error.
//  - T describes itself with static member functions, found by signature:
//      static void traverse(T &, Visitor &);   required
//      static void clear(T &);                 optional (tp_clear)
//      static void finalize(T &);              optional (tp_finalize)
//      static void legacy_finalize(T &);       optional (tp_del)
//      static constexpr cb_kind kind = ...;    optional, default refcounted
//      static constexpr const char *type_name = "...";   optional
//    Static rather than virtual or plain members so that nothing is picked
//    up by accident (a container's own clear()) and T needs no vtable.
//  - Heap::make<T>(args...) allocates with cb_alloc, constructs T(args...)
//    in place and tracks it; it returns the one reference as a Ref<T>. The
//    type is registered with the heap on first use. When the count reaches
//    zero (or the collector frees a handle-managed T) ~T() runs, then cb_free.
//  - Exceptions thrown by T's callbacks are not caught here: they reach the
//    core, which reports them (CB_REPORT_CALLBACK_THREW). A throwing
//    traverse fails the collection (CB_ERR_CALLBACK_FAILED, thrown by
//    collect() as Error); after clear, finalize or ~T() it goes on.
//  - One heap, one thread at a time; every Ref<T> to a heap's objects must
//    be gone before the Heap is destroyed.
#ifndef CYCLEBRIDGE_HPP
#define CYCLEBRIDGE_HPP

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "cyclebridge/cyclebridge.h"

namespace cyclebridge {

// A failed C call. what() names the call and the status.
class Error : public std::runtime_error {
public:
    explicit Error(cb_status status, const char *call = nullptr)
        : std::runtime_error(call ? std::string(call) + ": " + cb_status_name(status)
                                  : std::string(cb_status_name(status))),
          status_(status) {}
    cb_status status() const noexcept { return status_; }

private:
    cb_status status_;
};

// Throws Error unless status is CB_OK. For calling the C API directly.
inline void check(cb_status status, const char *call = nullptr) {
    if (status != CB_OK) throw Error(status, call);
}

class Heap;
class Visitor;
template <class T> class Ref;
namespace detail { template <class T> struct Trampolines; }

// Base of every node type: the count the C API reads and writes, and the
// heap the object came from (a dealloc or a Ref needs it and the C
// callbacks do not pass it). 16 bytes.
class RefCounted {
public:
    // A node's identity is its address and its count belongs to that
    // address: copying one would duplicate the count.
    RefCounted(const RefCounted &) = delete;
    RefCounted &operator=(const RefCounted &) = delete;

    // The heap that allocated this object; nullptr until Heap::make has
    // finished constructing it.
    cb_heap *heap() const noexcept { return heap_; }

protected:
    RefCounted() noexcept = default;
    ~RefCounted() = default;

private:
    template <class> friend struct detail::Trampolines;
    friend class Heap;
    intptr_t count_ = 1;   // cb_alloc's initial count, written again by construction
    cb_heap *heap_ = nullptr;
};

namespace detail {

template <class T>
inline constexpr bool is_node_v = std::is_base_of_v<RefCounted, T> && std::is_convertible_v<T *, RefCounted *>;

// The address the C API knows an object by: where it was allocated, which
// is the most-derived object. For polymorphic types a base pointer may
// differ from it, so dynamic_cast<void *> finds it.
template <class T> void *address(T *p) noexcept {
    if constexpr (std::is_polymorphic_v<T> && is_node_v<T>) return dynamic_cast<void *>(p);
    else return const_cast<void *>(static_cast<const void *>(p));
}

template <class T> cb_heap *heap_of(const T *p) noexcept { return static_cast<const RefCounted *>(p)->heap(); }

// A small dense index per C++ type, for Heap's type table.
inline std::size_t next_type_slot() noexcept {
    static std::atomic<std::size_t> next{0};   // heaps on different threads may register at once
    return next.fetch_add(1, std::memory_order_relaxed);
}
template <class T> std::size_t type_slot() noexcept {
    static const std::size_t slot = next_type_slot();
    return slot;
}

}  // namespace detail

// What a traverse receives. Each call forwards to the core's visit
// function, or to cb_visit_host; a null pointer is skipped (as Py_VISIT
// does). Once the core's visit returns nonzero, later calls do nothing and
// the traverse returns that value to the core.
class Visitor {
public:
    Visitor(const Visitor &) = delete;
    Visitor &operator=(const Visitor &) = delete;

    // A reference to a node: any object of the heap, by the address the C
    // API knows it by.
    void node(void *target) {
        if (target && result_ == 0) result_ = visit_(target, arg_);
    }
    // A C++ node: converted to its allocation address first.
    template <class U>
        requires detail::is_node_v<U>
    void node(U *target) {
        if (target) node(detail::address(target));
    }
    template <class U> void node(const Ref<U> &ref) { node(ref.get()); }

    // A reference to an object of the host's heap.
    void host(cb_host_ref ref) {
        if (ref && result_ == 0) cb_visit_host(arg_, ref);
    }

private:
    template <class> friend struct detail::Trampolines;
    Visitor(cb_visit_fn visit, void *arg) noexcept : visit_(visit), arg_(arg) {}
    cb_visit_fn visit_;
    void *arg_;
    int result_ = 0;
};

// A node type: see the rules at the top of this file.
template <class T>
concept NodeType = detail::is_node_v<T> && requires(T &t, Visitor &v) { T::traverse(t, v); };

namespace detail {

// The C callbacks for T, and its cb_type_spec. None catches: exceptions go
// to the core.
template <class T> struct Trampolines {
    static T &self(void *obj) noexcept { return *static_cast<T *>(obj); }

    static int traverse(void *obj, cb_visit_fn visit, void *arg) {
        Visitor v(visit, arg);
        T::traverse(self(obj), v);
        return v.result_;
    }
    static void clear(void *obj) { T::clear(self(obj)); }
    static void finalize(void *obj) { T::finalize(self(obj)); }
    static void legacy_finalize(void *obj) { T::legacy_finalize(self(obj)); }
    static void dealloc(void *obj) {
        cb_heap *heap = static_cast<RefCounted &>(self(obj)).heap_;
        self(obj).~T();
        cb_free(heap, obj);
    }

    static constexpr std::ptrdiff_t count_offset() noexcept {
        // offsetof on a class that is not standard-layout is conditionally
        // supported; GCC, Clang and MSVC support it for members of
        // non-virtual bases, and reject virtual ones at compile time.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
#endif
        return offsetof(T, count_);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    }

    static const char *name() noexcept {
        if constexpr (requires { { T::type_name } -> std::convertible_to<const char *>; }) {
            return T::type_name;
        } else {
#if defined(__cpp_rtti) || defined(__GXX_RTTI) || defined(_CPPRTTI)
            return typeid(T).name();
#else
            return "C++ node";
#endif
        }
    }

    static cb_type_spec spec() noexcept {
        cb_type_spec s{};
        s.name = name();
        if constexpr (requires { { T::kind } -> std::convertible_to<cb_kind>; }) s.kind = T::kind;
        else s.kind = CB_KIND_REFCOUNTED;
        s.traverse = &traverse;
        if constexpr (requires(T &t) { T::clear(t); }) s.clear = &clear;
        if constexpr (requires(T &t) { T::finalize(t); }) s.finalize = &finalize;
        if constexpr (requires(T &t) { T::legacy_finalize(t); }) s.legacy_finalize = &legacy_finalize;
        s.dealloc = &dealloc;
        s.count_offset = count_offset();
        return s;
    }
};

}  // namespace detail

// A counted reference to a node of type T (Py_INCREF/Py_DECREF as RAII).
// T is left unconstrained here so that a T can hold Ref<T> members while it
// is still incomplete.
template <class T> class Ref {
public:
    Ref() noexcept = default;
    Ref(std::nullptr_t) noexcept {}
    // Takes over a count the caller owns (a "new reference").
    static Ref adopt(T *p) noexcept {
        Ref r;
        r.p_ = p;
        return r;
    }
    // Takes a new count (a "borrowed reference" made strong). Throws Error
    // on CB_ERR_OVERFLOW or a pointer that is not a node.
    static Ref share(T *p) {
        if (p) incref(p);
        return adopt(p);
    }

    Ref(const Ref &other) : p_(other.p_) {
        if (p_) incref(p_);
    }
    Ref(Ref &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    // The field holds the new value before the old one is released (as
    // Py_SETREF), so a dealloc that runs from the release never sees a
    // dangling pointer here.
    Ref &operator=(Ref other) noexcept {
        std::swap(p_, other.p_);
        return *this;
    }
    ~Ref() { reset(); }

    // Drops the reference, nulling the field first (as Py_CLEAR).
    void reset() noexcept {
        if (T *p = std::exchange(p_, nullptr)) decref(p);
    }
    // Gives up ownership of the count without dropping it.
    [[nodiscard]] T *release() noexcept { return std::exchange(p_, nullptr); }

    T *get() const noexcept { return p_; }
    T &operator*() const noexcept { return *p_; }
    T *operator->() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    friend bool operator==(const Ref &a, const Ref &b) noexcept { return a.p_ == b.p_; }
    friend bool operator==(const Ref &a, std::nullptr_t) noexcept { return a.p_ == nullptr; }

private:
    static void incref(T *p) { check(cb_incref(detail::heap_of(p), detail::address(p)), "cb_incref"); }
    // Failures are reported by the core; a destructor cannot throw them.
    static void decref(T *p) noexcept { (void)cb_decref(detail::heap_of(p), detail::address(p)); }
    T *p_ = nullptr;
};

// Returned by add_collection_callback, for remove_collection_callback.
class CallbackId {
public:
    CallbackId() noexcept = default;
    explicit operator bool() const noexcept { return ctx_ != nullptr; }

private:
    friend class Heap;
    explicit CallbackId(void *ctx) noexcept : ctx_(ctx) {}
    void *ctx_ = nullptr;
};

// cb_heap_options with defaults, so that Heap heap({.flags = CB_HEAP_VERIFY})
// compiles without missing-initializer warnings.
struct HeapOptions {
    uint32_t flags = 0;   // CB_HEAP_VERIFY | CB_HEAP_NO_AUTO_COLLECT
    int (*is_node)(void *ctx, const void *ptr) = nullptr;
    void *is_node_ctx = nullptr;
};

// Owns a cb_heap. Move-only; a moved-from Heap owns nothing, its
// destructor does nothing and its other members throw
// Error(CB_ERR_NULL_ARGUMENT).
class Heap {
public:
    using ReportHandler = std::function<void(const cb_report &)>;
    using CollectionCallback = std::function<void(cb_collection_event, const cb_collection_stats &)>;

    // Throws Error(CB_ERR_NO_MEMORY) when cb_heap_new fails.
    explicit Heap(const HeapOptions &options = {}) : state_(std::make_unique<State>()) {
        const cb_heap_options o{options.flags, options.is_node, options.is_node_ctx};
        state_->heap = cb_heap_new(&o);
        if (!state_->heap) throw Error(CB_ERR_NO_MEMORY, "cb_heap_new");
    }
    Heap(Heap &&other) noexcept = default;
    Heap &operator=(Heap &&other) noexcept {
        if (this != &other) {
            destroy();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    Heap(const Heap &) = delete;
    Heap &operator=(const Heap &) = delete;
    // cb_heap_destroy: runs no callbacks and frees no object.
    ~Heap() { destroy(); }

    cb_heap *raw() const noexcept { return state_ ? state_->heap : nullptr; }
    explicit operator bool() const noexcept { return state_ != nullptr; }

    // ---- types and objects ------------------------------------------------

    // T's cb_type in this heap, registered on first use.
    template <NodeType T> const cb_type *type() {
        State &s = state();
        std::size_t slot = detail::type_slot<T>();
        if (slot >= s.types.size()) s.types.resize(slot + 1, nullptr);
        if (!s.types[slot]) {
            cb_type_spec spec = detail::Trampolines<T>::spec();
            cb_type *type = nullptr;
            check(cb_type_register(s.heap, &spec, &type), "cb_type_register");
            s.types[slot] = type;
        }
        return s.types[slot];
    }

    // A new T, tracked, with count 1 held by the returned Ref. May run an
    // automatic collection first (in cb_alloc), before T is constructed.
    // If T's constructor throws, the memory is freed and the exception
    // propagates.
    template <NodeType T, class... Args> Ref<T> make(Args &&...args) {
        static_assert(alignof(T) <= 16, "cb_alloc aligns objects to 16 bytes");
        cb_heap *h = state().heap;
        const cb_type *t = type<T>();
        void *mem = cb_alloc(h, t, sizeof(T));
        if (!mem) throw Error(CB_ERR_NO_MEMORY, "cb_alloc");
        T *obj;
        try {
            obj = ::new (mem) T(std::forward<Args>(args)...);
        } catch (...) {
            (void)cb_free(h, mem);
            throw;
        }
        static_cast<RefCounted *>(obj)->heap_ = h;
        Ref<T> ref = Ref<T>::adopt(obj);   // from here a failure frees through dealloc
        check(cb_track(h, mem), "cb_track");
        return ref;
    }

    // Tracking by hand (objects of the C API, or T after untrack).
    template <class U> void track(U *obj) { check(cb_track(raw_or_throw(), detail::address(obj)), "cb_track"); }
    template <class U> void untrack(U *obj) { check(cb_untrack(raw_or_throw(), detail::address(obj)), "cb_untrack"); }
    template <class U> bool is_tracked(const U *obj) const {
        return cb_is_tracked(raw_or_throw(), detail::address(const_cast<U *>(obj))) != 0;
    }

    // ---- collections ------------------------------------------------------

    // Collects generations 0..generation (CB_FULL: everything, and the host
    // heap when one is attached). Throws Error on failure: CB_ERR_BUSY from
    // inside a callback, CB_ERR_CALLBACK_FAILED when a callback threw.
    cb_collection_stats collect(int generation = CB_FULL) {
        cb_collection_stats stats{};
        check(cb_collect(raw_or_throw(), generation, &stats), "cb_collect");
        return stats;
    }
    void collect_if_due() { check(cb_collect_if_due(raw_or_throw()), "cb_collect_if_due"); }
    void set_automatic(bool enabled) { cb_set_automatic(raw_or_throw(), enabled ? 1 : 0); }
    void set_thresholds(uint32_t t0, uint32_t t1, uint32_t t2) {
        check(cb_set_thresholds(raw_or_throw(), t0, t1, t2), "cb_set_thresholds");
    }
    std::array<uint32_t, CB_GENERATIONS> thresholds() const {
        std::array<uint32_t, CB_GENERATIONS> t{};
        cb_get_thresholds(raw_or_throw(), t.data());
        return t;
    }
    void freeze() { check(cb_freeze(raw_or_throw()), "cb_freeze"); }
    void unfreeze() { check(cb_unfreeze(raw_or_throw()), "cb_unfreeze"); }

    // ---- reports and callbacks --------------------------------------------

    // Every report of this heap goes to fn; an empty fn restores the default
    // (stderr). fn must not throw (the call is noexcept: std::terminate) and
    // must not replace the handler from inside itself.
    void set_report_handler(ReportHandler fn) {
        State &s = state();
        if (!fn) {
            cb_set_report_handler(s.heap, nullptr, nullptr);
            s.report = nullptr;
            return;
        }
        s.report = std::move(fn);
        cb_set_report_handler(s.heap, &report_trampoline, &s);
    }

    // Called at the start and stop of every collection (gc.callbacks). An
    // exception from fn goes to the core, like one from a node callback.
    CallbackId add_collection_callback(CollectionCallback fn) {
        State &s = state();
        if (!cb_is_collecting(s.heap)) s.retired.clear();
        s.callbacks.push_back(std::move(fn));
        void *ctx = &s.callbacks.back();
        cb_status st = cb_add_collection_callback(s.heap, &collection_trampoline, ctx);
        if (st != CB_OK) {
            s.callbacks.pop_back();
            throw Error(st, "cb_add_collection_callback");
        }
        return CallbackId(ctx);
    }
    void remove_collection_callback(CallbackId id) {
        State &s = state();
        check(cb_remove_collection_callback(s.heap, &collection_trampoline, id.ctx_),
              "cb_remove_collection_callback");
        // Removed during a collection (perhaps by itself), the function may
        // still be running or be called once more from the core's copy of
        // the list: keep it alive until no collection runs.
        for (auto it = s.callbacks.begin(); it != s.callbacks.end(); ++it) {
            if (&*it == id.ctx_) {
                s.retired.splice(s.retired.end(), s.callbacks, it);
                break;
            }
        }
        if (!cb_is_collecting(s.heap)) s.retired.clear();
    }

    // ---- uncollectable garbage (gc.garbage) -------------------------------

    // A copy of the list; the heap keeps its counts on the objects.
    std::vector<cb_uncollectable> uncollectable() const {
        cb_heap *h = raw_or_throw();
        std::vector<cb_uncollectable> out(cb_uncollectable_count(h));
        for (std::size_t i = 0; i < out.size(); ++i) check(cb_uncollectable_get(h, i, &out[i]), "cb_uncollectable_get");
        return out;
    }
    // Empties the list, dropping the heap's counts.
    void release_uncollectable() { check(cb_uncollectable_release(raw_or_throw()), "cb_uncollectable_release"); }

private:
    // Behind a pointer so the contexts handed to the C API survive moves.
    struct State {
        cb_heap *heap = nullptr;
        std::vector<const cb_type *> types;     // by detail::type_slot
        ReportHandler report;
        std::list<CollectionCallback> callbacks;  // stable addresses: the C contexts
        std::list<CollectionCallback> retired;    // removed while a collection ran
    };

    static void report_trampoline(void *ctx, const cb_report *report) noexcept {
        static_cast<State *>(ctx)->report(*report);
    }
    static void collection_trampoline(void *ctx, cb_collection_event event, const cb_collection_stats *stats) {
        static const cb_collection_stats none{};
        (*static_cast<CollectionCallback *>(ctx))(event, stats ? *stats : none);
    }

    State &state() const {
        if (!state_) throw Error(CB_ERR_NULL_ARGUMENT, "moved-from cyclebridge::Heap");
        return *state_;
    }
    cb_heap *raw_or_throw() const { return state().heap; }
    void destroy() noexcept {
        // The report handler may run (CB_REPORT_LEAKED_AT_DESTROY): the
        // state goes after the heap.
        if (state_) cb_heap_destroy(state_->heap);
        state_.reset();
    }

    std::unique_ptr<State> state_;
};

}  // namespace cyclebridge

#endif  // CYCLEBRIDGE_HPP
