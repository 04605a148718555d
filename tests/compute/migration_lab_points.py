"""Model against lab for single live migrations of a real guest (the table in
docs/validation.md, "Live migration"). Not a test: a lab run, root only, ~1 minute.

    .venv/bin/python -m tests.compute.migration_lab_points [out.json]

Three guests of 160 MiB, each re-dirtying a 24 MiB set, migrate host1 -> host2 over the
lab's storage network (10 Gb/s NICs) with a 300 ms downtime limit: light (500 pages/s,
64 MiB/s cap), busy (2000 pages/s, 16 MiB/s), hot (8000 pages/s, 16 MiB/s: cannot
converge; the harness cancels after 10 s without a new low of RAM remaining). qemu's
``query-migrate`` counters against :func:`hcisim.model.compute.migration.migrate` with the
same settings; the guest's touched RAM is the one calibration, taken from the light case.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hcisim.model.compute.migration import ConstantBandwidth, GuestMemory, migrate
from hcisim.scenario.compute import Migration

MIB = 1048576 / 1e6  # MB per MiB
LINK_MB_S = 10 * 125.0  # the lab scenario's 10 Gb/s storage NICs
CASES = (("light", 500, 64, 150.0), ("busy", 2000, 16, 150.0), ("hot", 8000, 16, 10.0))
DIRTY_MIB, LIMIT_MS, POLL_S, MAX_TIME_S = 24, 300, 0.2, 120.0


def run_lab() -> list[dict[str, Any]]:
    from hcisim.lab.guests.lab import start_destination, start_guest
    from hcisim.lab.guests.migrate import MigrationPolicy
    from hcisim.lab.guests.migrate import migrate as lab_migrate
    from hcisim.lab.netns.backend import NetnsBackend
    from hcisim.lab.netns.layout import unique_name
    from tests.guests.test_guest_lab import FAULTS, acked_after
    from tests.lab.scenarios import small

    rows = []
    with NetnsBackend(small(600, FAULTS), name=unique_name("jmig")) as lab:
        lab.build()
        lab.deploy()
        for i, (name, pages, cap, timeout) in enumerate(CASES):
            with start_guest(lab, f"m{i}", "host1", "data", dirty_mib=DIRTY_MIB,
                             dirty_pages_s=pages) as src:
                boot = src.boot()
                acked_after(src, 20, 60)
                dst, uri = start_destination(lab, src, "host2", "data")
                with dst:
                    r = lab_migrate(src, dst, uri, MigrationPolicy(
                        max_bandwidth_mib_s=cap, downtime_limits_ms=(LIMIT_MS,),
                        progress_timeout_s=timeout, max_time_s=MAX_TIME_S))
            rows.append({"case": name, "pages_s": pages, "cap_mib_s": cap,
                         "progress_timeout_s": timeout, "boot_s": boot, "outcome": r.outcome,
                         "total_s": r.total_time_s if r.outcome == "completed"
                         else r.t_end - r.t_start,
                         "downtime_ms": 1000 * (r.downtime_s or 0.0),
                         "ram_mib": (r.ram_transferred_bytes or 0) / 2**20,
                         "ram_total_mib": (r.ram_total_bytes or 0) / 2**20,
                         "passes": (r.dirty_sync_count or 1) - 1})
    return rows


def settings(row: dict[str, Any], ram_mib: float) -> Migration:
    """The harness's policy as model settings (its progress rule polls every 0.2 s)."""
    return Migration(max_bandwidth_mb_s=row["cap_mib_s"] * MIB, downtime_ms=LIMIT_MS,
                     downtime_steps=1, progress_timeout_s=row["progress_timeout_s"],
                     monitor_interval_s=POLL_S, max_time_per_gib_s=MAX_TIME_S / (ram_mib / 1024))


def memory(row: dict[str, Any], ram_mib: float, touched_mib: float) -> GuestMemory:
    return GuestMemory.of(ram_mib / 1024, row["pages_s"] * 4096 / 1e6, DIRTY_MIB / 1024,
                          touched_mib / 1024)


def touched_from(light: dict[str, Any]) -> float:
    """The guest's touched RAM: what the light case sent less what the model says it
    re-sent (a fixed point, three steps are plenty)."""
    ram, touched = light["ram_total_mib"], light["ram_mib"]
    for _ in range(3):
        r = migrate(memory(light, ram, touched), settings(light, ram),
                    ConstantBandwidth(LINK_MB_S))
        touched -= r.transferred_mb / MIB - light["ram_mib"]
    return float(touched)


def table(rows: list[dict[str, Any]]) -> str:
    ram = rows[0]["ram_total_mib"]
    touched = touched_from(rows[0])
    out = [f"touched RAM (from the light case): {touched:.1f} MiB of {ram:.1f}",
           "| case | metric | model | lab | error |", "|---|---|---|---|---|"]
    for row in rows:
        r = migrate(memory(row, ram, touched), settings(row, ram), ConstantBandwidth(LINK_MB_S))
        pairs: list[tuple[str, float, float]] = [
            ("total s", r.total_s, row["total_s"]),
            ("downtime ms", 1000 * r.downtime_s, row["downtime_ms"]),
            ("RAM MiB", r.transferred_mb / MIB, row["ram_mib"]),
            ("passes", float(r.rounds), float(row["passes"]))]
        out.append(f"| {row['case']} | outcome | {r.outcome} | {row['outcome']} | |")
        for name, m, lb in pairs:
            err = f"{100 * (m - lb) / lb:+.0f}%" if lb else "-"
            out.append(f"| {row['case']} | {name} | {m:.3g} | {lb:.3g} | {err} |")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    rows = run_lab()
    if argv:
        with open(argv[0], "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
