// Weak references: each target's weakrefs in an intrusive list, found
// through a side table only for nodes flagged kHasWeakrefs, so objects
// without weakrefs pay nothing.
#pragma once

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cyclebridge/cyclebridge.h"

struct cb_heap;

struct cb_weakref {
    void *target;              // NULL once cleared
    void *holder;              // node owning the weakref, or NULL
    cb_weakref_callback callback;
    void *data;
    cb_weakref_callback on_clear = nullptr;   // told when the heap clears it
    cb_weakref *prev = nullptr;
    cb_weakref *next = nullptr;
    bool queued = false;       // its callback is pending in a collection
    bool free_requested = false;
};

namespace cb {

class WeakrefTable {
public:
    ~WeakrefTable();   // frees every weakref still registered
    void add(cb_weakref *ref);
    // Unlinks ref from its target's list (if still linked); its target
    // becomes NULL. It stays registered with its holder.
    void unlink(cb_weakref *ref);
    // Forgets ref entirely, before it is deleted.
    void forget(cb_weakref *ref);
    // Detaches every weakref to target, setting their target to NULL, and
    // returns them in creation order.
    std::vector<cb_weakref *> detach_all(const void *target);
    bool has(const void *target) const { return heads_.count(target) != 0; }
    // Some object has a weakref to it (a collection then looks for them).
    bool any_targets() const { return !heads_.empty(); }
    // Weakrefs owned by holder (registered, cleared or not).
    std::vector<cb_weakref *> held_by(const void *holder) const;
    bool any_held() const { return !held_.empty(); }
    // The holder's memory is going away: its weakrefs (if it did not free
    // them) are owned outside the graph from now on.
    void orphan(const void *holder);

private:
    std::unordered_map<const void *, cb_weakref *> heads_;   // target -> first ref
    std::unordered_map<const void *, cb_weakref *> tails_;   // target -> last ref
    std::unordered_map<const void *, std::vector<cb_weakref *>> held_;   // holder -> its refs
    std::unordered_set<cb_weakref *> all_;
};

// Detaches ref from its target, whose has-weakrefs flag goes when its list
// empties. The weakref stays registered with its holder. Only a clear by
// the heap (not a cb_weakref_free) tells the owner through on_clear.
void detach_from_target(cb_heap &heap, cb_weakref *ref, bool by_heap);

// Tells the owners of refs, just cleared by the heap, through on_clear.
void tell_cleared(cb_heap &heap, const std::vector<cb_weakref *> &refs);

// Clears every weakref to obj (a dealloc, or cb_clear_weakrefs). With
// run_callbacks, each callback runs with its holder held, as CPython's
// PyObject_ClearWeakRefs does.
void clear_weakrefs(cb_heap &heap, void *obj, bool run_callbacks);

}  // namespace cb
