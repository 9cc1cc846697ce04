"""Bundles on disk: round trip, and every way a bundle must be refused."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models import manifest as mf
from models.bundle import (
    DEV_KEY,
    MANIFEST_FILE,
    MODEL_FILE,
    load_bundle,
    read_key_file,
    write_bundle,
)
from models.errors import (
    BundleError,
    BundleMissing,
    GraphMismatch,
    IntegrityError,
    ManifestError,
    SignatureError,
    SpecMismatch,
)
from tests.models.common import SPEC, manifest_for

MakeBundle = Callable[..., Path]


def _rewrite_manifest(path: Path, edit: Callable[[dict], None], key: bytes | None = DEV_KEY) -> None:
    fields = json.loads((path / MANIFEST_FILE).read_text())
    edit(fields)
    if key is not None:
        fields["signature"] = mf.sign(fields, key)
    (path / MANIFEST_FILE).write_text(json.dumps(fields))


def test_round_trip(make_bundle: MakeBundle, ae_model, normal_data) -> None:
    path = make_bundle()
    bundle = load_bundle(path)
    assert bundle.kind == "autoencoder"
    assert len(bundle.model_id) == 8 and bundle.model_id.hex() == bundle.model_id_hex
    assert bundle.n_features == SPEC.n_features
    assert bundle.spec == SPEC and bundle.feature_names == SPEC.names()
    assert bundle.feature_spec == SPEC.to_dict()
    assert bundle.threshold > 0
    assert bundle.manifest["sha256"].startswith(bundle.model_id_hex)
    bundle.check_spec(SPEC)
    with bundle.scorer(providers="cpu") as scorer:
        score, _ = scorer.score(normal_data["test"][:16])
    np.testing.assert_allclose(score, ae_model.score(normal_data["test"][:16])[0], rtol=1e-4, atol=1e-5)


def test_site_key(make_bundle: MakeBundle, tmp_path: Path) -> None:
    key_file = tmp_path / "site.key"
    key_file.write_bytes(b"a-site-secret-of-enough-length\n")
    key = read_key_file(key_file)
    assert key == b"a-site-secret-of-enough-length"
    path = make_bundle(key=key)
    load_bundle(path, key)
    with pytest.raises(SignatureError):
        load_bundle(path)  # the development key does not verify a site-signed bundle
    key_file.write_bytes(b"short")
    with pytest.raises(BundleError, match="shorter"):
        read_key_file(key_file)
    with pytest.raises(BundleError, match="cannot read"):
        read_key_file(tmp_path / "absent.key")


def test_tampered_model_is_refused(make_bundle: MakeBundle) -> None:
    path = make_bundle()
    data = bytearray((path / MODEL_FILE).read_bytes())
    data[-20] ^= 0x01
    (path / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        load_bundle(path)


def test_swapped_model_with_fixed_hash_fails_the_signature(make_bundle: MakeBundle) -> None:
    """Someone who also rewrites the manifest's hash still needs the key."""
    path = make_bundle()
    other = make_bundle("other", threshold=123.0)
    (path / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
    _rewrite_manifest(path, lambda f: f.update(threshold=999.0), key=None)
    with pytest.raises(SignatureError):
        load_bundle(path)


def test_wrong_signature_is_refused(make_bundle: MakeBundle) -> None:
    path = make_bundle()
    _rewrite_manifest(path, lambda f: f.update(threshold=f["threshold"] * 10), key=None)
    with pytest.raises(SignatureError):
        load_bundle(path)
    _rewrite_manifest(path, lambda f: None, key=b"somebody-else's-key-1234")
    with pytest.raises(SignatureError):
        load_bundle(path)


@pytest.mark.parametrize("field", ["threshold", "feature_spec", "calibration", "kind"])
def test_missing_field_is_refused_and_named(make_bundle: MakeBundle, field: str) -> None:
    path = make_bundle()
    _rewrite_manifest(path, lambda f: f.pop(field))
    with pytest.raises(ManifestError) as err:
        load_bundle(path)
    assert err.value.field == field


def test_malformed_manifest_file(make_bundle: MakeBundle) -> None:
    path = make_bundle()
    (path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_bundle(path)
    (path / MANIFEST_FILE).write_text('{"threshold": NaN}')
    with pytest.raises(ManifestError, match="NaN"):
        load_bundle(path)


def test_bad_feature_spec_is_named(make_bundle: MakeBundle) -> None:
    path = make_bundle()
    _rewrite_manifest(path, lambda f: f["feature_spec"].update(window=100))
    with pytest.raises(ManifestError) as err:
        load_bundle(path)
    assert err.value.field == "feature_spec"


def test_missing_files(make_bundle: MakeBundle, tmp_path: Path) -> None:
    with pytest.raises(BundleMissing, match="no bundle directory"):
        load_bundle(tmp_path / "nowhere")
    path = make_bundle()
    (path / MODEL_FILE).unlink()
    with pytest.raises(BundleMissing, match=MODEL_FILE):
        load_bundle(path)
    path = make_bundle("b2")
    (path / MANIFEST_FILE).unlink()
    with pytest.raises(BundleMissing, match=MANIFEST_FILE):
        load_bundle(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("window", 512), ("hop", 32), ("sample_rate_hz", 12800.0), ("channels", ("a", "c")),
     ("bands_hz", ((10.0, 100.0),))],
)
def test_spec_mismatch_names_the_field(make_bundle: MakeBundle, field: str, value: object) -> None:
    bundle = load_bundle(make_bundle())
    other = dataclasses.replace(SPEC, **{field: value})
    with pytest.raises(SpecMismatch) as err:
        bundle.check_spec(other)
    assert err.value.field == field
    assert field in str(err.value)


def _fixed_batch_graph(n_features: int) -> bytes:
    """A valid graph whose batch dimension is fixed at 1: not what the manifest promises."""
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, n_features])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])
    contrib = helper.make_tensor_value_info("contrib", TensorProto.FLOAT, [1, n_features])
    nodes = [helper.make_node("Mul", ["features", "features"], ["contrib"]),
             helper.make_node("ReduceMean", ["contrib"], ["score"], axes=[1], keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [score, contrib]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString()


def _forge(path: Path, onnx_bytes: bytes, manifest: dict) -> None:
    """Write a bundle by hand, bypassing write_bundle's own checks, correctly signed."""
    import hashlib

    path.mkdir()
    sha = hashlib.sha256(onnx_bytes).hexdigest()
    fields = dict(manifest, format=1, sha256=sha, model_id=sha[:16], created="2026-01-01T00:00:00")
    fields["signature"] = mf.sign(fields, DEV_KEY)
    (path / MODEL_FILE).write_bytes(onnx_bytes)
    (path / MANIFEST_FILE).write_text(json.dumps(fields))


def test_graph_shape_disagreeing_with_manifest_is_refused(tmp_path: Path) -> None:
    onnx_bytes = _fixed_batch_graph(SPEC.n_features)
    manifest = manifest_for("autoencoder", 1.0)
    with pytest.raises(GraphMismatch, match="shape"):
        write_bundle(tmp_path / "w", onnx_bytes, manifest)
    _forge(tmp_path / "b", onnx_bytes, manifest)
    with pytest.raises(GraphMismatch, match="shape"):
        load_bundle(tmp_path / "b")


def test_graph_names_disagreeing_with_manifest_are_refused(tmp_path: Path, ae_onnx: bytes) -> None:
    model = onnx.load_model_from_string(ae_onnx)
    model.graph.output[1].name = "contributions"  # dangling now: also fails onnx's checker
    _forge(tmp_path / "b", model.SerializeToString(), manifest_for("autoencoder", 1.0))
    with pytest.raises(GraphMismatch):
        load_bundle(tmp_path / "b")


def test_garbage_model_is_refused(tmp_path: Path) -> None:
    _forge(tmp_path / "b", b"\x00not an onnx model at all", manifest_for("autoencoder", 1.0))
    with pytest.raises(GraphMismatch, match="not a valid ONNX model"):
        load_bundle(tmp_path / "b")


def test_write_refuses_an_invalid_manifest(tmp_path: Path, ae_onnx: bytes) -> None:
    bad = manifest_for("autoencoder", 1.0)
    del bad["calibration"]
    with pytest.raises(ManifestError) as err:
        write_bundle(tmp_path / "b", ae_onnx, bad)
    assert err.value.field == "calibration"
    assert not (tmp_path / "b").exists()


def test_rewrite_replaces_both_files(make_bundle: MakeBundle) -> None:
    first = load_bundle(make_bundle("same", threshold=1.0))
    second = load_bundle(make_bundle("same", threshold=2.0))
    assert first.threshold == 1.0 and second.threshold == 2.0
    assert not [p for p in second.path.iterdir() if p.name.startswith(".")]
