"""The report's tables (pandas) and the raw tables written beside it as CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hcisim.claims import HostLoss
from hcisim.observations import Observations
from hcisim.report.model_error import ModelError
from hcisim.report.offender import worst_offender


def vm_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for vm, v in (summary.get("vms") or {}).items():
        rows.append({"vm": vm, "read MB/s": v["read_mb_s"], "write MB/s": v["write_mb_s"],
                     "mean lat ms": v["mean_latency_ms"], "p99 lat ms": v["p99_latency_ms"],
                     "max stall s": v["max_io_stall_s"], "stall at s": v["max_io_stall_at_s"],
                     "max error s": v["max_io_error_s"], "I/O error s": v["io_error_s"],
                     "paused s": v["paused_s"],
                     "down s": v["downtime_s"], "restarts": v["restarts"],
                     "migrations": len(v["migrations"])})
    return pd.DataFrame(rows)


def volume_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for vol, v in (summary.get("volumes") or {}).items():
        rows.append({"volume": vol, "acked GB": v["acked_bytes"] / 1e9,
                     "healed GB": v["bytes_healed"] / 1e9, "shards healed": v["shards_healed"],
                     "heal done at s": v["heal_completed_s"],
                     "heal after repair s": v["heal_after_repair_s"],
                     "max pending GB": v["max_pending_heal_bytes"] / 1e9,
                     "exposure s": v["exposure_s"], "min copies acked": v["min_copies_acked"],
                     "quorum lost s": v["quorum_lost_s"],
                     "acked w/o quorum B": v["acked_without_quorum_bytes"],
                     "lost B": v["lost_bytes"]})
    return pd.DataFrame(rows)


def ha_table(plans: list[HostLoss]) -> pd.DataFrame:
    """One row per host that could fail: where its HA VMs would restart, what does not fit."""
    rows = []
    for p in plans:
        rows.append({
            "if this host fails": p.failed_host, "HA VMs": len(p.ha_vms),
            "restart on": ", ".join(f"{vm}→{h}" for vm, h in p.placed.items()) or "-",
            "do not fit": ", ".join(p.unplaced) or "-",
            "RAM short GiB": p.ram_short_gib, "vCPU short": p.vcpu_short,
            "free RAM after GiB": ", ".join(f"{h}: {x:.0f}" for h, x in p.free_ram_gib.items()),
            "free vCPU after": ", ".join(f"{h}: {x:.0f}" for h, x in p.free_vcpus.items()),
        })
    return pd.DataFrame(rows)


def claims_rows(claims: list[dict[str, Any]],
                model_error: ModelError | None = None) -> list[dict[str, Any]]:
    """Claims as the template shows them: numbers formatted, the worst offender of a failed
    claim, the model's known error of what it measures, evidence as indented JSON."""
    out = []
    for c in claims:
        offender = worst_offender(c)
        out.append({**c, "measured_txt": _num(c.get("measured")),
                    "limit_txt": _num(c.get("limit")),
                    "offender": offender.describe() if offender else "",
                    "model_error": model_error.for_claim(str(c.get("kind"))) if model_error
                    else "",
                    "evidence_json": json.dumps(c.get("evidence") or [], indent=1,
                                                default=str)})
    return out


def _num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def write_csvs(obs: Observations, claims: list[dict[str, Any]], folder: Path) -> list[str]:
    """Every observation table (and the claims) as CSV in ``folder``; returns file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, df in obs.tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
        names.append(f"{name}.csv")
    flat = [{k: (json.dumps(v, default=str) if k == "evidence" else v) for k, v in c.items()}
            for c in claims]
    pd.DataFrame(flat, columns=["name", "kind", "verdict", "measured", "limit", "unit",
                                "evidence"]).to_csv(folder / "claims.csv", index=False)
    names.append("claims.csv")
    return names
