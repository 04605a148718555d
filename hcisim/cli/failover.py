"""``hcisim failover``: where every VM restarts if its host fails, and whether the cluster is
n+1 (no simulation: the compute model's pure rules)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hcisim.cli import friendly, out
from hcisim.scenario import load_scenario


def _t(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.0f}"


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def failover(
        scenario: Annotated[Path | None, typer.Argument(
            help="scenario YAML; default: the built-in scenario")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON instead")] = False,
        strict: Annotated[bool, typer.Option(
            help="exit 1 when some HA VM of a failed host would not restart")] = False,
    ) -> None:
        """Failover pairs, the n+1 check, and each host failure's predicted outage."""
        from hcisim.model.compute.outage import plan_host_loss
        from hcisim.placement.failover import (
            failover_pairs,
            ha_reservation,
            reservation_summary,
        )
        from hcisim.placement.inventory import cluster_of, given_placement
        from hcisim.placement.scheduler import schedule_unplaced

        sc = load_scenario(scenario)
        cluster = cluster_of(sc)
        placed = schedule_unplaced(cluster, given_placement(sc))
        pairs = failover_pairs(cluster, placed.placement)
        report = ha_reservation(cluster, placed.placement)
        plans = {h.name: plan_host_loss(sc.compute, cluster, placed.placement, h.name)
                 for h in cluster.hosts}
        if as_json:
            print(json.dumps({
                "unplaced": list(placed.unplaced),
                "failover_pairs": [{"vm": p.vm, "host": p.host, "failover_host": p.failover_host,
                                    "ha": p.ha} for p in pairs],
                "ha_reservation": reservation_summary(report),
                "outage_s": {h: {vm: (None if not math.isfinite(p.back_at(vm)) else
                                      p.back_at(vm)) for vm in
                                 [r.vm for r in p.restarts] + ([p.engine_vm] if p.engine_vm
                                                               else [])}
                             for h, p in plans.items()},
            }, indent=2))
        else:
            t = Table(title=f"Failover pairs ({sc.name}, {cluster.policy})",
                      title_justify="left")
            for col in ("vm", "host", "failover host", "HA", "back after s (host fails at 0)"):
                t.add_column(col)
            for p in pairs:
                back = plans[p.host].back_at(p.vm)
                t.add_row(p.vm, p.host, p.failover_host or ("fits nowhere" if p.ha else "-"),
                          "yes" if p.ha else "no", _t(back) if p.ha else "-")
            out.print(t)
            for name in placed.unplaced:
                out.print(f"[yellow]{name}[/yellow]: fits nowhere at start")
            if report.ok:
                out.print("[green]n+1 ok[/green]: every HA VM of any one failed host restarts")
            else:
                out.print(f"[red]not n+1[/red]: short by up to {report.ram_short_gib:g} GiB RAM"
                          f" / {report.vcpu_short:g} vCPUs")
                for host, vms in report.stranded.items():
                    out.print(f"  {host} fails -> would not restart: {', '.join(vms)}")
                for host in report.greedy_misses:
                    out.print(f"  {host}: a packing exists, but not in the scheduler's order")
        if strict and not report.ok:
            raise typer.Exit(1)
