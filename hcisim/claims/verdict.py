"""The verdict of one claim: what was measured, against which limit, and the evidence."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

VerdictKind = Literal["pass", "fail", "n/a"]

# Evidence lists stay readable in a 100-VM run: the worst offenders, not every VM.
MAX_EVIDENCE = 20


@dataclass(frozen=True)
class Verdict:
    name: str
    kind: str
    verdict: VerdictKind
    measured: float | None
    limit: float | None
    unit: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    expected: Literal["pass", "fail"] = "pass"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # JSON has no infinity: an unbounded measurement (a VM that never came back) is None
        # in the files, and the evidence says why.
        if isinstance(self.measured, float) and not math.isfinite(self.measured):
            d["measured"] = None
        return d

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    @property
    def as_expected(self) -> bool:
        """The run agrees with the scenario: a claim holds (or does not apply), or a claim
        documented as a known failure (``expect: fail``) really fails."""
        if self.expected == "fail":
            return self.verdict == "fail"
        return self.verdict != "fail"


def rounded(x: float, digits: int = 3) -> float:
    """Evidence values rounded so that reports and JSON stay legible."""
    return round(float(x), digits) if math.isfinite(x) else float(x)


def trim(evidence: list[dict[str, Any]], key: str | None = None,
         reverse: bool = True) -> list[dict[str, Any]]:
    """The ``MAX_EVIDENCE`` most telling items (sorted by ``key``, worst first)."""
    items = sorted(evidence, key=lambda e: _sort_key(e.get(key)), reverse=reverse) if key \
        else list(evidence)
    if len(items) > MAX_EVIDENCE:
        items = [*items[:MAX_EVIDENCE], {"note": f"{len(items) - MAX_EVIDENCE} more not shown"}]
    return items


def _sort_key(x: Any) -> float:
    if isinstance(x, int | float):
        return float(x) if not math.isnan(float(x)) else -math.inf
    return -math.inf
