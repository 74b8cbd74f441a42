// libFuzzer target: one differential scenario per input. The fuzz bytes
// make every choice the seeded PRNG makes in tests/differential_test.cpp
// (graph size and shape, kinds, finalizers, weakrefs, mutations, which
// collections run, drive mode); an exhausted input answers the smallest
// value of every range, so every input is a finite scenario. Any mismatch
// with the oracle prints the graph and traps.
//
//   build/fuzz/tests/fuzz/cyclebridge_fuzz -max_total_time=300 corpus/
//   build/fuzz/tests/fuzz/cyclebridge_fuzz crash-<sha1>      # replay
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>

#include "differential/random_graph.hpp"

namespace {

class FuzzSource final : public cbdiff::Source {
public:
    FuzzSource(const uint8_t *data, size_t size) : fdp_(data, size) {}
    uint32_t range(uint32_t lo, uint32_t hi) override {
        if (hi <= lo) return lo;
        return fdp_.ConsumeIntegralInRange<uint32_t>(lo, hi);
    }

private:
    FuzzedDataProvider fdp_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzSource src(data, size);
    cbdiff::ScenarioOptions opt;
    opt.seed = 0;   // the input is the seed
    opt.verbose = std::getenv("CB_DIFF_VERBOSE") != nullptr;
    cbdiff::Scenario sc(src, opt);
    if (!sc.run()) {
        std::fprintf(stderr, "%s", sc.report().c_str());
        std::fflush(stderr);
        __builtin_trap();
    }
    return 0;
}
