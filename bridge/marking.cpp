// Marking: from the roots to a fixed point, across nodes and host objects.
//
// A node is marked when it is in the collected set and not marked yet;
// nodes outside the set (old generations in a young collection, the
// permanent generation, nodes made during the collection) are live by
// definition and only scanned when they may lead back into the set.
// Host objects go through the host's own mark bit: inline here when the
// bridge drives, through the host's work list when the host drives.
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

namespace {

int visit_nothing(void *, void *) { return 0; }

bool valid(const void *visitor) {
    return visitor && static_cast<const cb_host_visitor *>(visitor)->magic == cb_host_visitor::kMagic &&
           static_cast<const cb_host_visitor *>(visitor)->collection;
}

}  // namespace

int visit_mark(void *target, void *arg) {
    auto *visitor = static_cast<cb_host_visitor *>(arg);
    Header *h = visitor->collection->heap().visited_header(target, /*report=*/false);
    if (h) visitor->collection->mark_node(h);
    return 0;
}

void Collection::mark_node(Header *h) {
    if (!h->has(Header::kInCollectedSet) || h->has(Header::kMarked)) return;
    h->set(Header::kMarked);
    if (in_order_ && !h->has(Header::kPassed)) return;   // the in-order scan will reach it
    if (h->place() == kGarbage) garbage_marked_ = true;   // resurrected, or revived by a barrier
    work_.push_back(h);
    if (in_legacy_) legacy_kept_.emplace_back(h, culprit_);
}

void Collection::mark_host(cb_host_ref ref) {
    if (!ref) return;
    try {
        if (drive_ == Drive::kBridge) {
            if (heap_.host.mark(heap_.host.ctx, ref)) {
                host_work_.push_back(ref);
                stats_.host_marked++;
            }
        } else if (drive_ == Drive::kHost) {
            hooks_.mark_host(hooks_.ctx, ref);
            host_pushed_ = true;
            stats_.host_marked++;
        }
    } catch (...) {
        failed_ = true;
        heap_.report(CB_REPORT_CALLBACK_THREW, CB_ERR_CALLBACK_FAILED, nullptr,
                     "host mark threw; the collection frees nothing it cannot prove dead");
    }
}

void Collection::scan(Header *h) {
    const cb_type &type = heap_.type_of(h);
    try {
        type.spec.traverse(object_of(h), visit_mark, &visitor_);
    } catch (...) {
        traverse_failed(h, "marking");
    }
}

// The first marking, from the roots trial deletion found, in the order of
// the generations' arrays, as CPython's move_unreachable: a node is scanned
// when the walk reaches it if it is a root or was marked by an earlier
// scan. A node marked before the walk reaches it is only flagged, so most
// nodes are read in array order (the order they were allocated in, mostly)
// rather than the scattered order of a depth-first walk. A node marked
// after the walk passed it goes on the work list and is drained at once.
void Collection::mark_set_in_order() {
    visitor_.follow_host = drive_ != Drive::kNone;
    in_order_ = true;
    for (int g = 0; g <= generation_ && !failed_; ++g) {
        // Indexes, as in the count: a traverse may (wrongly) track nodes.
        auto &gen = heap_.generations[g];
        for (size_t i = 0; i < gen.size() && !failed_; ++i) {
            Header *h = gen[i];
            if (!h->has(Header::kInCollectedSet) || !walk_reaches(h, heap_.gc_refs(h), stats_.roots)) continue;
            scan(h);
            if (!work_.empty()) drain(0);
        }
    }
    in_order_ = false;
}

// Drains the node work list (and, when the bridge drives, the host one).
// Returns true when nothing is left; budget 0 means no limit. `scanned`
// counts the nodes scanned.
bool Collection::drain(size_t budget, size_t *scanned) {
    visitor_.follow_host = drive_ != Drive::kNone;
    size_t done = 0;
    for (;;) {
        while (!work_.empty()) {
            if (budget && done == budget) return false;
            Header *h = work_.back();
            work_.pop_back();
            scan(h);
            ++done;
            if (scanned) ++*scanned;
        }
        if (host_work_.empty()) return true;
        if (budget && done == budget) return false;
        ++done;
        if (scanned) ++*scanned;
        cb_host_ref ref = host_work_.back();
        host_work_.pop_back();
        try {
            heap_.host.trace(heap_.host.ctx, ref, &visitor_);
        } catch (...) {
            failed_ = true;
            heap_.report(CB_REPORT_CALLBACK_THREW, CB_ERR_CALLBACK_FAILED, nullptr,
                         "host trace threw; the collection frees nothing it cannot prove dead");
        }
    }
}

// For hosts that sweep before the teardown: what garbage still refers to in
// the host must outlive this sweep, since finalizers and clears may read it.
// Node edges are not followed: every unmarked node is visited anyway. After
// a traverse threw, marked nodes may not have been scanned, and nothing
// will be freed: every node's host objects are kept.
void Collection::retain() {
    drain(0);
    bool all = failed_;
    visitor_.follow_host = true;
    for (int g = 0; g <= generation_; ++g) {
        auto &nodes = heap_.generations[g];
        for (size_t i = 0; i < nodes.size(); ++i) {
            Header *h = nodes[i];
            if (!h || !h->has(Header::kInCollectedSet) || (h->has(Header::kMarked) && !all)) continue;
            try {
                heap_.type_of(h).spec.traverse(object_of(h), visit_nothing, &visitor_);
            } catch (...) {
                traverse_failed(h, "retaining");
            }
        }
    }
}

// Roots that are not nodes of the set: the permanent generation (its edges
// into the set are counted, but handle-managed targets and host objects
// are reached only by tracing), and, in bridge-driven collections, the
// host's roots.
void Collection::mark_roots_outside_set() {
    if (!full()) return;
    visitor_.follow_host = drive_ != Drive::kNone;
    auto &permanent = heap_.generations[kPermanent];
    for (size_t i = 0; i < permanent.size() && !failed_; ++i) scan(permanent[i]);
    mark_host_roots();
}

void Collection::mark_host_roots() {
    if (drive_ != Drive::kBridge || !heap_.host.enumerate_roots || failed_) return;
    visitor_.follow_host = true;
    try {
        heap_.host.enumerate_roots(heap_.host.ctx, &visitor_);
    } catch (...) {
        failed_ = true;
        heap_.report(CB_REPORT_CALLBACK_THREW, CB_ERR_CALLBACK_FAILED, nullptr,
                     "host enumerate_roots threw; the collection frees nothing");
    }
}

// CPython's move_legacy_finalizers + move_legacy_finalizer_reachable: a
// garbage node with a legacy finalizer, and all it reaches, is kept.
// Marking them before garbage is split off keeps the host objects they
// reach marked too. Each culprit is marked to a fixed point (host rounds
// included) before the next, so every kept node names a culprit that
// reaches it.
void Collection::find_legacy_culprits() {
    in_legacy_ = true;
    // Most heaps have no such type: then no node needs a look.
    if (!heap_.some_type_has(&cb_type_spec::legacy_finalize)) return;
    auto consider = [&](Header *h) {
        if (h && h->has(Header::kInCollectedSet) && !h->has(Header::kMarked) &&
            heap_.type_of(h).spec.legacy_finalize)
            culprits_.push_back(h);
    };
    if (walk_ == Walk::kDone) {   // incremental: the unmarked nodes are known by position
        for (auto [g, i] : unmarked_) consider(heap_.generations[g][i]);
        return;
    }
    for (int g = 0; g <= generation_; ++g)
        for (Header *h : heap_.generations[g]) consider(h);
}

// Marks from the next culprit; false when there is none left.
bool Collection::mark_next_culprit() {
    while (next_culprit_ < culprits_.size()) {
        Header *h = culprits_[next_culprit_++];
        if (h->has(Header::kMarked)) continue;   // kept already, by an earlier culprit
        culprit_ = h;
        mark_node(h);
        drain(0);
        return true;
    }
    return false;
}

}  // namespace cb

extern "C" void cb_visit_host(void *arg, cb_host_ref ref) {
    if (!cb::valid(arg)) return;
    auto *visitor = static_cast<cb_host_visitor *>(arg);
    if (visitor->follow_host) visitor->collection->mark_host(ref);
}

extern "C" void cb_host_visit(cb_host_visitor *visitor, cb_host_ref ref) { cb_visit_host(visitor, ref); }

extern "C" void cb_host_visit_node(cb_host_visitor *visitor, void *node) {
    if (!cb::valid(visitor)) return;
    cb::Header *h = visitor->collection->heap().visited_header(node, /*report=*/true);
    if (h) visitor->collection->mark_node(h);
}
