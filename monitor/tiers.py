"""The models the monitor scores with: one per tier of a tiered bundle, or the only one (shell).

``open_tiers`` builds a scorer for every tier the governor may use (all of them, heaviest
first, with ``monitor.governor = "auto"``; only the start tier with "off") and checks that
each takes the spec's features. The start tier is ``monitor.bundle_tier``, or the bundle's
default tier. Each tier keeps its own threshold: a score is only ever judged against the
threshold of the model that produced it. ``Tier.index`` is the tier's place in the bundle's
heaviest-to-lightest order (0 teacher or the single model, 1 student, 2 int8), the number
heartbeats and verdicts carry, whether or not the other tiers are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.errors import BundleRefused
from monitor.governor import tier_order
from tripwire.config import MonitorConfig

if TYPE_CHECKING:
    from models.bundle import Bundle
    from models.protocol import Scorer


@dataclass(frozen=True, slots=True)
class Tier:
    index: int
    name: str  # "" for a single-model bundle
    scorer: Scorer
    threshold: float
    model_id: bytes  # 8 bytes, as every verdict carries it
    degraded: bool  # the scorer fell back from the execution provider it was asked for

    @classmethod
    def of(cls, index: int, name: str, scorer: Scorer, threshold: float) -> Tier:
        return cls(index, name, scorer, float(threshold), bytes(scorer.model_id)[:8],
                   bool(getattr(scorer, "degraded", False)))


@dataclass(frozen=True, slots=True)
class TierSet:
    tiers: tuple[Tier, ...]  # heaviest first; the governor moves along this tuple
    start: int = 0  # position in ``tiers`` to start at
    governed: bool = False  # the governor may switch (auto, and more than one tier loaded)

    @classmethod
    def single(cls, scorer: Scorer, threshold: float) -> TierSet:
        return cls((Tier.of(0, "", scorer, threshold),))

    def names(self) -> list[str]:
        return [t.name for t in self.tiers]


def open_tiers(bundle: Bundle, cfg: MonitorConfig, n_features: int, max_batch: int) -> TierSet:
    """Scorers for the tiers the monitor may use; BundleRefused if one cannot be used."""
    if not bundle.tiers:
        if cfg.bundle_tier:
            raise BundleRefused("unknown_tier", f"monitor.bundle_tier {cfg.bundle_tier!r}: the "
                                "bundle holds a single model, no tiers")
        return TierSet.single(_scorer(bundle, None, cfg, n_features, max_batch), bundle.threshold)
    order = tier_order(bundle.tiers)
    start = cfg.bundle_tier or bundle.tier
    if start not in order:
        raise BundleRefused("unknown_tier", f"monitor.bundle_tier {start!r} is not one of the "
                            f"bundle's tiers {list(order)}")
    names = order if cfg.governor == "auto" else (start,)
    tiers = tuple(Tier.of(order.index(name), name, _scorer(bundle, name, cfg, n_features, max_batch),
                       bundle.with_tier(name).threshold) for name in names)
    return TierSet(tiers, names.index(start), governed=len(tiers) > 1)


def _scorer(bundle: Bundle, tier: str | None, cfg: MonitorConfig, n_features: int,
            max_batch: int) -> Scorer:
    from models.providers import options_from_config  # noqa: PLC0415 - models when loading

    try:
        scorer = bundle.scorer(providers=cfg.providers, intra_op_threads=cfg.intra_op_threads,
                               max_batch=max_batch, tier=tier, options=options_from_config(cfg))
    except Exception as e:  # whatever stops a session from being built refuses the bundle
        raise BundleRefused(snake(type(e).__name__), str(e)) from None
    if scorer.n_features != n_features:
        raise BundleRefused("spec_mismatch", f"model{f' tier {tier}' if tier else ''} takes "
                            f"{scorer.n_features} features, the spec makes {n_features}")
    return scorer


def snake(name: str) -> str:
    """An exception's class name as a reason key: ``IntegrityError`` -> ``integrity_error``."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
