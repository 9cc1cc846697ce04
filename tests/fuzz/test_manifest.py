"""Fuzzing the bundle manifest: ``manifest.json`` bytes through ``load_bundle``.

``load_bundle`` reads the manifest (UTF-8, JSON without NaN/Infinity), checks its schema
(``manifest.parse``), its signature (``manifest.verify``), the model file's hash, the feature
spec and the graph's interface. An input is two parts, the manifest's bytes and the model's
(written as ``model.onnx`` and as tier ``a``'s ``a.onnx``); only ``BundleError`` subclasses
may come out. Structure-aware inputs edit fields of a valid manifest and usually re-sign it
with the development key, so the checks behind the signature are reached too. Oracle for an
accepted bundle: the manifest on disk verifies with the key and names the model's sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from models import manifest as mf
from models.bundle import DEV_KEY, load_bundle, write_bundle, write_tiered_bundle
from models.errors import BundleError, ManifestError
from monitor.features import FeatureSpec
from tests.fuzz import harness

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "manifest"
SPEC = FeatureSpec(channels=("a", "b"), sample_rate_hz=6400.0, window=256, hop=64)
N_FEATURES = SPEC.n_features


def tiny_graph(n_features: int = N_FEATURES) -> bytes:
    """contrib = x * x, score = mean(contrib) per row: the smallest graph a bundle accepts."""
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])
    contrib = helper.make_tensor_value_info("contrib", TensorProto.FLOAT, ["batch", n_features])
    nodes = [helper.make_node("Mul", ["features", "features"], ["contrib"]),
             helper.make_node("ReduceMean", ["contrib"], ["score"], axes=[1], keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "fuzz", [x], [score, contrib]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString()


MODEL = tiny_graph()
_CALIBRATION = {"target_far": 1e-3, "n_windows": 2000, "score_quantiles": {"0.5": 0.1}}


def manifest_fields() -> dict[str, Any]:
    return {
        "kind": "autoencoder", "feature_spec": SPEC.to_dict(),
        "inputs": {mf.INPUT_NAME: [None, N_FEATURES]},
        "outputs": {mf.SCORE_NAME: [None], mf.CONTRIB_NAME: [None, N_FEATURES]},
        "threshold": 1.5, "calibration": dict(_CALIBRATION),
        "training": {"data_sha256": "0" * 64, "seconds": 1.0, "seed": 0}, "metrics": {},
        "created": "2026-01-01T00:00:00+00:00",
    }


def valid_manifests(workdir: Path) -> list[dict[str, Any]]:
    """A plain and a tiered manifest, written and checked by the real writers."""
    plain = write_bundle(workdir / "seed-plain", MODEL, manifest_fields())
    tiered = write_tiered_bundle(
        workdir / "seed-tiered", {"a": MODEL},
        {"a": {"threshold": 1.5, "calibration": dict(_CALIBRATION)}},
        manifest_fields(), default_tier="a")
    return [json.loads((d / "manifest.json").read_text()) for d in (plain, tiered)]


def signed(fields: Any) -> Any:
    if not isinstance(fields, dict):
        return fields
    try:
        return {**fields, "signature": mf.sign(fields, DEV_KEY)}
    except (TypeError, ValueError):  # not canonical JSON (NaN): leave it unsigned
        return fields


def dumps(fields: Any) -> bytes:
    return json.dumps(fields, indent=2, allow_nan=True).encode("ascii")


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 2:
        return "reject bad_parts"
    bundle = workdir / "bundle"
    bundle.mkdir(exist_ok=True)
    for name in ("model.onnx", "a.onnx"):
        path = bundle / name
        if not path.exists() or path.read_bytes() != parts[1]:
            path.write_bytes(parts[1])
    (bundle / "manifest.json").write_bytes(parts[0])
    try:
        loaded = load_bundle(bundle, DEV_KEY)
    except ManifestError as e:
        return f"reject ManifestError {e.field}"
    except BundleError as e:
        return f"reject {type(e).__name__}"
    fields = json.loads(parts[0])
    mf.verify(fields, DEV_KEY)
    assert fields["sha256"] == hashlib.sha256(parts[1]).hexdigest()
    assert loaded.manifest == fields
    return "accept"


def seeds(workdir: Path) -> list[harness.Parts]:
    out = [[dumps(f), MODEL] for f in valid_manifests(workdir)]
    out += [[t, MODEL] for t in harness.NASTY_JSON]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------


@pytest.fixture(scope="module")
def seed_trees(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return valid_manifests(tmp_path_factory.mktemp("manifest-seeds"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("manifest-fuzz")


@harness.fuzz_settings()
@given(data=st.data())
def test_manifest_structured(data: st.DataObject, seed_trees: list[dict[str, Any]],
                             workdir: Path) -> None:
    tree = data.draw(st.sampled_from(seed_trees))
    how = data.draw(st.sampled_from(("tree_signed", "tree_signed", "tree", "bytes", "nasty",
                                     "raw", "model")))
    model = MODEL
    if how in ("tree_signed", "tree"):
        tree = data.draw(harness.tree_mutations(tree))
        text = dumps(signed(tree) if how == "tree_signed" else tree)
    elif how == "bytes":
        text = harness.apply_ops(dumps(tree), data.draw(harness.ops_strategy()))
    elif how == "nasty":
        text = data.draw(st.sampled_from(harness.NASTY_JSON))
    elif how == "raw":
        text = data.draw(st.binary(max_size=200))
    else:  # the manifest is fine, the model is not
        text = dumps(tree)
        model = harness.apply_ops(MODEL, data.draw(harness.ops_strategy()))
    harness.timed(classify, [text, model], workdir)


def test_manifest_mutation_loop(tmp_path: Path) -> None:
    trees = valid_manifests(tmp_path)

    def fielded(rng: random.Random) -> harness.Parts:
        tree: Any = rng.choice(trees)
        for _ in range(rng.randint(1, 2)):
            tree = harness.random_tree_mutation(tree, rng)
        return [dumps(signed(tree) if rng.random() < 0.8 else tree), MODEL]

    report = harness.mutation_loop(classify, seeds(tmp_path), tmp_path, structured=fielded,
                                   only_part=0)
    assert report.outcomes.get("accept", 0) > 0 or report.inputs < 200, report
