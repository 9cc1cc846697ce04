"""Bench test fixtures: a small load (2 machines x 4 channels at 6.4 kHz), its signal bank
and its bench model, built once per module (building them starts nothing)."""

from __future__ import annotations

import pytest

from bench.model import BenchModel, build_model
from bench.signals import BenchLoad, SignalBank

SMALL = BenchLoad(machines=2, channels=4, rate_hz=6400.0)


@pytest.fixture(scope="module")
def small_bank() -> SignalBank:
    return SignalBank(SMALL, seed=3)


@pytest.fixture(scope="module")
def small_model(small_bank: SignalBank) -> BenchModel:
    return build_model(small_bank)
