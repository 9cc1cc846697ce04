"""Model tiers for the SKAB benchmark: features, the three scoring networks, their ONNX graphs.

Pure core: numpy and onnx.helper only (no onnxruntime, no torch, no clock, no files). Training
lives in tiers_train.py; running the tiers through onnxruntime lives in skab_tiers.py.

Features (causal): for each SKAB channel in ``CHANNELS``, its rolling mean over each window
in ``WINDOWS_ROWS`` (``rolling_features``), standardized on the training rows and clipped. The
means come from the monitor's own numba window kernels (``monitor.features``, hop 1 at 1 Hz),
the same code that reduces 25.6 kHz vibration frames in the monitor.

Every tier maps standardized features z to a reconstruction z_hat with a dense tanh network
(linear output), and scores exactly as the ONNX graph does:
    contrib = |z - z_hat| / residual_scale        per feature, (N, F)
    score   = max(contrib over features)          (N,)
* ``teacher``: a wide autoencoder with a narrow code, trained on the normal rows;
* ``student``: a small network trained to reproduce the teacher's reconstruction (its soft
  per-feature scores) on normal rows and on perturbed copies of them;
* ``int8``: the student after quantization-aware training. Every MatMul reads int8 inputs
  (activations: fixed symmetric scales; weights: one symmetric scale per tensor) and its
  product is rounded to int8 too; the graph carries these as QuantizeLinear/DequantizeLinear
  pairs around each MatMul, which onnxruntime's QDQ fusion turns into QLinearMatMul (int8
  kernels; a test checks the optimized graph). ``TierModel.score`` simulates the rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.autoencoder import Dense
from models.detectors import SKAB_CHANNELS
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.standardize import Standardizer
from monitor.features import STATS, FeatureSpec, offline_features

F32 = npt.NDArray[np.float32]

OPSET = 17
IR_VERSION = 9
BATCH_DIM = "N"
TIERS = ("teacher", "student", "int8")
CHANNELS = SKAB_CHANNELS
# One 5-row window, as rolling-z: adding a 20-row window was tried and lost NAB score
# (slower edges, 75 missed changepoints instead of 71) at the same false-alarm rate.
WINDOWS_ROWS: tuple[int, ...] = (5,)
LOOKBACK_ROWS = max(WINDOWS_ROWS)
INT8_MIN, INT8_MAX = -128, 127


def rolling_features(rows: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """(n, channels) raw rows -> (n, len(CHANNELS) * len(WINDOWS_ROWS)) causal rolling means.

    ``history`` holds the rows just before ``rows``; with at least LOOKBACK_ROWS - 1 of them
    every output row uses full windows, and scoring in pieces equals scoring in one go. Rows
    without a full window behind them (the first LOOKBACK_ROWS - 1 of a recording, which the
    benchmark's callers drop) see the first row repeated before the recording's start.
    """
    x = np.asarray(rows, dtype=np.float64)[:, list(CHANNELS)]
    lead = 0
    if history is not None and len(history):
        past = np.asarray(history, dtype=np.float64)[-(LOOKBACK_ROWS - 1):, list(CHANNELS)]
        x, lead = np.vstack([past, x]), len(past)
    pad = LOOKBACK_ROWS - 1 - lead
    if pad > 0 and len(x):
        x = np.vstack([np.repeat(x[:1], pad, axis=0), x])
    signal = np.ascontiguousarray(x.T, dtype=np.float32)  # (channels, rows), as frames are
    names = tuple(f"c{c}" for c in CHANNELS)
    mean_at = STATS.index("mean")
    parts = []
    for w in WINDOWS_ROWS:
        spec = FeatureSpec(names, sample_rate_hz=1.0, window=w, hop=1, bands_hz=())
        feats = offline_features(signal[:, LOOKBACK_ROWS - w:], spec)
        parts.append(feats[:, mean_at::spec.per_channel].astype(np.float64))
    return np.hstack(parts)


def fake_quant(x: np.ndarray, scale: float) -> F32:
    """Symmetric int8 quantize-dequantize, rounding half to even as QuantizeLinear does."""
    s = np.float32(scale)
    q = np.clip(np.rint(np.asarray(x, dtype=np.float32) / s), INT8_MIN, INT8_MAX)
    out: F32 = (q * s).astype(np.float32)
    return out


def weight_scale(w: np.ndarray) -> float:
    """One symmetric scale per weight tensor, so the largest weight maps to +-127."""
    return max(float(np.max(np.abs(w))), 1e-8) / INT8_MAX


@dataclass(frozen=True, slots=True)
class TierModel:
    """A trained tier. ``act_scales`` (one per layer: the scale of that layer's int8 input)
    and ``out_scales`` (the scale of its int8 MatMul product) are empty for float tiers; when
    present the weights are quantized too."""

    name: str
    standardizer: Standardizer
    layers: tuple[Dense, ...]
    residual_scale: F32  # (F,)
    act_scales: tuple[float, ...] = ()
    out_scales: tuple[float, ...] = ()

    @property
    def n_features(self) -> int:
        return self.standardizer.n_features

    @property
    def quantized(self) -> bool:
        return bool(self.act_scales)

    @property
    def n_params(self) -> int:
        return sum(layer.weight.size + layer.bias.size for layer in self.layers)

    def reconstruct(self, z: F32) -> F32:
        a = np.asarray(z, dtype=np.float32)
        for i, layer in enumerate(self.layers):
            w = layer.weight
            if self.quantized:
                a = fake_quant(a, self.act_scales[i])
                w = fake_quant(w, weight_scale(w))
            a = a @ w
            if self.quantized:
                a = fake_quant(a, self.out_scales[i])
            a = a + layer.bias
            if layer.tanh:
                a = np.tanh(a)
        return a.astype(np.float32, copy=False)

    def score(self, x: npt.NDArray[np.floating]) -> tuple[F32, F32]:
        """(N, F) features -> score (N,), contrib (N, F), float32, as the ONNX graph does."""
        z = self.standardizer.apply(x)
        contrib = (np.abs(z - self.reconstruct(z)) / self.residual_scale).astype(np.float32)
        return contrib.max(axis=1), contrib


# --------------------------------------------------------------------------- ONNX export


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray | float, dtype: type = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def qdq(self, x: str, scale: float, tag: str) -> str:
        """x -> QuantizeLinear -> DequantizeLinear with a symmetric int8 scale."""
        s = self.const(f"{tag}_scale", scale)
        zp = self.const(f"{tag}_zero", 0, np.int8)
        q = self.op("QuantizeLinear", [x, s, zp], f"{tag}_q")
        return self.op("DequantizeLinear", [q, s, zp], f"{tag}_dq")

    def int8_weight(self, w: np.ndarray, tag: str) -> str:
        """An int8 initializer behind DequantizeLinear (its scale chosen by ``weight_scale``)."""
        scale = weight_scale(w)
        q = np.clip(np.rint(w.astype(np.float32) / np.float32(scale)), INT8_MIN, INT8_MAX)
        qw = self.const(f"{tag}_int8", q, np.int8)
        s = self.const(f"{tag}_scale", scale)
        zp = self.const(f"{tag}_zero", 0, np.int8)
        return self.op("DequantizeLinear", [qw, s, zp], f"{tag}_dq")


def to_onnx(model: TierModel) -> bytes:
    """The tier's whole scoring function as an ONNX graph (opset 17, IR 9)."""
    g = _Graph()
    std = model.standardizer
    centred = g.op("Sub", [INPUT_NAME, g.const("feat_mean", std.mean)], "centred")
    scaled = g.op("Div", [centred, g.const("feat_std", std.std)], "scaled")
    z = g.op("Clip", [scaled, g.const("clip_lo", -std.clip_z), g.const("clip_hi", std.clip_z)], "z")
    a = z
    for i, layer in enumerate(model.layers):
        if model.quantized:
            a = g.qdq(a, model.act_scales[i], f"act{i}")
            w = g.int8_weight(layer.weight, f"w{i}")
        else:
            w = g.const(f"w{i}", layer.weight)
        h = g.op("MatMul", [a, w], f"mm{i}")
        if model.quantized:
            h = g.qdq(h, model.out_scales[i], f"out{i}")
        h = g.op("Add", [h, g.const(f"b{i}", layer.bias)], f"lin{i}")
        a = g.op("Tanh", [h], f"tanh{i}") if layer.tanh else h
    residual = g.op("Abs", [g.op("Sub", [z, a], "residual")], "residual_abs")
    contrib = g.op("Div", [residual, g.const("residual_scale", model.residual_scale)], CONTRIB_NAME)
    g.nodes.append(helper.make_node(
        "ReduceMax", [contrib], [SCORE_NAME], name=SCORE_NAME, axes=[1], keepdims=0
    ))
    n = model.n_features
    graph = helper.make_graph(
        g.nodes,
        f"tripwire_{model.name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, n])],
        [
            helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, [BATCH_DIM]),
            helper.make_tensor_value_info(CONTRIB_NAME, TensorProto.FLOAT, [BATCH_DIM, n]),
        ],
        initializer=g.inits,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="tripwire",
        doc_string=f"SKAB tier {model.name}: max |standardized residual| of a dense tanh network",
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    data: bytes = onnx_model.SerializeToString()
    return data
