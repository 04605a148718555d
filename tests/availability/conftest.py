"""Small scenarios and tables for the availability tests: the default cluster with one
volume and no VMs (or one small VM), and failure tables scaled up so that a simulated month
holds dozens of failures."""

from __future__ import annotations

from typing import Any

from hcisim.availability.table import FailureTable, table_from_dict
from hcisim.scenario import Scenario, load_scenario

DAY_YEARS = 1 / 365.25


def replica_set_scenario(layout: str = "replica3", vm: bool = False) -> Scenario:
    d = load_scenario(None).model_dump(mode="json")
    d.update(claims=[], faults=[], operations=[], seed=7)
    d["volumes"] = [dict(d["volumes"][1], type=layout)]
    d["vms"] = [{"name": "tiny", "host": "host1", "ha": True, "vcpus": 1, "ram_gib": 1,
                 "disks": [{"volume": d["volumes"][0]["name"], "size_gb": 1, "io": "web"}]}
                ] if vm else []
    return Scenario.model_validate(d)


def brick_table(rate_per_year: float, mean_repair_h: float,
                extra: dict[str, Any] | None = None) -> FailureTable:
    procs: dict[str, Any] = {"brick": {"fault": "brick_crash", "rate_per_year": rate_per_year,
                                       "repair": {"dist": "exponential",
                                                  "mean_h": mean_repair_h}}}
    procs.update(extra or {})
    return table_from_dict({"processes": procs, "maintenance": {"enabled": False}})
