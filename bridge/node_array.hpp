// The arrays of nodes: each generation and the garbage list (cb_heap).
#pragma once

#include <cstddef>

namespace cb {

struct Header;

// A growable array of node pointers that grows without a copy. A young
// collection that promotes into a large oldest generation, or the
// partition that fills the garbage list, may grow an array of millions of
// entries in the middle of an incremental slice; a vector would allocate
// a new block and copy into it there (about 30 ms for 1M nodes on the
// machine of docs/performance.md, mostly first-touch page faults, against
// a 1 ms slice). Here the block is its own mapping (mapping.hpp), grown in
// place or moved by the kernel, and new pages are faulted in only as
// entries reach them. An array starts at one page, on its first node, so
// an empty heap costs little.
class NodeArray {
public:
    using value_type = Header *;
    NodeArray() = default;
    NodeArray(const NodeArray &) = delete;
    NodeArray &operator=(const NodeArray &) = delete;
    ~NodeArray();

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    size_t capacity() const { return capacity_; }
    Header *&operator[](size_t i) { return data_[i]; }
    Header *const &operator[](size_t i) const { return data_[i]; }
    Header **begin() { return data_; }
    Header **end() { return data_ + size_; }
    Header *const *begin() const { return data_; }
    Header *const *end() const { return data_ + size_; }
    Header *&back() { return data_[size_ - 1]; }

    // Throw std::bad_alloc when memory is short, the array unchanged.
    void push_back(Header *h) {
        if (size_ == capacity_) grow(size_ + 1);
        data_[size_++] = h;
    }
    void reserve(size_t n) {
        if (n > capacity_) grow(n);
    }
    void truncate(size_t n) {   // keeps the first n
        if (n < size_) size_ = n;
    }
    void pop_back() { --size_; }
    void clear() { size_ = 0; }   // the mapping stays, for the next fill

private:
    void grow(size_t at_least);

    Header **data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
};

}  // namespace cb
