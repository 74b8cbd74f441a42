// The collection's stage sequence, its start and its end.
#include "collection.hpp"

#include "heap.hpp"

namespace cb {

Collection::Collection(cb_heap &heap, int generation, Drive drive, const cb_host_hooks *hooks)
    : heap_(heap),
      generation_(generation),
      dest_(generation == CB_FULL ? kGen2 : Place(generation + 1)),
      drive_(drive),
      // Host references are edges only when someone marks the host heap;
      // otherwise they are external references, like any the collector
      // cannot see.
      subtract_host_refs_(generation == CB_FULL && drive != Drive::kNone) {
    if (hooks) hooks_ = *hooks;
    visitor_.collection = this;
    stats_.generation = generation;
    heap_.running = this;
}

Collection::~Collection() {
    if (heap_.running == this) heap_.running = nullptr;
}

void Collection::phase_done(cb_phase phase) {
    auto now = std::chrono::steady_clock::now();
    stats_.phase_ns[phase] += ns_between(phase_start_, now);
    phase_start_ = now;
}

// Count, roots, and marking as far as the bridge can go alone; the host
// driver stops here for the host to mark.
void Collection::start() {
    begin();
    count();
    if (!failed_) {
        mark_roots_outside_set();
        drain(0);
    }
}

cb_status Collection::run() {
    start();
    phase_done(CB_PHASE_MARK);
    advance();
    return status();
}

bool Collection::yield_to_host() {
    if (drive_ != Drive::kHost || !host_pushed_) return false;
    host_pushed_ = false;
    return true;
}

// Each stage ends with marking that may reach host objects. A host-driven
// collection hands those to the host and resumes at the next stage when the
// host calls epilogue again; the other drivers mark them inline in drain.
bool Collection::advance() {
    for (;;) {
        switch (stage_) {
        case Stage::kMarking:
            drain(0);
            if (failed_) {
                abort_before_teardown();
                return true;
            }
            find_legacy_culprits();
            stage_ = Stage::kLegacy;
            break;
        case Stage::kLegacy:
            drain(0);
            // One host round per culprit, so each kept node names its own.
            while (mark_next_culprit())
                if (yield_to_host()) return false;
            if (failed_ || !reserve_for_partition()) {
                abort_before_teardown();
                return true;
            }
            partition();
            legacy_finish();
            phase_done(CB_PHASE_LEGACY);
            handle_weakrefs();
            finalize();
            resurrect_start();
            drain(0);   // hands what it reaches in the host to the host
            stage_ = Stage::kResurrect;
            if (yield_to_host()) return false;
            break;
        case Stage::kResurrect:
            drain(0);
            resurrect_finish();
            if (failed_) return abandon_teardown();
            start_clearing();
            stage_ = Stage::kClearing;
            break;
        case Stage::kClearing:
            if (!clear_garbage(teardown_budget_)) {
                phase_done(CB_PHASE_CLEAR);
                return false;   // an incremental slice's budget: the next slice goes on
            }
            survivors_start();
            drain(0);   // hands what it reaches in the host to the host
            stage_ = Stage::kSurvivors;
            if (yield_to_host()) return false;
            break;
        case Stage::kSurvivors:
            drain(0);
            if (failed_) return abandon_teardown();
            survivors_finish();
            sweep();
            finish();
            return true;
        case Stage::kDone:
            return true;
        }
    }
}

// A traverse threw before the garbage was known: nothing can be freed
// safely, so the collection ends with the heap as it was.
void Collection::abort_before_teardown() {
    if (heap_.refs_in_headers) heap_.restore_positions(generation_);
    for (int g = 0; g <= generation_; ++g)
        for (Header *h : heap_.generations[g])
            if (h) h->clear(Header::kInCollectedSet | Header::kMarked | Header::kForcedRoot);
    if (heap_.keep_positions) heap_.close_holes();
    work_.clear();
    host_work_.clear();
    if (drive_ == Drive::kBridge && heap_.host.reset_marks) {
        try {
            heap_.host.reset_marks(heap_.host.ctx);
        } catch (...) {
            heap_.report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr, "host reset_marks threw");
        }
    }
    finish();
}

void Collection::finish() {
    stage_ = Stage::kDone;
    auto now = std::chrono::steady_clock::now();
    stats_.total_ns = ns_between(start_, now);

    // Generation bookkeeping, as CPython's gc_collect_main.
    for (int g = 0; g <= generation_; ++g) heap_.counts[g] = 0;
    if (generation_ + 1 < CB_GENERATIONS) heap_.counts[generation_ + 1]++;
    if (full()) {
        heap_.long_lived_pending = 0;
        heap_.long_lived_total = heap_.generations[kGen2].size();
        heap_.blocks.trim();   // memory the heap has not needed for a whole interval
    }
    for (auto &side : heap_.refs) side.collection_ended(full());

    heap_.last_stats = stats_;
    heap_.has_last_stats = true;
    // Callbacks still see a running collection, so they cannot start one.
    heap_.notify(CB_COLLECTION_STOP, stats_);
    heap_.running = nullptr;
}

}  // namespace cb
