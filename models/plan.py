"""How the scorer binds batches to its session: which sizes, where the buffers live (pure core).

IO binding (binding.py) preallocates the input and output buffers of every batch size it
serves, once, so that a scoring call allocates nothing. Two layouts:

- ``host``: buffers in host memory, one binding per exact size 1..max_batch; onnxruntime
  copies to and from the device itself. The CPU provider, CUDA without graphs, TensorRT.
- ``device``: buffers on the device for each of a few sizes (``graph_batch_sizes``, capped
  at and always including max_batch); a batch is padded with zero rows to the next size.
  CUDA graphs need this: a captured graph replays one shape at fixed addresses. CUDA without
  graphs uses it too when ``device_buffers`` asks (gpu_check compares the two).

A batch beyond the largest bound size is scored in pieces of that size (device layout) or by
a plain, allocating run (host layout: offline scoring of whole files). Nothing here imports
onnxruntime.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from models.providers import CUDA, ScorerOptions

Layout = Literal["host", "device"]


@dataclass(frozen=True, slots=True)
class BindingPlan:
    layout: Layout
    device: str  # where the bound buffers live: "cpu" (host layout) or the provider's device
    sizes: tuple[int, ...]  # batch sizes with a binding of their own, increasing
    cuda_graphs: bool  # one captured graph per size (device layout on CUDA only)

    def __post_init__(self) -> None:
        if not self.sizes or self.sizes[0] < 1 or \
                any(a >= b for a, b in zip(self.sizes, self.sizes[1:])):
            raise ValueError(f"binding sizes must be increasing and >= 1, got {self.sizes}")
        if self.cuda_graphs and (self.layout != "device" or self.device != "cuda"):
            raise ValueError("CUDA graphs need the device layout on a CUDA device")

    @property
    def capacity(self) -> int:
        """The largest batch served by one bound run."""
        return self.sizes[-1]

    def padded(self, rows: int) -> int:
        """The bound size a batch of ``rows`` (1..capacity) runs at."""
        return padded_size(rows, self.sizes)


def bound_sizes(max_batch: int, configured: Sequence[int]) -> tuple[int, ...]:
    """The configured sizes below ``max_batch``, then ``max_batch`` itself: every batch of
    1..max_batch rows pads to one of them, and none is bound beyond what is needed."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return (*sorted(b for b in set(configured) if 1 <= b < max_batch), max_batch)


def padded_size(rows: int, sizes: Sequence[int]) -> int:
    """The smallest of ``sizes`` (increasing) that holds ``rows`` rows."""
    i = bisect.bisect_left(sizes, rows)
    if rows < 1 or i == len(sizes):
        raise ValueError(f"{rows} rows do not fit a bound size of {list(sizes)}")
    return sizes[i]


def pieces(rows: int, capacity: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most ``capacity`` rows covering ``rows`` rows."""
    return [(i, min(i + capacity, rows)) for i in range(0, rows, capacity)]


def plan_binding(
    providers: Sequence[str], max_batch: int, options: ScorerOptions, graphs_in_session: bool
) -> BindingPlan:
    """The binding for a session led by ``providers[0]``; ``graphs_in_session``: the session
    was created with CUDA graphs enabled (it may have been refused them)."""
    if providers and providers[0] == CUDA and (graphs_in_session or options.device_buffers):
        return BindingPlan("device", "cuda", bound_sizes(max_batch, options.graph_batch_sizes),
                           graphs_in_session)
    return BindingPlan("host", "cpu", tuple(range(1, max_batch + 1)), False)
