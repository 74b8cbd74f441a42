"""The cyclebridge module against CPython's own collector.

Each scenario runs in a fresh interpreter (this file, run with --scenario
NAME): automatic collection off, the scenario builds its heap and drops its
references, cyclebridge.find_unreachable() analyses it, then
gc.collect() runs with gc.DEBUG_SAVEALL and the analysis is compared with
gc.garbage. The child prints a JSON summary; the tests below judge it.

Run: PYTHONPATH=build/<preset>/python /usr/bin/python3 tests/python/test_mirror.py
"""
import gc
import importlib
import sys
import types

# Imported and then cut loose (or kept, with garbage among their objects).
STDLIB = [
    "json", "decimal", "fractions", "statistics", "email.message", "email.parser",
    "email.policy", "collections", "re", "argparse", "textwrap", "csv",
    "dataclasses", "ipaddress", "difflib", "pprint", "calendar", "shlex", "uuid",
    "http.client", "urllib.parse", "xml.dom.minidom", "configparser", "tomllib",
    "zipfile", "tarfile", "string", "enum", "asyncio",
]

PROBE = "cbprobe:"   # marks the objects whose fate a scenario tracks

# Objects a scenario keeps alive on purpose (a module global: reachable).
KEEP = []


def probe_list(probes, name):
    """A list whose first item names it, so that it can be found afterwards."""
    box = [PROBE + name]
    probes[PROBE + name] = id(box)
    return box


def probe_generator(probes, gen, name):
    gen.__name__ = PROBE + name   # gi_name outlives the frame
    probes[PROBE + name] = id(gen)
    return gen


# --------------------------------------------------------------------------
# Scenarios: each builds garbage and returns {probe name: id}.
# --------------------------------------------------------------------------

def scenario_closures():
    def recursive(n):
        def walk(k):                 # walk -> closure -> cell -> walk
            return walk(k - 1) if k else n
        return walk

    def mutually_recursive():
        def even(k):
            return True if k == 0 else odd(k - 1)

        def odd(k):
            return False if k == 0 else even(k - 1)
        return even

    def cell_holds_list():
        box = []

        def get():
            return box
        box.append(get)              # closure -> cell -> list -> closure

    def cell_holds_dict():
        state = {}

        def bump():
            state["n"] = state.get("n", 0) + 1
            return bump
        state["f"] = bump

    def nested_lambdas():
        f = lambda: g          # noqa: E731
        g = lambda: f          # noqa: E731
        return f

    for i in range(50):
        recursive(i)
        mutually_recursive()
        cell_holds_list()
        cell_holds_dict()
        nested_lambdas()
    return {}


def scenario_generators():
    probes = {}

    def plain(box):
        yield 1

    def guarded(box):
        try:
            yield 1
        finally:
            box.append("closed")

    def inner(box):
        yield 1

    def outer(box):
        yield from inner(box)

    def keeps_its_error(box):
        try:
            raise ValueError("kept")
        except ValueError as e:
            err = e              # err -> traceback -> this frame's frame object
        yield err

    def yields_while_handling(box):
        try:
            raise KeyError("handled")
        except KeyError:
            yield 1              # gi_exc_state holds the KeyError meanwhile

    async def never_awaited(box):
        pass

    # Suspension points past offset 64 in the code: the exception table
    # needs multi-byte entries there. One is inside try/finally, one after it.
    straight_line = "\n".join(f"    v{i} = {i}" for i in range(100))
    far = {}
    exec(f"def late_guarded(box):\n{straight_line}\n    try:\n        yield 1\n    finally:\n        pass\n"
         f"def guarded_early(box):\n    try:\n        pass\n    finally:\n        pass\n{straight_line}\n    yield 1\n",
         far)

    # Suspended, alone in a cycle with its box: closing it frees both.
    for i in range(20):
        box = probe_list(probes, f"plain-{i}")
        gen = probe_generator(probes, plain(box), f"gen-plain-{i}")
        next(gen)
        box.append(gen)
    # Never started: closed as well.
    box = probe_list(probes, "created")
    box.append(probe_generator(probes, plain(box), "gen-created"))
    # The box also holds itself: it survives the close, and keeps the generator.
    box = probe_list(probes, "self-held")
    box.append(box)
    gen = probe_generator(probes, plain(box), "gen-self-held")
    next(gen)
    box.append(gen)
    # Suspended in try/finally: the handler runs (uncertain), then the frame clears.
    box = probe_list(probes, "guarded")
    gen = probe_generator(probes, guarded(box), "gen-guarded")
    next(gen)
    box.append(gen)
    # yield from: closing the outer generator closes the inner one first.
    box = probe_list(probes, "delegating")
    gen = probe_generator(probes, outer(box), "gen-outer")
    next(gen)
    box.append(gen)
    # A traceback holds the frame's frame object: on close it takes the frame
    # over, and what it holds is resurrected.
    box = probe_list(probes, "traceback")
    gen = probe_generator(probes, keeps_its_error(box), "gen-traceback")
    next(gen)
    box.append(gen)
    # Suspended in an except block: the exception state is cleared with the
    # frame; its traceback holds the frame object as well.
    box = probe_list(probes, "handling")
    gen = probe_generator(probes, yields_while_handling(box), "gen-handling")
    next(gen)
    box.append(gen)
    for name in ("late_guarded", "guarded_early"):
        box = probe_list(probes, name)
        gen = probe_generator(probes, far[name](box), "gen-" + name)
        next(gen)
        box.append(gen)
    del far
    # A coroutine never awaited is warned about, not closed: saved whole.
    box = probe_list(probes, "coroutine")
    box.append(probe_generator(probes, never_awaited(box), "coro"))
    return probes


def scenario_classes_and_globals():
    source = """
import functools
class Base:
    registry = []
    def __init__(self):
        Base.registry.append(self)
    def method(self):
        return helper(self)
class Derived(Base):
    @property
    def value(self):
        return CONSTANT
    @staticmethod
    def make():
        return Derived()
    @classmethod
    def other(cls):
        return cls
def helper(obj):
    return obj
CONSTANT = [Base, Derived]
instance = Derived.make()
bound = functools.partial(helper, instance)
"""
    for i in range(20):
        module = types.ModuleType(f"cbprobe_generated_{i}")
        exec(source, module.__dict__)

    class Lonely:
        pass
    Lonely.itself = Lonely
    return {}


def scenario_module_dicts():
    names = [f"cbprobe_mod_{i}" for i in range(10)]
    for i, name in enumerate(names):
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec("import sys\n"
             "me = sys.modules[__name__]\n"
             f"neighbour = sys.modules.get({names[i - 1]!r})\n"
             "def get():\n    return me\n", module.__dict__)
    for name in names:
        del sys.modules[name]
    selfish = types.ModuleType("cbprobe_selfish")     # module -> its dict -> module
    selfish.itself = selfish
    return {}


def scenario_bound_methods():
    class Widget:
        def __init__(self):
            self.callback = self.fire
            self.handlers = [self.fire, self.__init__]

        def fire(self):
            return self

    class Slotted:
        __slots__ = ("bound",)

        def go(self):
            pass

    for _ in range(30):
        Widget()
        slotted = Slotted()
        slotted.bound = slotted.go
        items = []
        items.append(items.append)          # a builtin method bound to its list
        table = {}
        table["get"] = table.get
    return {}


def scenario_tracked_atoms():
    """CPython untracks tuples and dicts of atoms only after finding what is
    unreachable (untrack_tuples, untrack_dicts): until then a tracked one in
    a cycle is garbage like any container."""
    live_tuple = (1, 2, "x")
    live_dict = {"a": 1}
    KEEP.extend([live_tuple, live_dict])
    gc.collect()                           # untracks those two
    assert not gc.is_tracked(live_tuple) and not gc.is_tracked(live_dict)
    for i in range(40):
        atoms = (i, "atom", 2.5)            # tracked until a collection looks at it
        became_atoms = {"k": []}
        became_atoms["k"] = i               # dicts are never untracked on the way down
        untracked_dict = {"k": i}           # born untracked: not in gc.get_objects()
        cycle = [atoms, became_atoms, untracked_dict, live_tuple, live_dict]
        cycle.append(cycle)
    return {}


def scenario_finalizers():
    class WithDel:
        def __del__(self):
            pass
    for _ in range(10):
        obj = WithDel()
        obj.me = obj
    return {}


def scenario_stdlib_cut_loose():
    before = set(sys.modules)
    for name in STDLIB:
        importlib.import_module(name)
    for name in set(sys.modules) - before:
        del sys.modules[name]
    return {}


def scenario_stdlib_in_use():
    for name in STDLIB:
        importlib.import_module(name)
    import argparse
    import collections
    import configparser
    import dataclasses
    import decimal
    import email.message
    import fractions
    import functools
    import json
    import re
    import xml.dom.minidom
    for i in range(20):
        parser = argparse.ArgumentParser(prog=f"p{i}")
        parser.add_argument("--x")
        parser.add_subparsers().add_parser("sub")
        decoder = json.JSONDecoder()
        decoder.itself = decoder
        context = [decimal.Context(prec=10 + i)]
        context.append(context)
        message = email.message.Message()
        message["Subject"] = "cycle"
        message.set_payload([message])
        ordered = collections.OrderedDict()
        ordered["self"] = ordered
        ring = collections.deque()
        ring.append(ring)
        default = collections.defaultdict(list)
        default["me"] = default
        pattern = [re.compile(f"cbprobe{i}")]
        pattern.append(pattern)
        fraction = [fractions.Fraction(i, 7)]
        fraction.append(fraction)
        dataclasses.make_dataclass(f"Point{i}", ["x", "y"])
        xml.dom.minidom.parseString("<a><b>text</b><c/></a>")
        config = configparser.ConfigParser()
        config.read_string("[section]\nkey = value\n")
        partial = functools.partial(print)
        partial.itself = partial
    return {}


def scenario_no_garbage():
    for name in STDLIB:
        importlib.import_module(name)
    gc.collect()
    return {}


def scenario_frozen():
    probes = {}
    anchor = []                              # frozen with what it holds
    KEEP.append(anchor)
    for i in range(50):
        old = probe_list(probes, f"frozen-garbage-{i}")
        old.append(old)
    gc.freeze()                              # the permanent generation: never collected
    for _ in range(50):
        fresh = [anchor]                     # visits a frozen object: not mirrored
        fresh.append(fresh)
        kept = []                            # held by a frozen object: reachable
        kept.append(kept)
        anchor.append(kept)
    return probes


def scenario_large():
    class Node:
        __slots__ = ("next", "payload")
    for ring_number in range(10):
        first = previous = Node()
        for i in range(10_000):
            node = Node()
            node.payload = [i] if i % 2 else (i, ring_number)
            previous.next = node
            previous = node
        previous.next = first
    KEEP.extend([Node(), {"live": [1, 2, 3]}] * 1000)
    return {}


SCENARIOS = {name[len("scenario_"):]: f for name, f in globals().items() if name.startswith("scenario_")}


# --------------------------------------------------------------------------
# The child: build, analyse, collect, compare.
# --------------------------------------------------------------------------

def probe_of(obj):
    kind = type(obj)
    if kind is list and obj and type(obj[0]) is str and obj[0].startswith(PROBE):
        return obj[0]
    if kind in (types.GeneratorType, types.CoroutineType) and obj.__name__.startswith(PROBE):
        return obj.__name__
    return None


def fate_found(probes):
    """Where each probe ended: saved in gc.garbage, alive elsewhere, or freed."""
    saved = {id(o) for o in gc.garbage}
    fates = dict.fromkeys(probes, "freed")
    for obj in gc.get_objects():
        name = probe_of(obj)
        if name in fates:
            fates[name] = "saved" if id(obj) in saved else "alive"
    return fates


def fate_predicted(analysis, ident):
    if ident in analysis.garbage_ids:
        return "saved"
    if ident in analysis.freed_ids:
        return "freed"
    return "alive"   # resurrected, or reachable all along


def count_types(names):
    counts = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def run_child(name):
    import warnings
    warnings.simplefilter("ignore")          # "coroutine was never awaited"
    gc.disable()
    import cyclebridge
    probes = SCENARIOS[name]()
    analysis = cyclebridge.find_unreachable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    gc.unfreeze()                            # so that fate_found sees frozen objects too

    saved = {id(o): type(o).__name__ for o in gc.garbage}
    live_after = {id(o) for o in gc.get_objects()}
    predicted = analysis.garbage_ids
    names = analysis.type_names
    summary = {
        "unreachable": len(analysis),
        "saved": len(saved),
        "freed": len(analysis.freed_ids),
        "resurrected": len(analysis.resurrected_ids),
        "uncertain": count_types(names[i] for i in analysis.uncertain_ids),
        "types": count_types(names.values()),
        # saved by CPython, not predicted / predicted, not saved
        "missing": count_types(saved[i] for i in set(saved) - predicted),
        "unexpected": count_types(names[i] for i in predicted - set(saved)),
        "saved_not_unreachable": len(set(saved) - analysis.ids),
        "partition_ok": (analysis.garbage_ids | analysis.freed_ids | analysis.resurrected_ids) == analysis.ids
        and not (analysis.garbage_ids & analysis.freed_ids)
        and not (analysis.garbage_ids & analysis.resurrected_ids)
        and not (analysis.freed_ids & analysis.resurrected_ids)
        and analysis.uncertain_ids <= analysis.ids
        and set(names) == analysis.ids,
        "resurrected_not_alive": len(analysis.resurrected_ids - live_after),
        "probes": {p: [fate_predicted(analysis, ident), None] for p, ident in probes.items()},
        "examined": analysis.examined,
        "roots": analysis.roots,
        "elapsed": analysis.elapsed,
    }
    for p, fate in fate_found(probes).items():
        summary["probes"][p][1] = fate
    import json
    print(json.dumps(summary))


if __name__ == "__main__" and sys.argv[1:2] == ["--scenario"]:
    run_child(sys.argv[2])
    sys.exit(0)


# --------------------------------------------------------------------------
# The tests (the parent process).
# --------------------------------------------------------------------------

import json          # noqa: E402  (the child must not import these first)
import subprocess    # noqa: E402
import unittest      # noqa: E402
import weakref       # noqa: E402

import cyclebridge   # noqa: E402


def run_scenario(name):
    result = subprocess.run([sys.executable, __file__, "--scenario", name],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"scenario {name} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class MirrorMatchesCollector(unittest.TestCase):
    """find_unreachable() against gc.collect() with gc.DEBUG_SAVEALL."""

    def check(self, name, *, minimum, finalizers_change_nothing=True):
        summary = run_scenario(name)
        print(f"\n  {name}: {summary['unreachable']} unreachable, {summary['saved']} saved, "
              f"{summary['freed']} freed and {summary['resurrected']} resurrected by finalizers, "
              f"{summary['examined']} examined, {summary['roots']} roots, "
              f"{summary['elapsed'] * 1000:.1f} ms", file=sys.stderr)
        self.assertEqual({}, summary["missing"], "saved by gc.collect(), not predicted (types)")
        self.assertEqual({}, summary["unexpected"], "predicted, not saved by gc.collect() (types)")
        self.assertEqual(0, summary["saved_not_unreachable"])
        self.assertTrue(summary["partition_ok"], "ids = garbage_ids + freed_ids + resurrected_ids")
        self.assertEqual(0, summary["resurrected_not_alive"])
        for probe, (predicted, found) in summary["probes"].items():
            self.assertEqual(predicted, found, f"fate of {probe}")
        self.assertGreaterEqual(summary["unreachable"], minimum, "the scenario made too little garbage")
        if finalizers_change_nothing:
            # The brief's check, literally: the unreachable set is gc.garbage.
            self.assertEqual(0, summary["freed"])
            self.assertEqual(0, summary["resurrected"])
            self.assertEqual(summary["unreachable"], summary["saved"])
        return summary

    def test_closures_and_cells(self):
        summary = self.check("closures", minimum=250)
        self.assertIn("cell", summary["types"])
        self.assertIn("function", summary["types"])

    def test_generators(self):
        summary = self.check("generators", minimum=20, finalizers_change_nothing=False)
        fates = {found for _, found in summary["probes"].values()}
        self.assertEqual({"freed", "saved", "alive"}, fates, "every fate exercised")
        self.assertGreater(summary["freed"], 0)
        self.assertGreater(summary["resurrected"], 0)
        self.assertEqual({"generator": 3}, summary["uncertain"],
                         "closed inside try/finally (twice: early and late in the code) and inside except")

    def test_classes_and_function_globals(self):
        summary = self.check("classes_and_globals", minimum=200)
        # The modules themselves are freed by reference counting: only
        # their dicts, which the functions' __globals__ hold, are in cycles.
        for kind in ("type", "dict", "function", "functools.partial", "property"):
            self.assertIn(kind, summary["types"])

    def test_module_dicts(self):
        summary = self.check("module_dicts", minimum=30)
        self.assertGreaterEqual(summary["types"].get("module", 0), 11)

    def test_bound_methods(self):
        summary = self.check("bound_methods", minimum=150)
        self.assertIn("method", summary["types"])
        self.assertIn("builtin_function_or_method", summary["types"])

    def test_tracked_tuples_and_dicts_of_atoms_are_garbage(self):
        summary = self.check("tracked_atoms", minimum=120)
        self.assertGreaterEqual(summary["types"].get("tuple", 0), 40)
        self.assertGreaterEqual(summary["types"].get("dict", 0), 40)

    def test_finalizers_are_flagged(self):
        summary = self.check("finalizers", minimum=10)
        self.assertEqual({"WithDel": 10}, summary["uncertain"])

    def test_stdlib_modules_cut_loose(self):
        summary = self.check("stdlib_cut_loose", minimum=2000)
        for kind in ("module", "function", "type", "dict", "cell"):
            self.assertIn(kind, summary["types"])

    def test_garbage_among_live_stdlib_modules(self):
        self.check("stdlib_in_use", minimum=500)

    def test_no_garbage_after_collect(self):
        summary = self.check("no_garbage", minimum=0)
        self.assertEqual(0, summary["unreachable"])
        self.assertGreater(summary["examined"], 10_000)

    def test_permanent_generation_is_not_collected(self):
        summary = self.check("frozen", minimum=50)
        self.assertEqual({"list": 50}, summary["types"], "only the garbage made after gc.freeze()")
        self.assertEqual({"alive"}, {found for _, found in summary["probes"].values()})

    def test_large_heap(self):
        summary = self.check("large", minimum=200_000)
        self.assertLess(summary["elapsed"], 10)


class AnalysisApi(unittest.TestCase):
    """The Python API, in this process, with automatic collection paused."""

    def setUp(self):
        self.was_enabled = gc.isenabled()
        gc.disable()
        gc.collect()

    def tearDown(self):
        gc.collect()
        if self.was_enabled:
            gc.enable()

    class Thing:
        pass

    def make_cycles(self, count):
        """count two-object cycles; returns weakrefs to one side of each."""
        refs = []
        for _ in range(count):
            a, b = self.Thing(), self.Thing()
            a.other, b.other = b, a
            refs.append(weakref.ref(a))
        return refs

    def test_len_contains_and_type_names(self):
        refs = self.make_cycles(5)
        analysis = cyclebridge.find_unreachable()
        self.assertEqual(len(analysis.ids), len(analysis))
        self.assertGreaterEqual(len(analysis), 10)   # 3.11 keeps instance attributes inline: no dicts
        for ref in refs:
            self.assertIn(ref(), analysis)
            self.assertEqual("Thing", analysis.type_names[id(ref())])
        self.assertNotIn(self, analysis)
        self.assertNotIn(refs, analysis)
        self.assertEqual(analysis.ids, set(analysis.type_names))
        self.assertIn("unreachable", repr(analysis))

    def test_statistics(self):
        self.make_cycles(3)
        tracked = len(gc.get_objects())
        analysis = cyclebridge.find_unreachable()
        self.assertLessEqual(abs(analysis.examined - tracked), 10)
        self.assertGreater(analysis.roots, 0)
        self.assertLess(analysis.roots, analysis.examined)
        self.assertGreater(analysis.elapsed, 0)

    def test_result_holds_no_reference(self):
        refs = self.make_cycles(5)
        analysis = cyclebridge.find_unreachable()
        self.assertEqual(len(refs), sum(1 for r in refs if r() is not None))
        gc.collect()
        self.assertEqual([], [r for r in refs if r() is not None])
        self.assertEqual([], analysis.objects(), "all collected since")

    def test_objects_resurrects(self):
        refs = self.make_cycles(4)
        analysis = cyclebridge.find_unreachable()
        objects = analysis.objects()
        self.assertEqual(analysis.ids, {id(o) for o in objects})
        again = cyclebridge.find_unreachable()
        self.assertEqual(0, len(again), "the list made them reachable")
        self.assertEqual(0, gc.collect())
        del objects
        self.assertEqual(analysis.ids, cyclebridge.find_unreachable().ids)
        self.assertTrue(all(r() is not None for r in refs))

    def test_automatic_collection_state_restored(self):
        gc.enable()
        cyclebridge.find_unreachable()
        self.assertTrue(gc.isenabled())
        gc.disable()
        cyclebridge.find_unreachable()
        self.assertFalse(gc.isenabled())

    def test_bad_calls(self):
        with self.assertRaises(TypeError):
            cyclebridge.find_unreachable(1)
        with self.assertRaises(TypeError):
            cyclebridge.Analysis()
        analysis = cyclebridge.find_unreachable()
        with self.assertRaises(AttributeError):
            analysis.ids = frozenset()
        with self.assertRaises(TypeError):
            analysis.objects(1)

    def test_refused_while_the_collector_runs(self):
        caught = []

        class Probe:
            def __del__(self):
                for call in (cyclebridge.find_unreachable, analysis.objects):
                    try:
                        call()
                    except RuntimeError as e:
                        caught.append(str(e))

        def callback(phase, info):
            try:
                cyclebridge.find_unreachable()
            except RuntimeError as e:
                caught.append(str(e))

        analysis = cyclebridge.find_unreachable()
        probe = Probe()
        probe.me = probe
        del probe
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        self.assertEqual(4, len(caught), caught)            # __del__ twice, start and stop
        for message in caught:
            self.assertIn("collector is running", message)


if __name__ == "__main__":
    unittest.main()
