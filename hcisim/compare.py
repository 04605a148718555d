"""Model against lab on one scenario: per metric the model's value, the lab's, the error.

The model runs on the scenario *as the lab built it* (sizes and I/O demand scaled to this
machine, see :mod:`hcisim.lab.scale`), so the two answer the same question. Metrics, all
taken from the shared summary so they mean the same thing on both sides:

- per VM: mean throughput (read + write MB/s over the run), longest I/O stall (s);
- per volume: heal time (s, from the first heal start to the last heal end), bytes healed;
- per live migration (``vm:k``, the VM's k-th migration, from the ``migrations`` table:
  qemu's ``query-migrate`` counters on the lab): total time (s), downtime (ms), RAM
  transferred (MB on the wire), rounds (copy passes), moved (1: it ran on the destination
  afterwards, 0: aborted);
- per VM that paused on either side: longest pause (s), total paused (s), pauses, and the
  guest-visible stall (s: I/O stalled or paused, back to back; :mod:`hcisim.claims.compute`,
  the same function ``zero_downtime`` judges). A VM that did not pause on one side counts 0
  there, not "unknown";
- the HA timeline after the run's first fault (s after it starts): per host when the
  engine marked it non-responsive, fenced it or skipped the fence (its policy), when its
  sanlock lost its lease; per VM when a start acquired its VM lease and when it ran again
  after going down (``ha_restart``); when the hosted engine went down and came back
  (``engine_down``, ``engine_up``). Only what happened on a side is on that side.

Relative error is (model - lab) / lab; where the lab measured 0 it is left empty (and the
absolute difference still shows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hcisim.claims.compute import guest_stall_windows, longest, pause_windows
from hcisim.engines import observe, parse_engine
from hcisim.observations import Observations, summarize
from hcisim.scenario import Scenario

COLUMNS = ["metric", "subject", "unit", "model", "lab", "abs_error", "rel_error"]


@dataclass
class Comparison:
    scenario: Scenario  # as the lab built it
    model: Observations
    lab: Observations
    table: pd.DataFrame


def heal_time_s(obs: Observations, volume: str) -> float:
    h = obs["heal"]
    h = h[h["volume"] == volume]
    if h.empty:
        return 0.0
    return float(h["t_end_s"].max() - h["t_start_s"].min())


def metrics(sc: Scenario, obs: Observations) -> dict[tuple[str, str, str], float]:
    """(metric, subject, unit) -> value, from the summary every engine shares."""
    s = summarize(obs, [v.name for v in sc.vms], [v.name for v in sc.volumes])
    out: dict[tuple[str, str, str], float] = {}
    for vm, v in s["vms"].items():
        out[("throughput", vm, "MB/s")] = float(v["read_mb_s"] + v["write_mb_s"])
        out[("max_stall", vm, "s")] = float(v["max_io_stall_s"])
        out[("io_error", vm, "s")] = float(v["io_error_s"])
    for vol, v in s["volumes"].items():
        out[("heal_time", vol, "s")] = heal_time_s(obs, vol)
        # from the last repair to heal done: the same instants on both sides (the lab
        # sees a heal's start only by polling, so heal_time's start differs in meaning)
        after = v["heal_after_repair_s"]
        out[("heal_after_repair", vol, "s")] = math.nan if after is None else float(after)
        out[("bytes_healed", vol, "MB")] = float(v["bytes_healed"]) / 1e6
    return out


def migration_metrics(obs: Observations) -> dict[tuple[str, str, str], float]:
    """Per migration, in start order per VM: total, downtime, transferred, rounds, moved.
    A migration still under way when the run ended (``running``) keeps its place in the
    order but has no metrics: its figures are lower bounds, not outcomes."""
    out: dict[tuple[str, str, str], float] = {}
    mig = obs["migrations"].sort_values("t_start_s", kind="stable")
    seen: dict[str, int] = {}
    for r in mig.to_dict("records"):
        vm = str(r["vm"])
        seen[vm] = seen.get(vm, 0) + 1
        subject = f"{vm}:{seen[vm]}"
        if r["outcome"] == "running":
            continue
        out[("migration_total", subject, "s")] = float(r["t_end_s"]) - float(r["t_start_s"])
        out[("migration_downtime", subject, "ms")] = 1000.0 * float(r["downtime_s"])
        out[("ram_transferred", subject, "MB")] = float(r["transferred_mb"])
        out[("migration_rounds", subject, "passes")] = float(r["rounds"])
        out[("migration_moved", subject, "1=yes")] = float(r["outcome"] != "aborted")
    return out


def pause_metrics(sc: Scenario, obs: Observations) -> dict[tuple[str, str, str], float]:
    """Per VM that paused: longest and total pause, count, guest-visible stall."""
    out: dict[tuple[str, str, str], float] = {}
    for vm in (v.name for v in sc.vms):
        windows = pause_windows(obs, vm)
        if not windows:
            continue
        out[("paused_longest", vm, "s")] = longest(windows)[0]
        out[("paused_total", vm, "s")] = sum(b - a for a, b in windows)
        out[("pauses", vm, "count")] = float(len(windows))
        out[("guest_stall", vm, "s")] = longest(guest_stall_windows(obs, vm))[0]
    return out


HA_EVENTS = ("host_non_responsive", "host_fenced", "fence_skipped", "lease_lost",
             "lease_acquired", "engine_down", "engine_up")


def ha_metrics(obs: Observations) -> dict[tuple[str, str, str], float]:
    """The HA timeline, in s after the first fault starts: the first of each HA event per
    target, and per VM that went down the first ``vm_started`` after it (``ha_restart``)."""
    ev = obs["events"]
    faults = ev[ev["kind"] == "fault_start"]
    if faults.empty:
        return {}
    t0 = float(faults["t_s"].min())
    after = ev[ev["t_s"] >= t0].sort_values("t_s", kind="stable")
    out: dict[tuple[str, str, str], float] = {}
    down: dict[str, float] = {}
    for t, kind, target in zip(after["t_s"], after["kind"], after["target"], strict=True):
        key = (str(kind), str(target), "s")
        if kind in HA_EVENTS and key not in out:
            out[key] = float(t) - t0
        elif kind == "vm_down":
            down.setdefault(str(target), float(t))
        elif kind == "vm_started" and str(target) in down:
            out.setdefault(("ha_restart", str(target), "s"), float(t) - t0)
    return out


def _zero_filled(sc: Scenario, model: Observations, lab: Observations,
                 ) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, str, str], float]]:
    """Pause metrics of both sides over the VMs either paused: no pause measures 0."""
    m, lb = pause_metrics(sc, model), pause_metrics(sc, lab)
    vms = {k[1] for k in (*m, *lb)}
    filled = ({**{k: 0.0 for k in lb if k[1] in vms}, **m},
              {**{k: 0.0 for k in m if k[1] in vms}, **lb})
    for side, obs in zip(filled, (model, lab), strict=True):  # a VM stalls even unpaused
        for key in side:
            if key[0] == "guest_stall":
                side[key] = longest(guest_stall_windows(obs, key[1]))[0]
    return filled


def compare_observations(sc: Scenario, model: Observations, lab: Observations) -> pd.DataFrame:
    pm, plb = _zero_filled(sc, model, lab)
    m = {**metrics(sc, model), **migration_metrics(model), **pm, **ha_metrics(model)}
    # a run that measured no I/O (the plane's: meta io_measured false) has no I/O rows
    io = metrics(sc, lab) if lab.meta.get("io_measured", True) else {}
    lb = {**io, **migration_metrics(lab), **plb, **ha_metrics(lab)}
    rows = []
    for key in sorted(set(m) | set(lb)):
        mv, lv = m.get(key, math.nan), lb.get(key, math.nan)
        rel = (mv - lv) / abs(lv) if lv and not math.isnan(lv) else math.nan
        rows.append([*key, mv, lv, mv - lv, rel])
    return pd.DataFrame(rows, columns=COLUMNS)


def _observe(sc: Scenario, engine: str, options: dict[str, Any] | None = None) -> Observations:
    return observe(parse_engine(engine), sc, options=options)


def run_compare(sc: Scenario, lab_options: dict[str, Any] | None = None,
                engine_observations: Callable[..., Observations] = _observe,
                lab_engine: str = "lab") -> Comparison:
    """Run the model, then the lab (``lab_engine``, an engine name), on the scenario as the
    lab builds it.

    The model goes first: it takes a second, and a model that cannot run should not cost a
    lab run. The scale is fixed before either, so both see the same sizes and demands.
    """
    from hcisim.lab.scale import LabScale, as_built

    opts = dict(lab_options or {})
    scale = LabScale.fit(sc, opts.pop("size_scale", None), opts.pop("io_scale", None))
    built = as_built(sc, scale)
    model = engine_observations(built, "model")
    lab = engine_observations(sc, lab_engine, options={**opts, "size_scale": scale.size,
                                                        "io_scale": scale.io})
    return Comparison(built, model, lab, compare_observations(built, model, lab))


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per metric: model and lab side by side for each subject."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    kinds = list(dict.fromkeys(table["metric"]))
    cols = min(4, max(1, len(kinds)))  # compute metrics add up to nine panels: wrap them
    nrows = max(1, math.ceil(len(kinds) / cols))
    fig = Figure(figsize=(4.2 * cols, 3.6 * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, cols, squeeze=False).flat)
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes, kinds, strict=False):
        t = table[table["metric"] == kind]
        x = range(len(t))
        ax.bar([i - 0.2 for i in x], t["model"], width=0.4, label="model")
        ax.bar([i + 0.2 for i in x], t["lab"], width=0.4, label="lab")
        ax.set_xticks(list(x), list(t["subject"]), rotation=45, ha="right")
        ax.set_title(f"{kind} ({t['unit'].iloc[0]})")
    axes[0].legend(loc="best")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def write_comparison(c: Comparison, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv, js, png = out / "compare.csv", out / "compare.json", out / "compare.png"
    c.table.to_csv(csv, index=False)
    js.write_text(json.dumps({
        "scenario": c.scenario.name,
        "lab_meta": {k: c.lab.meta.get(k) for k in ("scale", "lab_up_s", "gluster_version",
                                                     "imposed")},
        "rows": json.loads(c.table.to_json(orient="records")),
    }, indent=2))
    plot(c.table, png, f"{c.scenario.name}: model vs lab")
    c.model.save(out / "model")
    c.lab.save(out / "lab")
    return [csv, js, png]
