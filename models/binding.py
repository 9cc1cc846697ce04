"""IO binding: buffers preallocated and bound once per batch size; runs that allocate nothing (shell).

``HostBinding`` (host layout, plan.py) keeps one input and two output buffers in host memory,
sized for the largest batch, and one onnxruntime ``IOBinding`` per batch size bound to their
leading rows. A call copies the rows into the input buffer, runs ``run_with_iobinding`` and
hands back views of the output buffers: no tensor is allocated, on either side. The CPU
provider, CUDA without graphs and TensorRT all run through it (onnxruntime moves the data to
and from the device for the latter two).

``DeviceBinding`` (device layout) holds, per bound size, input and output tensors on the
provider's device, a host staging copy of each, and the run options naming the size's CUDA
graph (``gpu_graph_id``). A call pads the rows to the bound size, updates the device input in
place, runs, and reads the outputs back into the host copies (``cudaMemcpy`` when libcudart
can be called directly, else through ``OrtValue.numpy``: an allocation, reported as the
``readback``). Warming it checks each size's replayed graph against its first, eager run; a
graph that disagrees switches graphs off (``cuda_graph_mismatch``, an error line) rather than
scoring wrong. The same class runs on the CPU with ``device="cpu"``, which is how its padding,
graph ids and readback are tested without a GPU.

Views returned by ``run`` stay valid until the next run of the same binding. Not
thread-safe: the scorer serialises calls. onnxruntime exceptions pass through to scorer.py,
which translates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog

from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.plan import BindingPlan, pieces

F32 = npt.NDArray[np.float32]
Copier = Callable[[int, int, int], None]  # (host dst, device src, bytes) -> None, raises OSError

GRAPH_ID_KEY = "gpu_graph_id"
GRAPH_SKIP = "-1"  # onnxruntime's id for "run eagerly: no capture, no replay"
WARM_RUNS_PER_SIZE = 4  # eager run(s), the capture, then replays
MATCH_RTOL = 1e-4
MATCH_ATOL = 1e-5


class Binding(Protocol):
    plan: BindingPlan
    readback: str  # how outputs reach the host: "bound" (in place), "direct" (the copier,
    # cudaMemcpy on a GPU) or "numpy" (OrtValue.numpy, which allocates on a GPU)
    graphs_active: bool
    runs: list[int]  # bound runs per size (index = size); warm-up counts too

    def run(self, x: npt.NDArray[np.generic]) -> tuple[F32, F32, bool]:
        """(score, contrib, owned) for a checked (rows >= 1, n_features) array; ``owned``:
        fresh arrays rather than views of the binding's buffers."""
        ...

    def warm(self, max_batch: int) -> None: ...


def probe_rows(rows: int, n_features: int) -> F32:
    """Deterministic, varied rows for warm-up checks (zeros would hide a stale buffer)."""
    ramp = np.linspace(-2.0, 2.0, rows * n_features, dtype=np.float32).reshape(rows, n_features)
    return np.ascontiguousarray(np.sin(3.0 * ramp), dtype=np.float32)


def _plain_run(session: ort.InferenceSession, x: npt.NDArray[np.generic]) -> tuple[F32, F32, bool]:
    score, contrib = session.run([SCORE_NAME, CONTRIB_NAME],
                                 {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
    return score, contrib, True


class HostBinding:
    def __init__(self, session: ort.InferenceSession, plan: BindingPlan, n_features: int) -> None:
        if plan.layout != "host":
            raise ValueError(f"HostBinding needs the host layout, got {plan.layout}")
        cap = plan.capacity
        self.plan = plan
        self.readback = "bound"
        self.graphs_active = False
        self.runs = [0] * (cap + 1)
        self._session = session
        self._n = n_features
        self._in = np.zeros((cap, n_features), np.float32)
        self._score = np.zeros(cap, np.float32)
        self._contrib = np.zeros((cap, n_features), np.float32)
        # index = rows; None where no binding of that size exists (0 and sizes not planned)
        self._io: list[ort.IOBinding | None] = [None] * (cap + 1)
        for b in plan.sizes:
            self._io[b] = self._bind(b)

    def _bind(self, rows: int) -> ort.IOBinding:
        io = self._session.io_binding()
        io.bind_input(INPUT_NAME, "cpu", 0, np.float32, (rows, self._n), self._in.ctypes.data)
        io.bind_output(SCORE_NAME, "cpu", 0, np.float32, (rows,), self._score.ctypes.data)
        io.bind_output(CONTRIB_NAME, "cpu", 0, np.float32, (rows, self._n),
                       self._contrib.ctypes.data)
        return io

    def run(self, x: npt.NDArray[np.generic]) -> tuple[F32, F32, bool]:
        rows = x.shape[0]
        io = self._io[rows] if rows < len(self._io) else None
        if io is None:
            return _plain_run(self._session, x)
        np.copyto(self._in[:rows], x, casting="unsafe")
        self._session.run_with_iobinding(io)
        self.runs[rows] += 1
        return self._score[:rows], self._contrib[:rows], False

    def warm(self, max_batch: int) -> None:
        x = probe_rows(max(max_batch, 1), self._n)
        for b in range(1, max_batch + 1):
            self.run(x[:b])


@dataclass(slots=True)
class _Slot:
    size: int
    host_in: F32
    host_score: F32
    host_contrib: F32
    dev_in: ort.OrtValue
    dev_score: ort.OrtValue
    dev_contrib: ort.OrtValue
    io: ort.IOBinding
    run_options: ort.RunOptions | None
    score_ptrs: tuple[int, int, int]  # host dst, device src, bytes
    contrib_ptrs: tuple[int, int, int]


def _run_options(graph_id: str | None) -> ort.RunOptions | None:
    if graph_id is None:
        return None
    ro = ort.RunOptions()
    ro.add_run_config_entry(GRAPH_ID_KEY, graph_id)
    return ro


class DeviceBinding:
    def __init__(self, session: ort.InferenceSession, plan: BindingPlan, n_features: int,
                 copier: Copier | None = None) -> None:
        if plan.layout != "device":
            raise ValueError(f"DeviceBinding needs the device layout, got {plan.layout}")
        self.plan = plan
        self.graphs_active = plan.cuda_graphs
        self.readback = "direct" if copier is not None else "numpy"
        self.runs = [0] * (plan.capacity + 1)
        self._session = session
        self._n = n_features
        self._copier = copier
        self._log = structlog.get_logger(component="scorer")
        self._slots = [self._slot(s, i) for i, s in enumerate(plan.sizes)]
        by_size = {slot.size: slot for slot in self._slots}
        # index = rows (1..capacity) -> the slot of the size that batch is padded to (index 0,
        # never used: the scorer answers an empty batch itself, holds the smallest)
        self._slot_for: list[_Slot] = [self._slots[0]] + [
            by_size[plan.padded(r)] for r in range(1, plan.capacity + 1)
        ]

    def _slot(self, size: int, index: int) -> _Slot:
        dev, n = self.plan.device, self._n

        def tensor(shape: tuple[int, ...]) -> ort.OrtValue:
            return ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, dev, 0)

        host_in = np.zeros((size, n), np.float32)
        host_score, host_contrib = np.zeros(size, np.float32), np.zeros((size, n), np.float32)
        dev_in, dev_score, dev_contrib = tensor((size, n)), tensor((size,)), tensor((size, n))
        dev_in.update_inplace(host_in)
        io = self._session.io_binding()
        io.bind_ortvalue_input(INPUT_NAME, dev_in)
        io.bind_ortvalue_output(SCORE_NAME, dev_score)
        io.bind_ortvalue_output(CONTRIB_NAME, dev_contrib)
        # Graph ids from 1: 0 is onnxruntime's default id, kept for no size in particular.
        ro = _run_options(str(index + 1) if self.plan.cuda_graphs else None)
        return _Slot(size, host_in, host_score, host_contrib, dev_in, dev_score, dev_contrib, io,
                     ro, (host_score.ctypes.data, dev_score.data_ptr(), host_score.nbytes),
                     (host_contrib.ctypes.data, dev_contrib.data_ptr(), host_contrib.nbytes))

    def _read(self, slot: _Slot) -> None:
        if self._copier is not None:
            self._copier(*slot.score_ptrs)
            self._copier(*slot.contrib_ptrs)
        else:
            np.copyto(slot.host_score, slot.dev_score.numpy())
            np.copyto(slot.host_contrib, slot.dev_contrib.numpy())

    def _run_slot(self, slot: _Slot, x: npt.NDArray[np.generic]) -> None:
        rows = x.shape[0]
        np.copyto(slot.host_in[:rows], x, casting="unsafe")
        if rows < slot.size:
            slot.host_in[rows:] = 0.0
        slot.dev_in.update_inplace(slot.host_in)
        self._session.run_with_iobinding(slot.io, slot.run_options)
        self._read(slot)
        self.runs[slot.size] += 1

    def run(self, x: npt.NDArray[np.generic]) -> tuple[F32, F32, bool]:
        rows = x.shape[0]
        if rows > self.plan.capacity:
            return self._run_pieces(x)
        slot = self._slot_for[rows]
        self._run_slot(slot, x)
        return slot.host_score[:rows], slot.host_contrib[:rows], False

    def _run_pieces(self, x: npt.NDArray[np.generic]) -> tuple[F32, F32, bool]:
        rows = x.shape[0]
        score = np.empty(rows, np.float32)
        contrib = np.empty((rows, self._n), np.float32)
        for start, stop in pieces(rows, self.plan.capacity):
            s, c, _ = self.run(x[start:stop])
            score[start:stop], contrib[start:stop] = s, c
        return score, contrib, True

    def warm(self, max_batch: int) -> None:
        """Every bound size: eager run, capture, replays, each checked against the first;
        then every batch size 1..max_batch once through its padding."""
        if self._copier is not None:
            self._check_copier()
        for slot in self._slots:
            x = probe_rows(slot.size, self._n)
            self._run_slot(slot, x)
            ref_score, ref_contrib = slot.host_score.copy(), slot.host_contrib.copy()
            for _ in range(WARM_RUNS_PER_SIZE - 1):
                self._run_slot(slot, x)
                same = np.allclose(slot.host_score, ref_score, MATCH_RTOL, MATCH_ATOL) and \
                    np.allclose(slot.host_contrib, ref_contrib, MATCH_RTOL, MATCH_ATOL)
                if not same and self.graphs_active:
                    self._graphs_off(slot.size)
                    break
        x = probe_rows(max(max_batch, 1), self._n)
        for b in range(1, max_batch + 1):
            self.run(x[:b])

    def _graphs_off(self, size: int) -> None:
        self._log.error("cuda_graph_mismatch", batch=size,
                        detail="a replayed graph disagreed with its eager run; graphs off")
        self.graphs_active = False
        for slot in self._slots:
            slot.run_options = _run_options(GRAPH_SKIP)

    def _check_copier(self) -> None:
        """The direct copy must agree with onnxruntime's own readback, or it is not used."""
        slot = self._slots[0]
        try:
            self._run_slot(slot, probe_rows(slot.size, self._n))  # read back through the copier
            ok = np.array_equal(slot.host_contrib, slot.dev_contrib.numpy()) and \
                np.array_equal(slot.host_score, slot.dev_score.numpy())
            error = "" if ok else "results differ"
        except (OSError, RuntimeError) as e:
            ok, error = False, str(e)
        if not ok:
            self._log.warning("readback_fallback", used="numpy", error=error)
            self._copier = None
            self.readback = "numpy"
