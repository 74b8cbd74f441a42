// Handles: the table, and HPy_Dup, HPy_Close, HPy_Is.
//
// A handle is a root for as long as it is open. In debug mode a closed
// slot waits in quarantine before reuse, so that a closed handle used soon
// after still finds its slot, with where it was opened and closed; in any
// mode the slot's generation tells a closed handle from the slot's next
// owner.
#include "context.hpp"

namespace cbhpy {

namespace {
constexpr size_t kQuarantine = 4096;
constexpr uint64_t kIndexMask = 0xffffffffu;
}  // namespace

HPy HandleTable::encode(size_t index) const {
    HPy h;
    h._i = static_cast<intptr_t>((uint64_t(slots_[index].generation) << 32) | uint64_t(index + 1));
    return h;
}

HPy HandleTable::open(Ref ref, const char *where, bool debug) {
    uint32_t index;
    if (!free_.empty()) {
        index = free_.back();
        free_.pop_back();
    } else {
        index = static_cast<uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    HandleSlot &slot = slots_[index];
    slot.ref = ref;
    slot.open = true;
    slot.opened_at = debug ? where : nullptr;
    slot.closed_at = nullptr;
    ++open_;
    return encode(index);
}

HandleSlot *HandleTable::slot_of(HPy h) {
    uint64_t index = static_cast<uint64_t>(h._i) & kIndexMask;
    return index == 0 || index > slots_.size() ? nullptr : &slots_[index - 1];
}

uint32_t HandleTable::generation_of(HPy h) { return uint32_t(static_cast<uint64_t>(h._i) >> 32); }

HandleSlot *HandleTable::find(HPy h) {
    HandleSlot *slot = slot_of(h);
    return slot && slot->open && slot->generation == generation_of(h) ? slot : nullptr;
}

void HandleTable::close(HandleSlot *slot, const char *where, bool debug) {
    slot->open = false;
    slot->ref = Ref{};
    slot->closed_at = debug ? where : nullptr;
    if (++slot->generation == 0) slot->generation = 1;
    --open_;
    auto index = static_cast<uint32_t>(slot - slots_.data());
    if (!debug) {
        free_.push_back(index);
        return;
    }
    quarantine_.push_back(index);
    if (quarantine_.size() > kQuarantine) {
        free_.push_back(quarantine_.front());
        quarantine_.pop_front();
    }
}

}  // namespace cbhpy

using namespace cbhpy;

extern "C" {

HPy _cbhpy_Dup(HPyContext *ctx, HPy h, const char *where) {
    Ref ref;
    if (!enter(ctx, "HPy_Dup", where) || !resolve(ctx, h, "HPy_Dup", where, false, ref)) return HPy_NULL;
    return new_handle(ctx, ref, where);
}

void _cbhpy_Close(HPyContext *ctx, HPy h, const char *where) {
    if (!enter(ctx, "HPy_Close", where) || HPy_IsNull(h)) return;
    Ref ref;
    if (!resolve(ctx, h, "HPy_Close", where, false, ref)) return;
    ctx->handles.close(ctx->handles.find(h), where, ctx->debug);
    release_strong(ctx, ref);
}

int _cbhpy_Is(HPyContext *ctx, HPy a, HPy b, const char *where) {
    Ref ra, rb;
    if (!enter(ctx, "HPy_Is", where) || !resolve(ctx, a, "HPy_Is", where, true, ra) ||
        !resolve(ctx, b, "HPy_Is", where, true, rb))
        return 0;
    return ra == rb;
}

}  // extern "C"
