#!/usr/bin/env python3
"""Peer benchmark: the collectors of CPython and PyPy on the graphs of
bench/collect_bench.cpp, so that cyclebridge's figures can be set beside
them.

Runs unchanged under CPython 3.11 and PyPy 3.9 (7.3.x):

    /usr/bin/python3 bench/peers/gc_peer.py [--quick] [--only full,garbage,young,overhead]
                                            [--max-n N] [--out PATH]

Every object is a list of 4 slots, the counterpart of the C++ Node with its
4 edges. Prints one JSON document (to stdout, or to --out PATH) and one
progress line per record to stderr. Times are medians of perf_counter_ns.

Metrics:
  full      gc.collect() over a live graph (list, tree, random), per object,
            less the collection time of the empty interpreter, measured
            beside each figure (None when the difference is within its noise)
  garbage   gc.collect() freeing n unreachable containers in cycles
  young     a young collection with 10,000 new containers beside an old tree
            (CPython: gc.collect(0); PyPy: minor collections, read through
            gc.hooks.on_gc_minor)
  overhead  bytes per container, and the GC header where it can be measured
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time

IS_PYPY = sys.implementation.name == "pypy"

SIZES = (10_000, 100_000, 1_000_000, 4_000_000)
QUICK_MAX_N = 100_000
SHAPES = ("list", "tree", "random")
GARBAGE_KINDS = ("cycle2", "cycle_long")
CYCLE_LEN = 1_000
YOUNG_OLD_SIZES = (100_000, 1_000_000, 4_000_000)
N_YOUNG = 10_000
OVERHEAD_N = 1_000_000
METRICS = ("full", "garbage", "young", "overhead")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def reps_for(n, quick):
    if quick:
        return 3
    if n >= 4_000_000:
        return 2
    if n >= 1_000_000:
        return 3
    return 5


def median_ns(samples):
    return statistics.median(samples)


def time_ns(fn):
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def per_obj(ns, baseline_ns, n):
    """The interpreter's own objects are collected too: their cost (the
    empty interpreter's collection, measured next to this one) is taken
    off. When what is left is lost in that fixed cost's noise (PyPy's
    major collection of 10,000 objects is a fifth of it), None: no figure
    rather than a wrong one."""
    extra = ns - baseline_ns
    if extra < 0.25 * baseline_ns:
        return None
    return round(extra / n, 2)


# --- graphs -----------------------------------------------------------------

def build_live(shape, n, rng):
    """Builds n containers of `shape` and returns the roots that keep them
    alive: as on the C++ side, node 0 and every node nobody points to."""
    a = [[None, None, None, None] for _ in range(n)]
    if shape == "list":
        for i in range(n - 1):
            a[i][0] = a[i + 1]
        return [a[0]]
    if shape == "tree":
        for i in range(n):
            left = 2 * i + 1
            if left < n:
                a[i][0] = a[left]
            if left + 1 < n:
                a[i][1] = a[left + 1]
        return [a[0]]
    pointed_to = bytearray(n)
    for i in range(n):
        node = a[i]
        for k in range(2 + rng.randrange(3)):
            j = rng.randrange(n)
            node[k] = a[j]
            pointed_to[j] = 1
    # C++ keeps node 0's reference whatever points to it.
    return [a[0]] + [a[i] for i in range(1, n) if not pointed_to[i]]


def build_garbage(kind, n):
    """Builds n containers in cycles and drops them: on return they are all
    unreachable, and only a cycle collection can free them."""
    a = [[None, None, None, None] for _ in range(n)]
    if kind == "cycle2":
        for i in range(0, n - 1, 2):
            a[i][0] = a[i + 1]
            a[i + 1][0] = a[i]
    else:
        for start in range(0, n, CYCLE_LEN):
            end = min(start + CYCLE_LEN, n)
            for i in range(start, end - 1):
                a[i][0] = a[i + 1]
            a[end - 1][0] = a[start]


def make_chain(m):
    """m new containers, each holding the one made before it in slot 0."""
    head = None
    for _ in range(m):
        head = [head, None, None, None]
    return head


# --- metrics ----------------------------------------------------------------

def measure_baseline(reps):
    gc.collect()
    return median_ns([time_ns(gc.collect) for _ in range(reps)])


def run_full(sizes, quick, emit):
    for shape in SHAPES:
        for n in sizes:
            reps = reps_for(n, quick)
            t0 = time.perf_counter()
            roots = build_live(shape, n, random.Random(42))
            build_s = time.perf_counter() - t0
            # Untimed; on CPython it also moves the graph to the oldest
            # generation, and counts anything the roots do not reach.
            found = gc.collect()
            ns = median_ns([time_ns(gc.collect) for _ in range(reps)])
            roots_count = len(roots)
            del roots
            gc.collect()
            baseline_ns = measure_baseline(max(reps, 5))   # beside this measurement
            rec = {"metric": "full", "shape": shape, "n": n,
                   "ms": round(ns / 1e6, 3),
                   "baseline_ms": round(baseline_ns / 1e6, 3),
                   "ns_per_obj": per_obj(ns, baseline_ns, n),
                   "reps": reps, "roots": roots_count,
                   "build_s": round(build_s, 2)}
            if isinstance(found, int):
                rec["unreachable_at_setup"] = found
            emit(rec)


def run_garbage(sizes, quick, emit):
    for kind in GARBAGE_KINDS:
        for n in sizes:
            reps = reps_for(n, quick)
            gc.collect()
            samples = []
            for _ in range(reps):
                build_garbage(kind, n)     # anew: the collection frees it
                samples.append(time_ns(gc.collect))
            ns = median_ns(samples)
            baseline_ns = measure_baseline(max(reps, 5))   # beside this measurement
            emit({"metric": "garbage", "kind": kind, "n": n,
                  "ms": round(ns / 1e6, 3),
                  "baseline_ms": round(baseline_ns / 1e6, 3),
                  "ns_per_obj": per_obj(ns, baseline_ns, n),
                  "reps": reps})


def young_cpython_once():
    young = make_chain(N_YOUNG)
    ns = time_ns(lambda: gc.collect(0))
    del young
    gc.collect()
    return ns, None, None


class MinorHook:
    """Collects what gc.hooks.on_gc_minor reports. PyPy calls the hook at
    the next safe point after the collection, and merges collections that
    happened meanwhile into one call (stats.count > 1); since PyPy 7.0,
    stats.duration is in seconds."""

    def __init__(self):
        self.events = []      # (count, seconds) per call
        self.sink = [None]

    def __call__(self, stats):
        self.events.append((stats.count, stats.duration))

    def churn(self):
        # Fills the nursery with garbage until a minor collection has been
        # reported. The garbage is stored in sink so that the JIT cannot
        # remove the allocation.
        seen = len(self.events)
        for _ in range(10_000_000):
            if len(self.events) != seen:
                return
            self.sink[0] = [None] * 32
        raise RuntimeError("gc.hooks.on_gc_minor never fired")


def young_pypy_once(hook):
    hook.churn()                       # start with an empty nursery
    count, secs = hook.events[-1]
    empty_ns = secs * 1e9 / count      # a minor with no survivors
    mark = len(hook.events)
    t0 = time.perf_counter_ns()
    young = make_chain(N_YOUNG)
    # 10k containers (~1 MB) may overflow the nursery while being made, so
    # every minor from here on counts. Churn twice: the first report seen
    # may be a late one for a collection made during make_chain, before the
    # last containers left the nursery. The window thus also holds about
    # one garbage-only minor, reported apart as empty_minor_ms.
    hook.churn()
    hook.churn()
    window_ns = time.perf_counter_ns() - t0
    assert young[0] is not None        # keeps young alive up to here
    window = hook.events[mark:]
    minors = sum(c for c, _ in window)
    ns = sum(d for _, d in window) * 1e9
    if ns > window_ns:
        raise RuntimeError("minor durations exceed wall time: unit is not seconds")
    del young
    gc.collect()
    return ns, minors, empty_ns


def run_young(old_sizes, quick, emit):
    hook = None
    if IS_PYPY:
        hook = MinorHook()
        gc.hooks.on_gc_minor = hook
    for n_old in old_sizes:
        reps = reps_for(n_old, quick)
        roots = build_live("tree", n_old, random.Random(42))
        # Twice, so that on CPython the tree is in the oldest generation.
        gc.collect()
        gc.collect()
        samples, minors, empties = [], [], []
        # One untimed round first: the JIT compiles make_chain, the heap
        # has room for the young objects.
        for rep in range(reps + 1):
            if IS_PYPY:
                ns, m, empty = young_pypy_once(hook)
            else:
                ns, m, empty = young_cpython_once()
            if rep:
                samples.append(ns)
                minors.append(m)
                empties.append(empty)
        ns = median_ns(samples)
        rec = {"metric": "young", "n_old": n_old, "n_young": N_YOUNG,
               "ms": round(ns / 1e6, 3),
               "ns_per_young_obj": round(ns / N_YOUNG, 2), "reps": reps,
               "method": "gc.hooks on_gc_minor" if IS_PYPY else "gc.collect(0)"}
        if IS_PYPY:
            rec["minors"] = statistics.median_low(minors)
            rec["empty_minor_ms"] = round(median_ns(empties) / 1e6, 4)
        emit(rec)
        del roots
        gc.collect()
    if IS_PYPY:
        gc.hooks.on_gc_minor = None


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def rss_per_obj(n):
    """Resident memory growth per container; counts allocator rounding and
    fragmentation that the per-allocation figures leave out."""
    gc.collect()
    before = rss_bytes()
    head = make_chain(n)
    gc.collect()
    after = rss_bytes()
    del head
    gc.collect()
    if before is None or after is None:
        return None
    return round((after - before) / n, 1)


def run_overhead(n, emit):
    # Run first, on a fresh heap, so that RSS growth is not absorbed by
    # memory freed earlier.
    rec = {"metric": "overhead", "n": n}
    rss = rss_per_obj(n)
    if IS_PYPY:
        # gc._get_stats() holds the raw byte counts that gc.get_stats()
        # formats as text.
        gc.collect()
        before = gc._get_stats().total_gc_memory
        head = make_chain(n)
        gc.collect()               # moves the chain out of the nursery
        after = gc._get_stats().total_gc_memory
        rec["bytes_per_obj"] = round((after - before) / n, 1)
        rec["rpy_memory_usage"] = gc.get_rpy_memory_usage(head)
        rec["gc_header_bytes"] = None
        rec["method"] = "gc._get_stats().total_gc_memory delta"
        rec["note"] = ("GC header not measurable alone; bytes_per_obj is the "
                       "whole container (the list object, its RPython list "
                       "and its item array are three GC objects, each with "
                       "its own header); rpy_memory_usage is the list object "
                       "alone")
        del head
        gc.collect()
    else:
        import tracemalloc
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        head = make_chain(n)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del head
        gc.collect()
        probe = [None, None, None, None]
        rec["bytes_per_obj"] = round((after - before) / n, 1)
        # getsizeof adds the GC header (PyGC_Head) to __sizeof__ for
        # tracked objects; the difference is the header as the runtime
        # itself accounts it.
        rec["gc_header_bytes"] = sys.getsizeof(probe) - probe.__sizeof__()
        rec["method"] = "tracemalloc delta; getsizeof - __sizeof__"
        rec["note"] = ("bytes_per_obj counts requested sizes (object with "
                       "GC header + item array), before pymalloc rounds them "
                       "up to 16-byte size classes")
    rec["rss_bytes_per_obj"] = rss
    emit(rec)


# --- driver -----------------------------------------------------------------

def describe(rec):
    keys = ("shape", "kind", "n", "n_old")
    what = " ".join("%s=%s" % (k, rec[k]) for k in keys if k in rec)
    figures = " ".join("%s=%s" % (k, v) for k, v in rec.items()
                       if k not in keys and k not in ("metric", "note"))
    return "%s %s: %s" % (rec["metric"], what, figures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="n up to %d only, 3 repetitions" % QUICK_MAX_N)
    parser.add_argument("--only", default=",".join(METRICS),
                        help="comma list of metrics: %s" % ",".join(METRICS))
    parser.add_argument("--max-n", type=int, default=None,
                        help="skip sizes above N")
    parser.add_argument("--out", default=None, help="write the JSON here")
    args = parser.parse_args()

    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = [m for m in only if m not in METRICS]
    if unknown:
        parser.error("unknown metric(s): %s" % ",".join(unknown))
    max_n = args.max_n
    if args.quick:
        max_n = QUICK_MAX_N if max_n is None else min(max_n, QUICK_MAX_N)

    def fits(n):
        return max_n is None or n <= max_n

    sizes = [n for n in SIZES if fits(n)]
    old_sizes = [n for n in YOUNG_OLD_SIZES if fits(n)]
    overhead_n = OVERHEAD_N if fits(OVERHEAD_N) else max(sizes or [N_YOUNG])

    # No automatic collection inside a measured region; every collection
    # below is an explicit one.
    gc.disable()
    started = time.perf_counter()
    results = []

    def emit(rec):
        results.append(rec)
        log(describe(rec))

    # Before any graph exists: the cost of collecting the interpreter alone.
    baseline_ns = measure_baseline(3 if args.quick else 5)
    log("baseline full collection: %.3f ms" % (baseline_ns / 1e6))

    if "overhead" in only:
        run_overhead(overhead_n, emit)
    if "full" in only:
        run_full(sizes, args.quick, emit)
    if "garbage" in only:
        run_garbage(sizes, args.quick, emit)
    if "young" in only:
        run_young(old_sizes, args.quick, emit)

    doc = {"runtime": "pypy" if IS_PYPY else "cpython",
           "version": " ".join(sys.version.split()),
           "baseline_full_ms": round(baseline_ns / 1e6, 4),
           "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    log("done in %.1f s" % (time.perf_counter() - started))


if __name__ == "__main__":
    main()
