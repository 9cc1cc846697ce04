"""Model bundles on disk: write them, and load them only when every check passes (shell).

A bundle is a directory holding ``model.onnx`` and ``manifest.json`` (schema and signature in
manifest.py), or, tiered, one ``<tier>.onnx`` per tier (``teacher.onnx``, ``student.onnx``,
``int8.onnx``) listed under the manifest's ``tiers``, each with its own sha256, threshold and
calibration. ``load_bundle`` refuses, with a BundleError subclass saying why, a missing
file, a malformed manifest (the field is named), a signature that does not verify with the
site key, any model file that does not hash to its manifest sha256, a feature spec this
monitor cannot compute, and a graph whose input and output names, types or shapes disagree
with the manifest. A loaded bundle is its default tier; ``with_tier`` and
``scorer(tier=...)`` pick another. ``Bundle.check_spec`` then compares the bundle's feature spec with the one
the running config implies. Models are only ever ONNX bytes; nothing is pickled.

Files are written to a temporary name and renamed, model first and manifest last, so a
reader never sees a half-written bundle as valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from google.protobuf.message import DecodeError as ProtobufDecodeError

from models import manifest as mf
from models.errors import (
    BundleError,
    BundleMissing,
    GraphMismatch,
    IntegrityError,
    ManifestError,
    SpecMismatch,
    UnknownTier,
)
from models.manifest import DEV_KEY
from monitor.errors import FeatureSpecError
from monitor.features import FeatureSpec

if TYPE_CHECKING:
    from models.providers import ScorerOptions
    from models.scorer import OnnxScorer

__all__ = [
    "DEV_KEY", "Bundle", "load_bundle", "read_key_file", "write_bundle", "write_tiered_bundle",
]

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]  # the whole manifest as loaded and verified
    info: mf.Manifest  # its checked fields
    spec: FeatureSpec
    onnx_bytes: bytes  # the active tier's graph (the only one in a single-model bundle)
    tier_bytes: dict[str, bytes] = dataclasses.field(default_factory=dict)
    tier: str = ""  # the active tier; "" in a single-model bundle

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(self.tier_bytes)

    def with_tier(self, name: str) -> Bundle:
        """This bundle seen through tier ``name``: its graph, model_id and threshold."""
        if name not in self.tier_bytes:
            held = ", ".join(self.tier_bytes) or "none: a single-model bundle"
            raise UnknownTier(f"{self.path}: no tier {name!r} (tiers: {held})")
        return dataclasses.replace(self, info=self.info.for_tier(name),
                                   onnx_bytes=self.tier_bytes[name], tier=name)

    @property
    def calibration(self) -> dict[str, Any]:
        if self.tier:
            return dict(self.info.tiers[self.tier].calibration)
        return dict(self.manifest["calibration"])

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def model_id(self) -> bytes:
        """8 raw bytes, as carried in every Verdict."""
        return self.info.model_id_bytes

    @property
    def model_id_hex(self) -> str:
        return self.info.model_id

    @property
    def threshold(self) -> float:
        return self.info.threshold

    @property
    def n_features(self) -> int:
        return self.info.n_features

    @property
    def feature_spec(self) -> dict[str, Any]:
        return dict(self.info.feature_spec)

    @property
    def feature_names(self) -> list[str]:
        return self.spec.names()

    def check_spec(self, spec: FeatureSpec) -> None:
        """Raise SpecMismatch naming the first field where ``spec`` differs from the bundle's."""
        for f in dataclasses.fields(FeatureSpec):
            ours, theirs = getattr(self.spec, f.name), getattr(spec, f.name)
            if ours != theirs:
                raise SpecMismatch(f.name, ours, theirs)
        if self.spec.names() != spec.names():
            raise SpecMismatch("features", self.spec.names(), spec.names())

    def scorer(
        self, providers: str = "auto", intra_op_threads: int = 1, max_batch: int = 64,
        tier: str | None = None, options: ScorerOptions | None = None,
    ) -> OnnxScorer:
        """A scorer over the active tier, or over ``tier`` (whose threshold is
        ``with_tier(tier).threshold``); ``options``: CUDA graphs, TensorRT caches
        (providers.options_from_config makes them from the monitor's config)."""
        from models.scorer import open_scorer  # noqa: PLC0415 - onnxruntime only when scoring

        if tier is not None and tier != self.tier:
            return self.with_tier(tier).scorer(providers, intra_op_threads, max_batch,
                                               options=options)
        return open_scorer(
            self.onnx_bytes, self.model_id, self.n_features, providers=providers,
            intra_op_threads=intra_op_threads, max_batch=max_batch, options=options,
        )


def read_key_file(path: str | Path) -> bytes:
    """A site signing key: the file's bytes without trailing whitespace, at least 16 bytes."""
    try:
        key = Path(path).read_bytes().rstrip()
    except OSError as e:
        raise BundleError(f"{path}: cannot read signing key ({e.strerror})") from None
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(f"{path}: signing key shorter than {MIN_KEY_BYTES} bytes")
    return key


def _shape_of(vi: onnx.ValueInfoProto) -> tuple[int, list[int | None]]:
    t = vi.type.tensor_type
    dims: list[int | None] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return t.elem_type, dims


def check_graph(onnx_bytes: bytes, info: mf.Manifest, file: str = MODEL_FILE) -> None:
    """The graph parses, passes onnx's checker, and has exactly the manifest's interface."""
    try:
        model = onnx.load_model_from_string(onnx_bytes)
        onnx.checker.check_model(model)
    except (ProtobufDecodeError, onnx.checker.ValidationError, ValueError) as e:
        raise GraphMismatch(f"{file} is not a valid ONNX model: {e}") from None
    inits = {i.name for i in model.graph.initializer}
    declared = {
        "input": ({vi.name: vi for vi in model.graph.input if vi.name not in inits},
                  info.fields["inputs"]),
        "output": ({vi.name: vi for vi in model.graph.output}, info.fields["outputs"]),
    }
    for what, (graph_side, manifest_side) in declared.items():
        if set(graph_side) != set(manifest_side):
            raise GraphMismatch(
                f"{file}: graph {what}s {sorted(graph_side)} differ from the manifest's "
                f"{sorted(manifest_side)}"
            )
        for name, want in manifest_side.items():
            elem, dims = _shape_of(graph_side[name])
            if elem != onnx.TensorProto.FLOAT:
                raise GraphMismatch(f"{file}: graph {what} {name!r} is not float32")
            if dims != want:
                raise GraphMismatch(
                    f"{file}: graph {what} {name!r} has shape {dims}, manifest says {want}"
                )


def _reject_constant(name: str) -> Any:
    raise ManifestError("<root>", f"{name} is not allowed in a manifest")


def load_bundle(path: str | Path, key: bytes = DEV_KEY) -> Bundle:
    root = Path(path)
    if not root.is_dir():
        raise BundleMissing(f"{root}: no bundle directory there")
    try:
        raw = _read(root, MANIFEST_FILE).decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleMissing(f"{root}: cannot read the bundle ({e})") from None
    try:
        fields = json.loads(raw, parse_constant=_reject_constant)
    # ValueError: JSONDecodeError, or an integer of more than 4300 digits; RecursionError:
    # nesting deeper than the interpreter's recursion limit.
    except (ValueError, RecursionError) as e:
        raise ManifestError("<root>", f"{MANIFEST_FILE} is not valid JSON ({str(e)[:200]})") \
            from None
    info = mf.parse(fields)
    mf.verify(fields, key)
    files = {t.name: t.file for t in info.tiers.values()} or {"": MODEL_FILE}
    graphs: dict[str, bytes] = {}
    for tier, file in files.items():
        data = _read(root, file)
        want = info.tiers[tier].sha256 if tier else info.sha256
        digest = hashlib.sha256(data).hexdigest()
        if digest != want:
            raise IntegrityError(
                f"{root / file}: sha256 {digest[:16]}... does not match the manifest's "
                f"{want[:16]}... (altered or corrupted model)"
            )
        graphs[tier] = data
    try:
        spec = FeatureSpec.from_dict(info.feature_spec)
    except FeatureSpecError as e:
        raise ManifestError("feature_spec", str(e)) from None
    if spec.n_features != info.n_features:
        raise ManifestError(
            "inputs.features", f"width {info.n_features} != {spec.n_features} features of the spec"
        )
    for tier, data in graphs.items():
        check_graph(data, info, files[tier])
    if not info.tiers:
        return Bundle(root, fields, info, spec, graphs[""])
    return Bundle(root, fields, info, spec, graphs[info.default_tier], graphs, info.default_tier)


def _read(root: Path, name: str) -> bytes:
    try:
        return (root / name).read_bytes()
    except FileNotFoundError:
        raise BundleMissing(f"{root}: {name} is missing") from None
    except OSError as e:
        raise BundleMissing(f"{root}: cannot read {name} ({e})") from None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_bundle(
    directory: str | Path, onnx_bytes: bytes, manifest: dict[str, Any], key: bytes = DEV_KEY
) -> Path:
    """Complete (format, sha256, model_id, created), check, sign and write a bundle.

    ``manifest`` holds the other fields (kind, feature_spec, inputs, outputs, threshold,
    calibration, training, metrics). The result is checked exactly as ``load_bundle`` would
    check it before anything is written, so an invalid bundle never reaches the disk.
    """
    fields = {k: v for k, v in manifest.items() if k not in ("signature", "tiers", "default_tier")}
    return _finish(Path(directory), {MODEL_FILE: onnx_bytes}, MODEL_FILE, fields, key)


def write_tiered_bundle(
    directory: str | Path, graphs: dict[str, bytes], tiers: dict[str, dict[str, Any]],
    manifest: dict[str, Any], default_tier: str, key: bytes = DEV_KEY,
) -> Path:
    """Write one ``<tier>.onnx`` per graph and a manifest listing them.

    ``tiers[name]`` holds that tier's ``threshold`` and ``calibration`` and any facts worth
    keeping (parameter count, metrics); file, sha256 and model_id are filled in here. The
    top-level threshold and calibration become the default tier's.
    """
    if not graphs or set(graphs) != set(tiers):
        raise BundleError(f"graphs {sorted(graphs)} and tier entries {sorted(tiers)} differ")
    if default_tier not in graphs:
        raise UnknownTier(f"default tier {default_tier!r} is not one of {sorted(graphs)}")
    table: dict[str, dict[str, Any]] = {}
    for name, data in graphs.items():
        sha = hashlib.sha256(data).hexdigest()
        table[name] = {**tiers[name], "file": mf.tier_file(name), "sha256": sha,
                       "model_id": mf.model_id_for(sha)}
    fields = {k: v for k, v in manifest.items() if k != "signature"}
    fields.update(tiers=table, default_tier=default_tier,
                  threshold=table[default_tier]["threshold"],
                  calibration=table[default_tier]["calibration"])
    files = {mf.tier_file(name): data for name, data in graphs.items()}
    return _finish(Path(directory), files, mf.tier_file(default_tier), fields, key)


def _finish(
    root: Path, files: dict[str, bytes], main_file: str, fields: dict[str, Any], key: bytes
) -> Path:
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(f"signing key shorter than {MIN_KEY_BYTES} bytes")
    sha = hashlib.sha256(files[main_file]).hexdigest()
    fields.update(format=mf.FORMAT, sha256=sha, model_id=mf.model_id_for(sha))
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        fields["signature"] = mf.sign(fields, key)
    except (TypeError, ValueError) as e:
        raise ManifestError("<root>", f"not serialisable as canonical JSON ({e})") from None
    info = mf.parse(fields)
    try:
        FeatureSpec.from_dict(info.feature_spec)
    except FeatureSpecError as e:
        raise ManifestError("feature_spec", str(e)) from None
    for name, data in files.items():
        check_graph(data, info, name)
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():  # models first, the manifest that vouches for them last
        _write_atomic(root / name, data)
    text = json.dumps(fields, indent=2, sort_keys=True, allow_nan=False) + "\n"
    _write_atomic(root / MANIFEST_FILE, text.encode("utf-8"))
    return root
