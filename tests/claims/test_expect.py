"""``expect: fail`` claims: a scenario that documents a known weakness is as expected only
when the claim really fails."""

from __future__ import annotations

import dataclasses

from hcisim.claims import Verdict


def _v(verdict: str, expected: str) -> Verdict:
    base = Verdict("c", "ha_reservation", "pass", 1.0, 0.0, "VMs")
    return dataclasses.replace(base, verdict=verdict, expected=expected)  # type: ignore[arg-type]


def test_expected_failure_is_as_expected_only_when_it_fails() -> None:
    assert _v("fail", "fail").as_expected
    assert not _v("pass", "fail").as_expected
    assert not _v("n/a", "fail").as_expected


def test_ordinary_claim_is_as_expected_unless_it_fails() -> None:
    assert _v("pass", "pass").as_expected and _v("n/a", "pass").as_expected
    assert not _v("fail", "pass").as_expected
