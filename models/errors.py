"""Every exception the models package raises, in one tree.

    ModelError
    ├── BundleError             a bundle that must not be loaded (refuse to arm)
    │   ├── BundleMissing       the directory, model.onnx or manifest.json is absent or
    │   │                       unreadable
    │   ├── ManifestError       manifest.json is not JSON, or a field is missing or ill-typed
    │   │                       (``field`` names it)
    │   ├── IntegrityError      model.onnx (or a tier's file) does not hash to the manifest's
    │   │                       sha256
    │   ├── SignatureError      the manifest's HMAC does not verify with the site key
    │   ├── GraphMismatch       the ONNX graph is invalid, or its input/output names and shapes
    │   │                       disagree with the manifest
    │   ├── SpecMismatch        the bundle's feature spec differs from the running config
    │   │                       (``field`` names the differing field)
    │   └── UnknownTier         a tier was asked for that the bundle does not hold
    ├── ScorerError
    │   ├── ProviderError       no inference session could be created with any provider
    │   └── InferenceError      one scoring call failed (bad input shape, runtime error)
    └── TrainingError           not enough or unusable training data, or training diverged

onnxruntime and onnx exceptions never leave this package: they are translated into these
at the boundary (bundle.py, scorer.py). Nothing here imports a third-party library.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of everything the models package raises."""


class BundleError(ModelError):
    """A bundle that must not be loaded; the message says why."""


class BundleMissing(BundleError):
    pass


class ManifestError(BundleError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"manifest field {field!r}: {problem}")
        self.field = field


class IntegrityError(BundleError):
    pass


class SignatureError(BundleError):
    pass


class GraphMismatch(BundleError):
    pass


class SpecMismatch(BundleError):
    def __init__(self, field: str, bundle_value: object, config_value: object) -> None:
        super().__init__(
            f"feature spec field {field!r} differs: bundle has {bundle_value!r}, "
            f"config has {config_value!r}"
        )
        self.field = field


class UnknownTier(BundleError):
    pass


class ScorerError(ModelError):
    pass


class ProviderError(ScorerError):
    pass


class InferenceError(ScorerError):
    pass


class TrainingError(ModelError):
    pass
