"""Claims: pure functions over Observations (interface; the catalogue is issue 5's work)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hcisim.observations import Observations
from hcisim.scenario import Scenario


@dataclass(frozen=True)
class Verdict:
    name: str
    kind: str
    verdict: Literal["pass", "fail", "n/a"]
    measured: float | None
    limit: float | None
    unit: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(sc: Scenario, obs: Observations) -> list[Verdict]:
    raise NotImplementedError("claims are built in issue 5")
