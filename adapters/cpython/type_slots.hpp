// Where each PyType_Slot id of typeslots.h is stored in a type object: a
// field of PyTypeObject, or one of its method sub-structs.
#pragma once

#include "runtime.hpp"

namespace cbpy {

// The field slot `id` fills in tp, or nullptr if tp has no such field (an
// unknown id, a Py_tp_base/bases/members/doc id that is not a plain
// pointer field, or a sub-struct the type lacks).
void **slot_field(PyTypeObject *tp, int id);

}  // namespace cbpy
