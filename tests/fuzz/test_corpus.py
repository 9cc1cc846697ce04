"""Replay every corpus file (tests/fuzz/corpus/<decoder>/*.case) through its decoder.

Each file records one input and the outcome it must have: accepted, or rejected with the
recorded reason. The corpus holds one input per distinct rejection reason and every input
that crashed a decoder while the fuzzers were written. Regenerate it with
``python -m tests.fuzz.make_corpus`` after a wire-format change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import harness
from tests.fuzz.make_corpus import CLASSIFIERS

CASES = [(d, p) for d in sorted(CLASSIFIERS) for p in sorted((harness.CORPUS / d).glob("*.case"))]


@pytest.mark.parametrize("decoder", sorted(CLASSIFIERS))
def test_every_decoder_has_a_corpus(decoder: str) -> None:
    assert list((harness.CORPUS / decoder).glob("*.case")), f"no corpus for {decoder}"


@pytest.mark.parametrize(("decoder", "path"), CASES, ids=[f"{d}/{p.stem}" for d, p in CASES])
def test_corpus_case_has_its_recorded_outcome(decoder: str, path: Path, tmp_path: Path) -> None:
    case = harness.read_case(path)
    got = harness.timed(CLASSIFIERS[decoder], case.parts, tmp_path)
    assert got == case.expect, f"{case.note}" if case.note else None


def test_corpus_files_round_trip(tmp_path: Path) -> None:
    case = harness.Case("x", "reject bad_crc", [b"\x00\x01", b""], "a note")
    assert harness.read_case(harness.write_case(tmp_path, case)) == case
