// Analysis without teardown (cb_find_unreachable): the count and mark
// phases of a full collection, then every flag and host mark put back. What
// a collection would free is reported; nothing is finalized, cleared or
// freed, and no collection is recorded. Diagnostics use it to compare the
// collector's view with another's (CPython's gc.DEBUG_SAVEALL).
#include "collection.hpp"
#include "heap.hpp"

namespace cb {

cb_status Collection::find_unreachable(std::vector<void *> &out) {
    analysis_ = true;
    start();
    if (!failed_) drain(0);
    for (int g = 0; g <= generation_; ++g) {
        for (Header *h : heap_.generations[g]) {
            if (!failed_ && h->has(Header::kInCollectedSet) && !h->has(Header::kMarked)) {
                out.push_back(object_of(h));
                stats_.garbage++;
            }
            h->clear(Header::kInCollectedSet | Header::kMarked | Header::kForcedRoot);
        }
    }
    if (heap_.refs_in_headers) heap_.restore_positions(generation_);
    work_.clear();
    host_work_.clear();
    if (drive_ == Drive::kBridge) {
        try {
            heap_.host.reset_marks(heap_.host.ctx);
        } catch (...) {
            heap_.report(CB_REPORT_CALLBACK_THREW, CB_OK, nullptr, "host reset_marks threw");
        }
    }
    stage_ = Stage::kDone;
    stats_.total_ns = ns_between(start_, std::chrono::steady_clock::now());
    if (failed_) out.clear();
    return status();
}

}  // namespace cb
