// The `cyclebridge` extension module for CPython 3.11 (docs/python.md).
//
// find_unreachable() mirrors the live heap into a cyclebridge heap (every
// object gc.get_objects() lists, tracked with cb_track_external and
// traversed with its own tp_traverse), asks cyclebridge what a full
// collection would find unreachable, then forecasts what CPython's own
// collection does with that set before it lands in gc.garbage under
// gc.DEBUG_SAVEALL: finalizers free some of it and may resurrect some.
// Nothing is finalized, cleared or freed; the result holds no reference to
// the objects it describes.
//
// Everything runs with the GIL held and automatic collection paused, and no
// Python code runs between the snapshot and the end of the analysis, so the
// heap cannot change under it.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cpython_internals.h"
#include "cyclebridge/cyclebridge.h"

namespace {

// Filled in by PyInit_cyclebridge; the module is never unloaded.
PyObject *g_get_objects = nullptr;   // gc.get_objects
PyObject *g_str_close = nullptr;
PyObject *g_str_gi_yieldfrom = nullptr;
PyObject *g_str_cr_await = nullptr;
PyObject *g_str_ag_await = nullptr;

// ---------------------------------------------------------------------------
// References the module holds while it works
// ---------------------------------------------------------------------------

// An automatic collection during the analysis would free objects the
// mirror points at, and change the heap the result describes.
class AutomaticCollectionPause {
public:
    AutomaticCollectionPause() : was_enabled_(PyGC_Disable()) {}
    ~AutomaticCollectionPause() {
        if (was_enabled_) PyGC_Enable();
    }
    AutomaticCollectionPause(const AutomaticCollectionPause &) = delete;
    AutomaticCollectionPause &operator=(const AutomaticCollectionPause &) = delete;

private:
    int was_enabled_;
};

// The list gc.get_objects() returns: one reference to every tracked object
// of generations 0 to 2, which is exactly the set a full collection
// examines (it skips the list itself and the permanent generation). That
// reference is the only one the mirror adds to any object.
class Snapshot {
public:
    bool take() {
        list_ = PyObject_CallNoArgs(g_get_objects);
        if (list_ && !PyList_CheckExact(list_)) {
            PyErr_SetString(PyExc_TypeError, "gc.get_objects() did not return a list");
            release();
        }
        return list_ != nullptr;
    }
    ~Snapshot() { release(); }
    Snapshot() = default;
    Snapshot(const Snapshot &) = delete;
    Snapshot &operator=(const Snapshot &) = delete;

    Py_ssize_t size() const { return PyList_GET_SIZE(list_); }
    PyObject *at(Py_ssize_t i) const { return PyList_GET_ITEM(list_, i); }

private:
    void release() { Py_CLEAR(list_); }
    PyObject *list_ = nullptr;
};

// ---------------------------------------------------------------------------
// The mirror: one cyclebridge node per object of the snapshot
// ---------------------------------------------------------------------------

// ob_refcnt less the snapshot's reference: what CPython's update_refs reads.
intptr_t count_without_snapshot(const void *obj) {
    return Py_REFCNT(static_cast<PyObject *>(const_cast<void *>(obj))) - 1;
}

// cb_find_unreachable holds and releases nothing, so it never writes a
// count; should it ever, ob_refcnt must not change behind CPython's back:
// the write is refused and the call fails.
bool g_count_write_refused = false;
void refuse_count_write(void *, intptr_t) { g_count_write_refused = true; }

// tp_traverse takes a visitproc; cyclebridge hands a cb_visit_fn. The two
// have the same shape but are different types: forward instead of casting.
struct ForwardedVisit {
    cb_visit_fn visit;
    void *arg;
};

int forward_visit(PyObject *target, void *arg) {
    auto *forwarded = static_cast<ForwardedVisit *>(arg);
    return forwarded->visit(target, forwarded->arg);
}

int traverse_with_tp_traverse(void *obj, cb_visit_fn visit, void *arg) {
    auto *op = static_cast<PyObject *>(obj);
    ForwardedVisit forwarded{visit, arg};
    return Py_TYPE(op)->tp_traverse(op, forward_visit, &forwarded);
}

// Which visited pointers are nodes. Traverses also visit ints, strings,
// untracked tuples and dicts, static types: CPython's visit_decref ignores
// everything that is not a tracked object of the collected generations,
// and so must the mirror (the core reports non-nodes it is asked to look
// up). Tracked objects are exactly the snapshot (nothing is created while
// the analysis runs, and nothing mirrored refers to the snapshot list),
// except those gc.freeze() moved to the permanent generation: only then is
// a membership set needed.
struct NodeFilter {
    bool exact = false;
    std::unordered_set<const void *> members;
};

int is_mirrored(void *ctx, const void *ptr) {
    auto *op = static_cast<PyObject *>(const_cast<void *>(ptr));
    if (!PyObject_GC_IsTracked(op)) return 0;
    auto *filter = static_cast<const NodeFilter *>(ctx);
    return !filter->exact || filter->members.count(ptr) != 0;
}

struct ReportLog {
    std::vector<std::string> lines;
    size_t lost = 0;   // reports that could not be recorded (out of memory)
};

// Every object cyclebridge can name in a report is a pointer the mirror
// gave it or a traverse visited: a live PyObject, whose type is worth
// printing.
void log_report(void *ctx, const cb_report *report) {
    auto *log = static_cast<ReportLog *>(ctx);
    try {
        std::string line = report->message ? report->message : "";
        if (report->object) {
            line += " (a ";
            line += Py_TYPE(static_cast<PyObject *>(const_cast<void *>(report->object)))->tp_name;
            line += ")";
        }
        log->lines.push_back(std::move(line));
    } catch (const std::bad_alloc &) {
        log->lost++;   // never unwind through the core and CPython's traverses
    }
}

struct HeapDeleter {
    void operator()(cb_heap *heap) const { cb_heap_destroy(heap); }
};

struct Unreachable {
    std::vector<PyObject *> objects;   // borrowed from the snapshot
    uint64_t examined = 0;
    uint64_t roots = 0;
};

void collect_found(void *ctx, void *obj) {
    // Reserved for the whole snapshot beforehand: never reallocates.
    static_cast<std::vector<PyObject *> *>(ctx)->push_back(static_cast<PyObject *>(obj));
}

bool fail_with_reports(const char *what, cb_status status, const ReportLog &log) {
    std::string message = std::string("cyclebridge: ") + what;
    if (status != CB_OK) message += std::string(" (") + cb_status_name(status) + ")";
    for (size_t i = 0; i < log.lines.size(); ++i) message += (i ? "; " : ": ") + log.lines[i];
    if (log.lost) message += "; " + std::to_string(log.lost) + " more reports lost (out of memory)";
    PyErr_SetString(PyExc_RuntimeError, message.c_str());
    return false;
}

// What a full collection would find unreachable in the snapshot: the count
// and mark phases of cyclebridge, which are CPython's update_refs,
// subtract_refs and move_unreachable over the same objects, counts and
// traverses. Returns false with a Python exception set.
bool find_unreachable_in(const Snapshot &snapshot, Unreachable &out) {
    const Py_ssize_t n = snapshot.size();
    NodeFilter filter;
    filter.exact = cbpy_has_frozen_objects() != 0;
    if (filter.exact) {
        filter.members.reserve(size_t(n));
        for (Py_ssize_t i = 0; i < n; ++i) filter.members.insert(snapshot.at(i));
    }

    cb_heap_options options{};
    options.flags = CB_HEAP_NO_AUTO_COLLECT;
    options.is_node = is_mirrored;
    options.is_node_ctx = &filter;
    std::unique_ptr<cb_heap, HeapDeleter> heap(cb_heap_new(&options));
    if (!heap) {
        PyErr_NoMemory();
        return false;
    }
    ReportLog log;
    cb_set_report_handler(heap.get(), log_report, &log);

    cb_type_spec spec{};
    spec.name = "PyObject";
    spec.kind = CB_KIND_REFCOUNTED;
    spec.traverse = traverse_with_tp_traverse;
    spec.count_offset = -1;
    spec.get_count = count_without_snapshot;
    spec.set_count = refuse_count_write;
    cb_type *type = nullptr;
    cb_status status = cb_type_register(heap.get(), &spec, &type);
    if (status != CB_OK) return fail_with_reports("registering the object type failed", status, log);

    for (Py_ssize_t i = 0; i < n; ++i) {
        status = cb_track_external(heap.get(), type, snapshot.at(i));
        if (status != CB_OK) return fail_with_reports("mirroring an object failed", status, log);
    }

    out.objects.reserve(size_t(n));
    g_count_write_refused = false;
    cb_collection_stats stats{};
    status = cb_find_unreachable(heap.get(), collect_found, &out.objects, &stats);
    if (status != CB_OK || !log.lines.empty() || log.lost || g_count_write_refused) {
        out.objects.clear();
        if (g_count_write_refused) log.lines.emplace_back("the analysis tried to write a reference count");
        return fail_with_reports("the analysis failed", status, log);
    }
    out.examined = stats.examined;
    out.roots = stats.roots;
    return true;
}

// ---------------------------------------------------------------------------
// What CPython's collection does next (gc_collect_main after
// deduce_unreachable, Modules/gcmodule.c of 3.11), with DEBUG_SAVEALL:
//
//  1. move_legacy_finalizers, move_legacy_finalizer_reachable: objects whose
//     type has tp_del, and everything they reach, are set aside. They are
//     never finalized and always saved.
//  2. handle_weakrefs: weakrefs to the garbage are cleared; callbacks of live
//     weakrefs run, but nothing they can reach is garbage: no change.
//  3. finalize_garbage: each object not finalized before whose type has
//     tp_finalize is finalized, held by the collector meanwhile. Counts that
//     reach zero free objects on the spot (their dealloc releases what they
//     hold, finalizing them first if it has not happened).
//  4. handle_resurrected_objects: the survivors of step 3 (outside the set
//     aside) are counted again; what references from outside them reach is
//     resurrected.
//  5. delete_garbage: with DEBUG_SAVEALL the rest, and the set aside, go to
//     gc.garbage instead of being cleared.
//
// Finalizers are Python code in general; the forecast models the ones whose
// effect is fixed: generators, coroutines and async generators, which close
// their frame. Anything else is reported uncertain and assumed to change
// nothing.
// ---------------------------------------------------------------------------

bool is_generator_like(PyObject *op) {
    return PyGen_CheckExact(op) || PyCoro_CheckExact(op) || PyAsyncGen_CheckExact(op);
}

PyGenObject *as_generator(PyObject *op) { return reinterpret_cast<PyGenObject *>(op); }

// CPython 3.11's exception table (Objects/exception_handling_notes.txt):
// entries of four varints (start, size, target, depth<<1|lasti) in code
// units; a varint has 6 bits a byte, bit 6 set on every byte but its last.
int read_varint(const unsigned char *&p, const unsigned char *end) {
    unsigned char byte = *p++;
    int value = byte & 63;
    while ((byte & 64) && p < end) {
        byte = *p++;
        value = (value << 6) | (byte & 63);
    }
    return value;
}

bool handler_covers(PyCodeObject *code, int instruction) {
    PyObject *table = code->co_exceptiontable;
    auto *p = reinterpret_cast<const unsigned char *>(PyBytes_AS_STRING(table));
    const unsigned char *end = p + PyBytes_GET_SIZE(table);
    while (p < end) {
        int start = read_varint(p, end);
        int size = p < end ? read_varint(p, end) : 0;
        for (int skipped = 0; skipped < 2 && p < end; ++skipped) read_varint(p, end);   // target, depth
        if (start <= instruction && instruction < start + size) return true;
    }
    return false;
}

// Closing a frame throws GeneratorExit at the instruction it stopped at;
// a handler there (try, with, async for) runs Python code before the frame
// is left, or instead of leaving it.
bool closing_runs_handler(PyObject *gen) {
    return cbpy_frame_state_of(gen) == CBPY_FRAME_SUSPENDED &&
           handler_covers(as_generator(gen)->gi_code, cbpy_frame_instruction(gen));
}

// The object a suspended `yield from` / `await` delegates to (CPython's
// _PyGen_yf, through the public getters), a new reference; Py_None if none;
// NULL with an error set.
PyObject *delegate_of(PyObject *gen) {
    PyObject *name = PyGen_CheckExact(gen)    ? g_str_gi_yieldfrom
                     : PyCoro_CheckExact(gen) ? g_str_cr_await
                                              : g_str_ag_await;
    return PyObject_GetAttr(gen, name);
}

// gen_close_iter: a generator or coroutine delegate is closed in turn; any
// other delegate has its `close` looked up and called. Only a built-in type
// with generic attribute lookup and no `close` runs no code.
bool closing_delegate_runs_code(PyObject *delegate) {
    PyTypeObject *type = Py_TYPE(delegate);
    if ((type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_getattro != PyObject_GenericGetAttr ||
        type->tp_dictoffset != 0)
        return true;
    return _PyType_Lookup(type, g_str_close) != nullptr;
}

enum class GeneratorFinalizer {
    kNothing,      // finished or running: _PyGen_Finalize returns at once
    kWarningOnly,  // coroutine never started: "was never awaited", not closed
    kHook,         // async generator with a finalizer hook (asyncio): Python code
    kClose,        // gen_close
};

GeneratorFinalizer finalizer_of(PyObject *gen) {
    cbpy_frame_state state = cbpy_frame_state_of(gen);
    if (state == CBPY_FRAME_FINISHED || state == CBPY_FRAME_EXECUTING) return GeneratorFinalizer::kNothing;
    PyGenObject *g = as_generator(gen);
    if (PyAsyncGen_CheckExact(gen) && g->gi_origin_or_finalizer && !g->gi_closed) return GeneratorFinalizer::kHook;
    if ((g->gi_code->co_flags & CO_COROUTINE) && state == CBPY_FRAME_CREATED) return GeneratorFinalizer::kWarningOnly;
    return GeneratorFinalizer::kClose;
}

class FinalizationForecast {
public:
    explicit FinalizationForecast(const std::vector<PyObject *> &garbage) : garbage_count_(garbage.size()) {
        nodes_.reserve(garbage.size());
        index_.reserve(garbage.size());
        for (PyObject *op : garbage) add_node(op);
    }

    // Returns false with a Python exception set.
    bool run() {
        add_frame_objects();
        if (!collect_edges()) return false;
        set_aside_legacy();
        finalize_garbage();
        find_resurrected();
        return true;
    }

    bool freed(size_t i) const { return !nodes_[i].alive; }
    bool resurrected(size_t i) const { return nodes_[i].resurrected; }
    bool uncertain(size_t i) const { return nodes_[i].uncertain; }

private:
    struct Node {
        PyObject *object = nullptr;
        intptr_t count = 0;            // references still held to it
        std::vector<uint32_t> edges;   // references it holds to nodes (with repeats)
        bool frame_object = false;     // a generator's frame object, not garbage itself
        bool alive = true;
        bool legacy = false;
        bool finalized = false;
        bool uncertain = false;
        bool resurrected = false;
    };
    // A garbage generator whose references are modelled: its traverse
    // visits exactly its frame and its exception state.
    struct Frame {
        std::vector<uint32_t> frame_edges;   // includes the link to frame_object
        int64_t exception = -1;              // node of gi_exc_state.exc_value
        int64_t frame_object = -1;
        bool cleared = false;
    };

    uint32_t add_node(PyObject *op) {
        auto id = uint32_t(nodes_.size());
        nodes_.emplace_back();
        nodes_.back().object = op;
        index_.emplace(op, id);
        return id;
    }

    bool is_garbage(size_t i) const { return i < garbage_count_; }

    // A frame object belongs to its generator's frame and is not tracked
    // while the frame lives, so it is not in the snapshot. It matters when
    // the frame is closed (clear_frame); its count is all of ob_refcnt.
    void add_frame_objects() {
        for (size_t i = 0; i < garbage_count_; ++i) {
            PyObject *op = nodes_[i].object;
            if (!is_generator_like(op)) continue;
            PyObject *frame_object = cbpy_frame_object(op);
            if (!frame_object || index_.count(frame_object)) continue;
            uint32_t f = add_node(frame_object);
            nodes_[f].frame_object = true;
            nodes_[f].count = Py_REFCNT(frame_object);
        }
    }

    struct EdgeCollector {
        const std::unordered_map<PyObject *, uint32_t> *index;
        std::vector<uint32_t> *edges;
    };
    static int collect_edge(PyObject *target, void *arg) {
        auto *collector = static_cast<EdgeCollector *>(arg);
        auto it = collector->index->find(target);
        if (it != collector->index->end()) collector->edges->push_back(it->second);
        return 0;
    }

    bool collect_edges() {
        for (size_t i = 0; i < garbage_count_; ++i) {
            PyObject *op = nodes_[i].object;
            EdgeCollector collector{&index_, &nodes_[i].edges};
            Py_TYPE(op)->tp_traverse(op, collect_edge, &collector);
            nodes_[i].finalized = PyObject_GC_IsFinalized(op) != 0;
            if (is_generator_like(op)) model_generator(uint32_t(i));
        }
        for (size_t i = 0; i < garbage_count_; ++i)
            for (uint32_t target : nodes_[i].edges)
                if (is_garbage(target)) nodes_[target].count++;
        // Garbage is referenced by garbage alone (anything else would have
        // made it reachable): its count must be what the set holds.
        for (size_t i = 0; i < garbage_count_; ++i) {
            PyObject *op = nodes_[i].object;
            if (nodes_[i].count != Py_REFCNT(op) - 1) {
                PyErr_Format(PyExc_RuntimeError,
                             "cyclebridge: inconsistent analysis: an unreachable %s has %zd references, "
                             "%zd of them from unreachable objects",
                             Py_TYPE(op)->tp_name, Py_REFCNT(op) - 1, Py_ssize_t(nodes_[i].count));
                return false;
            }
        }
        return true;
    }

    void model_generator(uint32_t g) {
        PyObject *op = nodes_[g].object;
        Frame frame;
        EdgeCollector collector{&index_, &frame.frame_edges};
        cbpy_frame_visit(op, collect_edge, &collector);
        PyObject *exception = as_generator(op)->gi_exc_state.exc_value;
        auto it = exception ? index_.find(exception) : index_.end();
        if (it != index_.end()) frame.exception = it->second;
        if (PyObject *frame_object = cbpy_frame_object(op)) {
            auto f = index_.find(frame_object);
            if (f != index_.end() && nodes_[f->second].frame_object) frame.frame_object = f->second;
        }
        // The model must account for every reference the traverse sees;
        // if it does not, the generator is not what this file was written
        // for, and its finalizer is not forecast.
        std::vector<uint32_t> modelled = frame.frame_edges;
        if (frame.exception >= 0) modelled.push_back(uint32_t(frame.exception));
        std::vector<uint32_t> seen = nodes_[g].edges;
        std::sort(modelled.begin(), modelled.end());
        std::sort(seen.begin(), seen.end());
        if (modelled == seen) frames_.emplace(g, std::move(frame));
    }

    void set_aside_legacy() {
        std::vector<uint32_t> work;
        for (size_t i = 0; i < garbage_count_; ++i)
            if (Py_TYPE(nodes_[i].object)->tp_del) {
                nodes_[i].legacy = true;
                work.push_back(uint32_t(i));
            }
        while (!work.empty()) {
            uint32_t i = work.back();
            work.pop_back();
            for (uint32_t target : nodes_[i].edges)
                if (is_garbage(target) && !nodes_[target].legacy) {
                    nodes_[target].legacy = true;
                    work.push_back(target);
                }
        }
    }

    void finalize_garbage() {
        for (size_t i = 0; i < garbage_count_; ++i) {
            Node &node = nodes_[i];
            if (!node.alive || node.legacy || node.finalized || !Py_TYPE(node.object)->tp_finalize) continue;
            node.finalized = true;
            node.count++;   // finalize_garbage's Py_INCREF around the call
            run_finalizer(uint32_t(i));
            release(uint32_t(i));
        }
    }

    void run_finalizer(uint32_t i) {
        PyObject *op = nodes_[i].object;
        if (!is_generator_like(op)) {
            nodes_[i].uncertain = true;
            return;
        }
        switch (finalizer_of(op)) {
        case GeneratorFinalizer::kNothing:
        case GeneratorFinalizer::kWarningOnly:
            return;
        case GeneratorFinalizer::kHook:
            nodes_[i].uncertain = true;
            return;
        case GeneratorFinalizer::kClose:
            close_generator(i);
            return;
        }
    }

    // gen_close: close the delegate of a `yield from` / `await`, then throw
    // GeneratorExit into the frame, which leaves it and is cleared.
    void close_generator(uint32_t g) {
        auto frame = frames_.find(g);
        if (frame == frames_.end()) {
            nodes_[g].uncertain = true;
            return;
        }
        if (frame->second.cleared) return;
        PyObject *op = nodes_[g].object;
        if (cbpy_frame_state_of(op) == CBPY_FRAME_SUSPENDED) close_delegate(g);
        // Assumed: the handler lets GeneratorExit through without keeping
        // or dropping references, as cleanup code does.
        if (closing_runs_handler(op)) nodes_[g].uncertain = true;
        clear_frame(g);
    }

    void close_delegate(uint32_t g) {
        PyObject *delegate = delegate_of(nodes_[g].object);
        if (!delegate) {
            PyErr_Clear();
            nodes_[g].uncertain = true;
            return;
        }
        if (delegate != Py_None) {
            if (PyGen_CheckExact(delegate) || PyCoro_CheckExact(delegate)) {
                auto it = index_.find(delegate);
                if (it != index_.end() && is_garbage(it->second)) {
                    close_generator(it->second);
                } else if (closing_chain_runs_code(delegate)) {
                    nodes_[g].uncertain = true;
                }
            } else if (closing_delegate_runs_code(delegate)) {
                nodes_[g].uncertain = true;
            }
        }
        Py_DECREF(delegate);
    }

    // A live delegate (not garbage) closes without touching the garbage,
    // which it cannot reach; it may still run Python code while it does.
    static bool closing_chain_runs_code(PyObject *gen) {
        if (cbpy_frame_state_of(gen) != CBPY_FRAME_SUSPENDED) return false;
        if (closing_runs_handler(gen)) return true;
        PyObject *delegate = delegate_of(gen);
        if (!delegate) {
            PyErr_Clear();
            return true;
        }
        bool runs = false;
        if (delegate != Py_None)
            runs = (PyGen_CheckExact(delegate) || PyCoro_CheckExact(delegate)) ? closing_chain_runs_code(delegate)
                                                                              : closing_delegate_runs_code(delegate);
        Py_DECREF(delegate);
        return runs;
    }

    // _PyFrame_Clear, reached when GeneratorExit leaves the frame or from
    // gen_dealloc. If a frame object is attached and someone besides the
    // frame holds it, it takes the frame's references over (take_ownership)
    // and keeps them: during a close the GeneratorExit traceback holds it
    // too, which is why the frame's own link is never the last reference
    // then. Otherwise the references are released. The exception state is
    // cleared with the frame.
    void clear_frame(uint32_t g) {
        Frame &frame = frames_.at(g);
        if (frame.cleared) return;
        frame.cleared = true;
        nodes_[g].edges.clear();   // exactly the frame's and the exception's (model_generator)
        int64_t f = frame.frame_object;
        if (f >= 0 && nodes_[f].alive && nodes_[f].count > 1) {
            for (uint32_t target : frame.frame_edges)
                if (target != uint32_t(f)) nodes_[f].edges.push_back(target);
            release(uint32_t(f));
        } else {
            for (uint32_t target : frame.frame_edges) release(target);
        }
        if (frame.exception >= 0) release(uint32_t(frame.exception));
    }

    // Py_DECREF: at zero the object is deallocated, which may release more.
    // Deallocations are queued and drained here rather than recursing,
    // since chains of garbage can be arbitrarily long.
    void release(uint32_t i) {
        if (--nodes_[i].count != 0) return;
        dying_.push_back(i);
        if (draining_) return;
        draining_ = true;
        while (!dying_.empty()) {
            uint32_t next = dying_.back();
            dying_.pop_back();
            deallocate(next);
        }
        draining_ = false;
    }

    void deallocate(uint32_t i) {
        Node &node = nodes_[i];
        node.alive = false;
        PyObject *op = node.object;
        if (!node.frame_object) {
            PyTypeObject *type = Py_TYPE(op);
            if (is_generator_like(op)) {
                // gen_dealloc: PyObject_CallFinalizerFromDealloc (which
                // holds the object meanwhile), then the frame is cleared if
                // the finalizer did not.
                node.count = 1;
                if (!node.finalized) {
                    node.finalized = true;
                    run_finalizer(i);
                }
                if (frames_.count(i)) clear_frame(i);
                node.count--;
            } else if (type->tp_finalize && !node.finalized) {
                node.uncertain = true;   // its dealloc may run the finalizer
            }
            if (type->tp_del) node.uncertain = true;   // legacy finalizers run from dealloc
        }
        std::vector<uint32_t> held;
        held.swap(node.edges);
        for (uint32_t target : held) release(target);
    }

    void find_resurrected() {
        std::vector<uint32_t> work;
        auto resurrect = [&](uint32_t target) {
            Node &node = nodes_[target];
            if (is_garbage(target) && node.alive && !node.legacy && !node.resurrected) {
                node.resurrected = true;
                work.push_back(target);
            }
        };
        // A frame object that took a frame over is not in the unreachable
        // list: its references come from outside it.
        for (size_t f = garbage_count_; f < nodes_.size(); ++f)
            if (nodes_[f].alive)
                for (uint32_t target : nodes_[f].edges) resurrect(target);
        while (!work.empty()) {
            uint32_t i = work.back();
            work.pop_back();
            for (uint32_t target : nodes_[i].edges) resurrect(target);
        }
    }

    size_t garbage_count_;
    std::vector<Node> nodes_;   // the garbage first, then frame objects
    std::unordered_map<PyObject *, uint32_t> index_;
    std::unordered_map<uint32_t, Frame> frames_;
    std::vector<uint32_t> dying_;
    bool draining_ = false;
};

// ---------------------------------------------------------------------------
// cyclebridge.Analysis
// ---------------------------------------------------------------------------

struct AnalysisObject {
    PyObject_HEAD
    PyObject *ids;              // frozenset: id() of every unreachable object
    PyObject *garbage_ids;      // frozenset: what gc.garbage would get under DEBUG_SAVEALL
    PyObject *freed_ids;        // frozenset: freed by finalizers during the collection
    PyObject *resurrected_ids;  // frozenset: resurrected by finalizers
    PyObject *uncertain_ids;    // frozenset: finalizers the forecast cannot see into
    PyObject *type_names;       // dict: id -> type name
    unsigned long long examined;
    unsigned long long roots;
    double elapsed;
};

PyTypeObject *g_analysis_type = nullptr;

void analysis_dealloc(PyObject *self) {
    auto *a = reinterpret_cast<AnalysisObject *>(self);
    Py_XDECREF(a->ids);
    Py_XDECREF(a->garbage_ids);
    Py_XDECREF(a->freed_ids);
    Py_XDECREF(a->resurrected_ids);
    Py_XDECREF(a->uncertain_ids);
    Py_XDECREF(a->type_names);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);   // instances of heap types own a reference to it
}

Py_ssize_t analysis_length(PyObject *self) { return PySet_GET_SIZE(reinterpret_cast<AnalysisObject *>(self)->ids); }

int analysis_contains(PyObject *self, PyObject *obj) {
    PyObject *id = PyLong_FromVoidPtr(obj);
    if (!id) return -1;
    int found = PySet_Contains(reinterpret_cast<AnalysisObject *>(self)->ids, id);
    Py_DECREF(id);
    return found;
}

PyObject *analysis_repr(PyObject *self) {
    auto *a = reinterpret_cast<AnalysisObject *>(self);
    std::string elapsed = std::to_string(a->elapsed);
    return PyUnicode_FromFormat("<cyclebridge.Analysis: %zd unreachable of %llu examined, %zd to gc.garbage, %s s>",
                                PySet_GET_SIZE(a->ids), a->examined, PySet_GET_SIZE(a->garbage_ids), elapsed.c_str());
}

// Finds the objects again: a new analysis of the heap as it is now, and
// those of its unreachable objects whose id this analysis recorded. The
// analysis holds no references, so an id may have been freed and reused
// since; an object that is unreachable in both cannot be a live object
// mistaken for a dead one.
PyObject *analysis_objects(PyObject *self, PyObject *) {
    auto *a = reinterpret_cast<AnalysisObject *>(self);
    if (cbpy_collector_running()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cyclebridge: CPython's collector is running (a finalizer or a gc callback called "
                        "objects()); the objects it examines are not in gc.get_objects()");
        return nullptr;
    }
    AutomaticCollectionPause pause;
    Snapshot snapshot;
    if (!snapshot.take()) return nullptr;
    Unreachable now;
    try {
        if (!find_unreachable_in(snapshot, now)) return nullptr;
    } catch (const std::bad_alloc &) {
        return PyErr_NoMemory();
    }
    PyObject *result = PyList_New(0);
    if (!result) return nullptr;
    for (PyObject *op : now.objects) {
        PyObject *id = PyLong_FromVoidPtr(op);
        int recorded = id ? PySet_Contains(a->ids, id) : -1;
        Py_XDECREF(id);
        if (recorded < 0 || (recorded && PyList_Append(result, op) < 0)) {
            Py_DECREF(result);
            return nullptr;
        }
    }
    return result;
}

PyMethodDef analysis_methods[] = {
    {"objects", analysis_objects, METH_NOARGS,
     "objects() -> list\n\n"
     "The unreachable objects of this analysis that are still unreachable now,\n"
     "found by analysing the heap again. The list holds strong references:\n"
     "the objects become reachable again, and no collection frees them while\n"
     "the list lives."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef analysis_members[] = {
    {"ids", T_OBJECT_EX, offsetof(AnalysisObject, ids), READONLY,
     "frozenset of the id() of every object a full collection would find unreachable now"},
    {"garbage_ids", T_OBJECT_EX, offsetof(AnalysisObject, garbage_ids), READONLY,
     "frozenset: the ids gc.garbage would hold after gc.collect() with gc.DEBUG_SAVEALL\n"
     "(ids less freed_ids and resurrected_ids)"},
    {"freed_ids", T_OBJECT_EX, offsetof(AnalysisObject, freed_ids), READONLY,
     "frozenset: unreachable objects the collection's finalizers would free before the rest is cleared"},
    {"resurrected_ids", T_OBJECT_EX, offsetof(AnalysisObject, resurrected_ids), READONLY,
     "frozenset: unreachable objects the collection's finalizers would make reachable again"},
    {"uncertain_ids", T_OBJECT_EX, offsetof(AnalysisObject, uncertain_ids), READONLY,
     "frozenset: unreachable objects whose finalizer runs Python code the forecast cannot see;\n"
     "garbage_ids, freed_ids and resurrected_ids assume that code changes no reference"},
    {"type_names", T_OBJECT_EX, offsetof(AnalysisObject, type_names), READONLY,
     "dict: id -> type name, for every id in ids"},
    {"examined", T_ULONGLONG, offsetof(AnalysisObject, examined), READONLY,
     "objects mirrored: the tracked objects of generations 0 to 2"},
    {"roots", T_ULONGLONG, offsetof(AnalysisObject, roots), READONLY,
     "mirrored objects referenced from outside the mirrored set"},
    {"elapsed", T_DOUBLE, offsetof(AnalysisObject, elapsed), READONLY,
     "seconds find_unreachable() took, from the snapshot to the result"},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot analysis_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void *>(analysis_dealloc)},
    {Py_tp_repr, reinterpret_cast<void *>(analysis_repr)},
    {Py_sq_length, reinterpret_cast<void *>(analysis_length)},
    {Py_sq_contains, reinterpret_cast<void *>(analysis_contains)},
    {Py_tp_methods, analysis_methods},
    {Py_tp_members, analysis_members},
    {Py_tp_doc, const_cast<char *>("The result of cyclebridge.find_unreachable(). len() and `in` refer to ids; "
                                   "`obj in analysis` compares id(obj).")},
    {0, nullptr},
};

PyType_Spec analysis_spec = {
    "cyclebridge.Analysis",
    sizeof(AnalysisObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    analysis_slots,
};

// ---------------------------------------------------------------------------
// Building the result
// ---------------------------------------------------------------------------

class OwnedRef {
public:
    explicit OwnedRef(PyObject *p = nullptr) : p_(p) {}
    ~OwnedRef() { Py_XDECREF(p_); }
    OwnedRef(OwnedRef &&other) noexcept : p_(other.release()) {}
    OwnedRef(const OwnedRef &) = delete;
    OwnedRef &operator=(const OwnedRef &) = delete;
    PyObject *get() const { return p_; }
    PyObject *release() {
        PyObject *p = p_;
        p_ = nullptr;
        return p;
    }

private:
    PyObject *p_;
};

PyObject *frozenset_of(const std::vector<PyObject *> &ids) {
    OwnedRef set(PyFrozenSet_New(nullptr));
    if (!set.get()) return nullptr;
    for (PyObject *id : ids)
        if (PySet_Add(set.get(), id) < 0) return nullptr;
    return set.release();
}

// Returns a new Analysis, or NULL with an exception set. The snapshot is
// still held, so every pointer in `unreachable` is a live object.
PyObject *build_analysis(const Unreachable &unreachable, const FinalizationForecast &forecast,
                          std::chrono::steady_clock::time_point started) {
    const std::vector<PyObject *> &objects = unreachable.objects;
    std::vector<PyObject *> all, garbage, freed, resurrected, uncertain;
    OwnedRef type_names(PyDict_New());
    std::unordered_map<PyTypeObject *, PyObject *> name_of_type;   // borrowed from type_names' values
    std::vector<OwnedRef> id_objects;
    id_objects.reserve(objects.size());
    if (!type_names.get()) return nullptr;
    for (size_t i = 0; i < objects.size(); ++i) {
        id_objects.emplace_back(PyLong_FromVoidPtr(objects[i]));
        PyObject *id = id_objects.back().get();
        if (!id) return nullptr;
        all.push_back(id);
        if (forecast.freed(i)) freed.push_back(id);
        else if (forecast.resurrected(i)) resurrected.push_back(id);
        else garbage.push_back(id);
        if (forecast.uncertain(i)) uncertain.push_back(id);

        PyTypeObject *type = Py_TYPE(objects[i]);
        PyObject *&name = name_of_type[type];
        OwnedRef fresh(name ? nullptr : PyUnicode_FromString(type->tp_name));
        if (!name && !fresh.get()) return nullptr;
        if (PyDict_SetItem(type_names.get(), id, name ? name : fresh.get()) < 0) return nullptr;
        if (!name) name = fresh.get();   // the dict holds it from now on
    }
    auto *a = PyObject_New(AnalysisObject, g_analysis_type);
    if (!a) return nullptr;
    a->ids = a->garbage_ids = a->freed_ids = a->resurrected_ids = a->uncertain_ids = a->type_names = nullptr;
    a->ids = frozenset_of(all);
    // Usually finalizers change nothing: one immutable set serves both.
    if (garbage.size() == all.size()) a->garbage_ids = Py_XNewRef(a->ids);
    else a->garbage_ids = frozenset_of(garbage);
    a->freed_ids = frozenset_of(freed);
    a->resurrected_ids = frozenset_of(resurrected);
    a->uncertain_ids = frozenset_of(uncertain);
    a->type_names = type_names.release();
    a->examined = unreachable.examined;
    a->roots = unreachable.roots;
    a->elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!a->ids || !a->garbage_ids || !a->freed_ids || !a->resurrected_ids || !a->uncertain_ids) {
        Py_DECREF(a);
        return nullptr;
    }
    return reinterpret_cast<PyObject *>(a);
}

PyObject *find_unreachable(PyObject *, PyObject *) {
    auto started = std::chrono::steady_clock::now();
    if (cbpy_collector_running()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cyclebridge: CPython's collector is running (find_unreachable() was called from a "
                        "finalizer or a gc callback); the objects it examines are not in gc.get_objects()");
        return nullptr;
    }
    AutomaticCollectionPause pause;
    Snapshot snapshot;
    if (!snapshot.take()) return nullptr;
    try {
        Unreachable unreachable;
        if (!find_unreachable_in(snapshot, unreachable)) return nullptr;
        FinalizationForecast forecast(unreachable.objects);
        if (!forecast.run()) return nullptr;
        return build_analysis(unreachable, forecast, started);
    } catch (const std::bad_alloc &) {
        return PyErr_NoMemory();
    }
}

PyMethodDef module_methods[] = {
    {"find_unreachable", find_unreachable, METH_NOARGS,
     "find_unreachable() -> Analysis\n\n"
     "Mirrors the objects of gc.get_objects() into cyclebridge and returns\n"
     "what a full collection (gc.collect()) would find unreachable now, with a\n"
     "forecast of what its finalizers would free or resurrect. Runs no Python\n"
     "code, finalizes, clears and frees nothing, and keeps no reference to\n"
     "the objects. RuntimeError if CPython's collector is running or the\n"
     "analysis reports a problem."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "cyclebridge",
    "cyclebridge's analysis of the live CPython heap: what gc.collect() would\n"
    "find unreachable, without collecting. See docs/python.md.",
    -1,   // no per-module state: one interpreter, one module
    module_methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

bool intern(PyObject *&slot, const char *text) {
    slot = PyUnicode_InternFromString(text);
    return slot != nullptr;
}

}  // namespace

PyMODINIT_FUNC PyInit_cyclebridge(void) {
    if (!g_get_objects) {
        PyObject *gc = PyImport_ImportModule("gc");
        if (!gc) return nullptr;
        g_get_objects = PyObject_GetAttrString(gc, "get_objects");
        Py_DECREF(gc);
        if (!g_get_objects) return nullptr;
        if (!intern(g_str_close, "close") || !intern(g_str_gi_yieldfrom, "gi_yieldfrom") ||
            !intern(g_str_cr_await, "cr_await") || !intern(g_str_ag_await, "ag_await"))
            return nullptr;
        g_analysis_type = reinterpret_cast<PyTypeObject *>(PyType_FromSpec(&analysis_spec));
        if (!g_analysis_type) return nullptr;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (!module) return nullptr;
    if (PyModule_AddObjectRef(module, "Analysis", reinterpret_cast<PyObject *>(g_analysis_type)) < 0) {
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
