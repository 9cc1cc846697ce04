"""One typed configuration, parsed once from TOML in ``main()``.

Each component receives only its own section through its constructor. Unknown keys,
wrong types and out-of-range values refuse to start with a ``ConfigError`` naming the
key (``interlock.deadline_ms: must be > 0, got -1``). Nothing here reads the
environment or a clock.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A configuration that must not start; the message names the key."""


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")


MAX_CELL_NAME = 64
MAX_SKEW_MS = 86_400_000.0  # a simulated source clock at most a day off
MAX_FRAME_DELAY_MS = 60_000.0
MAX_GRAPH_BATCH = 4096  # monitor.graph_batch_sizes (models.providers.MAX_GRAPH_BATCH)
MAX_BATCH_ROWS = 1024
MAX_GATE_MS = 1000.0
MAX_DOWN_RATIO = 2.0  # p99 verdict age as a fraction of the verdict budget
_TIER_NAME = re.compile(r"[a-z0-9_]+")


def _priority(key: str, value: int) -> None:
    if not 0 <= value <= 99:
        raise ConfigError(f"{key}: must be 0 (off) or a SCHED_FIFO priority 1..99, got {value}")


MAX_CPU = 4095


def _cpus(key: str, value: list[int]) -> None:
    if any(not 0 <= c <= MAX_CPU for c in value) or len(set(value)) != len(value):
        raise ConfigError(f"{key}: distinct CPU numbers 0..{MAX_CPU} (empty = any CPU), got {value}")


@dataclass(frozen=True, slots=True)
class BusConfig:
    frames: str = "ipc:///tmp/tripwire/frames"
    monitor_out: str = "ipc:///tmp/tripwire/monitor"
    interlock_cmd: str = "ipc:///tmp/tripwire/interlock"
    sim_ctl: str = "ipc:///tmp/tripwire/sim"
    # The monitor's status socket (REP, JSON counters); "" = none.
    monitor_ctl: str = ""
    # This cell's name: every frame, verdict and heartbeat carries its address, and every
    # receiver refuses messages addressed to another cell (tripwire.messages, black channel).
    cell: str = "cell-1"

    def check(self, key: str) -> None:
        if not 0 < len(self.cell) <= MAX_CELL_NAME or self.cell != self.cell.strip() \
                or not self.cell.isprintable() or not self.cell.isascii():
            raise ConfigError(f"{key}.cell: 1..{MAX_CELL_NAME} printable ASCII characters without "
                              f"leading or trailing spaces, got {self.cell!r}")
        if self.monitor_ctl and not self.monitor_ctl.startswith(("ipc://", "tcp://", "inproc://")):
            raise ConfigError(f"{key}.monitor_ctl: must be an ipc://, tcp:// or inproc:// endpoint "
                              f"(or empty), got {self.monitor_ctl!r}")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    id: int
    name: str
    channels: list[str]
    sample_rate_hz: float = 6400.0
    frame_samples: int = 128
    kind: Literal["sim", "replay"] = "sim"
    path: str = ""
    # Plausible range per sample; values outside are invalid input, not anomalies.
    min_value: float = -1e4
    max_value: float = 1e4

    def check(self, key: str) -> None:
        if not 0 <= self.id <= 0xFFFFFFFF:  # a frame header's source_id field
            raise ConfigError(f"{key}.id: must be 0..4294967295, got {self.id}")
        _positive(f"{key}.sample_rate_hz", self.sample_rate_hz)
        _positive(f"{key}.frame_samples", self.frame_samples)
        if not self.channels:
            raise ConfigError(f"{key}.channels: must name at least one channel")
        if len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"{key}.channels: duplicate channel names")
        if self.kind == "replay" and not self.path:
            raise ConfigError(f"{key}.path: a replay source needs a file path")
        if not self.min_value < self.max_value:
            raise ConfigError(f"{key}.min_value: must be < max_value")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    bundle: str = ""
    window: int = 1024
    hop: int = 128
    heartbeat_ms: float = 2.0
    max_frame_age_ms: float = 50.0
    stale_after_ms: float = 200.0
    intra_op_threads: int = 1
    providers: Literal["auto", "cpu", "cuda", "tensorrt"] = "auto"
    monitor_id: int = 1
    # File holding the site key that signs model bundles ("" = the documented development key).
    bundle_key_file: str = ""
    # SCHED_FIFO priority once warm (0 = normal scheduling); below the interlock's.
    realtime_priority: int = 0
    # CPUs the process runs on (empty = any). Give the monitor and the interlock the same
    # one: a CPU that stalls then stalls both, and the interlock can tell (tripwire/realtime.py).
    # At plant load give them one each instead (README, "Configuration").
    cpus: list[int] = field(default_factory=list)
    # CPUs for ZeroMQ's I/O thread alone (empty = as ``cpus``). At plant load, the
    # interlock's: the monitor's loop then has its CPU to itself, and frames and verdicts move
    # while it computes (tripwire/realtime.py).
    io_cpus: list[int] = field(default_factory=list)
    # Test-only fault hooks (the fault-injection campaign): SIGUSR1 makes the next model call
    # sleep fault_stall_ms. Off in every real deployment; logged loudly when on.
    fault_hooks: bool = False
    fault_stall_ms: float = 20.0
    # Dynamic batching (monitor/batching.py): a batch of windows goes to the model when it
    # holds batch_max_rows, when its oldest row has waited batch_gate_ms, when the oldest
    # row's slack to its verdict deadline falls below the predicted time of the call, or
    # (unless batch_wait_when_idle) as soon as the input is drained and the model is idle.
    batch_max_rows: int = 32
    batch_gate_ms: float = 5.0
    batch_wait_when_idle: bool = False
    # One inference thread scores batch k while the loop reads frames and computes the
    # features of batch k + 1 (false: the model runs in the loop's own thread). Off by
    # default: on a CPU provider the bench measured no gain (a small model's call is shorter
    # than the hand-over), and the GIL hand-over back to the loop can take a switch interval,
    # long enough to withhold heartbeats. Worth turning on where a call is long and GIL-free
    # (a GPU provider, a large model): measure with `tripwire bench`.
    pipeline: bool = False
    # Windows of an idle machine (decision.idle_channel rule) skip the model (false: scored,
    # but still decided as idle).
    idle_skip: bool = True
    # Model tiers (a tiered bundle): "auto" steps down teacher -> student -> int8 when the p99
    # verdict age over governor_window_ms exceeds governor_down_ratio x the verdict budget or
    # the process uses more than governor_cpu_high of one core, and back up once the p99 has
    # stayed under governor_up_ratio x budget (and the CPU under governor_cpu_low) for
    # governor_hold_s. "off": the start tier stays. bundle_tier: the start tier ("" = the
    # bundle's default tier).
    governor: Literal["off", "auto"] = "auto"
    bundle_tier: str = ""
    governor_window_ms: float = 500.0
    governor_down_ratio: float = 0.5
    governor_up_ratio: float = 0.25
    governor_hold_s: float = 2.0
    governor_cpu_high: float = 0.9
    governor_cpu_low: float = 0.7
    # Execution providers (models/providers.ScorerOptions). cuda_graphs: with the CUDA
    # provider, one captured graph per size in graph_batch_sizes, a batch padded to the next
    # (off until gpu_check on the target shows it helps). TensorRT: engine and timing caches
    # in trt_cache_dir (an absolute path writable by the service only; "" = none, engines
    # rebuilt at every start), fp16 only with trt_fp16.
    cuda_graphs: bool = False
    graph_batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    trt_cache_dir: str = ""
    trt_fp16: bool = False

    def check(self, key: str) -> None:
        if not 0 <= self.monitor_id <= 0xFFFFFFFF:  # a heartbeat's monitor_id field
            raise ConfigError(f"{key}.monitor_id: must be 0..4294967295, got {self.monitor_id}")
        _positive(f"{key}.window", self.window)
        _positive(f"{key}.hop", self.hop)
        if self.window % self.hop:
            raise ConfigError(f"{key}.window: must be a multiple of hop ({self.hop})")
        _positive(f"{key}.heartbeat_ms", self.heartbeat_ms)
        _positive(f"{key}.max_frame_age_ms", self.max_frame_age_ms)
        if self.bundle_key_file != self.bundle_key_file.strip():
            raise ConfigError(f"{key}.bundle_key_file: leading or trailing whitespace in "
                              f"{self.bundle_key_file!r}")
        _priority(f"{key}.realtime_priority", self.realtime_priority)
        _cpus(f"{key}.cpus", self.cpus)
        _cpus(f"{key}.io_cpus", self.io_cpus)
        if not 0 < self.fault_stall_ms <= 60_000:
            raise ConfigError(f"{key}.fault_stall_ms: must be in (0, 60000], got {self.fault_stall_ms}")
        if not 1 <= self.batch_max_rows <= MAX_BATCH_ROWS:
            raise ConfigError(f"{key}.batch_max_rows: must be 1..{MAX_BATCH_ROWS}, "
                              f"got {self.batch_max_rows}")
        if not 0 <= self.batch_gate_ms <= MAX_GATE_MS:  # NaN fails too
            raise ConfigError(f"{key}.batch_gate_ms: must be in [0, {MAX_GATE_MS:g}], "
                              f"got {self.batch_gate_ms}")
        if self.bundle_tier and not _TIER_NAME.fullmatch(self.bundle_tier):
            raise ConfigError(f"{key}.bundle_tier: a tier name (lowercase letters, digits, '_') "
                              f"or empty, got {self.bundle_tier!r}")
        _positive(f"{key}.governor_window_ms", self.governor_window_ms)
        _positive(f"{key}.governor_hold_s", self.governor_hold_s)
        if not 0 < self.governor_up_ratio < self.governor_down_ratio <= MAX_DOWN_RATIO:
            raise ConfigError(f"{key}.governor_up_ratio: need 0 < governor_up_ratio < "
                              f"governor_down_ratio <= {MAX_DOWN_RATIO:g}, got "
                              f"{self.governor_up_ratio} and {self.governor_down_ratio}")
        if not 0 < self.governor_cpu_low < self.governor_cpu_high:
            raise ConfigError(f"{key}.governor_cpu_low: need 0 < governor_cpu_low < "
                              f"governor_cpu_high, got {self.governor_cpu_low} and "
                              f"{self.governor_cpu_high}")
        sizes = self.graph_batch_sizes
        if not sizes or any(not 1 <= b <= MAX_GRAPH_BATCH for b in sizes) or \
                any(a >= b for a, b in zip(sizes, sizes[1:])):
            raise ConfigError(f"{key}.graph_batch_sizes: must be increasing batch sizes in "
                              f"1..{MAX_GRAPH_BATCH}, got {sizes}")
        if self.trt_cache_dir and not self.trt_cache_dir.startswith("/"):
            raise ConfigError(f"{key}.trt_cache_dir: must be an absolute path or empty, "
                              f"got {self.trt_cache_dir!r}")


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    k: int = 3
    n: int = 5
    warn_ratio: float = 0.7
    # Trip when a source's input stays invalid, stale or frozen this long.
    bad_input_trip_ms: float = 1000.0
    # Hysteresis: once TRIP, a window keeps voting while its score exceeds clear_ratio x
    # threshold (1.0 = no hysteresis).
    clear_ratio: float = 1.0
    # Announcement rate: at most this many WARN and this many TRIP onsets per source per
    # rate_period_s are announced (0 = no limit); the level itself is never held back.
    max_trips_per_period: int = 0
    rate_period_s: float = 3600.0
    # Idle suppression: windows whose idle_channel RMS is below idle_rms_below are IDLE, not
    # scored ("" = off).
    idle_channel: str = ""
    idle_rms_below: float = 0.0
    # Name the top contributing channels in OK verdicts too (WARN and TRIP always do).
    channels_on_ok: bool = False

    def check(self, key: str) -> None:
        _positive(f"{key}.k", self.k)
        if not 1 <= self.k <= self.n <= 64:
            raise ConfigError(f"{key}.k: need 1 <= k <= n <= 64, got k={self.k} n={self.n}")
        if not 0 < self.warn_ratio <= 1:
            raise ConfigError(f"{key}.warn_ratio: must be in (0, 1], got {self.warn_ratio}")
        if not 0 < self.clear_ratio <= 1:
            raise ConfigError(f"{key}.clear_ratio: must be in (0, 1], got {self.clear_ratio}")
        if self.max_trips_per_period < 0:
            raise ConfigError(f"{key}.max_trips_per_period: must be >= 0 (0 = no limit), "
                              f"got {self.max_trips_per_period}")
        _positive(f"{key}.rate_period_s", self.rate_period_s)
        if self.idle_channel and not self.idle_rms_below > 0:
            raise ConfigError(f"{key}.idle_rms_below: must be > 0 when idle_channel is set, "
                              f"got {self.idle_rms_below}")


@dataclass(frozen=True, slots=True)
class ModbusTargetConfig:
    host: str = "127.0.0.1"
    port: int = 502
    unit: int = 1
    permit_coil: int = 0
    heartbeat_register: int = 0
    trip_reason_register: int = 1
    watchdog_register: int = 2
    timeout_ms: float = 3.0

    def check(self, key: str) -> None:
        _positive(f"{key}.timeout_ms", self.timeout_ms)
        for name in ("permit_coil", "heartbeat_register", "trip_reason_register",
                     "watchdog_register"):
            if not 0 <= getattr(self, name) <= 0xFFFF:  # a Modbus data address
                raise ConfigError(f"{key}.{name}: must be 0..65535, got {getattr(self, name)}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"{key}.port: must be 1..65535, got {self.port}")
        if not 0 <= self.unit <= 255:
            raise ConfigError(f"{key}.unit: must be 0..255, got {self.unit}")


@dataclass(frozen=True, slots=True)
class OpcuaTargetConfig:
    url: str = "opc.tcp://127.0.0.1:4840"
    namespace: str = "urn:tripwire:plc"
    permit_node: str = "Permit"
    heartbeat_node: str = "Heartbeat"
    trip_reason_node: str = "TripReason"
    watchdog_node: str = "WatchdogMs"
    timeout_ms: float = 5.0

    def check(self, key: str) -> None:
        _positive(f"{key}.timeout_ms", self.timeout_ms)
        if not self.url.startswith("opc.tcp://"):
            raise ConfigError(f"{key}.url: must start with opc.tcp://, got {self.url!r}")


@dataclass(frozen=True, slots=True)
class InterlockConfig:
    deadline_ms: float = 10.0
    liveness_ms: float = 9.0  # leaves D - liveness for the stop write after a silent monitor
    verdict_budget_ms: float = 6.0
    plc_heartbeat_ms: float = 100.0
    timeliness_action: Literal["trip", "count"] = "trip"
    late_trip_after: int = 3
    targets: list[Literal["modbus", "opcua"]] = field(default_factory=lambda: ["modbus"])
    # When a stop counts as delivered: "any" at the first target that confirms permit 0
    # (the others are written after it), "all" once every target has confirmed.
    stop_policy: Literal["any", "all"] = "any"
    journal: str = "tripwire-journal.sqlite"
    reset_token: str = ""
    # SCHED_FIFO priority (0 = normal scheduling); the highest of the cell's processes.
    realtime_priority: int = 0
    # CPUs the process runs on (empty = any); the monitor's, as its ``cpus`` says.
    cpus: list[int] = field(default_factory=list)
    modbus: ModbusTargetConfig = field(default_factory=ModbusTargetConfig)
    opcua: OpcuaTargetConfig = field(default_factory=OpcuaTargetConfig)

    def check(self, key: str) -> None:
        _positive(f"{key}.deadline_ms", self.deadline_ms)
        _positive(f"{key}.liveness_ms", self.liveness_ms)
        _positive(f"{key}.plc_heartbeat_ms", self.plc_heartbeat_ms)
        if self.liveness_ms >= self.deadline_ms:
            raise ConfigError(f"{key}.liveness_ms: must be < deadline_ms ({self.deadline_ms})")
        if not 0 < self.verdict_budget_ms < self.deadline_ms:
            raise ConfigError(f"{key}.verdict_budget_ms: must be in (0, deadline_ms)")
        if not self.targets:
            raise ConfigError(f"{key}.targets: name at least one stop target")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"{key}.targets: each target may be named once, got {self.targets}")
        if self.stop_policy not in ("any", "all"):
            raise ConfigError(f"{key}.stop_policy: must be 'any' or 'all', got {self.stop_policy!r}")
        _priority(f"{key}.realtime_priority", self.realtime_priority)
        _cpus(f"{key}.cpus", self.cpus)
        self.modbus.check(f"{key}.modbus")
        self.opcua.check(f"{key}.opcua")

    @property
    def stop_budget_ms(self) -> float:
        """What is left of D for the stop write once a verdict arrived in budget."""
        return self.deadline_ms - self.verdict_budget_ms


FaultKind = Literal["bearing", "imbalance", "spike", "freeze", "bearing_wear", "imbalance_growth",
                   "cavitation"]


@dataclass(frozen=True, slots=True)
class FaultConfig:
    kind: FaultKind
    source: int
    at_s: float
    ramp_s: float = 0.5
    severity: float = 1.0

    def check(self, key: str) -> None:
        if self.at_s < 0:
            raise ConfigError(f"{key}.at_s: must be >= 0, got {self.at_s}")


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = 0
    realtime: bool = True
    duration_s: float = 30.0
    modbus_port: int = 0
    opcua_port: int = 0
    watchdog_ms: float = 300.0
    scan_ms: float = 5.0
    load_change_every_s: float = 4.0
    realtime_priority: int = 0
    faults: list[FaultConfig] = field(default_factory=list)
    # False: a test bench whose motors are not wired to the PLC's run output; the machines keep
    # running through stops and watchdog trips (the PLC still records and judges everything).
    # The campaign's many trials per cell need it: a stopped machine is an anomaly to the model.
    machines_follow_plc: bool = True
    # Black-channel tests: per [[sources]] table, in order (empty: none). clock_skew_ms: the
    # DAQ's clock for that source runs this far ahead of the host's (negative: behind), as a
    # remote device's own clock would. frame_delay_ms: once the fault schedule has started,
    # that source's frames reach the bus this long after acquisition (a late transport).
    clock_skew_ms: list[float] = field(default_factory=list)
    frame_delay_ms: list[float] = field(default_factory=list)

    def check(self, key: str) -> None:
        _positive(f"{key}.duration_s", self.duration_s)
        _positive(f"{key}.watchdog_ms", self.watchdog_ms)
        _positive(f"{key}.scan_ms", self.scan_ms)
        _priority(f"{key}.realtime_priority", self.realtime_priority)
        for i, f in enumerate(self.faults):
            f.check(f"{key}.faults[{i}]")
        for i, skew in enumerate(self.clock_skew_ms):
            if not abs(skew) <= MAX_SKEW_MS:  # NaN fails too
                raise ConfigError(f"{key}.clock_skew_ms[{i}]: must be within +-{MAX_SKEW_MS:g}, "
                                  f"got {skew}")
        for i, delay in enumerate(self.frame_delay_ms):
            if not 0 <= delay <= MAX_FRAME_DELAY_MS:
                raise ConfigError(f"{key}.frame_delay_ms[{i}]: must be in [0, "
                                  f"{MAX_FRAME_DELAY_MS:g}], got {delay}")


@dataclass(frozen=True, slots=True)
class ScadaConfig:
    """The SCADA gateway (scada/): an OPC-UA server for operators, never in the interlock."""

    endpoint: str = "opc.tcp://127.0.0.1:4841"
    namespace: str = "urn:tripwire:scada"
    # How often the address space is refreshed and the interlock's status is polled.
    update_ms: float = 250.0
    # How long a forwarded operator command waits for the interlock's reply.
    command_timeout_ms: float = 1000.0
    # Refuse method calls from anonymous sessions; callers log in as username/password.
    require_user: bool = False
    username: str = ""
    password: str = ""

    def check(self, key: str) -> None:
        if not self.endpoint.startswith("opc.tcp://"):
            raise ConfigError(f"{key}.endpoint: must start with opc.tcp://, got {self.endpoint!r}")
        if not self.namespace:
            raise ConfigError(f"{key}.namespace: must not be empty")
        if not 20.0 <= self.update_ms <= 10_000.0:
            raise ConfigError(f"{key}.update_ms: must be in [20, 10000], got {self.update_ms}")
        _positive(f"{key}.command_timeout_ms", self.command_timeout_ms)
        if self.require_user and not (self.username and self.password):
            raise ConfigError(f"{key}.username: require_user needs a username and a password")


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    bus: BusConfig = field(default_factory=BusConfig)
    sources: list[SourceConfig] = field(default_factory=list)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    interlock: InterlockConfig = field(default_factory=InterlockConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    scada: ScadaConfig = field(default_factory=ScadaConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def check(self) -> None:
        if not self.sources:
            raise ConfigError("sources: at least one [[sources]] table is required")
        ids = [s.id for s in self.sources]
        if len(set(ids)) != len(ids):
            raise ConfigError("sources: duplicate source id")
        for i, s in enumerate(self.sources):
            s.check(f"sources[{i}]")
        self.bus.check("bus")
        self.monitor.check("monitor")
        self.decision.check("decision")
        self.interlock.check("interlock")
        self.sim.check("sim")
        self.scada.check("scada")
        idle = self.decision.idle_channel
        for s in self.sources:
            if idle and idle not in s.channels:
                raise ConfigError(f"decision.idle_channel: source {s.id} has no channel {idle!r}")
        for i, f in enumerate(self.sim.faults):
            if f.source not in ids:
                raise ConfigError(f"sim.faults[{i}].source: no source with id {f.source}")
        for name in ("clock_skew_ms", "frame_delay_ms"):
            n = len(getattr(self.sim, name))
            if n not in (0, len(self.sources)):
                raise ConfigError(f"sim.{name}: one value per [[sources]] table "
                                  f"({len(self.sources)}) or none, got {n}")

    def source(self, source_id: int) -> SourceConfig:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)


# --- generic TOML -> dataclass conversion ----------------------------------------------


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: union types are not supported in config")
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            raise ConfigError(f"{key}: a {int(value).bit_length()}-bit integer is beyond "
                              "float range") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")


def _build(cls: Any, table: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in table:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"{where}: unknown key")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in table:
            kwargs[f.name] = _convert(hints[f.name], table[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    return cls(**kwargs)


def from_dict(table: dict[str, Any]) -> Config:
    cfg: Config = _build(Config, table, "")
    cfg.check()
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        table = tomllib.loads(text)
    # ValueError: TOMLDecodeError, or an integer of more than 4300 digits; RecursionError:
    # arrays or inline tables nested deeper than the interpreter's recursion limit.
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{p}: not valid TOML ({str(e)[:200]})") from None
    return from_dict(table)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The inverse of ``from_dict``, for writing a config that child processes load."""
    out: dict[str, Any] = dataclasses.asdict(cfg)
    return out


def dumps_toml(table: dict[str, Any]) -> str:
    """A small TOML writer for the tables this module produces (no external dependency)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + "".join(_TOML_ESCAPES.get(ch, ch) for ch in v) + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def emit(prefix: str, tbl: dict[str, Any], array: bool = False) -> None:
        plain = {k: v for k, v in tbl.items() if not _is_table(v)}
        nested = {k: v for k, v in tbl.items() if _is_table(v)}
        if prefix:
            lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{k} = {scalar(v)}")
        lines.append("")
        for k, v in nested.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, list):
                for item in v:
                    emit(name, item, array=True)
            else:
                emit(name, v)

    emit("", table)
    return "\n".join(lines)


# A basic string must escape '"', '\\' and the control characters but tab (TOML 1.0).
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\",
                 **{chr(i): f"\\u{i:04x}" for i in (*range(0x20), 0x7F) if i != 0x09}}


def _is_table(v: Any) -> bool:
    return isinstance(v, dict) or (isinstance(v, list) and bool(v) and isinstance(v[0], dict))
