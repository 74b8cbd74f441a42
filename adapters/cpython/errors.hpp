// The error indicator (PyErr_*), per thread as in CPython.
#pragma once

#include "runtime.hpp"

#include <string>

namespace cbpy {

// "TypeError: message" for the pending exception, or "" when none.
std::string error_text();
// Drops the pending exception without touching any heap.
void clear_error_state();

}  // namespace cbpy
