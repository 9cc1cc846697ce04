"""The bundle manifest: schema, canonical form and HMAC signature (pure core).

A manifest is a JSON object. Its signature is HMAC-SHA256, keyed by a site key, over the
canonical JSON (sorted keys, no whitespace, ASCII, no NaN) of the manifest without its
``signature`` field, so the file's own formatting never matters. ``parse`` checks every
field's presence and type and names the first bad one.

A tiered bundle adds ``tiers`` (name -> {file, sha256, model_id, threshold, calibration,
...}) and ``default_tier``; its top-level ``sha256``, ``model_id``, ``threshold`` and
``calibration`` repeat the default tier's, so a reader that knows nothing of tiers still sees
one coherent model. Tier files are named ``<tier>.onnx`` and nothing else, so a manifest can
never point outside its bundle directory.

This module does no file I/O and imports nothing outside the standard library; reading and
writing files is bundle.py's job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.errors import ManifestError, SignatureError

FORMAT = 1
KINDS = ("autoencoder", "pca", "iforest", "tiers")

# The development key. It only proves that a bundle was not altered by accident; a site
# that relies on the signature supplies its own secret key (``tripwire train --key-file``,
# ``monitor.bundle_key_file``). Never ship a production bundle signed with this key.
DEV_KEY = b"tripwire-development-key: not a secret, do not use in production"

INPUT_NAME = "features"
SCORE_NAME = "score"
CONTRIB_NAME = "contrib"

_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def canonical_json(obj: Any) -> bytes:
    """Deterministic bytes for hashing and signing."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def sign(fields: dict[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of the manifest without its signature field."""
    body = {k: v for k, v in fields.items() if k != "signature"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def verify(fields: dict[str, Any], key: bytes) -> None:
    claimed = fields.get("signature")
    if not isinstance(claimed, str):
        raise ManifestError("signature", "missing or not a string")
    try:
        expected = sign(fields, key)
    # ValueError: NaN or infinity somewhere; RecursionError: nested too deep to serialise
    except (ValueError, RecursionError) as e:
        raise ManifestError("signature", f"manifest is not canonical JSON ({e})") from None
    # compare_digest refuses str with non-ASCII characters (TypeError): compare bytes
    if not hmac.compare_digest(claimed.encode("utf-8", "surrogatepass"), expected.encode("ascii")):
        raise SignatureError(
            "manifest signature does not verify with the configured key "
            "(altered manifest, or a bundle signed with another site key)"
        )


def model_id_for(sha256_hex: str) -> str:
    return sha256_hex[:16]


@dataclass(frozen=True, slots=True)
class Manifest:
    """The checked fields a runtime uses; ``fields`` keeps the whole object as loaded."""

    kind: str
    model_id: str
    sha256: str
    threshold: float
    n_features: int
    feature_spec: dict[str, Any]
    fields: dict[str, Any]
    tiers: dict[str, TierEntry] = dataclasses.field(default_factory=dict)  # empty: one model
    default_tier: str = ""

    @property
    def model_id_bytes(self) -> bytes:
        return bytes.fromhex(self.model_id)

    def for_tier(self, name: str) -> Manifest:
        """The same manifest seen through one tier: its sha256, model_id and threshold."""
        t = self.tiers[name]
        return dataclasses.replace(self, sha256=t.sha256, model_id=t.model_id,
                                   threshold=t.threshold)


@dataclass(frozen=True, slots=True)
class TierEntry:
    name: str
    file: str
    sha256: str
    model_id: str
    threshold: float
    calibration: dict[str, Any]


def tier_file(name: str) -> str:
    return f"{name}.onnx"


def _require(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str = "") -> Any:
    name = f"{where}.{key}" if where else key
    if key not in d:
        raise ManifestError(name, "missing")
    value = d[key]
    if isinstance(value, bool) and typ is not bool:
        raise ManifestError(name, f"expected {_type_name(typ)}, got a boolean")
    if not isinstance(value, typ):
        raise ManifestError(name, f"expected {_type_name(typ)}, got {type(value).__name__}")
    return value


def _type_name(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return typ.__name__


def _shape(value: Any, name: str, expected_len: int) -> list[int | None]:
    if not isinstance(value, list) or len(value) != expected_len:
        raise ManifestError(name, f"expected a shape list of length {expected_len}, got {value!r}")
    for i, dim in enumerate(value):
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ManifestError(f"{name}[{i}]", f"expected null or a positive integer, got {dim!r}")
    return value


def parse(fields: Any) -> Manifest:
    """Check the schema; raise ManifestError naming the first missing or ill-typed field."""
    if not isinstance(fields, dict):
        raise ManifestError("<root>", "manifest must be a JSON object")
    fmt = _require(fields, "format", int)
    if fmt != FORMAT:
        raise ManifestError("format", f"unsupported format {fmt}, this runtime reads {FORMAT}")
    sha = _require(fields, "sha256", str)
    if not _HEX64.match(sha):
        raise ManifestError("sha256", "expected 64 lowercase hex digits")
    model_id = _require(fields, "model_id", str)
    if not _HEX16.match(model_id):
        raise ManifestError("model_id", "expected 16 lowercase hex digits")
    if model_id != model_id_for(sha):
        raise ManifestError("model_id", "is not the first 16 hex digits of sha256")
    created = _require(fields, "created", str)
    try:
        datetime.fromisoformat(created)
    except ValueError:
        raise ManifestError("created", f"not an ISO timestamp: {created!r}") from None
    kind = _require(fields, "kind", str)
    if kind not in KINDS:
        raise ManifestError("kind", f"must be one of {list(KINDS)}, got {kind!r}")
    spec = _require(fields, "feature_spec", dict)
    inputs = _require(fields, "inputs", dict)
    if set(inputs) != {INPUT_NAME}:
        raise ManifestError("inputs", f"expected exactly {{{INPUT_NAME!r}}}, got {sorted(inputs)}")
    in_shape = _shape(inputs[INPUT_NAME], f"inputs.{INPUT_NAME}", 2)
    n_features = in_shape[1]
    if n_features is None:
        raise ManifestError(f"inputs.{INPUT_NAME}[1]", "the feature count must be fixed")
    outputs = _require(fields, "outputs", dict)
    if set(outputs) != {SCORE_NAME, CONTRIB_NAME}:
        raise ManifestError(
            "outputs", f"expected {SCORE_NAME!r} and {CONTRIB_NAME!r}, got {sorted(outputs)}"
        )
    _shape(outputs[SCORE_NAME], f"outputs.{SCORE_NAME}", 1)
    c_shape = _shape(outputs[CONTRIB_NAME], f"outputs.{CONTRIB_NAME}", 2)
    if c_shape[1] != n_features:
        raise ManifestError(f"outputs.{CONTRIB_NAME}", f"width {c_shape[1]} != {n_features} features")

    threshold = _threshold(fields, "")
    _calibration(fields, "")
    training = _require(fields, "training", dict)
    _require(training, "data_sha256", str, "training")
    _require(training, "seconds", (int, float), "training")
    _require(training, "seed", int, "training")
    _require(fields, "metrics", dict)
    _require(fields, "signature", str)
    tiers, default = _tiers(fields, sha, threshold)
    return Manifest(
        kind=kind, model_id=model_id, sha256=sha, threshold=threshold, n_features=n_features,
        feature_spec=spec, fields=fields, tiers=tiers, default_tier=default,
    )


def _number(d: dict[str, Any], key: str, where: str) -> float:
    value = _require(d, key, (int, float), where)
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond float range
        raise ManifestError(f"{where}.{key}" if where else key,
                            f"a {value.bit_length()}-bit integer is beyond float range") from None


def _threshold(d: dict[str, Any], where: str) -> float:
    threshold = _number(d, "threshold", where)
    if not (math.isfinite(threshold) and threshold > 0):
        name = f"{where}.threshold" if where else "threshold"
        raise ManifestError(name, f"must be finite and > 0, got {threshold!r}")
    return threshold


def _calibration(d: dict[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.calibration" if where else "calibration"
    cal: dict[str, Any] = _require(d, "calibration", dict, where)
    far = _number(cal, "target_far", at)
    if not 0 < far < 1:
        raise ManifestError(f"{at}.target_far", f"must be in (0, 1), got {far!r}")
    if _require(cal, "n_windows", int, at) <= 0:
        raise ManifestError(f"{at}.n_windows", "must be > 0")
    _require(cal, "score_quantiles", dict, at)
    return cal


def _tiers(
    fields: dict[str, Any], sha: str, threshold: float
) -> tuple[dict[str, TierEntry], str]:
    """The optional tier table; the top level must repeat the default tier."""
    if "tiers" not in fields and "default_tier" not in fields:
        return {}, ""
    table = _require(fields, "tiers", dict)
    if not table:
        raise ManifestError("tiers", "must list at least one tier")
    out: dict[str, TierEntry] = {}
    for name, entry in table.items():
        where = f"tiers.{name}"
        if not _TIER_NAME.match(name):
            raise ManifestError(where, "tier names are lowercase letters, digits and '_'")
        if not isinstance(entry, dict):
            raise ManifestError(where, f"expected dict, got {type(entry).__name__}")
        if _require(entry, "file", str, where) != tier_file(name):
            raise ManifestError(f"{where}.file", f"must be {tier_file(name)!r}")
        tsha = _require(entry, "sha256", str, where)
        if not _HEX64.match(tsha):
            raise ManifestError(f"{where}.sha256", "expected 64 lowercase hex digits")
        if _require(entry, "model_id", str, where) != model_id_for(tsha):
            raise ManifestError(f"{where}.model_id", "is not the first 16 hex digits of sha256")
        out[name] = TierEntry(name, tier_file(name), tsha, model_id_for(tsha),
                              _threshold(entry, where), _calibration(entry, where))
    default = _require(fields, "default_tier", str)
    if default not in out:
        raise ManifestError("default_tier", f"{default!r} is not one of the tiers {sorted(out)}")
    if out[default].sha256 != sha or out[default].threshold != threshold:
        raise ManifestError("default_tier", "top-level sha256 and threshold must be its own")
    return out, default
