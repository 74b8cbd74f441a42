// The slot table of PyType_FromSpec and PyType_GetSlot, by slot id.
#include "type_slots.hpp"

namespace cbpy {

#define CBPY_TYPE_FIELDS(X)                                                                              \
    X(Py_tp_alloc, tp_alloc) X(Py_tp_call, tp_call) X(Py_tp_clear, tp_clear) X(Py_tp_dealloc, tp_dealloc) \
    X(Py_tp_del, tp_del) X(Py_tp_descr_get, tp_descr_get) X(Py_tp_descr_set, tp_descr_set)               \
    X(Py_tp_getattr, tp_getattr) X(Py_tp_getattro, tp_getattro) X(Py_tp_hash, tp_hash)                   \
    X(Py_tp_init, tp_init) X(Py_tp_is_gc, tp_is_gc) X(Py_tp_iter, tp_iter) X(Py_tp_iternext, tp_iternext) \
    X(Py_tp_methods, tp_methods) X(Py_tp_new, tp_new) X(Py_tp_repr, tp_repr)                             \
    X(Py_tp_richcompare, tp_richcompare) X(Py_tp_setattr, tp_setattr) X(Py_tp_setattro, tp_setattro)     \
    X(Py_tp_str, tp_str) X(Py_tp_traverse, tp_traverse) X(Py_tp_getset, tp_getset)                       \
    X(Py_tp_free, tp_free) X(Py_tp_finalize, tp_finalize)

#define CBPY_SUBSTRUCT_FIELDS(X)                                                                         \
    X(Py_bf_getbuffer, tp_as_buffer, bf_getbuffer) X(Py_bf_releasebuffer, tp_as_buffer, bf_releasebuffer) \
    X(Py_mp_ass_subscript, tp_as_mapping, mp_ass_subscript) X(Py_mp_length, tp_as_mapping, mp_length)     \
    X(Py_mp_subscript, tp_as_mapping, mp_subscript) X(Py_nb_absolute, tp_as_number, nb_absolute)          \
    X(Py_nb_add, tp_as_number, nb_add) X(Py_nb_and, tp_as_number, nb_and) X(Py_nb_bool, tp_as_number, nb_bool) \
    X(Py_nb_divmod, tp_as_number, nb_divmod) X(Py_nb_float, tp_as_number, nb_float)                     \
    X(Py_nb_floor_divide, tp_as_number, nb_floor_divide) X(Py_nb_index, tp_as_number, nb_index)          \
    X(Py_nb_inplace_add, tp_as_number, nb_inplace_add) X(Py_nb_inplace_and, tp_as_number, nb_inplace_and) \
    X(Py_nb_inplace_floor_divide, tp_as_number, nb_inplace_floor_divide)                                  \
    X(Py_nb_inplace_lshift, tp_as_number, nb_inplace_lshift)                                              \
    X(Py_nb_inplace_multiply, tp_as_number, nb_inplace_multiply)                                          \
    X(Py_nb_inplace_or, tp_as_number, nb_inplace_or) X(Py_nb_inplace_power, tp_as_number, nb_inplace_power) \
    X(Py_nb_inplace_remainder, tp_as_number, nb_inplace_remainder)                                        \
    X(Py_nb_inplace_rshift, tp_as_number, nb_inplace_rshift)                                              \
    X(Py_nb_inplace_subtract, tp_as_number, nb_inplace_subtract)                                          \
    X(Py_nb_inplace_true_divide, tp_as_number, nb_inplace_true_divide)                                    \
    X(Py_nb_inplace_xor, tp_as_number, nb_inplace_xor) X(Py_nb_int, tp_as_number, nb_int)                \
    X(Py_nb_invert, tp_as_number, nb_invert) X(Py_nb_lshift, tp_as_number, nb_lshift)                    \
    X(Py_nb_multiply, tp_as_number, nb_multiply) X(Py_nb_negative, tp_as_number, nb_negative)            \
    X(Py_nb_or, tp_as_number, nb_or) X(Py_nb_positive, tp_as_number, nb_positive)                        \
    X(Py_nb_power, tp_as_number, nb_power) X(Py_nb_remainder, tp_as_number, nb_remainder)                \
    X(Py_nb_rshift, tp_as_number, nb_rshift) X(Py_nb_subtract, tp_as_number, nb_subtract)                \
    X(Py_nb_true_divide, tp_as_number, nb_true_divide) X(Py_nb_xor, tp_as_number, nb_xor)                \
    X(Py_nb_matrix_multiply, tp_as_number, nb_matrix_multiply)                                            \
    X(Py_nb_inplace_matrix_multiply, tp_as_number, nb_inplace_matrix_multiply)                            \
    X(Py_sq_ass_item, tp_as_sequence, sq_ass_item) X(Py_sq_concat, tp_as_sequence, sq_concat)             \
    X(Py_sq_contains, tp_as_sequence, sq_contains) X(Py_sq_inplace_concat, tp_as_sequence, sq_inplace_concat) \
    X(Py_sq_inplace_repeat, tp_as_sequence, sq_inplace_repeat) X(Py_sq_item, tp_as_sequence, sq_item)     \
    X(Py_sq_length, tp_as_sequence, sq_length) X(Py_sq_repeat, tp_as_sequence, sq_repeat)                 \
    X(Py_am_await, tp_as_async, am_await) X(Py_am_aiter, tp_as_async, am_aiter)                          \
    X(Py_am_anext, tp_as_async, am_anext) X(Py_am_send, tp_as_async, am_send)

void **slot_field(PyTypeObject *tp, int id) {
    switch (id) {
#define CBPY_TYPE_CASE(id_, field) \
    case id_: return reinterpret_cast<void **>(&tp->field);
        CBPY_TYPE_FIELDS(CBPY_TYPE_CASE)
#undef CBPY_TYPE_CASE
#define CBPY_SUB_CASE(id_, sub, field) \
    case id_: return tp->sub ? reinterpret_cast<void **>(&tp->sub->field) : nullptr;
        CBPY_SUBSTRUCT_FIELDS(CBPY_SUB_CASE)
#undef CBPY_SUB_CASE
    default: return nullptr;
    }
}

}  // namespace cbpy
