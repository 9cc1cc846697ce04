"""ONNX export equals the numpy forward pass; every Scorer passes one conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest
from structlog.testing import capture_logs

from models import export
from models.binding import DeviceBinding
from models.errors import InferenceError
from models.plan import BindingPlan
from models.protocol import NumpyScorer, Scorer
from models.providers import CPU, CUDA, GpuProbe, ProviderChoice, ScorerOptions
from models.scorer import OnnxScorer, open_scorer
from models.session import session_options
from tests.models.common import F

MODEL_ID = bytes.fromhex("0123456789abcdef")


@pytest.mark.parametrize("kind", ["autoencoder", "pca"])
def test_onnx_equals_numpy(kind: str, ae_model, pca_model, normal_data) -> None:
    model = ae_model if kind == "autoencoder" else pca_model
    onnx_bytes = export.autoencoder_to_onnx(model) if kind == "autoencoder" else export.pca_to_onnx(model)
    rng = np.random.default_rng(7)
    x = np.concatenate([
        normal_data["test"][:200],
        normal_data["test"][:50] + rng.normal(0, 3, (50, F)).astype(np.float32),  # anomalous
        np.full((2, F), 1e6, np.float32),  # far outside: exercises the clip
    ])
    ref_score, ref_contrib = model.score(x)
    with open_scorer(onnx_bytes, MODEL_ID, F, providers="cpu") as scorer:
        score, contrib = scorer.score(x)
    assert score.dtype == np.float32 and contrib.dtype == np.float32
    np.testing.assert_allclose(contrib, ref_contrib, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(score, ref_score, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(contrib.mean(axis=1), score, rtol=1e-5, atol=1e-6)


def test_scores_separate_normal_from_anomalous(ae_model, normal_data) -> None:
    normal = ae_model.score(normal_data["test"])[0]
    shifted = normal_data["test"].copy()
    shifted[:, 3] += 10 * normal_data["train"][:, 3].std()
    assert np.median(ae_model.score(shifted)[0]) > 20 * np.median(normal)


# --- conformance: every Scorer implementation -------------------------------------------


def _device_layout_scorer(onnx_bytes: bytes) -> OnnxScorer:
    """The CUDA-graph binding (padded sizes, device tensors, read back), its tensors on the CPU."""
    session = ort.InferenceSession(onnx_bytes, session_options(1), providers=[CPU])
    binding = DeviceBinding(session, BindingPlan("device", "cpu", (1, 2, 4, 8), False), F)
    return OnnxScorer(session, MODEL_ID, F, (CPU,), False, binding)


@pytest.fixture(params=["onnx-autoencoder", "onnx-pca", "onnx-device-layout",
                        "numpy-autoencoder"])
def scorer(request: pytest.FixtureRequest, ae_model, pca_model) -> Iterator[Scorer]:
    if request.param == "onnx-autoencoder":
        with open_scorer(export.autoencoder_to_onnx(ae_model), MODEL_ID, F, providers="cpu") as s:
            yield s
    elif request.param == "onnx-pca":
        with open_scorer(export.pca_to_onnx(pca_model), MODEL_ID, F, providers="cpu") as s:
            yield s
    elif request.param == "onnx-device-layout":
        with _device_layout_scorer(export.autoencoder_to_onnx(ae_model)) as s:
            yield s
    else:
        yield NumpyScorer(ae_model, MODEL_ID)


def test_conformance_contract(scorer: Scorer, normal_data) -> None:
    assert isinstance(scorer, Scorer)
    assert scorer.model_id == MODEL_ID and scorer.n_features == F
    scorer.warm(4)
    for b in (1, 2, 7):
        score, contrib = scorer.score(normal_data["test"][:b])
        assert score.shape == (b,) and contrib.shape == (b, F)
        assert score.dtype == np.float32 and contrib.dtype == np.float32
        assert np.all(np.isfinite(score))


def test_conformance_rows_are_independent(scorer: Scorer, normal_data) -> None:
    x = normal_data["test"][:8]
    batch, _ = scorer.score(x)
    singles = np.concatenate([scorer.score(x[i : i + 1])[0] for i in range(8)])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)


def test_conformance_accepts_float64_and_views(scorer: Scorer, normal_data) -> None:
    x = normal_data["test"][:6]
    ref, _ = scorer.score(x)
    got, _ = scorer.score(x.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    strided = np.asfortranarray(x)
    np.testing.assert_allclose(scorer.score(strided)[0], ref, rtol=1e-5)


def test_conformance_wrong_shape_is_an_inference_error(scorer: Scorer) -> None:
    with pytest.raises(InferenceError, match="expected"):
        scorer.score(np.zeros((2, F + 1), np.float32))
    with pytest.raises(InferenceError):
        scorer.score(np.zeros(F, np.float32))


def test_empty_batch_and_closed_scorer(ae_onnx: bytes) -> None:
    scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="cpu")
    score, contrib = scorer.score(np.zeros((0, F), np.float32))
    assert score.shape == (0,) and contrib.shape == (0, F)
    scorer.close()
    assert scorer.closed
    with pytest.raises(InferenceError, match="closed"):
        scorer.score(np.zeros((1, F), np.float32))


# --- provider selection in the shell ----------------------------------------------------


def _events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


def test_cpu_request_logs_one_line_and_never_probes(ae_onnx: bytes) -> None:
    def probe(_: bool) -> GpuProbe:
        raise AssertionError("the GPU must not be probed for providers='cpu'")

    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="cpu", probe=probe)
    assert [e["event"] for e in logs] == ["providers_selected"]
    assert logs[0]["providers"] == [CPU] and logs[0]["reason"] == "cpu requested"
    assert scorer.providers == (CPU,) and not scorer.degraded


def test_auto_without_a_usable_gpu_is_cpu_and_not_degraded(ae_onnx: bytes) -> None:
    probed: list[bool] = []

    def probe(tensorrt: bool) -> GpuProbe:
        probed.append(tensorrt)
        return GpuProbe.absent("libcuda.so.1: cannot open shared object file")

    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="auto", probe=probe)
    assert scorer.providers == (CPU,) and not scorer.degraded
    (line,) = _events(logs, "providers_selected")
    assert line["providers"] == [CPU]
    if CUDA in ort.get_available_providers():
        assert probed == [False] and "no CUDA driver" in line["reason"]
    else:
        assert probed == [] and "built without" in line["reason"]
    assert not _events(logs, "provider_fallback")


def test_explicit_gpu_request_without_a_gpu_is_degraded(ae_onnx: bytes) -> None:
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="cuda",
                             probe=lambda _: GpuProbe.absent("no driver"))
    assert scorer.providers == (CPU,) and scorer.degraded
    assert len(_events(logs, "providers_selected")) == 1
    (alarm,) = _events(logs, "provider_fallback")
    assert alarm["log_level"] == "error"


def _gpu_really_usable() -> bool:
    from models import gpu_probe
    from models.providers import select_providers

    available = ort.get_available_providers()
    if CUDA not in available:
        return False
    return select_providers("cuda", available, gpu_probe.probe(False)).uses_gpu


@pytest.mark.skipif(CUDA not in ort.get_available_providers(),
                    reason="this onnxruntime build has no CUDA provider to drop")
def test_silent_fallback_after_session_creation_is_an_alarm(ae_onnx: bytes) -> None:
    """Force CUDA past the probe: onnxruntime drops it silently; we must notice."""
    if _gpu_really_usable():
        pytest.skip("CUDA really works here, so nothing falls back")
    forced = ProviderChoice("cuda", (CUDA, CPU), "", False)
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, choice=forced)
    assert scorer.degraded and scorer.providers == (CPU,)
    (alarm,) = _events(logs, "provider_fallback")
    assert alarm["log_level"] == "error" and alarm["dropped"] == [CUDA]
    score, _ = scorer.score(np.zeros((2, F), np.float32))  # still scores, on the CPU
    assert score.shape == (2,)


@pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="no CUDA provider built in")
def test_real_gpu_when_present(ae_onnx: bytes, ae_model, normal_data) -> None:
    """On a machine with a working GPU, auto picks CUDA and agrees with numpy."""
    if not _gpu_really_usable():
        pytest.skip("no usable CUDA GPU here")
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="auto")
    assert scorer.providers[0] == CUDA and not scorer.degraded
    assert not _events(logs, "provider_fallback")
    x = normal_data["test"][:64]
    np.testing.assert_allclose(scorer.score(x)[0], ae_model.score(x)[0], rtol=1e-3, atol=1e-4)


def test_protocol_is_runtime_checkable(ae_model, ae_onnx: bytes) -> None:
    assert isinstance(NumpyScorer(ae_model, MODEL_ID), Scorer)
    with open_scorer(ae_onnx, MODEL_ID, F, providers="cpu") as onnx_scorer:
        assert isinstance(onnx_scorer, OnnxScorer) and isinstance(onnx_scorer, Scorer)
    assert not isinstance(object(), Scorer)


# --- binding, placement and CUDA graphs as reported -------------------------------------


def test_a_cpu_scorer_reports_its_binding_and_placement(ae_onnx: bytes) -> None:
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="cpu", max_batch=16)
    (line,) = _events(logs, "providers_selected")
    assert line["binding"] == "host" and line["cuda_graphs"] is False
    assert set(line["nodes"]) == {CPU} and line["nodes"][CPU] >= 5
    info = scorer.info()
    assert info["providers"] == [CPU] and info["binding"] == "host"
    assert info["bound_sizes"] == "1..16" and info["readback"] == "bound"
    assert not info["degraded"] and not info["cuda_graphs"] and info["cpu_ops"] == []


def test_cuda_graphs_asked_for_without_a_gpu_is_simply_the_cpu(ae_onnx: bytes) -> None:
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="auto",
                             options=ScorerOptions(cuda_graphs=True),
                             probe=lambda _: GpuProbe.absent("no driver"))
    assert scorer.providers == (CPU,) and not scorer.degraded and not scorer.cuda_graphs
    assert [e["event"] for e in logs] == ["providers_selected"]


@pytest.mark.skipif(CUDA not in ort.get_available_providers(),
                    reason="this onnxruntime build has no CUDA provider to drop")
def test_forced_cuda_graphs_that_cannot_run_are_a_fallback_alarm(ae_onnx: bytes,
                                                                  normal_data) -> None:
    if _gpu_really_usable():
        pytest.skip("CUDA really works here, so nothing falls back")
    forced = ProviderChoice("cuda", (CUDA, CPU), "", False)
    with capture_logs() as logs:
        scorer = open_scorer(ae_onnx, MODEL_ID, F, choice=forced,
                             options=ScorerOptions(cuda_graphs=True))
    assert scorer.degraded and not scorer.cuda_graphs and scorer.info()["binding"] == "host"
    assert len(_events(logs, "provider_fallback")) == 1
    scorer.warm(4)
    assert scorer.score(normal_data["test"][:3])[0].shape == (3,)


@pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="no CUDA provider built in")
def test_real_cuda_graphs_when_present(ae_onnx: bytes, ae_model, normal_data) -> None:
    """On a machine with a working GPU: graphs captured per size, replays agree with numpy."""
    if not _gpu_really_usable():
        pytest.skip("no usable CUDA GPU here")
    scorer = open_scorer(ae_onnx, MODEL_ID, F, providers="cuda", max_batch=32,
                         options=ScorerOptions(cuda_graphs=True))
    assert scorer.providers[0] == CUDA and not scorer.degraded
    scorer.warm(32)
    assert scorer.cuda_graphs and scorer.info()["bound_sizes"] == [1, 2, 4, 8, 16, 32]
    for b in (1, 5, 32, 40):
        x = normal_data["test"][:b]
        np.testing.assert_allclose(scorer.score(x)[0], ae_model.score(x)[0], rtol=1e-3, atol=1e-4)
