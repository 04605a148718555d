"""``hcisim validate``: the model against a lab on a matrix that is not the calibration set.

Every case runs ``repeat`` times on the lab and ``repeat`` times on the model (seeds
``seed``, ``seed + 1``, ...), with the profile under test. Per case, metric and subject: the
median and the band (min..max) on each side, the relative error of the medians, whether
the lab's median lies inside the model's band, and the issue's target for that metric.

The matrix differs from the calibration experiments on purpose: other fault kinds
(power loss, partition, brick crash, a shaped link, a disk failure), an arbiter volume,
ping-timeouts of 5 and 8 s at fault times off the calibration grid, 64 MiB shards, and
background load. Never tune a profile to these cases: if one is off, find the mechanism.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from hcisim.calibration.cases import Case, fault, lab_scenario
from hcisim.engines import observe
from hcisim.observations import Observations
from hcisim.scenario import Scenario

# Targets of issue 12 (relative error of the medians), per metric.
TARGETS = {"max_stall": 0.10, "heal_time": 0.25, "heal_after_repair": 0.25,
           "bytes_healed": 0.15, "throughput": 0.10, "io_error": 0.10}
COLUMNS = ["case", "metric", "subject", "unit", "model_median", "model_min", "model_max",
           "lab_median", "lab_min", "lab_max", "rel_error", "lab_in_model_band", "target",
           "within_target", "n_model", "n_lab"]

Observe = Callable[[str, Scenario, Mapping[str, Any] | None], Observations]
Say = Callable[[str], None]


def _observe(engine: str, sc: Scenario, options: Mapping[str, Any] | None) -> Observations:
    return observe(engine, sc, options=options)


def _case(name: str, faults: list[dict[str, Any]], duration_s: float, profile: str | None,
          **kw: Any) -> Case:
    f = faults[0]
    knobs = ", ".join(f"{k} {v}" for k, v in kw.items())
    what = (f"validation case: {f['kind']} of host2 at {f['at_s']:g} s for "
            f"{f['duration_s']:g} s" + (f"; {knobs}" if knobs else ""))
    sc = lab_scenario(f"val-{name}", faults, duration_s, profile=profile, description=what,
                      **kw)
    return Case("validate", name, sc, {k: v for k, v in kw.items()
                                        if isinstance(v, (int, float, str))})


def matrix(profile: str | None = None) -> list[Case]:
    """The validation cases (fault at 11.3 s: off the calibration experiments' grid)."""
    at = 11.3
    return [
        _case("power-loss-r3-t5", [fault("node_power_loss", at, 15)], 45, profile),
        _case("power-loss-arbiter-t5", [fault("node_power_loss", at, 15)], 45, profile,
              volume_type="arbiter"),
        _case("power-loss-r3-t5-load", [fault("node_power_loss", at, 15)], 50, profile,
              iops=200, block_kib=64),
        _case("nic-loss-r3-t8-64mib", [fault("nic_loss", at, 25)], 55, profile,
              ping_timeout_s=8.0, shard_mib=64),
        _case("node-hang-r3-t5", [fault("node_hang", at, 15)], 45, profile),
        _case("brick-hang-r3-t8", [fault("brick_hang", at, 25)], 55, profile,
              ping_timeout_s=8.0),
        _case("partition-r3-t5", [fault("partition", at, 15)], 45, profile),
        _case("brick-crash-r3", [fault("brick_crash", at, 10)], 35, profile),
        _case("link-slowdown-r3", [fault("link_slowdown", at, 15, rate_mbit=100)], 40,
              profile, iops=200, block_kib=64),
        _case("disk-failure-r3", [fault("disk_failure", at, 10)], 45, profile),
        # a fourth host without bricks (vm4 on it): its client sees host2's loss through its
        # own ping timers and writes all three copies over its own link
        _case("compute-only-power-loss-r3-t5", [fault("node_power_loss", at, 15)], 45,
              profile, compute_only=True),
        # features.shard off: a VM disk is one file, and a heal copies the whole image
        _case("power-loss-r3-t5-unsharded", [fault("node_power_loss", at, 15)], 45, profile,
              shard=False),
    ]


def case_names() -> list[str]:
    return [c.label for c in matrix()]


def select(cases: Sequence[Case], names: Sequence[str] | None) -> list[Case]:
    if not names:
        return list(cases)
    known = {c.label: c for c in cases}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown validation case(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known)}")
    return [known[n] for n in names]


Key = tuple[str, str, str]


def case_metrics(sc: Scenario, obs: Observations) -> dict[Key, float]:
    """The metrics ``hcisim compare`` reports (one definition for both jobs)."""
    from hcisim.compare import metrics

    return metrics(sc, obs)


@dataclass
class CaseRuns:
    case: Case
    model: list[dict[Key, float]]
    lab: list[dict[Key, float]]
    error: str = ""  # why the lab side failed, if it did


@dataclass(frozen=True)
class StoredLab:
    """A lab side measured before (``hcisim validate --lab-from``): per case its runs'
    metrics and the error of a case whose lab run failed."""

    runs: Mapping[str, list[dict[Key, float]]]
    errors: Mapping[str, str]
    engine: str


class StoredLabError(ValueError):
    """A --lab-from file that is not a validation result."""


def load_lab_runs(path: Path) -> StoredLab:
    """The lab side of an earlier ``validate.json``: its runs (``lab_runs``, written since
    2026-11-30 session 13), or for an older file, from each row's lab min / median / max:
    one, two or three stand-in runs with exactly those statistics (the table needs no
    more: its medians, bands and errors come out the same). The lab's measurements do not
    depend on the model, so a new model or profile is judged against them without the lab."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoredLabError(f"{path}: cannot read a validation result: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise StoredLabError(f"{path}: not a validate.json (no 'rows' list)")
    runs: dict[str, list[dict[Key, float]]] = {}
    if isinstance(data.get("lab_runs"), dict):
        for label, case_runs in data["lab_runs"].items():
            runs[label] = [{(str(m), str(s), str(u)): float(v) for m, s, u, v in run}
                           for run in case_runs]
    else:
        for row in data["rows"]:
            n = int(row.get("n_lab") or 0)
            case_runs = runs.setdefault(str(row["case"]), [])
            values = [row["lab_median"]] if n == 1 else (
                [row["lab_min"], row["lab_max"]] if n == 2 else
                [row["lab_min"], row["lab_median"], row["lab_max"]])
            while len(case_runs) < len(values):
                case_runs.append({})
            key = (str(row["metric"]), str(row["subject"]), str(row["unit"]))
            for run, v in zip(case_runs, values, strict=False):
                if v is not None:
                    run[key] = float(v)
    errors = data.get("lab_errors") or {}
    return StoredLab(runs, {str(k): str(v) for k, v in errors.items()},
                     str(data.get("engine", "lab")))


def run_matrix(cases: Sequence[Case], engine: str, repeat: int,
               options: Mapping[str, Any] | None = None, observe_fn: Observe = _observe,
               say: Say | None = None, logs: Path | None = None,
               stored: StoredLab | None = None) -> list[CaseRuns]:
    """Model and lab runs of every case. A case whose lab run fails is reported with its
    error (the others still run). ``logs``: each lab run's daemon, client and workload
    logs are kept in ``logs/<case>-<run>`` (the lab's option ``keep_logs``): where a
    metric is off, the mechanism is read there. ``stored``: the lab side measured before
    (no lab runs)."""
    from hcisim.engines import EngineError

    out = []
    for case in cases:
        sc = case.scenario
        model = [case_metrics(sc, observe_fn("model", sc.model_copy(update={"seed": sc.seed + i}),
                                             None)) for i in range(repeat)]
        runs = CaseRuns(case, model, [])
        if stored is not None:
            runs.lab = list(stored.runs.get(case.label, []))
            runs.error = stored.errors.get(case.label, "")
            out.append(runs)
            continue
        for i in range(repeat):
            if say is not None:
                say(f"{case.label}: {engine} run {i + 1}/{repeat}")
            run_options = options
            if logs is not None:
                run_options = {**(options or {}), "keep_logs": logs / f"{case.label}-{i + 1}"}
            try:
                runs.lab.append(case_metrics(sc, observe_fn(engine, sc, run_options)))
            except EngineError as exc:
                runs.error = str(exc)
                break
        out.append(runs)
    return out


def _stats(values: list[float]) -> tuple[float, float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan, math.nan
    return median(vals), min(vals), max(vals)


def table(runs: Sequence[CaseRuns]) -> pd.DataFrame:
    rows = []
    for r in runs:
        keys = sorted({k for m in (*r.model, *r.lab) for k in m})
        for key in keys:
            mm, m0, m1 = _stats([m.get(key, math.nan) for m in r.model])
            lm, l0, l1 = _stats([m.get(key, math.nan) for m in r.lab])
            rel = (mm - lm) / abs(lm) if lm and not math.isnan(lm) else math.nan
            band = in_band((m0, m1), lm)
            target = TARGETS.get(key[0], math.nan)
            within = None if math.isnan(rel) or math.isnan(target) else abs(rel) <= target
            rows.append([r.case.label, *key, mm, m0, m1, lm, l0, l1, rel, band, target,
                         within, len(r.model), len(r.lab)])
    return pd.DataFrame(rows, columns=COLUMNS)


def in_band(model: tuple[float, float], lab_median: float) -> bool | None:
    """Whether the lab's median lies in the model's band (min..max over its runs). None
    (not judged) without a lab value, or where the model's runs all gave one value: the
    quantity is not random in the model for that case (e.g. the clients' ping phase is
    fixed), and only the target on the medians can judge it."""
    lo, hi = model
    if math.isnan(lab_median) or math.isnan(lo) or hi - lo <= 1e-9:
        return None
    return lo - 1e-9 <= lab_median <= hi + 1e-9


def write_validation(runs: Sequence[CaseRuns], out: Path, engine: str, profile: str,
                     repeat: int) -> list[Path]:
    """validate.csv, validate.json and validate.html in ``out``."""
    from hcisim.report.pages import render_page

    out.mkdir(parents=True, exist_ok=True)
    df = table(runs)
    csv, js, html = out / "validate.csv", out / "validate.json", out / "validate.html"
    df.to_csv(csv, index=False)
    errors = {r.case.label: r.error for r in runs if r.error}
    head = {"engine": engine, "profile": profile, "repeat": repeat, "targets": TARGETS,
            "cases": [r.case.label for r in runs], "lab_errors": errors}
    # every lab run's metrics, so that a later model can be judged against them
    # (--lab-from) with the runs themselves
    lab_runs = {r.case.label: [[[*key, value] for key, value in sorted(run.items())]
                               for run in r.lab] for r in runs}
    js.write_text(json.dumps({**head, "rows": json.loads(df.to_json(orient="records")),
                              "lab_runs": lab_runs}, indent=2))
    html.write_text(render_page("validate.html.j2", head=head, rows=df.to_dict("records"),
                                summary=summary(df)))
    return [csv, js, html]


def summary(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per metric: rows judged, within target, lab median inside the model's band."""
    out = []
    for metric, g in df.groupby("metric", sort=True):
        judged = g["within_target"].dropna()
        band = g["lab_in_model_band"].dropna()
        out.append({"metric": metric, "rows": len(g),
                    "target": TARGETS.get(str(metric)),
                    "within": int(judged.astype(bool).sum()), "judged": len(judged),
                    "in_band": int(band.astype(bool).sum()), "band_judged": len(band)})
    return out
