// The memory of cb_alloc (bridge/node_allocator.hpp): alignment, zeroing,
// reuse of freed blocks, pages given back, cb_realloc across size classes,
// and side tables that must not outlive a block. Also the heap's own
// arrays of nodes (bridge/node_array.hpp), which grow without a copy, and
// what happens when they cannot grow.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "cyclebridge/cyclebridge.h"

#include "support/lsan.hpp"
#include "support/process_memory.hpp"

namespace {

using cbt::page_faults_in;
using cbt::resident_bytes;

int traverse_nothing(void *, cb_visit_fn, void *) { return 0; }

struct Heap {
    cb_heap *heap = nullptr;
    cb_type *type = nullptr;
    std::vector<cb_report_kind> reports;

    Heap() {
        cb_heap_options options{};
        options.flags = CB_HEAP_NO_AUTO_COLLECT;
        heap = cb_heap_new(&options);
        cb_set_report_handler(heap, [](void *ctx, const cb_report *r) {
            static_cast<Heap *>(ctx)->reports.push_back(r->kind);
        }, this);
        cb_type_spec spec{};
        spec.name = "plain";
        spec.traverse = traverse_nothing;
        spec.count_offset = 0;
        cb_type_register(heap, &spec, &type);
    }
    ~Heap() {
        if (heap) cb_heap_destroy(heap);
    }
    void *alloc(size_t size) { return cb_alloc(heap, type, size); }
};

bool all_zero(const void *p, size_t n) {
    auto *bytes = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; ++i)
        if (bytes[i]) return false;
    return true;
}

TEST(Allocation, EverySizeIsAlignedZeroedAndWritable) {
    Heap h;
    std::vector<void *> objects;
    // Through every pooled class into large blocks.
    for (size_t size = sizeof(intptr_t); size <= 3000; size += 7) {
        void *obj = h.alloc(size);
        ASSERT_NE(obj, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(obj) % 16, 0u) << size;
        // The count (1) is the first word; the rest is zero.
        EXPECT_EQ(*static_cast<intptr_t *>(obj), 1);
        EXPECT_TRUE(all_zero(static_cast<char *>(obj) + sizeof(intptr_t), size - sizeof(intptr_t))) << size;
        std::memset(static_cast<char *>(obj) + sizeof(intptr_t), 0xab, size - sizeof(intptr_t));
        objects.push_back(obj);
    }
    std::set<void *> distinct(objects.begin(), objects.end());
    EXPECT_EQ(distinct.size(), objects.size());
    for (void *obj : objects) ASSERT_EQ(cb_free(h.heap, obj), CB_OK);
    EXPECT_TRUE(h.reports.empty());
}

TEST(Allocation, AFreedBlockIsHandedOutAgainZeroed) {
    Heap h;
    std::vector<void *> first;
    for (int i = 0; i < 1000; ++i) {
        void *obj = h.alloc(48);
        std::memset(static_cast<char *>(obj) + sizeof(intptr_t), 0xcd, 40);
        first.push_back(obj);
    }
    for (void *obj : first) cb_free(h.heap, obj);
    std::set<void *> before(first.begin(), first.end());
    size_t reused = 0;
    for (int i = 0; i < 1000; ++i) {
        void *obj = h.alloc(48);
        reused += before.count(obj);
        EXPECT_TRUE(all_zero(static_cast<char *>(obj) + sizeof(intptr_t), 40));
        cb_free(h.heap, obj);
    }
    // Alternating alloc and free reuses one block; what matters is that
    // freed blocks come back rather than new memory.
    EXPECT_GE(reused, 1000u);
}

TEST(Allocation, ReallocKeepsTheContentsAcrossClassesAndIntoLargeBlocks) {
    Heap h;
    auto *obj = static_cast<unsigned char *>(h.alloc(24));
    for (int i = 8; i < 24; ++i) obj[i] = static_cast<unsigned char>(i);
    for (size_t size : {40u, 100u, 2000u, 5000u, 20000u}) {
        obj = static_cast<unsigned char *>(cb_realloc(h.heap, obj, size));
        ASSERT_NE(obj, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(obj) % 16, 0u);
        for (int i = 8; i < 24; ++i) ASSERT_EQ(obj[i], i) << size;
        EXPECT_EQ(*reinterpret_cast<intptr_t *>(obj), 1);
        obj[size - 1] = 0x5a;   // the whole new size is usable
    }
    // Shrinking keeps the block.
    EXPECT_EQ(cb_realloc(h.heap, obj, 64), obj);
    EXPECT_EQ(cb_type_of(h.heap, obj), h.type);
    ASSERT_EQ(cb_track(h.heap, obj), CB_OK);
    ASSERT_EQ(cb_untrack(h.heap, obj), CB_OK);
    EXPECT_EQ(cb_free(h.heap, obj), CB_OK);
    EXPECT_TRUE(h.reports.empty());
}

TEST(Allocation, HostReferencesMoveWithReallocAndDieWithTheBlock) {
    Heap h;
    void *obj = h.alloc(32);
    ASSERT_EQ(cb_host_acquire(h.heap, obj), CB_OK);   // count 2
    void *moved = cb_realloc(h.heap, obj, 4000);
    ASSERT_NE(moved, obj);
    EXPECT_EQ(cb_host_release(h.heap, moved), CB_OK) << "the host reference moved with the object";
    EXPECT_TRUE(h.reports.empty());

    // A block freed while a host reference was still counted: the next
    // object in that block starts with none.
    void *held = h.alloc(32);
    ASSERT_EQ(cb_host_acquire(h.heap, held), CB_OK);
    ASSERT_EQ(cb_free(h.heap, held), CB_OK);
    void *next = h.alloc(32);
    ASSERT_EQ(next, held) << "the freed block is handed out again";
    EXPECT_EQ(cb_host_release(h.heap, next), CB_ERR_UNDERFLOW);
    cb_free(h.heap, next);
    cb_free(h.heap, moved);
}

TEST(Allocation, EmptySlabsGiveTheirPagesBackAndServeAgain) {
    Heap h;
    std::vector<void *> objects(200000);
    size_t before = resident_bytes();
    for (auto &obj : objects) obj = h.alloc(56);   // 64-byte blocks: about 200 slabs
    size_t full = resident_bytes();
    for (void *obj : objects) cb_free(h.heap, obj);
    if (before == 0) GTEST_SKIP() << "no /proc/self/statm";
    ASSERT_GT(full - before, size_t(10) << 20);
    // Slabs emptied and filled again between two full collections keep
    // their pages; those still empty a whole interval later give them back.
    ASSERT_EQ(cb_collect(h.heap, CB_FULL, nullptr), CB_OK);
    EXPECT_GT(resident_bytes(), full - (size_t(2) << 20)) << "trimmed too early";
    ASSERT_EQ(cb_collect(h.heap, CB_FULL, nullptr), CB_OK);
    size_t emptied = resident_bytes();
    EXPECT_LT(emptied, full - (size_t(10) << 20));
    // Pages given back come back zeroed, and the slabs are usable again.
    for (auto &obj : objects) {
        obj = h.alloc(56);
        ASSERT_NE(obj, nullptr);
        ASSERT_TRUE(all_zero(static_cast<char *>(obj) + sizeof(intptr_t), 48));
        std::memset(static_cast<char *>(obj) + sizeof(intptr_t), 0x11, 48);
    }
    for (void *obj : objects) cb_free(h.heap, obj);
    EXPECT_TRUE(h.reports.empty());
}

// A generation's array grows without a copy: among a million cb_track
// calls, no batch of 1,024 faults in more than a few pages (the two its
// entries fill). An array that doubled by copying would fault in its new
// block in one call: 1,024 pages or more when it passes 512K nodes. On the
// machine of docs/performance.md that was a 30 ms pause inside a slice.
TEST(Allocation, GenerationsGrowWithoutACopy) {
    Heap h;
    constexpr size_t kNodes = size_t(1) << 20, kBatch = 1024;
    std::vector<void *> objects(kNodes);
    for (auto &obj : objects) {
        obj = h.alloc(24);
        *static_cast<intptr_t *>(obj) = 1;   // the program's reference: live
    }
    long worst = 0;
    for (size_t i = 0; i < kNodes; i += kBatch)
        worst = std::max(worst, page_faults_in([&] {
                             for (size_t j = i; j < i + kBatch; ++j) cb_track(h.heap, objects[j]);
                         }));
    EXPECT_LT(worst, 64);
    // Every entry came through the growths: each node is found once, live.
    cb_collection_stats stats{};
    ASSERT_EQ(cb_collect(h.heap, CB_FULL, &stats), CB_OK);
    EXPECT_EQ(stats.examined, kNodes);
    EXPECT_EQ(stats.garbage, 0u);
    EXPECT_EQ(cb_generation_size(h.heap, CB_FULL), kNodes);
    for (void *obj : objects) {
        cb_untrack(h.heap, obj);
        cb_free(h.heap, obj);
    }
    EXPECT_TRUE(h.reports.empty());
}

// ---- memory running short ------------------------------------------------
//
// A node with one edge, for cycles; its clear and dealloc drop the edge.
struct Link {
    intptr_t count;
    void *next;
};
cb_heap *link_heap;
size_t links_freed;
int traverse_link(void *obj, cb_visit_fn visit, void *arg) {
    void *next = static_cast<Link *>(obj)->next;
    return next ? visit(next, arg) : 0;
}
void clear_link(void *obj) {
    void *next = static_cast<Link *>(obj)->next;
    static_cast<Link *>(obj)->next = nullptr;
    if (next) cb_decref(link_heap, next);
}
void dealloc_link(void *obj) {
    clear_link(obj);
    ++links_freed;
    cb_free(link_heap, obj);
}

long address_space_bytes() {
    long pages = 0;
    if (FILE *f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    return pages * sysconf(_SC_PAGESIZE);
}

#define CHILD_CHECK(cond, code)                                                   \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "short memory: %s failed (line %d)\n", #cond, __LINE__); \
            _exit(code);                                                          \
        }                                                                         \
    } while (0)

// In a child process whose address space is capped just above what it
// uses: cb_track, a full collection and an incremental one run out of
// memory. Each returns CB_ERR_NO_MEMORY with a report and changes nothing;
// with the cap lifted they work, and the garbage left alone is freed.
int short_memory_child() {
    cb_heap_options options{};
    options.flags = CB_HEAP_NO_AUTO_COLLECT;
    link_heap = cb_heap_new(&options);
    static int no_memory_reports = 0;
    cb_set_report_handler(link_heap, [](void *, const cb_report *r) {
        if (r->status == CB_ERR_NO_MEMORY) ++no_memory_reports;
    }, nullptr);
    cb_type_spec spec{};
    spec.name = "link";
    spec.traverse = traverse_link;
    spec.clear = clear_link;
    spec.dealloc = dealloc_link;
    spec.count_offset = offsetof(Link, count);
    cb_type *type = nullptr;
    CHILD_CHECK(cb_type_register(link_heap, &spec, &type) == CB_OK, 10);
    auto make = [&] { return static_cast<Link *>(cb_alloc(link_heap, type, sizeof(Link))); };
    // 50,000 garbage 2-cycles, and a live chain of 100,000 held by its head,
    // in allocation order (the marking needs no work list).
    constexpr size_t kPairs = 50000, kChain = 100000, kSpare = 400000;
    for (size_t i = 0; i < kPairs; ++i) {
        Link *a = make(), *b = make();
        CHILD_CHECK(a && b, 11);
        a->next = b;
        b->next = a;
        a->count = b->count = 1;
        cb_track(link_heap, a);
        cb_track(link_heap, b);
    }
    Link *head = nullptr, *prev = nullptr;
    for (size_t i = 0; i < kChain; ++i) {
        Link *n = make();
        CHILD_CHECK(n, 12);
        n->count = 1;   // the test's reference (head) or its predecessor's
        if (prev) prev->next = n;
        else head = n;
        prev = n;
        cb_track(link_heap, n);
    }
    std::vector<Link *> spare(kSpare);
    for (Link *&n : spare) {
        n = make();
        CHILD_CHECK(n, 13);
        n->count = 1;
    }
    const size_t tracked = cb_generation_size(link_heap, 0);
    CHILD_CHECK(tracked == 2 * kPairs + kChain, 14);

    rlimit old{};
    CHILD_CHECK(getrlimit(RLIMIT_AS, &old) == 0, 15);
    rlimit capped = old;
    capped.rlim_cur = rlim_t(address_space_bytes()) + (rlim_t(1) << 20);
    CHILD_CHECK(setrlimit(RLIMIT_AS, &capped) == 0, 16);

    // Generation 0 grows by half again each time: some growth is refused.
    size_t next = 0;
    cb_status st = CB_OK;
    for (; next < kSpare && (st = cb_track(link_heap, spare[next])) == CB_OK; ++next) {}
    CHILD_CHECK(st == CB_ERR_NO_MEMORY, 20);
    CHILD_CHECK(!cb_is_tracked(link_heap, spare[next]), 21);
    CHILD_CHECK(cb_generation_size(link_heap, 0) == tracked + next, 22);
    CHILD_CHECK(no_memory_reports == 1, 23);

    // The partition's arrays cannot grow: nothing is freed or moved.
    cb_collection_stats stats{};
    CHILD_CHECK(cb_collect(link_heap, CB_FULL, &stats) == CB_ERR_NO_MEMORY, 30);
    CHILD_CHECK(no_memory_reports == 2, 31);
    CHILD_CHECK(links_freed == 0, 32);
    CHILD_CHECK(cb_generation_size(link_heap, 0) == tracked + next, 33);
    CHILD_CHECK(cb_generation_size(link_heap, CB_FULL) == 0, 34);
    CHILD_CHECK(cb_is_collecting(link_heap) == 0, 35);

    // An incremental collection's side arrays of counts (4 bytes a node)
    // cannot be made: its first slice ends it, freeing nothing.
    capped.rlim_cur = rlim_t(address_space_bytes()) + 2 * (tracked + next);
    CHILD_CHECK(setrlimit(RLIMIT_AS, &capped) == 0, 36);
    int finished = 0;
    CHILD_CHECK(cb_collect_slice(link_heap, 1000, &finished, &stats) == CB_ERR_NO_MEMORY, 37);
    CHILD_CHECK(finished == 1 && cb_is_collecting(link_heap) == 0, 38);
    CHILD_CHECK(no_memory_reports == 3 && links_freed == 0, 39);

    CHILD_CHECK(setrlimit(RLIMIT_AS, &old) == 0, 40);
    CHILD_CHECK(cb_track(link_heap, spare[next]) == CB_OK, 41);
    CHILD_CHECK(cb_collect(link_heap, CB_FULL, &stats) == CB_OK, 42);
    CHILD_CHECK(links_freed == 2 * kPairs, 43);
    CHILD_CHECK(stats.garbage == 2 * kPairs, 44);
    CHILD_CHECK(cb_generation_size(link_heap, CB_FULL) == kChain + next + 1, 45);
    CHILD_CHECK(cb_is_tracked(link_heap, head), 46);
    _exit(0);
}

TEST(Allocation, ShortMemoryIsReportedAndLosesNothing) {
#if defined(CBT_HAVE_LSAN) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "sanitizers reserve address space a cap would refuse";
#endif
    std::fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) short_memory_child();
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "see the child's message above";
}

TEST(Allocation, ObjectsLeakedAtDestroyStayUsable) {
    auto *h = new Heap;
#ifdef CBT_HAVE_LSAN
    __lsan_disable();   // the leak is the point, and is reported below
#endif
    auto *obj = static_cast<char *>(h->alloc(40));
#ifdef CBT_HAVE_LSAN
    __lsan_enable();
#endif
    cb_heap_destroy(h->heap);
    h->heap = nullptr;
    ASSERT_EQ(h->reports.size(), 1u);
    EXPECT_EQ(h->reports[0], CB_REPORT_LEAKED_AT_DESTROY);
    // The program still holds it: its memory was leaked, not released
    // (AddressSanitizer fails this write otherwise).
    std::memset(obj + sizeof(intptr_t), 0x7e, 32);
    EXPECT_EQ(obj[20], 0x7e);
    delete h;
}

}  // namespace
