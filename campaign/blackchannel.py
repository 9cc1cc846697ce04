"""The black-channel rows: every error class on a live frame stream, heartbeat counters,
skewed source clocks (issue 5). ``CASES`` lists them; this module holds ``black_channel``.

``black_channel``: a real monitor process (``tripwire run monitor``, started by the
Supervisor) is fed by this case's own ZeroMQ PUB with a genuine frame stream (the simulated
plant's normal signal, source 1 of the demo cell, stamped and sealed as a source of this
cell does, paced at 5x real time), into which each error class is injected in turn:

    corruption     one bit flipped in the header or in the payload    -> decode_bad_crc
    repetition     a frame sent twice                                  -> repeat
    reorder        frame k+1 before frame k                            -> reorder
    loss           frame k never sent                                  -> gap, frames_missed
    delay          frame k held 1.2x..2.5x the delay bound             -> stale
    insertion      a sealed frame of this source numbered far ahead    -> insertion
    masquerade     frame k sealed by another sender (fan-2, a spare)   -> decode_masquerade
    wrong_address  frame k sealed for another cell                     -> decode_wrong_address
    control        frame k held 0.9x the delay bound                   -> accepted, nothing counted

A trial passes when the monitor's counters (read over its status socket, ``bus.monitor_ctl``)
moved by exactly the class's signature and by nothing else, and the action followed: a frame
that leaves a hole in the stream (all but repetition, insertion and control) makes the next
verdict of that source carry GAP, as seen on the monitor's output socket; the others leave
no GAP behind. Reaction times are not this row's figure (detection is per frame, and what
the interlock does with verdicts is timed by other rows).

Genuine frames are stamped as they leave, so one judged stale was held up by a stall of
this machine: this publisher descheduled, ZeroMQ's I/O threads, or the monitor's loop (its
heartbeats show that one). The control has 5 ms of margin (0.1 of the 50 ms bound), so a
stall longer than that makes its frame truly older than the bound. A failed trial that such
a stall spoilt (a stale count it did not inject, or a stall seen beyond its margin) is run
again, at most MAX_REPEATS times, and listed in ``details``: a loaded machine's stall is
not a black-channel fault (the monitor's stalls are timed by other rows), and a bound that
were really too strict would fail every repeat.

Shell: processes, sockets, sleeps for pacing; everything torn down at the end.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import zmq

from campaign.case import CaseResult, CaseSpec, Context, Trial, judge
from campaign.heartbeat_counter import heartbeat_counter
from campaign.source_skew import cell_bundle, source_skew
from sim.plant import Plant
from tripwire import config, messages
from tripwire.control import ControlTimeout, command
from tripwire.messages import FrameLinks, Link, VerdictFlag
from tripwire.stack import demo_table
from tripwire.supervisor import Supervisor

CLASSES = ("corruption", "repetition", "reorder", "loss", "delay", "insertion", "masquerade",
           "wrong_address", "control")
HOLE = {"corruption", "reorder", "loss", "delay", "masquerade", "wrong_address"}
SIGNATURE: dict[str, dict[str, int]] = {  # reject counters each class must move, by how much
    "corruption": {"decode_bad_crc": 1}, "repetition": {"repeat": 1}, "reorder": {"reorder": 1},
    "loss": {}, "delay": {"stale": 1}, "insertion": {"insertion": 1},
    "masquerade": {"decode_masquerade": 1}, "wrong_address": {"decode_wrong_address": 1},
    "control": {},
}
CELL = "campaign-cell"
SOURCE = 1
PACE_S = 0.004  # between frames: 5x real time (a frame is 20 ms of signal)
FOLLOW = 10  # genuine frames after each injection: one more window than a hole resets
WAIT_S = 5.0
MAX_REPEATS = 2  # a trial spoilt by a stall of the monitor itself is run again, and reported


def _monitor_table(bundle: Path, ipc: Path) -> dict[str, Any]:
    table = demo_table(bundle=str(bundle), fault=None)
    table["bus"] = {"frames": f"ipc://{ipc}/frames", "monitor_out": f"ipc://{ipc}/out",
                    "monitor_ctl": f"ipc://{ipc}/ctl", "interlock_cmd": f"ipc://{ipc}/il",
                    "sim_ctl": f"ipc://{ipc}/sim", "cell": CELL}
    table["log"] = {"format": "json"}
    return table


class _Bench:
    """The case's side of the bus: a frame publisher, a verdict subscriber, a status client."""

    def __init__(self, cfg: config.Config, zctx: zmq.Context[Any]) -> None:
        self.cfg = cfg
        self.zctx = zctx
        self.plant = Plant(cfg.sources, cfg.sim)
        self.rate = cfg.source(SOURCE).sample_rate_hz
        self.link = FrameLinks.for_cell(CELL, [(s.id, s.name) for s in cfg.sources]).link(SOURCE)
        self.monitor = Link.monitor(CELL, cfg.monitor.monitor_id)
        self.pub = zctx.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.connect(cfg.bus.frames)
        self.sub = zctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.subscribe(b"")
        self.sub.connect(cfg.bus.monitor_out)
        self.seq = 0
        self.gap_seqs: list[int] = []  # seq of every source-1 verdict flagged GAP
        self.last_verdict_seq = -1
        self.last_hb_ns = 0
        self.hb_gap_max_ns = 0  # the monitor's longest silence since the last reset
        self.stamped_ns = 0
        self.lag_max_ns = 0  # the longest stamp-to-send of ours since the last reset

    def close(self) -> None:
        self.pub.close(0)
        self.sub.close(0)

    # -- frames --
    def frame(self, seq: int | None = None) -> messages.Frame:
        """The source's next frame of signal (numbered ``seq``, the stream's next by default),
        not stamped yet: ``seal`` stamps it right before it leaves."""
        return messages.Frame(SOURCE, self.seq if seq is None else seq, 0, 0, self.rate,
                              self.plant.next_frame(SOURCE))

    def seal(self, frame: messages.Frame, link: Link | None = None,
             age_ns: int = 0) -> tuple[bytes, bytes]:
        """Stamped now (acquired ``age_ns`` ago) and encoded with ``link``."""
        now = self.stamped_ns = time.monotonic_ns()
        f = dataclasses.replace(frame, t_acq_ns=now - age_ns, t_pub_ns=now)
        header, payload = messages.encode_frame(f, self.link if link is None else link)
        return header, bytes(payload)

    def send_parts(self, header: bytes, payload: bytes) -> None:
        self.pub.send_multipart([header, payload])
        # A publisher that was descheduled between stamp and send made a late frame itself.
        self.lag_max_ns = max(self.lag_max_ns, time.monotonic_ns() - self.stamped_ns)

    def send(self, frame: messages.Frame, link: Link | None = None, age_ns: int = 0) -> None:
        self.send_parts(*self.seal(frame, link, age_ns))

    def genuine(self, n: int) -> None:
        for _ in range(n):
            self.send(self.frame())
            self.seq += 1
            self.drain()
            time.sleep(PACE_S)

    # -- observation --
    def drain(self) -> None:
        while self.sub.poll(0, zmq.POLLIN):
            msg = messages.decode_monitor_message(self.sub.recv(), self.monitor)
            if isinstance(msg, messages.Heartbeat):
                if self.last_hb_ns:
                    self.hb_gap_max_ns = max(self.hb_gap_max_ns, msg.t_ns - self.last_hb_ns)
                self.last_hb_ns = msg.t_ns
            elif msg.source_id == SOURCE and not msg.flags & VerdictFlag.STALE:
                self.last_verdict_seq = max(self.last_verdict_seq, msg.seq)
                if msg.flags & VerdictFlag.GAP:
                    self.gap_seqs.append(msg.seq)

    def status(self) -> dict[str, Any]:
        return command(self.zctx, self.cfg.bus.monitor_ctl, "status", timeout_ms=2000)

    def wait(self, probe: Any, timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            self.drain()
            got = probe()
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.002)


def _inject(b: _Bench, kind: str, rng: random.Random, max_age_s: float) -> str:
    """One injection at the stream's next frame; returns what was done, for the notes."""
    k = b.seq
    if kind == "corruption":
        header, payload = b.seal(b.frame())
        where = rng.choice(("header", "payload"))
        data = bytearray(header if where == "header" else payload)
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        b.send_parts(bytes(data), payload) if where == "header" else b.send_parts(header, bytes(data))
        b.seq += 1
        return f"bit {bit} of the {where}"
    if kind == "repetition":
        sealed = b.seal(b.frame())
        b.send_parts(*sealed)
        b.send_parts(*sealed)
        b.seq += 1
        return f"seq {k} twice"
    if kind == "reorder":
        first = b.seal(b.frame(k))
        second = b.seal(b.frame(k + 1))  # acquired after k, as a reorder's are
        b.send_parts(*second)
        time.sleep(PACE_S)
        b.send_parts(*first)
        b.seq += 2
        return f"seq {k + 1} before {k}"
    if kind == "loss":
        b.plant.next_frame(SOURCE)  # the signal goes on; the frame never reaches the bus
        b.seq += 1
        return f"seq {k} lost"
    if kind in ("delay", "control"):
        hold_ns = round(max_age_s * 1e9 * (0.9 if kind == "control" else rng.uniform(1.2, 2.5)))
        f = b.frame()
        time.sleep(hold_ns / 1e9)  # nothing else of this source moves meanwhile: late, not reordered
        b.send(f, age_ns=hold_ns)  # acquired exactly hold_ns before it leaves, however long the sleep
        b.seq += 1
        return f"seq {k} held {hold_ns / 1e6:.1f} ms"
    if kind == "insertion":
        seq = k + rng.randrange(10_000, 10**9)
        b.send(b.frame(seq))
        return f"seq {seq} inserted before {k}"
    if kind == "masquerade":
        sender = rng.choice((Link.source(CELL, 2, "fan-2"), Link.source(CELL, SOURCE, "pump-1-spare")))
        b.send(b.frame(), sender)
        b.seq += 1
        return f"seq {k} from origin {sender.origin:#010x}"
    other = f"{CELL}-{rng.randrange(1, 1000)}"
    b.send(b.frame(), Link.source(other, SOURCE, "pump-1"))
    b.seq += 1
    return f"seq {k} for cell {other!r}"


def _delta(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    d: Counter[str] = Counter(after["rejected"])
    d.subtract(before["rejected"])
    for key in ("gaps", "frames_missed"):
        d[key] = after[key] - before[key]
    return +d  # only what moved


def _trial(b: _Bench, kind: str, rng: random.Random, max_age_s: float) -> tuple[Trial, bool]:
    """One injection and its judgement, and whether a stall of the machine spoilt it."""
    b.drain()
    b.hb_gap_max_ns = b.lag_max_ns = 0
    before = b.status()
    k = b.seq
    what = _inject(b, kind, rng, max_age_s)
    b.genuine(FOLLOW)
    last = b.seq - 1
    expected: Counter[str] = Counter(SIGNATURE[kind])
    if kind in HOLE:  # the next accepted frame finds one missing (a reorder's k+1 finds k)
        expected.update({"gaps": 1, "frames_missed": 1})

    def settled() -> dict[str, Any] | None:
        st = b.status()
        done = st["last_seq"][str(SOURCE)] == last and _delta(before, st) == expected
        seen = b.last_verdict_seq >= last and (kind not in HOLE or any(s > k for s in b.gap_seqs))
        return st if done and seen else None

    after = b.wait(settled) or b.status()
    got = _delta(before, after)
    gap_flagged = any(s > k for s in b.gap_seqs)
    b.gap_seqs.clear()
    # Only a stall (ours, the bus's or the monitor's) makes a frame stamped as it left late.
    spoilt = got["stale"] > expected["stale"] or _stalled(b, kind, max_age_s)
    if got != expected:
        return Trial(False, note=f"{kind} ({what}): counters moved {dict(got)}, "
                     f"expected {dict(expected)}"), spoilt
    if gap_flagged != (kind in HOLE):
        return Trial(False, note=f"{kind} ({what}): GAP verdict "
                     f"{'seen' if gap_flagged else 'missing'}"), spoilt
    if after["last_seq"][str(SOURCE)] != last:
        return Trial(False, note=f"{kind} ({what}): the stream stalled at {after['last_seq']}"), spoilt
    return Trial(True, note=kind), False


def _resync(b: _Bench) -> None:
    """After a spoilt trial: genuine frames until the monitor has scored them all, so nothing
    of it (a late GAP verdict) is taken for the next trial's."""
    b.genuine(FOLLOW)
    b.wait(lambda: b.last_verdict_seq >= b.seq - 1)
    b.gap_seqs.clear()


def _start(b: _Bench, timeout_s: float = 120.0) -> None:
    """Until the monitor answers and has scored a window of ours (its clock for us learned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            b.status()
            break
        except ControlTimeout:
            if time.monotonic() > deadline:
                raise TimeoutError("the monitor never answered on its status socket") from None
    while b.last_verdict_seq < 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the monitor never scored the campaign's frames")
        b.genuine(1)


def _stalled(b: _Bench, kind: str, max_age_s: float) -> bool:
    """Whether the monitor's loop (its heartbeats show it) or our publisher (stamp to send)
    stood still long enough to spoil the trial: longer than the class's margin (the
    control's frame is 0.1 of the bound from it; any other class holds until a genuine
    frame would age past the bound)."""
    margin_s = max_age_s * (0.1 if kind == "control" else 1.0)
    return max(b.hb_gap_max_ns, b.lag_max_ns) > margin_s * 1e9


def black_channel(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(ctx.seed)
    per_class = max(1, trials // len(CLASSES))
    plan = [kind for kind in CLASSES for _ in range(per_class)]
    rng.shuffle(plan)
    ipc = Path(tempfile.mkdtemp(prefix="tw-bc-"))
    table = _monitor_table(cell_bundle(ctx), ipc)
    cfg = config.from_dict(table)
    max_age_s = cfg.monitor.max_frame_age_ms / 1e3
    path = ctx.work_dir / "tripwire.toml"
    path.write_text(config.dumps_toml(config.to_dict(cfg)))
    zctx: zmq.Context[Any] = zmq.Context()
    results: list[Trial] = []
    by_class: Counter[str] = Counter()
    repeated: list[str] = []
    try:
        with Supervisor(ctx.work_dir / "logs") as sup:
            sup.start("monitor", "monitor", path)
            bench = _Bench(cfg, zctx)
            try:
                _start(bench)
                for kind in plan:
                    for _attempt in range(1 + MAX_REPEATS):
                        t, spoilt = _trial(bench, kind, rng, max_age_s)
                        if t.ok or not spoilt:
                            break
                        repeated.append(f"{t.note} (monitor silent {bench.hb_gap_max_ns / 1e6:.1f} ms, "
                                        f"publisher late {bench.lag_max_ns / 1e6:.1f} ms)")
                        _resync(bench)
                    results.append(t)
                    by_class[kind] += t.ok
                    ctx.progress(1)
                final = bench.status()
            finally:
                bench.close()
    finally:
        zctx.destroy(linger=0)
        shutil.rmtree(ipc, ignore_errors=True)
    rule = ("each class detected and counted under its own reason, nothing else counted; a "
            "hole flags GAP on the next window; a 0.9x-delay control is accepted")
    return judge("black_channel", rule, results, details={
        "passed_per_class": dict(by_class), "trials_per_class": per_class,
        "monitor_rejected": final["rejected"], "delay_bound_ms": cfg.monitor.max_frame_age_ms,
        "repeated_after_monitor_stall": repeated[:20], "repeats": len(repeated),
    })


CASES = [
    CaseSpec("black_channel", 100 * len(CLASSES), 3 * len(CLASSES), black_channel),
    CaseSpec("heartbeat_counter", 1001, 21, heartbeat_counter),
    CaseSpec("source_skew", 20, 2, source_skew),
]
