// The graphs the benchmarks collect, built the same way as the peers'
// (bench/peers/gc_peer.py builds the equivalent graphs of Python lists of
// four slots, for CPython and PyPy):
//
//   list     a chain of small containers, each holding the next
//   tree     a complete binary tree: i holds 2i+1 and 2i+2
//   random   each container holds 2 to 4 containers drawn at random
//
// Every node is a refcounted container of four edges, its count the true
// number of references to it; the benchmark holds one reference to each
// node nothing else refers to, as a program would.
#pragma once

#include <cyclebridge/cyclebridge.h>
#include <cyclebridge/refheap.h>

#include <algorithm>
#include <cstddef>
#include <random>
#include <vector>

namespace bench {

struct Node {
    intptr_t refcnt;
    Node *edges[4];
};

enum class Shape { kList, kTree, kRandom };

// A heap with the Node type: traverse, clear and a dealloc that releases
// what the node still holds (as CPython's tp_dealloc does).
class NodeHeap {
public:
    NodeHeap() {
        cb_heap_options options{};
        options.flags = CB_HEAP_NO_AUTO_COLLECT;
        heap_ = cb_heap_new(&options);
        current_ = heap_;
        cb_type_spec spec{};
        spec.name = "bench.Node";
        spec.traverse = traverse;
        spec.clear = clear;
        spec.dealloc = dealloc;
        spec.count_offset = offsetof(Node, refcnt);
        cb_type_register(heap_, &spec, &type_);
    }
    ~NodeHeap() {
        cb_heap_destroy(heap_);
        current_ = nullptr;
    }
    NodeHeap(const NodeHeap &) = delete;
    NodeHeap &operator=(const NodeHeap &) = delete;

    cb_heap *heap() const { return heap_; }

    // A tracked node with one reference, the caller's; bytes beyond a Node
    // only for measuring memory.
    Node *make(size_t bytes = sizeof(Node)) {
        auto *n = static_cast<Node *>(cb_alloc(heap_, type_, bytes));
        cb_track(heap_, n);
        return n;
    }
    // from->edges[slot] = to, taking a reference.
    static void link(Node *from, int slot, Node *to) {
        from->edges[slot] = to;
        to->refcnt++;
    }

    // n live nodes of one shape. The creator's reference is kept only on
    // nodes nothing else refers to (the program's roots). Returns them all.
    std::vector<Node *> build(size_t n, Shape shape) {
        std::vector<Node *> nodes(n);
        for (size_t i = 0; i < n; ++i) nodes[i] = make();
        std::mt19937_64 rng(42);
        for (size_t i = 0; i < n; ++i) {
            switch (shape) {
            case Shape::kList:
                if (i + 1 < n) link(nodes[i], 0, nodes[i + 1]);
                break;
            case Shape::kTree:
                if (2 * i + 1 < n) link(nodes[i], 0, nodes[2 * i + 1]);
                if (2 * i + 2 < n) link(nodes[i], 1, nodes[2 * i + 2]);
                break;
            case Shape::kRandom: {
                int edges = 2 + int(rng() % 3);
                for (int k = 0; k < edges; ++k) link(nodes[i], k, nodes[rng() % n]);
                break;
            }
            }
        }
        for (Node *node : nodes)
            if (node->refcnt > 1) node->refcnt--;   // others refer to it: the creator lets go
        return nodes;
    }

    // n nodes of garbage: in 2-cycles (cycle_length 2) or longer cycles,
    // nothing outside referring to them.
    void build_garbage(size_t n, size_t cycle_length) {
        std::vector<Node *> nodes(n);
        for (size_t i = 0; i < n; ++i) nodes[i] = make();
        for (size_t start = 0; start < n; start += cycle_length) {
            size_t end = std::min(n, start + cycle_length);
            for (size_t i = start; i < end; ++i) link(nodes[i], 0, nodes[i + 1 < end ? i + 1 : start]);
        }
        for (Node *node : nodes) node->refcnt--;
    }

    // Frees live nodes without running the chain of deallocs a release
    // would (a 4M-long list would recurse 4M deep).
    void destroy(const std::vector<Node *> &nodes) {
        for (Node *node : nodes) {
            cb_untrack(heap_, node);
            cb_free(heap_, node);
        }
    }

private:
    static int traverse(void *obj, cb_visit_fn visit, void *arg) {
        for (Node *e : static_cast<Node *>(obj)->edges)
            if (e) {
                if (int r = visit(e, arg)) return r;
            }
        return 0;
    }
    static void clear(void *obj) {
        for (Node *&e : static_cast<Node *>(obj)->edges) {
            Node *target = e;
            e = nullptr;
            if (target) cb_decref(current_, target);
        }
    }
    static void dealloc(void *obj) {
        clear(obj);
        cb_free(current_, obj);
    }

    cb_heap *heap_ = nullptr;
    cb_type *type_ = nullptr;
    // Callbacks get no heap: the one NodeHeap alive at a time.
    static inline cb_heap *current_ = nullptr;
};

// Cross-heap: a binary tree whose even elements are nodes and odd ones host
// objects of the reference host heap (bridge-driven), so every edge
// crosses: half host objects, half refcounted nodes, marked together.
class CrossHeap {
public:
    struct CrossNode {
        intptr_t refcnt;
        CrossNode *node;    // the even child
        cb_host_ref host;   // the odd child
    };

    explicit CrossHeap(size_t n) {
        cb_heap_options options{};
        options.flags = CB_HEAP_NO_AUTO_COLLECT;
        heap_ = cb_heap_new(&options);
        host_ = cb_refheap_new(heap_, CB_DRIVE_BRIDGE);
        cb_type_spec spec{};
        spec.name = "bench.CrossNode";
        spec.traverse = traverse;
        spec.dealloc = [](void *) {};   // freed by the destructor, with the rest
        spec.count_offset = offsetof(CrossNode, refcnt);
        cb_type_register(heap_, &spec, &type_);

        std::vector<void *> element(n);
        for (size_t i = 0; i < n; ++i) {
            if (i % 2 == 0) {
                auto *node = static_cast<CrossNode *>(cb_alloc(heap_, type_, sizeof(CrossNode)));
                cb_track(heap_, node);
                nodes_.push_back(node);
                element[i] = node;
            } else {
                element[i] = cb_refheap_alloc(host_, 2);
            }
        }
        for (size_t i = 0; i < n; ++i) {
            for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < n; ++c) {
                bool child_is_node = c % 2 == 0;
                if (i % 2 == 0) {
                    auto *parent = static_cast<CrossNode *>(element[i]);
                    if (child_is_node) {
                        parent->node = static_cast<CrossNode *>(element[c]);
                        parent->node->refcnt++;
                    } else {
                        parent->host = element[c];
                    }
                } else if (child_is_node) {
                    cb_refheap_set_node(host_, element[i], c - 2 * i - 1, element[c]);
                } else {
                    cb_refheap_set_host(host_, element[i], c - 2 * i - 1, element[c]);
                }
            }
        }
        // Node 0 is the program's; the others keep only their parents' references.
        for (CrossNode *node : nodes_)
            if (node != element[0]) node->refcnt--;
    }
    ~CrossHeap() {
        cb_refheap_destroy(host_);
        for (CrossNode *node : nodes_) {
            if (cb_is_tracked(heap_, node)) cb_untrack(heap_, node);
            cb_free(heap_, node);
        }
        cb_heap_destroy(heap_);
    }
    CrossHeap(const CrossHeap &) = delete;
    CrossHeap &operator=(const CrossHeap &) = delete;

    cb_heap *heap() const { return heap_; }
    cb_refheap *host() const { return host_; }

private:
    static int traverse(void *obj, cb_visit_fn visit, void *arg) {
        auto *node = static_cast<CrossNode *>(obj);
        if (node->host) cb_visit_host(arg, node->host);
        return node->node ? visit(node->node, arg) : 0;
    }

    cb_heap *heap_ = nullptr;
    cb_refheap *host_ = nullptr;
    cb_type *type_ = nullptr;
    std::vector<CrossNode *> nodes_;
};

}  // namespace bench
