#include "node_array.hpp"

#include "mapping.hpp"

namespace cb {

NodeArray::~NodeArray() { release_mapping(data_, capacity_ * sizeof(Header *)); }

void NodeArray::grow(size_t at_least) {
    size_t bytes = capacity_ * sizeof(Header *);
    data_ = static_cast<Header **>(grow_mapping(data_, bytes, at_least * sizeof(Header *)));
    capacity_ = bytes / sizeof(Header *);
}

}  // namespace cb
