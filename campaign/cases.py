"""The campaign's rows, in the order ``make faults`` runs them (fast, pure rows first)."""

from __future__ import annotations

from campaign.case import CaseSpec


def all_cases() -> list[CaseSpec]:
    # Imported here: each module pulls in the servers and processes its rows need.
    from campaign import blackchannel, plc, process, state

    return [*state.CASES, *blackchannel.CASES, *plc.CASES, *process.CASES]


def select(names: list[str] | None) -> list[CaseSpec]:
    """The named rows (all when ``names`` is empty); an unknown name is an error naming it."""
    specs = all_cases()
    if not names:
        return specs
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
