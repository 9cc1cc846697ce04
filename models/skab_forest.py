"""Isolation forest in numpy: the tree-based baseline for the SKAB benchmark.

Liu, Ting and Zhou's method: each tree isolates a random subsample by random axis-aligned
splits up to a height limit; anomalies are isolated in fewer splits, so a short average path
length means a high score ``2 ** (-E[h(x)] / c(n))``. Seeded and deterministic; pure numpy, no
files, clock or logging. It stays a baseline: trees do not map onto the matrix-only ONNX graph
our own detector targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EULER_GAMMA = 0.5772156649015329


def average_path(n: np.ndarray | int) -> np.ndarray:
    """c(n): mean path length of an unsuccessful search in a binary search tree of n items."""
    m = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(m)
    big = m > 2
    out[m == 2] = 1.0
    out[big] = 2.0 * (np.log(m[big] - 1.0) + EULER_GAMMA) - 2.0 * (m[big] - 1.0) / m[big]
    return out


def descend(feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
            x: np.ndarray) -> np.ndarray:
    """The leaf each row of ``x`` ends in (left when x[feature] < threshold)."""
    node = np.zeros(len(x), dtype=np.int64)
    rows = np.arange(len(x))
    while True:
        f = feature[node]
        inner = f >= 0
        if not inner.any():
            return node
        at = node[inner]
        go_left = x[rows[inner], f[inner]] < threshold[at]
        node[inner] = np.where(go_left, left[at], right[at])


@dataclass(frozen=True, slots=True)
class Tree:
    feature: np.ndarray  # (nodes,) int, -1 at a leaf
    threshold: np.ndarray  # (nodes,) float
    left: np.ndarray  # (nodes,) int
    right: np.ndarray  # (nodes,) int
    depth: np.ndarray  # (nodes,) int
    size: np.ndarray  # (nodes,) int, rows that reached the node while growing

    @classmethod
    def grow(cls, x: np.ndarray, rng: np.random.Generator, height_limit: int) -> "Tree":
        capacity = 2 ** (height_limit + 1) - 1
        feature = np.full(capacity, -1, dtype=np.int64)
        threshold = np.zeros(capacity)
        left = np.full(capacity, -1, dtype=np.int64)
        right = np.full(capacity, -1, dtype=np.int64)
        depth = np.zeros(capacity, dtype=np.int64)
        size = np.zeros(capacity, dtype=np.int64)
        size[0], used = len(x), 1
        stack = [(0, np.arange(len(x)))]
        while stack:
            node, idx = stack.pop()
            if depth[node] >= height_limit or len(idx) <= 1:
                continue
            sub = x[idx]
            lo, hi = sub.min(axis=0), sub.max(axis=0)
            usable = np.flatnonzero(hi > lo)
            if usable.size == 0:
                continue
            f = int(rng.choice(usable))
            cut = float(rng.uniform(lo[f], hi[f]))
            goes_left = sub[:, f] < cut
            feature[node], threshold[node] = f, cut
            for child, part in ((used, idx[goes_left]), (used + 1, idx[~goes_left])):
                depth[child], size[child] = depth[node] + 1, len(part)
                stack.append((child, part))
            left[node], right[node], used = used, used + 1, used + 2
        return cls(
            feature[:used], threshold[:used], left[:used], right[:used], depth[:used], size[:used]
        )

    def path_length(self, x: np.ndarray) -> np.ndarray:
        node = descend(self.feature, self.threshold, self.left, self.right, x)
        length: np.ndarray = self.depth[node] + average_path(self.size[node])
        return length


@dataclass(frozen=True, slots=True)
class IsolationForest:
    trees: tuple[Tree, ...]
    sample_rows: int

    @classmethod
    def fit(cls, x: np.ndarray, n_trees: int, sample_rows: int, seed: int) -> "IsolationForest":
        if len(x) < 2:
            raise ValueError("an isolation forest needs at least two rows")
        rng = np.random.default_rng(seed)
        psi = min(sample_rows, len(x))
        limit = max(1, math.ceil(math.log2(psi)))
        trees = tuple(
            Tree.grow(x[rng.choice(len(x), psi, replace=False)], rng, limit) for _ in range(n_trees)
        )
        return cls(trees, psi)

    def score(self, x: np.ndarray) -> np.ndarray:
        mean_path = np.mean([t.path_length(x) for t in self.trees], axis=0)
        return np.asarray(2.0 ** (-mean_path / float(average_path(self.sample_rows))))
