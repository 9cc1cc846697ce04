"""Shared fuzzing machinery: example counts, byte and JSON mutations, the seeded mutation loop,
the per-input time bound and the corpus file format.

Every decoder family has one test module here that defines ``classify(parts, workdir)``: it
feeds one candidate (a list of message parts) to the decoder and returns ``"accept"`` or
``"reject <reason>"`` (the decoder's documented rejection), and it raises for anything else:
an unexpected exception, or an assertion when an accepted input breaks the module's oracle
(a stop confirmed that is not one, a frame whose samples differ from its payload). This
module holds no decoder knowledge.

Counts come from the environment so ``make test`` stays quick and ``make faults`` goes deep:

    TRIPWIRE_FUZZ_EXAMPLES        inputs per decoder for the seeded mutation loop (default 1000)
    TRIPWIRE_FUZZ_HYPOTHESIS      examples per Hypothesis test (default EXAMPLES // 10, >= 200)
    TRIPWIRE_FUZZ_SEED            seed of the mutation loops (default: fresh, printed on failure)
    TRIPWIRE_FUZZ_HANG_S          per-input CPU time bound in seconds (default 1.0)
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


EXAMPLES = _env_int("TRIPWIRE_FUZZ_EXAMPLES", 1000)
HYPOTHESIS_EXAMPLES = _env_int("TRIPWIRE_FUZZ_HYPOTHESIS", max(200, EXAMPLES // 10))
HANG_S = float(os.environ.get("TRIPWIRE_FUZZ_HANG_S", "") or 1.0)
SEED = _env_int("TRIPWIRE_FUZZ_SEED", random.SystemRandom().randrange(2**32))
# A generous per-test limit that grows with the example count (pytest-timeout's default is
# 120 s per test; 10^5 inputs need more on a loaded 2-core machine).
TEST_TIMEOUT_S = int(max(120.0, 120.0 + 0.01 * max(EXAMPLES, HYPOTHESIS_EXAMPLES)))

CORPUS = Path(__file__).resolve().parent / "corpus"

T = TypeVar("T")
Parts = list[bytes]
Classifier = Callable[[Parts, Path], str]


def fuzz_settings(max_examples: int | None = None) -> settings:
    """Hypothesis settings for fuzzing: no deadline (hangs are timed by ``timed``), no
    example database (nothing written into the checkout), fresh randomness each run."""
    return settings(
        max_examples=HYPOTHESIS_EXAMPLES if max_examples is None else max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )


def timed(classify: Classifier, parts: Parts, workdir: Path) -> str:
    """Classify one input and fail if it took longer than the hang bound."""
    return bounded(lambda: classify(parts, workdir), lambda: describe(parts))


def bounded(fn: Callable[[], T], what: Callable[[], str]) -> T:
    """Call ``fn`` and fail if it took longer than the hang bound (``what`` names the input).

    The time is this thread's CPU time with the cyclic garbage collector paused: on a loaded
    machine wall time also counts other processes' turns, and a full collection of what the
    fuzzer (Hypothesis above all) has accumulated can take seconds that belong to no input.
    A decoder that spins is caught here; one that blocks, by pytest-timeout."""
    gc_was_on = gc.isenabled()
    gc.disable()
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    try:
        return fn()
    finally:
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        if gc_was_on:
            gc.enable()
        if cpu > HANG_S:
            raise AssertionError(f"hang: one input took {cpu:.3f} s of CPU ({wall:.3f} s wall) "
                                 f"> {HANG_S} s: {what()}")


def describe(parts: Sequence[bytes]) -> str:
    shown = [bytes(p[:512]).hex() + ("..." if len(p) > 512 else "") for p in parts]
    return f"{len(parts)} part(s), sizes {[len(p) for p in parts]}: {shown}"


# --- byte mutations ---------------------------------------------------------------------

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
               0xFFFFFFFFFFFFFFFF)
WIDTHS = (1, 2, 4, 8)

Op = tuple[Any, ...]


def apply_ops(data: bytes, ops: Sequence[Op]) -> bytes:
    """Apply mutation ops in order; positions wrap around the current length."""
    buf = bytearray(data)
    for op in ops:
        kind = op[0]
        n = len(buf)
        if kind == "flip" and n:
            buf[op[1] % n] ^= 1 << (op[2] % 8)
        elif kind == "truncate":
            del buf[op[1] % (n + 1):]
        elif kind == "extend":
            buf += op[1]
        elif kind == "overwrite" and n:
            pos = op[1] % n
            buf[pos:pos + len(op[2])] = op[2]
        elif kind == "insert":
            pos = op[1] % (n + 1)
            buf[pos:pos] = op[2]
        elif kind == "delete" and n:
            pos = op[1] % n
            del buf[pos:pos + op[2]]
        elif kind == "int" and n:
            width = op[2]
            pos = op[1] % n
            value = op[3] & ((1 << (8 * width)) - 1)
            buf[pos:pos + width] = value.to_bytes(width, op[4])
        elif kind == "repeat" and n:
            pos = op[1] % n
            chunk = bytes(buf[pos:pos + op[2]])
            buf[pos:pos] = chunk * op[3]
    return bytes(buf)


# Strategies are built once (cached): building them per draw costs Hypothesis more than the
# decoders cost to run.
@functools.cache
def op_strategy(max_chunk: int = 16) -> st.SearchStrategy[Op]:
    pos = st.integers(0, 1 << 16)
    chunk = st.binary(min_size=1, max_size=max_chunk)
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("extend"), chunk),
        st.tuples(st.just("overwrite"), pos, chunk),
        st.tuples(st.just("insert"), pos, chunk),
        st.tuples(st.just("delete"), pos, st.integers(1, 16)),
        st.tuples(st.just("int"), pos, st.sampled_from(WIDTHS),
                  st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2**64 - 1)),
                  st.sampled_from(("little", "big"))),
        st.tuples(st.just("repeat"), pos, st.integers(1, 8), st.integers(1, 64)),
    )


@functools.cache
def ops_strategy(max_ops: int = 4) -> st.SearchStrategy[list[Op]]:
    return st.lists(op_strategy(), min_size=1, max_size=max_ops)


def random_op(rng: random.Random, max_chunk: int = 16) -> Op:
    pos = rng.randrange(1 << 16)
    kind = rng.choice(("flip", "flip", "truncate", "extend", "overwrite", "insert", "delete",
                       "int", "int", "repeat"))
    if kind == "flip":
        return (kind, pos, rng.randrange(8))
    if kind == "truncate":
        return (kind, pos)
    if kind in ("extend", "overwrite", "insert"):
        chunk = rng.randbytes(rng.randint(1, max_chunk))
        return (kind, chunk) if kind == "extend" else (kind, pos, chunk)
    if kind == "delete":
        return (kind, pos, rng.randint(1, 16))
    if kind == "int":
        value = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.getrandbits(64)
        return (kind, pos, rng.choice(WIDTHS), value, rng.choice(("little", "big")))
    return (kind, pos, rng.randint(1, 8), rng.randint(1, 64))


def random_mutation(data: bytes, rng: random.Random, max_ops: int = 4) -> bytes:
    return apply_ops(data, [random_op(rng) for _ in range(rng.randint(1, max_ops))])


# --- JSON values and structure-aware JSON mutations -----------------------------------------

HUGE_INT = 10**400  # beyond float range: float() overflows on it


@functools.cache
def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(), st.sampled_from((0, -1, 2**31, 2**63, 2**64, HUGE_INT, -HUGE_INT)),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=24),
        st.sampled_from(("", "\x00", "\ud800", "é", "0" * 64, "a" * 300, ",", "Infinity")),
    )


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12,
    )


def random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 3 and r < 0.15:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and r < 0.25:
        return {rng.choice(("a", "v", "cmd", "", "x" * 9)): random_json(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.choice((
        None, True, False, 0, 1, -1, 2**31, 2**63, 2**64, HUGE_INT, -HUGE_INT,
        rng.randint(-(2**70), 2**70), 0.0, -0.0, 1e-300, 1e300, math.inf, -math.inf, math.nan,
        rng.random() * 1e4, "", "\x00", "\ud800", "é", "a" * 300, ",", "status", "reset",
        rng.randbytes(rng.randint(0, 8)).decode("latin-1"),
    ))


def json_dumps_any(obj: Any) -> bytes:
    """Serialise anything ``json_values`` makes; lone surrogates stay escaped (ASCII out)."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=True).encode("ascii")


def json_candidate(draw: st.DrawFn, tree: Any, how: str) -> Parts:
    """One JSON message for a decoder, by ``how``: "valid" (the tree as is), "tree" (a field
    mutation), "tree_bytes" (a field mutation, then byte edits), "bytes" (byte edits of the
    tree), "nasty" (a hostile JSON text), "raw" (any bytes or any JSON value), "parts" (a
    list of 0-3 byte strings: the wrong number of message parts)."""
    if how == "valid":
        return [json_dumps_any(tree)]
    if how in ("tree", "tree_bytes"):
        data = json_dumps_any(draw(tree_mutations(tree)))
        if how == "tree_bytes":
            data = apply_ops(data, draw(ops_strategy()))
        return [data]
    if how == "bytes":
        return [apply_ops(json_dumps_any(tree), draw(ops_strategy()))]
    if how == "nasty":
        return [draw(st.sampled_from(NASTY_JSON))]
    if how == "raw":
        return [draw(st.one_of(st.binary(max_size=200), json_values().map(json_dumps_any)))]
    return draw(st.lists(st.binary(max_size=40), max_size=3))


def nested(depth: int, inner: bytes = b"1", template: bytes = b"%s") -> bytes:
    """``template`` with a value nested ``depth`` lists deep in place of ``%s``."""
    return template % (b"[" * depth + inner + b"]" * depth)


# JSON texts that break naive decoders outright: deep nesting (around and beyond the
# interpreter's recursion limit), long digit runs, odd tokens.
NASTY_JSON = (
    *(nested(d, template=b'{"v":1,"cmd":%s,"ok":true}') for d in (900, 960, 985, 995, 999)),
    nested(990, template=b'{"v":1,"ok":false,"error":%s}'),
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"1" * 5000,
    b'{"v":' + b"9" * 5000 + b"}",
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"\\ud800"', b"\xef\xbb\xbf{}",
    b"\xff\xfe", b"", b"null", b"[]", b'"x"', b"{}",
)


def set_path(obj: Any, path: Sequence[str | int], value: Any) -> Any:
    """A copy of a JSON-like tree with ``path`` set to ``value`` (missing keys are added)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        out[head] = set_path(obj.get(head), rest, value)
        return out
    if isinstance(obj, list) and isinstance(head, int) and 0 <= head < len(obj):
        out_list = list(obj)
        out_list[head] = set_path(obj[head], rest, value)
        return out_list
    return value


def delete_path(obj: Any, path: Sequence[str | int]) -> Any:
    if not path:
        return obj
    head, rest = path[0], path[1:]
    if isinstance(obj, dict) and head in obj:
        out = dict(obj)
        if rest:
            out[head] = delete_path(obj[head], rest)
        else:
            del out[head]
        return out
    if isinstance(obj, list) and isinstance(head, int) and 0 <= head < len(obj):
        out_list = list(obj)
        if rest:
            out_list[head] = delete_path(obj[head], rest)
        else:
            del out_list[head]
        return out_list
    return obj


def paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path into a JSON-like tree, the root excluded."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from paths(v, prefix + (i,))


def random_tree_mutation(tree: Any, rng: random.Random) -> Any:
    """Overwrite, delete or add one field somewhere in a JSON-like tree."""
    all_paths = list(paths(tree))
    r = rng.random()
    if all_paths and r < 0.6:
        return set_path(tree, rng.choice(all_paths), random_json(rng))
    if all_paths and r < 0.85:
        return delete_path(tree, rng.choice(all_paths))
    where = rng.choice([()] + [p for p in all_paths if isinstance(get_path(tree, p), dict)])
    return set_path(tree, (*where, rng.choice(("extra", "v", "x" * 40))), random_json(rng))


def get_path(tree: Any, path: Sequence[str | int]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


@st.composite
def tree_mutations(draw: st.DrawFn, tree: Any) -> Any:
    """Hypothesis version of ``random_tree_mutation``: one to three field edits."""
    return draw(tree_edits(tree, json_values()))


@st.composite
def tree_edits(draw: st.DrawFn, tree: Any, values: st.SearchStrategy[Any]) -> Any:
    """One to three edits (set, delete, add a field) of values drawn from ``values``."""
    for _ in range(draw(_ONE_TO_THREE)):
        all_paths = list(paths(tree))
        action = draw(_ACTIONS)
        if action != "add" and not all_paths:
            action = "add"
        if action == "set":
            tree = set_path(tree, pick(draw, all_paths), draw(values))
        elif action == "delete":
            tree = delete_path(tree, pick(draw, all_paths))
        else:
            tables = [()] + [p for p in all_paths if isinstance(get_path(tree, p), dict)]
            tree = set_path(tree, (*pick(draw, tables), draw(_KEYS)), draw(values))
    return tree


_ONE_TO_THREE = st.integers(1, 3)
_ACTIONS = st.sampled_from(("set", "set", "delete", "add"))
_KEYS = st.one_of(st.sampled_from(("extra", "v", "x" * 40)), st.text(max_size=8))


def pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    """One of ``items`` by index: Hypothesis caches ``integers`` by its bounds, whereas a
    ``sampled_from`` over a fresh list is a new strategy to validate on every draw."""
    return items[draw(st.integers(0, len(items) - 1))]


# --- the seeded mutation loop ----------------------------------------------------------------


@dataclass
class LoopReport:
    inputs: int
    outcomes: dict[str, int]
    slowest_s: float


def mutation_loop(
    classify: Classifier,
    seeds: Sequence[Parts],
    workdir: Path,
    n: int = EXAMPLES,
    *,
    structured: Callable[[random.Random], Parts] | None = None,
    seed: int = SEED,
    only_part: int | None = None,
) -> LoopReport:
    """``n`` inputs: each a seed (a corpus or freshly encoded valid message) mutated at the byte
    level in one of its parts, or, when ``structured`` is given, one of its outputs (a valid
    message edited at the field level) half of the time. ``only_part`` confines the byte
    mutations to one part (the others are context, e.g. the request a reply answers). A crash
    or hang fails with the seed and the input, so it can be replayed and added to the corpus."""
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    slowest = 0.0
    for i in range(n):
        if structured is not None and rng.random() < 0.5:
            parts = structured(rng)
            if rng.random() < 0.3:
                parts = _mutate_one_part(parts, rng, only_part)
        else:
            parts = _mutate_one_part(list(rng.choice(seeds)), rng, only_part)
        t0 = time.perf_counter()
        try:
            outcome = timed(classify, parts, workdir)
        except Exception as e:
            kept = keep_crash(classify, f"{seed}-{i}", parts, e)
            raise AssertionError(
                f"input {i} of the mutation loop (TRIPWIRE_FUZZ_SEED={seed}) "
                f"failed with {type(e).__name__}: {e}\nwhole input: {kept}\n"
                f"{describe(parts)}") from e
        slowest = max(slowest, time.perf_counter() - t0)
        key = outcome.split(":")[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    return LoopReport(n, outcomes, slowest)


CRASHES = Path(tempfile.gettempdir()) / "tripwire-fuzz-crashes"


def keep_crash(classify: Classifier, name: str, parts: Parts, error: Exception) -> Path:
    """Write a failing input whole (as a corpus case) where it can be picked up for the
    corpus: ``$TMPDIR/tripwire-fuzz-crashes/<module>-<name>.case``."""
    module = classify.__module__.rsplit(".", 1)[-1]
    note = f"{type(error).__name__}: {error}"[:300]
    return write_case(CRASHES, Case(f"{module}-{name}", "crash", parts, note))


def _mutate_one_part(parts: Parts, rng: random.Random, only_part: int | None = None) -> Parts:
    if only_part is not None and only_part < len(parts):
        out = list(parts)
        raw = rng.random() < 0.04
        out[only_part] = (rng.randbytes(rng.randint(0, 256)) if raw
                          else random_mutation(parts[only_part], rng))
        return out
    if not parts:
        return [rng.randbytes(rng.randint(0, 64))]
    r = rng.random()
    if r < 0.04:  # raw bytes instead of the message
        return [rng.randbytes(rng.randint(0, 256)) for _ in parts]
    if r < 0.06:  # one part too many or too few
        return parts[:-1] if rng.random() < 0.5 else parts + [rng.randbytes(4)]
    i = rng.randrange(len(parts))
    out = list(parts)
    out[i] = random_mutation(parts[i], rng)
    return out


# --- corpus files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    expect: str
    parts: Parts
    note: str = ""


def write_case(directory: Path, case: Case) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"expect: {case.expect}"]
    if case.note:
        lines.append(f"note: {' '.join(case.note.split())}")
    lines += [f"part: {p.hex()}" for p in case.parts]
    path = directory / f"{case.name}.case"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def read_case(path: Path) -> Case:
    expect, note, parts = "", "", []
    for line in path.read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(": ")
        if key == "expect":
            expect = value.strip()
        elif key == "note":
            note = value.strip()
        elif key == "part":
            parts.append(bytes.fromhex(value.strip()))
        elif line.strip() in ("part:", "part: "):
            parts.append(b"")
    if not expect:
        raise ValueError(f"{path}: no 'expect:' line")
    return Case(path.stem, expect, parts, note)


def corpus_cases(decoder: str) -> list[Case]:
    return [read_case(p) for p in sorted((CORPUS / decoder).glob("*.case"))]


def corpus_parts(decoder: str) -> list[Parts]:
    return [c.parts for c in corpus_cases(decoder)]
