"""The model's known error, stated next to what a model run predicts.

The numbers are the validation table of docs/validation.md (model against the real lab),
shipped as ``hcisim/builtin/model-error.yaml`` so an installed hcisim has them. A reader of
a model run sees, per metric, how far the model was off the last time it was measured.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

FILE = "model-error.yaml"
# Which metric a claim kind measures, when it measures one the validation covers.
CLAIM_METRIC = {"zero_downtime": "max_stall_s", "heal_within": "heal_time_s",
                "throughput_at_least": "throughput_mb_s"}


@dataclass(frozen=True)
class MetricError:
    key: str
    label: str
    why: str
    low_pct: float
    high_pct: float

    @property
    def range(self) -> str:
        """``-33% .. 0%``: the spread of (model - lab) / lab over the table's subjects."""
        return f"{self.low_pct:+.0f}% .. {self.high_pct:+.0f}%".replace("+0%", "0%").replace(
            "-0%", "0%")


@dataclass(frozen=True)
class ModelError:
    scenario: str
    measured: str
    source: str
    metrics: tuple[MetricError, ...]

    @property
    def by_metric(self) -> dict[str, str]:
        return {m.key: m.range for m in self.metrics}

    def for_claim(self, kind: str) -> str:
        """The error range of what a claim of ``kind`` measures ('' when not validated)."""
        key = CLAIM_METRIC.get(kind)
        return self.by_metric.get(key, "") if key else ""


def raw() -> dict[str, Any]:
    text = (resources.files("hcisim") / "builtin" / FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@functools.cache
def model_error() -> ModelError:
    data = raw()
    metrics = []
    for key, m in data["metrics"].items():
        errors = [float(r["error_pct"]) for r in m["rows"]]
        metrics.append(MetricError(key, str(m["label"]), " ".join(str(m["why"]).split()),
                                   min(errors), max(errors)))
    return ModelError(str(data["scenario"]), str(data["measured"]), str(data["source"]),
                      tuple(metrics))
