// What this process's memory does while code runs, read from the kernel:
// for tests of memory kept or given back, and for the overhead benchmark.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace cbt {

// Resident memory of this process, in bytes (0 without /proc/self/statm).
inline size_t resident_bytes() {
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * size_t(sysconf(_SC_PAGESIZE)) : 0;
}

// Pages first touched (minor faults) by this process while f runs.
template <class F>
long page_faults_in(F f) {
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    f();
    getrusage(RUSAGE_SELF, &after);
    return after.ru_minflt - before.ru_minflt;
}

}  // namespace cbt
