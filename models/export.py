"""Export a trained model's whole scoring function to ONNX with ``onnx.helper``.

Input "features" float32 [N, F]; outputs "score" float32 [N] and "contrib" float32 [N, F].
Opset 17, IR version 9 (what the deployed onnxruntime reads). The graph mirrors the numpy
``score`` methods in autoencoder.py and pca.py operation for operation, so onnxruntime and
numpy agree to float32 rounding (a test checks this).

This module builds bytes; it never runs a model and never touches a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.autoencoder import AutoencoderModel
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.pca import PcaModel
from models.standardize import Standardizer

OPSET = 17
IR_VERSION = 9
BATCH_DIM = "N"


class _Graph:
    """Accumulates nodes and float32 constants with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray | float) -> str:
        arr = np.asarray(value, dtype=np.float32)
        self.inits.append(numpy_helper.from_array(arr, name=name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def standardize(self, std: Standardizer, x: str) -> str:
        centred = self.op("Sub", [x, self.const("feat_mean", std.mean)], "centred")
        scaled = self.op("Div", [centred, self.const("feat_std", std.std)], "scaled")
        lo = self.const("clip_lo", -std.clip_z)
        hi = self.const("clip_hi", std.clip_z)
        return self.op("Clip", [scaled, lo, hi], "z")

    def finish(self, contrib: str, n_features: int, doc: str) -> bytes:
        self.nodes.append(
            helper.make_node(
                "ReduceMean", [contrib], [SCORE_NAME], name=SCORE_NAME, axes=[1], keepdims=0
            )
        )
        graph = helper.make_graph(
            self.nodes,
            "tripwire_score",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, n_features])],
            [
                helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, [BATCH_DIM]),
                helper.make_tensor_value_info(
                    CONTRIB_NAME, TensorProto.FLOAT, [BATCH_DIM, n_features]
                ),
            ],
            initializer=self.inits,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="tripwire",
            doc_string=doc,
        )
        onnx.checker.check_model(model, full_check=True)
        data: bytes = model.SerializeToString()
        return data


def autoencoder_to_onnx(model: AutoencoderModel) -> bytes:
    g = _Graph()
    z = g.standardize(model.standardizer, INPUT_NAME)
    a = z
    for i, layer in enumerate(model.layers):
        h = g.op("MatMul", [a, g.const(f"w{i}", layer.weight)], f"mm{i}")
        h = g.op("Add", [h, g.const(f"b{i}", layer.bias)], f"lin{i}")
        a = g.op("Tanh", [h], f"act{i}") if layer.tanh else h
    diff = g.op("Sub", [z, a], "residual")
    r = g.op("Div", [diff, g.const("residual_scale", model.residual_scale)], "residual_z")
    contrib = g.op("Mul", [r, r], CONTRIB_NAME)
    return g.finish(contrib, model.n_features, "dense autoencoder, squared standardized residual")


def pca_to_onnx(model: PcaModel) -> bytes:
    g = _Graph()
    z = g.standardize(model.standardizer, INPUT_NAME)
    t = g.op("MatMul", [z, g.const("components", model.components)], "t")
    recon = g.op("MatMul", [t, g.const("components_t", model.components.T.copy())], "recon")
    r = g.op("Sub", [z, recon], "residual")
    r2 = g.op("Mul", [r, r], "residual_sq")
    q = g.op("Mul", [r2, g.const("q_factor", model.q_factor)], "q_part")
    u = g.op("MatMul", [t, g.const("t2_weights", model.t2_weights)], "t2_dir")
    zu = g.op("Mul", [z, u], "t2_terms")
    t2 = g.op("Mul", [zu, g.const("t2_factor", model.t2_factor)], "t2_part")
    contrib = g.op("Add", [q, t2], CONTRIB_NAME)
    return g.finish(contrib, model.n_features, "PCA Hotelling T2 + Q")
