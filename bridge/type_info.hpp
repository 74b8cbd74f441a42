// A registered type: its callbacks and how to reach its count.
#pragma once

#include <cstdint>
#include <string>

#include "cyclebridge/cyclebridge.h"

struct cb_type {
    uint32_t id;
    std::string name;
    cb_type_spec spec;   // name points into `name`

    bool handle_managed() const { return spec.kind == CB_KIND_HANDLE_MANAGED; }

    intptr_t count(const void *obj) const {
        if (spec.count_offset >= 0)
            return *reinterpret_cast<const intptr_t *>(static_cast<const char *>(obj) + spec.count_offset);
        return spec.get_count(obj);
    }
    void set_count(void *obj, intptr_t value) const {
        if (spec.count_offset >= 0)
            *reinterpret_cast<intptr_t *>(static_cast<char *>(obj) + spec.count_offset) = value;
        else
            spec.set_count(obj, value);
    }
};
