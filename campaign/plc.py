"""The PLC campaign rows: link faults, stop-write failures and the reconnect soak.

Every row drives a real interlock process (``plc_cell.InterlockCell``) with one stop target
and judges only what that process reports (trip records, alarms, status), with the PLC's
own state as a cross-check:

- ``plc_unreachable``, ``plc_rst``, ``plc_frozen``, ``plc_reboot``: the simulated PLC
  (``sim.plc_*``) behind a loopback fault proxy (``plc_proxy``). Trials alternate Modbus and
  OPC-UA. A stop is requested at a random moment in the first 2.5 T_hb of the fault; pass:
  the stop is never reported delivered (trip reply, status while the fault lasts, status
  after the late delivery), the stop never reached the PLC, and an alarm naming the fault
  (``plc_heartbeat_failed:<target>`` or ``stop_undelivered``) was raised within 2 x T_hb.
- ``stop_write_errors``: one trial per wrong reply, from a scripted Modbus PLC
  (``plc_modbus_peer``) or an asyncua PLC with injected statuses (``plc_hosts``, and
  ``opcua_rewrite`` for the WriteResponse's service result); pass: zero false successes.
- ``reconnect_soak``: disconnect/reconnect cycles through the proxy; pass: every cycle
  recovers without a restart, and the interlock process ends with no more file
  descriptors or threads than after warm-up and less than 5 MB more resident memory.

The trial logic lives in ``plc_trials`` (link faults, soak) and ``plc_errors`` (wrong replies);
this module holds the rows.
"""

from __future__ import annotations

import random
from contextlib import ExitStack

from asyncua.ua.status_codes import StatusCodes

from campaign import plc_errors as pe
from campaign import plc_trials as pt
from campaign.case import CaseFn, CaseResult, CaseSpec, Context, Trial, judge
from campaign.plc_modbus_peer import FAULTS as MODBUS_FAULTS

T_HB_MS = pt.TIMING.plc_heartbeat_ms
KINDS = ("modbus", "opcua")
LINK_FAULTS = {"plc_unreachable": "unreachable", "plc_rst": "rst", "plc_frozen": "frozen",
               "plc_reboot": "reboot"}
LINK_RULE = ("stop never reported delivered; fault alarmed within 2 x T_hb "
             f"({2 * T_HB_MS:g} ms)")
SOAK_RULE = "recovers every cycle without restart; no fd or thread growth; RSS growth < 5 MB"
SOAK_MIX = (f"per target, cycle k % {pt.FREEZE_EVERY} == {pt.FREEZE_EVERY // 2}: link silent for "
            f"{pt.FREEZE_S:g} s; the others: every connection dropped, RST or FIN at random")
ERRORS_RULE = "zero false successes: every wrong reply is a failed delivery"

BAD_CODES = tuple(sorted(n for n in dir(StatusCodes) if n.startswith("Bad")))
# Response-header service results asyncua's client lets through (severity Good) or not.
HEADER_CODES = ("GoodCompletesAsynchronously", "GoodCallAgain", "GoodNoData", "GoodMoreData",
                "UncertainLastUsableValue", "BadTimeout", "BadTooManyOperations")
ERROR_CODES: tuple[str, ...] = (
    tuple(f"modbus:{f}" for f in MODBUS_FAULTS)
    + tuple(f"opcua:{c}" for c in (*BAD_CODES, "GoodCompletesAsynchronously"))
    + tuple(f"opcua-service:{c}" for c in BAD_CODES)
    + tuple(f"opcua-header:{c}" for c in HEADER_CODES)
)
HANDFUL = ("modbus:exception_0x04", "modbus:wrong_tid", "modbus:truncated_body",
           "opcua:GoodCompletesAsynchronously", "opcua-header:GoodCompletesAsynchronously",
           "opcua-service:BadTooManyOperations")


def _link_case(name: str) -> CaseFn:
    fault = LINK_FAULTS[name]

    def run(ctx: Context, trials: int) -> CaseResult:
        rng = random.Random(f"{ctx.seed}:{name}")
        results: list[Trial] = []
        with ExitStack() as stack:
            # Every rig up before the first trial: a start-up's CPU burst stays out of trials.
            rigs = {kind: stack.enter_context(pt.LinkRig(kind, ctx.work_dir / name))
                    for kind in KINDS[:min(trials, len(KINDS))]}
            for i in range(trials):
                kind = KINDS[i % 2]
                results.append(pt.link_trial(rigs[kind], fault, rng, name))
                ctx.progress(1)
        return judge(name, LINK_RULE, results, limit_ms=2 * T_HB_MS,
                     details={"targets": sorted({KINDS[i % 2] for i in range(trials)}),
                              "fault": fault, "t_hb_ms": T_HB_MS, "cell": pt.cell_details(),
                              "reaction": "fault injected -> first alarm naming it (interlock's clock)"})
    return run


def error_codes(trials: int) -> list[str]:
    """The codes a run of ``trials`` covers: all of them (repeated) when there is room, else
    the handful first and then an even spread of the rest."""
    if trials >= len(ERROR_CODES):
        return [ERROR_CODES[i % len(ERROR_CODES)] for i in range(trials)]
    picked = list(HANDFUL[:trials])
    rest = [c for c in ERROR_CODES if c not in picked]
    need = trials - len(picked)
    if need > 0:
        step = len(rest) / need
        picked += [rest[int(i * step)] for i in range(need)]
    return picked


def run_stop_write_errors(ctx: Context, trials: int) -> CaseResult:
    codes = error_codes(trials)
    results: list[Trial] = []
    kinds = sorted({"modbus" if c.startswith("modbus:") else "opcua" for c in codes})
    with ExitStack() as stack:
        rigs = {kind: stack.enter_context(pe.ErrorRig(kind, ctx.work_dir / "stop_write_errors"))
                for kind in kinds}
        for code in codes:
            results.append(pe.error_trial(rigs["modbus" if code.startswith("modbus:") else "opcua"], code))
            ctx.progress(1)
    covered = {prefix: sum(c.startswith(prefix + ":") for c in codes)
               for prefix in ("modbus", "opcua", "opcua-service", "opcua-header")}
    return judge("stop_write_errors", ERRORS_RULE, results,
                 details={"targets": sorted({c.split(":")[0].split("-")[0] for c in codes}),
                          "codes": covered,
                          "levels": {"modbus": "exception replies 0x01-0x0B and malformed replies",
                                     "opcua": "per-node WriteResponse result",
                                     "opcua-service": "ServiceFault for the whole request",
                                     "opcua-header": "WriteResponse header ServiceResult, results Good"},
                          "cell": pt.cell_details()})


def run_reconnect_soak(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(f"{ctx.seed}:reconnect_soak")
    results: list[Trial] = []
    leaks: dict[str, dict[str, int]] = {}
    with ExitStack() as stack:
        rigs = {kind: stack.enter_context(pt.LinkRig(kind, ctx.work_dir / "reconnect_soak"))
                for kind in KINDS[:min(trials, len(KINDS))]}
        for rig in rigs.values():
            rig.warm_up(rng)
        last: dict[str, int] = {}
        for i in range(trials):
            kind = KINDS[i % 2]
            freeze = (i // 2) % pt.FREEZE_EVERY == pt.FREEZE_EVERY // 2
            results.append(pt.soak_cycle(rigs[kind], rng, freeze=freeze))
            last[kind] = len(results) - 1
            ctx.progress(1)
        for kind, rig in rigs.items():
            growth, note = rig.growth()
            leaks[kind] = growth
            if note:  # a leak fails the row: charged to that target's last cycle
                i = last[kind]
                results[i] = Trial(False, results[i].reaction_ms, f"{kind}: {note}")
    recovery: dict[str, dict[str, float]] = {}
    for kind in leaks:
        times = sorted(t.reaction_ms for i, t in enumerate(results)
                       if KINDS[i % 2] == kind and t.reaction_ms is not None)
        if times:
            recovery[kind] = {"cycles": len(times), "p50_ms": times[len(times) // 2], "max_ms": times[-1]}
    return judge("reconnect_soak", SOAK_RULE, results,
                 details={"targets": sorted(leaks), "growth_after_warm_up": leaks, "recovery": recovery,
                          "cycles": SOAK_MIX,
                          "reaction": "disconnect (or the end of a silence) -> PLC heartbeat moving again",
                          "cell": pt.cell_details()})


CASES: list[CaseSpec] = [
    *(CaseSpec(name, 20, 2, _link_case(name)) for name in LINK_FAULTS),
    CaseSpec("stop_write_errors", len(ERROR_CODES), len(HANDFUL), run_stop_write_errors),
    CaseSpec("reconnect_soak", 1000, 20, run_reconnect_soak),
]
