"""One acceptance check's result: what was checked, where, expected against actual."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

CheckVerdict = Literal["pass", "fail", "warn"]


@dataclass(frozen=True)
class CheckRow:
    check: str
    host: str  # scenario host, or "cluster" for a fact of the whole cluster
    expected: str
    actual: str
    verdict: CheckVerdict
    subject: str = ""  # the volume or brick the row is about

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row(check: str, host: str, expected: str, actual: str, ok: bool,
        subject: str = "", warn: bool = False) -> CheckRow:
    """A row that passes when ``ok``; otherwise fails (or only warns when ``warn``)."""
    verdict: CheckVerdict = "pass" if ok else ("warn" if warn else "fail")
    return CheckRow(check, host, expected, actual, verdict, subject)


def failed(rows: list[CheckRow]) -> list[CheckRow]:
    return [r for r in rows if r.verdict == "fail"]
