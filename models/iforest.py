"""Isolation-forest baseline in the bundle format: fit, score with contributions, ONNX graph.

Pure core. The forest is ``skab_forest.IsolationForest`` (Liu, Ting and Zhou), fitted on the
window features. For the bundle each tree is flattened into a table per leaf:
    length   = depth + c(size)            the isolation path length of a row ending there
    credit_f = sum over the cuts on feature f along the root-to-leaf path of
               log2(training rows at the node / training rows in the child taken)
and the score and its per-feature contributions are
    score    = 2 ** (-mean_over_trees(length) / c(psi))              (0.5 typical, -> 1 isolated)
    contrib  = F * score * (sum_trees credit_f) / (sum_trees, f credit_f)
so the contributions average to the score, like every other model kind, and the feature whose
cuts did the isolating ranks first (counting cuts alone credits every feature about equally:
a row far out on one feature is still cut on the others on its way down). The ONNX graph (``to_onnx``) is one
``ai.onnx.ml.TreeEnsembleRegressor`` with 1 + F targets and a few arithmetic nodes; it computes
the same numbers as ``IforestModel.score`` (thresholds are float32 on both paths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.errors import TrainingError
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.skab_forest import IsolationForest, Tree, average_path, descend

F32 = npt.NDArray[np.float32]
DEFAULT_TREES = 100
DEFAULT_SAMPLE_ROWS = 256
ML_OPSET = 3
OPSET = 17
IR_VERSION = 9


@dataclass(frozen=True, slots=True)
class FlatTree:
    feature: npt.NDArray[np.int64]  # (nodes,), -1 at a leaf
    threshold: F32  # (nodes,)
    left: npt.NDArray[np.int64]  # taken when x < threshold
    right: npt.NDArray[np.int64]
    length: F32  # (nodes,) path length of a row ending at this node (leaves only)
    splits: F32  # (nodes, F) isolation credit per feature from the root to this node

    @classmethod
    def of(cls, tree: Tree, n_features: int) -> "FlatTree":
        nodes = len(tree.feature)
        splits = np.zeros((nodes, n_features), dtype=np.float32)
        stack = [0]
        while stack:  # parents are visited before children (pre-order from the root)
            node = stack.pop()
            f = int(tree.feature[node])
            if f < 0:
                continue
            for child in (int(tree.left[node]), int(tree.right[node])):
                splits[child] = splits[node]
                # Credit the cut by how much it narrowed the row's company: log2 of the drop
                # in training rows from the node to the child the row went to.
                splits[child, f] += math.log2(max(int(tree.size[node]), 1) / max(int(tree.size[child]), 1))
                stack.append(child)
        length = (tree.depth + average_path(tree.size)).astype(np.float32)
        return cls(tree.feature.astype(np.int64), tree.threshold.astype(np.float32),
                   tree.left.astype(np.int64), tree.right.astype(np.int64), length, splits)

    def leaves(self, x: F32) -> npt.NDArray[np.int64]:
        leaf: npt.NDArray[np.int64] = descend(self.feature, self.threshold, self.left, self.right, x)
        return leaf


@dataclass(frozen=True, slots=True)
class IforestModel:
    trees: tuple[FlatTree, ...]
    sample_rows: int
    n_features: int

    @property
    def norm(self) -> float:
        """c(psi): the mean path length the score is normalised by."""
        return float(average_path(self.sample_rows))

    def score(self, x: npt.NDArray[np.floating]) -> tuple[F32, F32]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        length = np.zeros(len(x32), dtype=np.float32)
        splits = np.zeros((len(x32), self.n_features), dtype=np.float32)
        for t in self.trees:
            leaf = t.leaves(x32)
            length += t.length[leaf]
            splits += t.splits[leaf]
        score = np.exp(length * np.float32(-math.log(2.0) / (len(self.trees) * self.norm)))
        total = np.maximum(splits.sum(axis=1, keepdims=True), np.float32(1e-6))
        contrib: F32 = (splits / total * score[:, None] * np.float32(self.n_features)).astype(np.float32)
        return score.astype(np.float32), contrib


def fit_iforest(x_train: npt.NDArray[np.floating], *, n_trees: int = DEFAULT_TREES,
                sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> IforestModel:
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise TrainingError(f"an isolation forest needs a 2-D table of >= 2 rows, got {x.shape}")
    forest = IsolationForest.fit(x, n_trees, sample_rows, seed)
    f = int(x.shape[1])
    return IforestModel(tuple(FlatTree.of(t, f) for t in forest.trees), forest.sample_rows, f)


def to_onnx(model: IforestModel) -> bytes:
    """Input "features" [N, F]; outputs "score" [N] and "contrib" [N, F], as the other kinds."""
    f = model.n_features
    attrs: dict[str, Any] = {
        k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                        "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                        "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for tid, t in enumerate(model.trees):
        for node in range(len(t.feature)):
            leaf = t.feature[node] < 0
            attrs["nodes_treeids"].append(tid)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_featureids"].append(0 if leaf else int(t.feature[node]))
            attrs["nodes_values"].append(0.0 if leaf else float(t.threshold[node]))
            attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LT")
            attrs["nodes_truenodeids"].append(0 if leaf else int(t.left[node]))
            attrs["nodes_falsenodeids"].append(0 if leaf else int(t.right[node]))
            if not leaf:
                continue
            weights = [float(t.length[node])] + [float(v) for v in t.splits[node]]
            for target, w in enumerate(weights):
                if target and w == 0.0:
                    continue  # absent targets add nothing
                attrs["target_treeids"].append(tid)
                attrs["target_nodeids"].append(node)
                attrs["target_ids"].append(target)
                attrs["target_weights"].append(w)
    inits = [
        numpy_helper.from_array(np.asarray([0], np.int64), "len_start"),
        numpy_helper.from_array(np.asarray([1], np.int64), "len_end"),
        numpy_helper.from_array(np.asarray([1 + f], np.int64), "splits_end"),
        numpy_helper.from_array(np.asarray([1], np.int64), "axis1"),
        numpy_helper.from_array(np.asarray(-math.log(2.0) / (len(model.trees) * model.norm),
                                           np.float32), "neg_ln2_over_norm"),
        numpy_helper.from_array(np.asarray(1e-6, np.float32), "eps"),
        numpy_helper.from_array(np.asarray(float(f), np.float32), "n_features"),
    ]
    n = helper.make_node
    nodes = [
        n("TreeEnsembleRegressor", [INPUT_NAME], ["forest"], domain="ai.onnx.ml", name="forest",
          n_targets=1 + f, aggregate_function="SUM", post_transform="NONE", **attrs),
        n("Slice", ["forest", "len_start", "len_end", "axis1"], ["length_sum"], name="length_sum"),
        n("Slice", ["forest", "len_end", "splits_end", "axis1"], ["splits"], name="splits"),
        n("Mul", ["length_sum", "neg_ln2_over_norm"], ["log_score"], name="log_score"),
        n("Exp", ["log_score"], ["score_col"], name="score_col"),
        n("ReduceSum", ["splits", "axis1"], ["splits_total"], name="splits_total", keepdims=1),
        n("Max", ["splits_total", "eps"], ["splits_safe"], name="splits_safe"),
        n("Div", ["splits", "splits_safe"], ["share"], name="share"),
        n("Mul", ["share", "score_col"], ["share_score"], name="share_score"),
        n("Mul", ["share_score", "n_features"], [CONTRIB_NAME], name=CONTRIB_NAME),
        n("ReduceMean", [CONTRIB_NAME], [SCORE_NAME], name=SCORE_NAME, axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "tripwire_iforest",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", f])],
        [helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info(CONTRIB_NAME, TensorProto.FLOAT, ["N", f])],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        ir_version=IR_VERSION, producer_name="tripwire", doc_string="isolation forest",
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    data: bytes = onnx_model.SerializeToString()
    return data
