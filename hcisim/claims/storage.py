"""Claims about the data: copies of acknowledged writes, quorum, and healing after repair."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hcisim.claims.timeline import fault_windows
from hcisim.claims.verdict import Verdict, VerdictKind, rounded, trim
from hcisim.observations import Observations
from hcisim.observations.summary import heal_completed_s
from hcisim.scenario import Scenario
from hcisim.scenario.claims import HealWithin, NoSplitBrain, Replicas

_EPS = 1e-9


def _writes(obs: Observations, vms: tuple[str, ...] | None) -> pd.DataFrame:
    wr = obs["writes"]
    return wr if vms is None else wr[wr["vm"].isin(vms)]


def _per_disk(rows: pd.DataFrame, **extra: Any) -> list[dict[str, Any]]:
    """One evidence item per (VM, volume): first and last time, bytes involved."""
    out: list[dict[str, Any]] = []
    for (vm, vol), g in rows.groupby(["vm", "volume"]):
        out.append({"vm": str(vm), "volume": str(vol), "from_s": rounded(g["t_start_s"].min()),
                    "to_s": rounded(g["t_end_s"].max()),
                    "acked_bytes": rounded(g["acked_bytes"].sum(), 0), **{
                        k: (v(g) if callable(v) else v) for k, v in extra.items()}})
    return out


def _ran_twice(obs: Observations, vms: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """``vm_ran_twice`` events (the lab's write history: two boots wrote one disk at once)."""
    ev = obs["events"]
    ev = ev[ev["kind"] == "vm_ran_twice"]
    if vms is not None:
        ev = ev[ev["target"].isin(vms)]
    return [{"vm": str(vm), "from_s": rounded(float(t)), "acked_bytes": math.nan,
             "problem": "two boots wrote the disk at once", "detail": str(detail)}
            for t, vm, detail in zip(ev["t_s"], ev["target"], ev["detail"], strict=True)]


def replicas(sc: Scenario, obs: Observations, c: Replicas) -> Verdict:
    """Every acknowledged write was on >= ``min_copies`` data bricks, none was lost, and no
    VM ran twice (two boots writing its disk at once lose each other's writes)."""
    name = c.name or c.kind
    wr = _writes(obs, c.vms)
    acked = wr[wr["acked_bytes"] > 0]
    twice = _ran_twice(obs, c.vms)
    if acked.empty:
        if twice:  # a run that checked its guests' histories but recorded no writes table
            return Verdict(name, c.kind, "fail", None, float(c.min_copies), "copies",
                           trim(twice))
        return Verdict(name, c.kind, "n/a", None, float(c.min_copies), "copies",
                       [{"note": "no write was acknowledged in this run"}])
    fewest = int(acked["copies"].min())
    few = acked[acked["copies"] < c.min_copies]
    lost = wr[wr["lost_bytes"] > 0]
    bad = _per_disk(few, copies=lambda g: int(g["copies"].min()), problem="too few copies")
    bad += _per_disk(lost, lost_bytes=lambda g: rounded(g["lost_bytes"].sum(), 0),
                     problem="acknowledged but lost")
    bad += twice
    if bad:
        evidence = trim(bad, "acked_bytes")
    else:
        evidence = [{"acked_bytes": rounded(acked["acked_bytes"].sum(), 0), "min_copies": fewest,
                     "lost_bytes": 0.0}]
    return Verdict(name, c.kind, "fail" if bad else "pass", float(fewest), float(c.min_copies),
                   "copies", evidence)


def no_quorum_windows(obs: Observations, volume: str) -> list[tuple[float, float]]:
    """Stretches in which volume_state says ``volume`` had no client quorum."""
    vs = obs["volume_state"]
    vs = vs[vs["volume"] == volume]
    if vs.empty:
        return []
    q = vs.groupby("t_s")["quorum"].all().sort_index()
    times = [*map(float, q.index), float(obs.duration_s)]
    out: list[tuple[float, float]] = []
    for i, ok in enumerate(q.to_numpy()):
        if not ok:
            if out and abs(out[-1][1] - times[i]) < _EPS:
                out[-1] = (out[-1][0], times[i + 1])
            else:
                out.append((times[i], times[i + 1]))
    return out


def no_split_brain(sc: Scenario, obs: Observations, c: NoSplitBrain) -> Verdict:
    """No write was accepted without client quorum.

    Three witnesses, all from the tables: the writes table's own ``quorum`` flag; the
    volume_state timeline (a write interval lying wholly inside a stretch where the volume
    had no quorum); and, for replica 3 volumes, a write acknowledged on fewer than 2 of the
    3 bricks (no majority, whatever the quorum options said: with quorum off, that is how
    split brain starts). Arbiter volumes count data bricks only in ``copies``, so the third
    witness does not apply to them. Two clients writing different bricks at once cannot be
    seen in these tables; docs/claims.md says so.
    """
    name = c.name or c.kind
    wr = _writes(obs, c.vms)
    acked = wr[wr["acked_bytes"] > 0]
    if acked.empty:
        return Verdict(name, c.kind, "n/a", None, 0.0, "bytes",
                       [{"note": "no write was acknowledged in this run"}])
    flagged = acked["quorum"].eq(False)
    inside = pd.Series(False, index=acked.index)
    for vol in acked["volume"].unique():
        mine = acked["volume"] == vol
        for t0, t1 in no_quorum_windows(obs, str(vol)):
            inside |= mine & (acked["t_start_s"] >= t0 - _EPS) & (acked["t_end_s"] <= t1 + _EPS)
    replica3 = [v.name for v in sc.volumes if v.type == "replica3"]
    minority = acked["volume"].isin(replica3) & (acked["copies"] < 2)
    bad_rows = acked[flagged | inside | minority]
    bytes_bad = float(bad_rows["acked_bytes"].sum())
    if bad_rows.empty:
        evidence: list[dict[str, Any]] = [{"acked_bytes": rounded(acked["acked_bytes"].sum(), 0),
                                           "without_quorum_bytes": 0.0}]
    else:
        evidence = trim(_per_disk(bad_rows, witness=lambda g: _witness(
            g, flagged, inside)), "acked_bytes")
    return Verdict(name, c.kind, "fail" if bytes_bad > 0 else "pass", bytes_bad, 0.0, "bytes",
                   evidence)


def _witness(g: pd.DataFrame, flagged: pd.Series, inside: pd.Series) -> str:
    if flagged.loc[g.index].any():
        return "writes.quorum"
    if inside.loc[g.index].any():
        return "volume_state"
    return "fewer than 2 of 3 bricks"


def heal_within(sc: Scenario, obs: Observations, c: HealWithin) -> Verdict:
    """Pending heal of each volume is back to 0 within ``within_s`` of its last recovery.

    Measured: the longest time from a volume's last repair (fault_end of a fault on one of
    its brick hosts) to its pending heal reaching 0. A run that ends still healing, sooner
    than ``within_s`` after the repair, is n/a (the deadline was not reached).
    """
    name = c.name or c.kind
    volumes = [c.volume] if c.volume is not None else [v.name for v in sc.volumes]
    windows = fault_windows(sc, obs)
    horizon = float(obs.duration_s or sc.duration_s)
    vs_all = obs["volume_state"]
    items: list[dict[str, Any]] = []
    verdicts: list[str] = []
    for vol in volumes:
        hosts = {b.host for b in sc.volume(vol).bricks}
        ends = [w.end_s for w in windows if w.end_s is not None and w.target in hosts]
        if not ends:
            verdicts.append("n/a")
            items.append({"volume": vol, "note": "no repair of a brick host in this run"})
            continue
        last = max(ends)
        vs = vs_all[vs_all["volume"] == vol]
        if vs.empty:
            verdicts.append("n/a")
            items.append({"volume": vol, "note": "no volume_state samples"})
            continue
        total = vs.groupby("t_s")["pending_heal_bytes"].sum().sort_index()
        if total.iloc[-1] > 0:
            waited = horizon - last
            item = {"volume": vol, "recovered_at_s": rounded(last),
                    "pending_at_end_bytes": rounded(float(total.iloc[-1]), 0),
                    "heal_s": rounded(waited)}
            if waited < c.within_s:
                verdicts.append("n/a")
                item["note"] = "run ended still healing, before the deadline"
            else:
                verdicts.append("fail")
                item["note"] = "still healing at the end of the run (heal_s is a lower bound)"
            items.append(item)
            continue
        done = heal_completed_s(obs, vol)
        took = 0.0 if done is None else max(0.0, done - last)
        verdicts.append("fail" if took > c.within_s + _EPS else "pass")
        items.append({"volume": vol, "recovered_at_s": rounded(last),
                      "healed_at_s": None if done is None else rounded(done),
                      "heal_s": rounded(took),
                      "max_pending_bytes": rounded(float(total.max()), 0)})
    measured = [float(i["heal_s"]) for i in items if "heal_s" in i]
    verdict: VerdictKind = ("fail" if "fail" in verdicts
                            else "pass" if "pass" in verdicts else "n/a")
    return Verdict(name, c.kind, verdict, max(measured) if measured else None,
                   c.within_s, "s", trim(items, "heal_s"))
