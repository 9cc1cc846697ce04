"""Manifest schema, canonical JSON and signature (pure)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from models import manifest as mf
from models.errors import ManifestError, SignatureError
from tests.models.common import manifest_for

SHA = hashlib.sha256(b"model").hexdigest()


def signed(fields: dict[str, Any], key: bytes = mf.DEV_KEY) -> dict[str, Any]:
    out = dict(fields)
    out.update(format=mf.FORMAT, sha256=SHA, model_id=SHA[:16], created="2026-01-01T00:00:00+00:00")
    out["signature"] = mf.sign(out, key)
    return out


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    assert mf.canonical_json({"b": 1, "a": [1.5, None]}) == b'{"a":[1.5,null],"b":1}'
    assert mf.canonical_json({"a": 1, "b": 2}) == mf.canonical_json({"b": 2, "a": 1})


def test_signature_round_trip_and_tamper() -> None:
    fields = signed(manifest_for("autoencoder", 2.0))
    mf.verify(fields, mf.DEV_KEY)
    info = mf.parse(fields)
    assert info.threshold == 2.0 and info.model_id_bytes == bytes.fromhex(SHA[:16])
    tampered = copy.deepcopy(fields)
    tampered["threshold"] = 200.0
    with pytest.raises(SignatureError):
        mf.verify(tampered, mf.DEV_KEY)
    with pytest.raises(SignatureError):
        mf.verify(fields, b"another-site-key-0123456789")


@pytest.mark.parametrize(
    "path",
    ["format", "model_id", "created", "kind", "feature_spec", "inputs", "outputs", "threshold",
     "calibration", "training", "metrics", "sha256", "signature",
     "calibration.target_far", "calibration.n_windows", "calibration.score_quantiles",
     "training.data_sha256", "training.seconds", "training.seed"],
)
def test_missing_field_is_named(path: str) -> None:
    fields = signed(manifest_for("autoencoder", 2.0))
    *parents, leaf = path.split(".")
    target = fields
    for p in parents:
        target = target[p]
    del target[leaf]
    with pytest.raises(ManifestError) as err:
        mf.parse(fields)
    assert err.value.field == path
    assert repr(path) in str(err.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [("threshold", "high"), ("threshold", float("inf")), ("threshold", -1.0), ("threshold", True),
     ("kind", "forest"), ("format", 2), ("inputs", {"x": [None, 4]}),
     ("created", "yesterday"), ("calibration.target_far", 2.0), ("training.seed", 1.5)],
)
def test_ill_typed_field_is_named(path: str, value: Any) -> None:
    fields = signed(manifest_for("autoencoder", 2.0))
    *parents, leaf = path.split(".")
    target = fields
    for p in parents:
        target = target[p]
    target[leaf] = value
    with pytest.raises(ManifestError) as err:
        mf.parse(fields)
    assert err.value.field == path


def test_shape_disagreement_is_named() -> None:
    fields = signed(manifest_for("autoencoder", 2.0))
    fields["outputs"]["contrib"] = [None, 3]
    with pytest.raises(ManifestError) as err:
        mf.parse(fields)
    assert err.value.field == "outputs.contrib"


def test_model_id_must_derive_from_sha256() -> None:
    fields = signed(manifest_for("autoencoder", 2.0))
    fields["model_id"] = "0123456789abcdef"
    with pytest.raises(ManifestError) as err:
        mf.parse(fields)
    assert err.value.field == "model_id"


def test_not_an_object() -> None:
    with pytest.raises(ManifestError):
        mf.parse([1, 2, 3])
