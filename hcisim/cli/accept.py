"""``hcisim accept``: pre-production acceptance of existing servers over SSH."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hcisim.cli import UserError, err, friendly, out

EXIT_FAILED = 1  # checks or claims failed
EXIT_SSH = 3  # a host could not be reached or refused the key
EXIT_NOT_RESTORED = 4  # a host could not be restored after a fault: look at it now


def _print(acc: object, verbose: bool) -> None:
    """Every row with --verbose; otherwise what needs attention and a count per verdict."""
    from collections import Counter

    from hcisim.accept.run import Acceptance

    assert isinstance(acc, Acceptance)
    shown = acc.rows if verbose else [r for r in acc.rows if r.verdict != "pass"]
    counts = Counter(r.verdict for r in acc.rows)
    t = Table(title=f"Checks: {counts['pass']} pass, {counts['warn']} warn, "
                    f"{counts['fail']} fail" + ("" if verbose or not shown else
                                                " (not passing shown; --verbose: all)"),
              title_justify="left")
    for col in ("check", "host", "subject", "expected", "actual", "verdict"):
        t.add_column(col, overflow="fold")
    colour = {"pass": "green", "fail": "red", "warn": "yellow"}
    for r in shown:
        t.add_row(r.check, r.host, r.subject, r.expected, r.actual,
                  f"[{colour[r.verdict]}]{r.verdict}[/{colour[r.verdict]}]")
    out.print(t)
    if acc.baseline:
        b = Table(title="Baseline: model vs measured", title_justify="left")
        for col in ("vm", "host", "volume", "demand MB/s", "model MB/s", "measured MB/s",
                    "error %", "model lat ms", "measured lat ms", "measured p99 ms"):
            b.add_column(col)
        for x in acc.baseline:
            b.add_row(x.vm, x.host, x.volume, _f(x.demand_mb_s), _f(x.model_mb_s),
                      _f(x.measured_mb_s), _f(x.error_pct, 1), _f(x.model_latency_ms),
                      _f(x.measured_latency_ms), _f(x.measured_p99_ms))
        out.print(b)
    for why in acc.refusals:
        err.print(f"[yellow]{escape(str(why))}[/yellow]", highlight=False)
    for note in acc.notes:
        err.print(f"[yellow]{escape(str(note))}[/yellow]", highlight=False)


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def accept(
        hosts: Annotated[str, typer.Option(
            help="servers, comma-separated: ssh://user@host:port (user and port optional), "
                 "options after ?: name=HOST, glusterd_sock=PATH, glusterd_workdir=DIR, "
                 "storage_if=IF")],
        scenario: Annotated[Path, typer.Option(help="scenario YAML the cluster must keep")],
        allow_destructive: Annotated[bool, typer.Option(
            "--allow-destructive", help="inject the scenario's faults (bounded, rolled back)")]
        = False,
        power_cmd: Annotated[str | None, typer.Option(
            help="power-off command for node power loss; {host} and {address} are replaced")]
        = None,
        power_on_cmd: Annotated[str | None, typer.Option(
            help="power-on command (needed with --power-cmd)")] = None,
        identity: Annotated[Path | None, typer.Option(
            help="SSH private key file (default: the agent and ssh's default keys)")] = None,
        known_hosts: Annotated[Path | None, typer.Option(
            help="known_hosts file (default: ssh's own)")] = None,
        trust_new_hosts: Annotated[bool, typer.Option(
            help="accept host keys seen for the first time")] = False,
        ssh_config: Annotated[Path | None, typer.Option(
            help="an ssh_config to include (jump hosts, aliases)")] = None,
        max_fault_s: Annotated[float, typer.Option(
            help="hard upper bound of any fault, enforced on the server too")] = 300.0,
        heal_timeout_s: Annotated[float, typer.Option(help="wait this long for heal")] = 600.0,
        baseline_s: Annotated[int, typer.Option(help="fio seconds per host (0: skip)")] = 10,
        baseline_mb: Annotated[int, typer.Option(help="fio file size per VM disk, MiB")] = 256,
        clock_tolerance_s: Annotated[float, typer.Option(help="allowed clock offset")] = 0.5,
        output: Annotated[Path | None, typer.Option("-o", "--output", help="result folder")]
        = None,
        report: Annotated[bool, typer.Option(help="write report.html")] = True,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="print every check")]
        = False,
    ) -> None:
        """Accept existing servers: read-only checks, a measured baseline against the model,
        and, with --allow-destructive, the scenario's faults with recovery and heal."""
        from hcisim.accept import AcceptOptions, SshError, SshOptions, TargetError, accept
        from hcisim.accept.output import write_acceptance
        from hcisim.runner import default_out
        from hcisim.scenario import load_scenario

        sc = load_scenario(scenario)
        try:
            from hcisim.accept.targets import parse_targets

            targets = parse_targets(hosts)
        except TargetError as exc:
            raise UserError(f"--hosts: {exc}") from None
        if (power_cmd is None) != (power_on_cmd is None):
            raise UserError("--power-cmd and --power-on-cmd go together")
        if max_fault_s <= 0:
            raise UserError("--max-fault-s must be positive")
        opts = AcceptOptions(allow_destructive=allow_destructive, power_off_cmd=power_cmd,
                             power_on_cmd=power_on_cmd, max_fault_s=max_fault_s,
                             heal_timeout_s=heal_timeout_s, baseline_s=baseline_s,
                             baseline_mb=baseline_mb, clock_tolerance_s=clock_tolerance_s)
        try:
            access = SshOptions(identity=identity, known_hosts=known_hosts,
                                trust_new_hosts=trust_new_hosts, user_config=ssh_config)
            started = time.time()
            acc = accept(sc, targets, access, opts,
                         progress=lambda m: err.print(f"[dim]{escape(m)}[/dim]", highlight=False))
        except TargetError as exc:
            raise UserError(f"--hosts: {exc}") from None
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
        except SshError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_SSH) from None
        dest = output or default_out(sc, "hosts")
        result, note = write_acceptance(acc, dest, started, report)
        _print(acc, verbose)
        if note:
            err.print(f"[yellow]{escape(str(note))}[/yellow]")
        out.print(f"results: {dest}")
        for r in acc.unrestored:
            err.print(f"[red]HOST NOT RESTORED: {escape(f'{r.host}: {r.actual}')}[/red]",
                      highlight=False)
        if acc.unrestored:
            raise typer.Exit(EXIT_NOT_RESTORED)
        if acc.interrupted:
            err.print("[yellow]interrupted[/yellow]: faults were rolled back, hosts restored")
            raise typer.Exit(130)
        failed = [r for r in acc.rows if r.verdict == "fail"]
        failed_claims = [v.name for v in result.verdicts if v.verdict == "fail"]
        if failed or failed_claims:
            err.print(f"[red]acceptance failed:[/red] {len(failed)} checks"
                      + (f", claims: {', '.join(failed_claims)}" if failed_claims else ""))
            raise typer.Exit(EXIT_FAILED)
        out.print("[green]accepted[/green]")
