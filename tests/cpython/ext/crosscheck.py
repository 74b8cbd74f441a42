"""Runs the scenarios of the test extension `cycles` under the real CPython.

Each scenario starts from a clean heap, builds its garbage, and is then
freed (or not) by ONE gc.collect(); the extension's counters tell what the
collector did. With --json the counts are printed as one JSON object (the
adapter tests compare cyclebridge's counts against it); without, they are
checked against what CPython is expected to do and any mismatch fails.
"""

import argparse
import gc
import json
import platform
import sys

KINDS = ("node", "resurrector", "legacy", "registry", "heap_node")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module-dir", required=True,
                        help="directory holding the built cycles extension")
    parser.add_argument("-n", type=int, default=10000,
                        help="instances per scenario (default 10000)")
    parser.add_argument("--random", type=int, default=0, metavar="SEEDS",
                        help="also run random graphs for seeds 1..SEEDS")
    parser.add_argument("--random-size", type=int, default=200,
                        help="nodes per random graph (default 200)")
    parser.add_argument("--json", action="store_true",
                        help="print the counts as one JSON object")
    args = parser.parse_args()
    if args.n < 0:
        parser.error("-n must be >= 0")
    return args


def host_list(node):
    return [node]


def host_closure(node):
    def closure():
        return node
    return closure


class Runner:
    def __init__(self, cycles, n):
        self.cycles = cycles
        self.n = n
        self.legacy_freed_by_cleanup = None

    def start(self):
        gc.collect()
        self.cycles.reset_counts()

    def counts(self, **extra):
        cycles = self.cycles
        deallocs = cycles.deallocs()
        return {
            "deallocs": {kind: deallocs[kind] for kind in KINDS},
            "finalizer_calls": cycles.finalizer_calls(),
            "del_calls": cycles.del_calls(),
            "extra": extra,
        }

    def simple(self, build):
        self.start()
        build()
        gc.collect()
        return self.counts()

    def resurrect(self):
        cycles = self.cycles
        self.start()
        cycles.resurrecting_cycles(self.n)
        gc.collect()
        first = self.counts(saved=cycles.saved_count())
        # Phase two counts alone: releasing the saved objects, then one
        # more collection (which is the one that frees them).
        cycles.reset_counts()
        cycles.release_saved()
        gc.collect()
        second = self.counts()
        return first, second

    def weakref(self):
        cycles = self.cycles
        calls = 0

        def callback(weakref):
            nonlocal calls
            calls += 1

        self.start()
        cycles.weakref_cycles(self.n, callback)
        gc.collect()
        result = self.counts(callbacks=calls,
                             weakrefs_dead=cycles.weakrefs_dead())
        cycles.release_weakrefs()
        return result

    def legacy(self):
        cycles = self.cycles
        if gc.garbage:
            raise SystemExit("crosscheck: gc.garbage is not empty before the "
                             f"legacy scenario: {len(gc.garbage)} objects")
        self.start()
        cycles.legacy_cycles(self.n)
        gc.collect()
        uncollectable = sum(1 for obj in gc.garbage
                            if type(obj).__module__ == "cycles"
                            and type(obj).__name__ == "Legacy")
        result = self.counts(uncollectable=uncollectable)
        # Clean up: the cycles die by reference counting once broken.
        gc.garbage.clear()
        cycles.break_legacy()
        self.legacy_freed_by_cleanup = cycles.deallocs()["legacy"]
        gc.collect()
        return result


def run(cycles, n):
    runner = Runner(cycles, n)
    scenarios = {
        "self_cycle": runner.simple(lambda: cycles.self_cycles(n)),
        "two_cycle": runner.simple(lambda: cycles.two_cycles(n)),
        "host_cycle": runner.simple(lambda: cycles.host_cycles(n, host_list)),
        "host_closure": runner.simple(lambda: cycles.host_cycles(n, host_closure)),
    }
    scenarios["resurrect_first"], scenarios["resurrect_second"] = runner.resurrect()
    scenarios["weakref"] = runner.weakref()
    scenarios["legacy"] = runner.legacy()
    scenarios["heap_type"] = runner.simple(lambda: cycles.heap_type_cycles(n))
    return scenarios, runner.legacy_freed_by_cleanup


def random_graphs(cycles, seeds, size):
    """For each seed, which nodes of its random graph one gc.collect() freed
    ('0'/'1' per node); then everything is released and must die."""
    graphs = {}
    for seed in range(1, seeds + 1):
        gc.collect()
        cycles.random_graph(seed, size, host_list)
        gc.collect()
        graphs[str(seed)] = cycles.random_dead(size)
        cycles.random_release()
        gc.collect()
        if cycles.random_dead(size) != "1" * size:
            raise SystemExit(f"crosscheck: random graph {seed} left nodes alive after release")
        cycles.random_forget()
    return graphs


def expected(n):
    paired = 2 * (n // 2)   # the pair scenarios build n/2 pairs

    def counts(finalizer_calls=0, del_calls=0, extra=None, **deallocs):
        return {
            "deallocs": {kind: deallocs.get(kind, 0) for kind in KINDS},
            "finalizer_calls": finalizer_calls,
            "del_calls": del_calls,
            "extra": extra or {},
        }

    return {
        "self_cycle": counts(node=n),
        "two_cycle": counts(node=paired),
        "host_cycle": counts(node=n),
        "host_closure": counts(node=n),
        "resurrect_first": counts(finalizer_calls=paired, extra={"saved": paired}),
        "resurrect_second": counts(resurrector=paired),
        "weakref": counts(node=n, extra={"callbacks": n, "weakrefs_dead": n}),
        "legacy": counts(extra={"uncollectable": paired}),
        "heap_type": counts(heap_node=n, registry=1),
    }


def mismatches(actual, wanted):
    found = []
    for name, want in wanted.items():
        got = actual.get(name)
        if got is None:
            found.append(f"{name}: not run")
            continue
        for kind in KINDS:
            if got["deallocs"][kind] != want["deallocs"][kind]:
                found.append(f"{name}: {kind} deallocs {got['deallocs'][kind]}, "
                             f"expected {want['deallocs'][kind]}")
        for key in ("finalizer_calls", "del_calls"):
            if got[key] != want[key]:
                found.append(f"{name}: {key} {got[key]}, expected {want[key]}")
        for key, value in want["extra"].items():
            if got["extra"].get(key) != value:
                found.append(f"{name}: {key} {got['extra'].get(key)}, expected {value}")
    return found


def main():
    args = parse_args()
    sys.path.insert(0, args.module_dir)
    try:
        import cycles
    except ImportError as error:
        print(f"crosscheck: cannot import the cycles extension from "
              f"{args.module_dir}: {error}", file=sys.stderr)
        return 2

    # Only the scenarios' explicit collections may run: an automatic one
    # in the middle of building would split the work between collections.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        scenarios, legacy_freed_by_cleanup = run(cycles, args.n)
        graphs = random_graphs(cycles, args.random, args.random_size)
    finally:
        if was_enabled:
            gc.enable()

    if args.json:
        output = {"python": platform.python_version(), "n": args.n,
                  "scenarios": scenarios}
        if args.random:
            output["random"] = {"size": args.random_size, "graphs": graphs}
        json.dump(output, sys.stdout, sort_keys=False)
        sys.stdout.write("\n")
        return 0

    problems = mismatches(scenarios, expected(args.n))
    if legacy_freed_by_cleanup != 2 * (args.n // 2):
        problems.append(f"legacy: break_legacy() freed {legacy_freed_by_cleanup} "
                        f"Legacy objects, expected {2 * (args.n // 2)}")
    if problems:
        print(f"crosscheck: CPython {platform.python_version()} (n={args.n}) "
              "did not free what the scenarios expect:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"crosscheck: CPython {platform.python_version()}: all "
          f"{len(scenarios)} scenarios as expected (n={args.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
