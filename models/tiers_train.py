"""Train the three tiers (tiers.py) from normal feature rows, in numpy (pure core).

No torch: the networks are a few dense tanh layers, so forward and backward passes are written
out (as in autoencoder.py), with minibatch Adam. Seeded: the same rows and config give the same
models. No clock, no files, no logging.

* teacher: a wide denoising autoencoder (narrow code) on the standardized training rows;
  ``residual_scale`` = each feature's RMS training residual, floored.
* student: a small network fitted by distillation: its target is the teacher's reconstruction
  (equivalently its signed per-feature residual, the soft score before the scale) on the
  training rows and on perturbed copies of them (Gaussian noise at several scales and sparse
  shifts of a few features), so the student learns the teacher's response to anomalous inputs
  as well as to normal ones. It keeps the teacher's residual scale, so the two score alike.
* int8: quantization-aware training starting from the student: the forward pass rounds each
  layer's input, its weights and its MatMul product to int8 (tiers.fake_quant), the backward
  pass treats the rounding as the identity (straight-through estimator) and updates the float
  weights. Scales are fixed before training: the clip range of z for the first layer's input,
  tanh's [-1, 1] for the others, and each product's range on the distillation inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.autoencoder import Dense
from models.errors import TrainingError
from models.standardize import Standardizer
from models.tiers import INT8_MAX, TierModel, fake_quant, weight_scale

F64 = npt.NDArray[np.float64]
Params = list[list[F64]]


@dataclass(frozen=True, slots=True)
class TierTrainConfig:
    teacher_hidden: tuple[int, ...] = (256, 256, 4, 256, 256)
    student_hidden: tuple[int, ...] = (16, 16)
    teacher_epochs: int = 60
    student_epochs: int = 120
    qat_epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    qat_learning_rate: float = 5e-4
    input_noise: float = 0.3  # denoising noise for the teacher, z units
    weight_decay: float = 1e-4
    residual_floor: float = 0.6  # z units: a feature reconstructed perfectly keeps a band
    noise_scales: tuple[float, ...] = (0.5, 2.0, 5.0)  # distillation copies with noise
    shift_copies: int = 2  # distillation copies with a few features shifted
    seed: int = 0


def _init(sizes: list[int], rng: np.random.Generator) -> Params:
    params: Params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append([rng.uniform(-limit, limit, (fan_in, fan_out)), np.zeros(fan_out)])
    return params


Scales = tuple[tuple[float, ...], tuple[float, ...]]  # (layer inputs, MatMul products)


def _forward(
    params: Params, x: F64, scales: Scales | None
) -> tuple[list[F64], list[F64], list[F64]]:
    """Per layer: the (possibly rounded) input, the (possibly rounded) weight, the output."""
    inputs, weights, outputs = [], [], []
    a, last = x, len(params) - 1
    for i, (w, b) in enumerate(params):
        if scales:
            a = fake_quant(a, scales[0][i]).astype(np.float64)
            w = fake_quant(w, weight_scale(w)).astype(np.float64)
            h = fake_quant(a @ w, scales[1][i]).astype(np.float64) + b
        else:
            h = a @ w + b
        inputs.append(a)
        weights.append(w)
        a = h if i == last else np.tanh(h)
        outputs.append(a)
    return inputs, weights, outputs


def _step_grads(
    params: Params, x: F64, target: F64, scales: Scales | None
) -> tuple[float, Params]:
    inputs, weights, outputs = _forward(params, x, scales)
    diff = outputs[-1] - target
    loss = float(np.mean(diff * diff))
    delta = 2.0 * diff / diff.size
    grads: Params = [[np.empty(0), np.empty(0)] for _ in params]
    for i in range(len(params) - 1, -1, -1):
        grads[i] = [inputs[i].T @ delta, delta.sum(axis=0)]  # straight through the rounding
        if i > 0:
            delta = (delta @ weights[i].T) * (1.0 - outputs[i - 1] ** 2)
    return loss, grads


def _fit(
    params: Params, x: F64, target: F64, epochs: int, lr: float, cfg: TierTrainConfig,
    rng: np.random.Generator, noise: float = 0.0, scales: Scales | None = None,
) -> Params:
    """Minibatch Adam on mean squared error; L2 on weights. Returns the trained params."""
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    n = len(x)
    for epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xb = x[idx] + rng.normal(0.0, noise, (len(idx), x.shape[1])) if noise else x[idx]
            loss, grads = _step_grads(params, xb, target[idx], scales)
            if not np.isfinite(loss):
                raise TrainingError(f"tier training diverged at epoch {epoch + 1}")
            t += 1
            c1, c2 = 1.0 - b1**t, 1.0 - b2**t
            for layer, g_layer, m_layer, v_layer in zip(params, grads, m, v, strict=True):
                for j, (p, g) in enumerate(zip(layer, g_layer, strict=True)):
                    if j == 0:
                        g = g + cfg.weight_decay * p
                    m_layer[j] = b1 * m_layer[j] + (1 - b1) * g
                    v_layer[j] = b2 * v_layer[j] + (1 - b2) * g * g
                    p -= lr * (m_layer[j] / c1) / (np.sqrt(v_layer[j] / c2) + eps)
    return params


def _layers(params: Params) -> tuple[Dense, ...]:
    last = len(params) - 1
    return tuple(
        Dense(w.astype(np.float32), b.astype(np.float32), tanh=i != last)
        for i, (w, b) in enumerate(params)
    )


def _params(layers: tuple[Dense, ...]) -> Params:
    return [[layer.weight.astype(np.float64), layer.bias.astype(np.float64)] for layer in layers]


def distillation_inputs(z: F64, cfg: TierTrainConfig, clip_z: float, seed: int) -> F64:
    """The training rows plus perturbed copies, clipped as the graph clips z."""
    rng = np.random.default_rng(seed)
    parts = [z] + [z + rng.normal(0.0, s, z.shape) for s in cfg.noise_scales]
    for _ in range(cfg.shift_copies):
        mask = rng.random(z.shape) < 2.0 / z.shape[1]  # about two features per row
        parts.append(z + mask * rng.uniform(-clip_z, clip_z, z.shape))
    return np.clip(np.vstack(parts), -clip_z, clip_z)


def train_teacher(
    features: np.ndarray, cfg: TierTrainConfig = TierTrainConfig(),
    allowance: np.ndarray | None = None,
) -> TierModel:
    """``allowance`` (per feature, >= 1) widens the residual scale where normal data is known
    to wander beyond what a short training stretch shows (detectors.drift_allowance)."""
    if features.ndim != 2 or len(features) < 8:
        raise TrainingError(f"need a (rows, features) matrix with >= 8 rows, got {features.shape}")
    std = Standardizer.fit(features)
    z = std.apply(features).astype(np.float64)
    rng = np.random.default_rng(cfg.seed)
    sizes = [z.shape[1], *cfg.teacher_hidden, z.shape[1]]
    params = _fit(_init(sizes, rng), z, z, cfg.teacher_epochs, cfg.learning_rate, cfg, rng,
                  noise=cfg.input_noise)
    layers = _layers(params)
    probe = TierModel("teacher", std, layers, np.ones(z.shape[1], np.float32))
    resid = z - probe.reconstruct(z.astype(np.float32))
    scale = np.maximum(np.sqrt(np.mean(resid**2, axis=0)), cfg.residual_floor)
    if allowance is not None:
        scale = scale * np.asarray(allowance, dtype=np.float64)
    return TierModel("teacher", std, layers, scale.astype(np.float32))


def distill_student(
    teacher: TierModel, features: np.ndarray, cfg: TierTrainConfig = TierTrainConfig()
) -> TierModel:
    std = teacher.standardizer
    z = std.apply(features).astype(np.float64)
    x = distillation_inputs(z, cfg, std.clip_z, cfg.seed + 1)
    target = teacher.reconstruct(x.astype(np.float32)).astype(np.float64)
    rng = np.random.default_rng(cfg.seed + 2)
    sizes = [z.shape[1], *cfg.student_hidden, z.shape[1]]
    params = _fit(_init(sizes, rng), x, target, cfg.student_epochs, cfg.learning_rate, cfg, rng)
    return TierModel("student", std, _layers(params), teacher.residual_scale)


def quantize_student(
    student: TierModel, teacher: TierModel, features: np.ndarray,
    cfg: TierTrainConfig = TierTrainConfig(),
) -> TierModel:
    """Quantization-aware fine-tuning of the student, still distilling from the teacher."""
    std = student.standardizer
    z = std.apply(features).astype(np.float64)
    x = distillation_inputs(z, cfg, std.clip_z, cfg.seed + 3)
    target = teacher.reconstruct(x.astype(np.float32)).astype(np.float64)
    act = (std.clip_z / INT8_MAX, *(1.0 / INT8_MAX for _ in student.layers[1:]))
    out = tuple(_product_scale(student, x, i, act) for i in range(len(student.layers)))
    rng = np.random.default_rng(cfg.seed + 4)
    params = _fit(_params(student.layers), x, target, cfg.qat_epochs, cfg.qat_learning_rate,
                  cfg, rng, scales=(act, out))
    return TierModel("int8", std, _layers(params), student.residual_scale, act, out)


def _product_scale(student: TierModel, x: F64, layer: int, act: tuple[float, ...]) -> float:
    """Scale of layer ``layer``'s int8 MatMul product: its largest magnitude on ``x`` (the
    float student's, inputs and weights already rounded) maps to 127, with 10 % headroom."""
    a = x.astype(np.float32)
    for i, dense in enumerate(student.layers[:layer + 1]):
        a = fake_quant(a, act[i]) @ fake_quant(dense.weight, weight_scale(dense.weight))
        if i < layer:
            a = np.tanh(a + dense.bias)
    return 1.1 * max(float(np.max(np.abs(a))), 1e-6) / INT8_MAX


def train_tiers(
    features: np.ndarray, cfg: TierTrainConfig = TierTrainConfig(),
    allowance: np.ndarray | None = None,
) -> dict[str, TierModel]:
    """Teacher, then the student distilled from it, then the student's int8 version."""
    teacher = train_teacher(features, cfg, allowance)
    student = distill_student(teacher, features, cfg)
    return {"teacher": teacher, "student": student,
            "int8": quantize_student(student, teacher, features, cfg)}
