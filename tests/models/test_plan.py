"""Which batch sizes the scorer binds, and how a batch is padded to one (pure, no GPU)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.plan import BindingPlan, bound_sizes, padded_size, pieces, plan_binding
from models.providers import CPU, CUDA, DEFAULT_GRAPH_BATCHES, TENSORRT, ScorerOptions

GRAPHS = ScorerOptions(cuda_graphs=True)


@pytest.mark.parametrize(
    ("max_batch", "configured", "sizes"),
    [
        (32, DEFAULT_GRAPH_BATCHES, (1, 2, 4, 8, 16, 32)),
        (16, DEFAULT_GRAPH_BATCHES, (1, 2, 4, 8, 16)),
        (20, DEFAULT_GRAPH_BATCHES, (1, 2, 4, 8, 16, 20)),
        (64, DEFAULT_GRAPH_BATCHES, (1, 2, 4, 8, 16, 32, 64)),
        (1, DEFAULT_GRAPH_BATCHES, (1,)),
        (10, (4,), (4, 10)),
    ],
)
def test_bound_sizes_cover_every_batch_up_to_max(
    max_batch: int, configured: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    assert bound_sizes(max_batch, configured) == sizes


@given(st.lists(st.integers(1, 300), min_size=1, max_size=8), st.integers(1, 300))
def test_every_batch_pads_to_the_smallest_bound_size_that_holds_it(
    configured: list[int], max_batch: int
) -> None:
    sizes = bound_sizes(max_batch, configured)
    assert sizes[-1] == max_batch and list(sizes) == sorted(set(sizes))
    for rows in range(1, max_batch + 1):
        size = padded_size(rows, sizes)
        assert size >= rows and size in sizes
        assert all(s < rows for s in sizes if s < size)


def test_padded_size_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        padded_size(0, (1, 2))
    with pytest.raises(ValueError):
        padded_size(3, (1, 2))


def test_pieces_cover_the_rows_in_order() -> None:
    assert pieces(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert pieces(32, 32) == [(0, 32)]
    assert pieces(0, 32) == []


@pytest.mark.parametrize(
    ("providers", "graphs_in_session", "layout", "device", "graphs"),
    [
        ((CPU,), False, "host", "cpu", False),
        ((CUDA, CPU), False, "host", "cpu", False),
        ((CUDA, CPU), True, "device", "cuda", True),
        ((TENSORRT, CUDA, CPU), True, "host", "cpu", False),  # graphs are the CUDA provider's
        ((CPU,), True, "host", "cpu", False),  # CUDA dropped by onnxruntime: no graphs
    ],
)
def test_plan_binding(
    providers: tuple[str, ...], graphs_in_session: bool, layout: str, device: str, graphs: bool
) -> None:
    plan = plan_binding(providers, 20, GRAPHS, graphs_in_session)
    assert (plan.layout, plan.device, plan.cuda_graphs) == (layout, device, graphs)
    assert plan.capacity == 20
    if layout == "host":
        assert plan.sizes == tuple(range(1, 21))  # every exact size: no padding on the host
    else:
        assert plan.sizes == (1, 2, 4, 8, 16, 20)
        assert plan.padded(9) == 16


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="increasing"):
        BindingPlan("device", "cpu", (4, 2), False)
    with pytest.raises(ValueError, match="increasing"):
        BindingPlan("host", "cpu", (), False)
    with pytest.raises(ValueError, match="CUDA graphs"):
        BindingPlan("device", "cpu", (1, 2), True)
    with pytest.raises(ValueError, match="CUDA graphs"):
        BindingPlan("host", "cuda", (1, 2), True)


def test_plan_is_functional_core() -> None:
    tree = ast.parse((Path(__file__).resolve().parents[2] / "models" / "plan.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"onnxruntime", "onnx", "structlog", "zmq", "asyncio"}


def test_cuda_device_buffers_without_graphs() -> None:
    opts = ScorerOptions(device_buffers=True)
    plan = plan_binding((CUDA, CPU), 32, opts, graphs_in_session=False)
    assert (plan.layout, plan.device, plan.cuda_graphs) == ("device", "cuda", False)
    assert plan.sizes == DEFAULT_GRAPH_BATCHES
    assert plan_binding((CPU,), 32, opts, False).layout == "host"  # a CPU session: host arrays
