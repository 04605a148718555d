"""``hcisim calibrate`` and ``hcisim validate``: fit the model's timing to a lab, and check
it on cases the fit never saw (docs/calibration.md)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from hcisim.cli import EXIT_CLAIM_FAILED, EXIT_ENGINE, UserError, err, error, friendly, out

if TYPE_CHECKING:
    from hcisim.scenario.profile import CalibrationProfile

LAB_OPTIONS: dict[str, Any] = {"size_scale": 1.0, "io_scale": 1.0, "heal_wait_s": 90.0}


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _engine(name: str) -> tuple[str, dict[str, Any] | None]:
    """The engine's canonical name and the options its runs get (lab-sized cases are run
    as they are: scale 1 on both sides)."""
    from hcisim.engines import parse_engine

    spec = parse_engine(name)
    return spec.name, (dict(LAB_OPTIONS) if spec.kind == "lab" else None)


def _say(text: str) -> None:
    err.print(f"[dim]{text}[/dim]", highlight=False)


def _report(profile: CalibrationProfile, how: str) -> None:
    """The fitted parameters, and every case's measured spread and residuals."""
    from hcisim.calibration.campaign import case_spreads

    t = Table("parameter", "value", "from", "n", "rms residual", title_justify="left",
              title=f"profile {profile.name} ({how})")
    for key, value in profile.parameters.model_dump().items():
        note = profile.fits.get(key)
        t.add_row(key, f"{value:g}", ", ".join(note.experiments) if note else "",
                  str(note.n) if note and note.n else "",
                  f"{note.rms_residual:.3g}" if note and note.rms_residual is not None
                  else "")
    out.print(t)
    c = Table("experiment", "case", "n", "measured min / median / max",
              "residual min / median / max", title_justify="left",
              title="per case (residual: measured - the fitted model)")
    spreads = case_spreads(profile.measurements)
    several = {e for e in {s.experiment for s in spreads}
               if len({s.quantity for s in spreads if s.experiment == e}) > 1}
    for s in spreads:
        r = s.residuals
        case = f"{s.case}: {s.quantity}" if s.experiment in several else s.case
        c.add_row(s.experiment, case, str(len(s.measured)),
                  f"{s.measured[0]:.3g} / {s.median:.3g} / {s.measured[-1]:.3g} {s.unit}",
                  f"{min(r):+.3g} / {statistics.median(r):+.3g} / {max(r):+.3g}"
                  if r else "")
    out.print(c)
    for line in profile.to_measure:
        out.print(f"still to measure: {line}", markup=False, highlight=False)


def _assemble(sources: list[str], base: CalibrationProfile, name: str) -> CalibrationProfile:
    """``--from FILE[:EXP,EXP]`` each: the profiles and which of their experiments."""
    from hcisim.calibration.campaign import assemble_profile
    from hcisim.calibration.experiments import experiments_named
    from hcisim.scenario.profile import load_profile

    chosen = []
    for src in sources:
        path, sep, exps = src.rpartition(":")
        if not sep or "/" in exps or exps.endswith((".yaml", ".yml")):
            path, exps = src, ""
        only = frozenset(_names(exps) or ()) or None
        if only is not None:
            try:
                experiments_named(sorted(only))
            except ValueError as exc:
                raise UserError(f"--from {src}: {exc}") from None
        chosen.append((path, load_profile(path), only))
    try:
        return assemble_profile(chosen, base, name)
    except ValueError as exc:
        raise UserError(f"--from: {exc}") from None


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def calibrate(
        output: Annotated[Path, typer.Option(
            "-o", "--output", help="the profile file to write (YAML)")],
        engine: Annotated[str, typer.Option(
            help="where to measure: lab+netns, lab+libvirt, or model (checks the fits "
            "recover the profile the model ran with)")] = "lab+netns",
        experiments: Annotated[str | None, typer.Option(
            help="comma-separated experiments (default: detection,reconnect,heal; the "
            "halves of detection: detection-short, detection-long; the CI smoke: "
            "detection-quick, reconnect-quick)")] = None,
        repeat: Annotated[int, typer.Option(
            min=1, help="trials per case (>= 10 on a quiet machine for random values)")] = 1,
        base: Annotated[str, typer.Option(
            help="profile whose values the experiments run do not fit are carried over")
        ] = "netns-gluster10",
        name: Annotated[str | None, typer.Option(
            help="the new profile's name (default: the output file's stem)")] = None,
        model_profile: Annotated[str | None, typer.Option(
            help="profile the cases' scenarios name (what --engine model runs with)")
        ] = None,
        merge: Annotated[bool, typer.Option(
            help="fit over the base profile's calibration measurements too (a campaign "
            "run in parts: --base the earlier part's profile)")] = False,
        force: Annotated[bool, typer.Option(help="replace an existing output file")] = False,
        keep_logs: Annotated[Path | None, typer.Option(
            help="keep every lab case's logs (glusterd, bricks, self-heal daemons, clients, "
            "workloads) in DIR/<case>")] = None,
        sources: Annotated[list[str] | None, typer.Option(
            "--from", help="run nothing: fit over the measurements of this profile "
            "(FILE, or FILE:EXP,EXP for only those experiments); repeat for several "
            "campaign parts")] = None,
    ) -> None:
        """Run the calibration experiments, fit the model's timing parameters by their
        mechanisms, write a profile with the raw measurements and residuals."""
        from hcisim.calibration.campaign import run_calibration
        from hcisim.calibration.experiments import DEFAULT_EXPERIMENTS, experiments_named
        from hcisim.scenario.profile import load_profile, save_profile

        if output.exists() and not force:
            raise UserError(f"{output}: exists (use --force to replace it)")
        if sources:
            clash = [flag for flag, used in (
                ("--experiments", experiments is not None), ("--repeat", repeat != 1),
                ("--merge", merge), ("--keep-logs", keep_logs is not None),
                ("--model-profile", model_profile is not None)) if used]
            if clash:
                raise UserError(f"--from runs nothing: {', '.join(clash)} cannot go with it")
            profile = _assemble(sources, load_profile(base), name or output.stem)
            save_profile(profile, output)
            _report(profile, "assembled, no run")
            out.print(f"written: {output}", markup=False, highlight=False)
            return
        names = _names(experiments) or list(DEFAULT_EXPERIMENTS)
        try:
            experiments_named(names)
        except ValueError as exc:
            raise UserError(f"--experiments: {exc}") from None
        base_profile = load_profile(base)
        if model_profile is not None:
            load_profile(model_profile)  # a bad one fails before any run
        engine_name, options = _engine(engine)
        if keep_logs is not None and options is None:
            raise UserError(f"--keep-logs: the {engine_name} engine keeps no logs (a lab does)")
        # after every run: the profile of the trials so far (kept if interrupted)
        profile = run_calibration(engine_name, base_profile, name or output.stem, names,
                                  repeat, options, model_profile, say=_say, merge=merge,
                                  partial=lambda p: save_profile(p, output), logs=keep_logs)
        save_profile(profile, output)
        _report(profile, f"{engine_name}, {repeat} trial(s) per case")
        out.print(f"written: {output}", markup=False, highlight=False)

    @app.command()
    @friendly
    def validate(
        engine: Annotated[str, typer.Option(help="the lab to compare the model with")
                          ] = "lab+netns",
        repeat: Annotated[int, typer.Option(min=1, help="runs per case on each side")] = 3,
        cases: Annotated[str | None, typer.Option(
            help="comma-separated case names (default: the whole matrix)")] = None,
        profile: Annotated[str, typer.Option(
            help="the profile under test (a shipped name or a path)")] = "netns-gluster10",
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="result folder, must be empty (default: a new one in "
            "runs/)")] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        list_cases: Annotated[bool, typer.Option(
            "--list", help="list the matrix's cases and exit")] = False,
        keep_logs: Annotated[Path | None, typer.Option(
            help="keep every lab run's logs (glusterd, bricks, self-heal daemons, clients, "
            "workloads) in DIR/<case>-<run>")] = None,
        lab_from: Annotated[Path | None, typer.Option(
            help="run no lab: judge the model against the lab side of an earlier "
            "validate.json (its runs, or its min / median / max)")] = None,
    ) -> None:
        """Run the validation matrix (not the calibration set) on the model and a lab; per
        case and metric: medians, bands, relative error (CSV, JSON, HTML). Exit 1 when a
        metric misses its target."""
        from hcisim.calibration.validate import (
            StoredLabError,
            load_lab_runs,
            matrix,
            run_matrix,
            select,
            write_validation,
        )
        from hcisim.results import result_folder
        from hcisim.scenario.profile import load_profile

        if list_cases:
            for c in matrix():
                out.print(f"{c.label}: {c.scenario.description}", markup=False)
            return
        load_profile(profile)
        try:
            chosen = select(matrix(profile), _names(cases))
        except ValueError as exc:
            raise UserError(f"--cases: {exc}") from None
        engine_name, options = _engine(engine)
        if keep_logs is not None and options is None:
            raise UserError(f"--keep-logs: the {engine_name} engine keeps no logs (a lab does)")
        stored = None
        if lab_from is not None:
            if keep_logs is not None:
                raise UserError("--keep-logs: --lab-from runs no lab")
            try:
                stored = load_lab_runs(lab_from)
            except StoredLabError as exc:
                raise UserError(f"--lab-from: {exc}") from None
            missing = [c.label for c in chosen if c.label not in stored.runs]
            if missing:
                raise UserError(f"--lab-from {lab_from}: no lab runs of {', '.join(missing)} "
                                "(choose cases it has with --cases)")
            engine_name = stored.engine
        dest = result_folder(output, "validate", force)
        runs = run_matrix(chosen, engine_name, repeat, options, say=_say, logs=keep_logs,
                          stored=stored)
        files = write_validation(runs, dest, engine_name, profile, repeat)
        from hcisim.calibration.validate import summary, table

        df = table(runs)
        t = Table("metric", "rows", "within target", "lab in model band", title_justify="left",
                  title=f"model ({profile}) vs {engine_name}")
        for s in summary(df):
            t.add_row(str(s["metric"]), str(s["rows"]), f"{s['within']} of {s['judged']}",
                      f"{s['in_band']} of {s['band_judged']}")
        out.print(t)
        out.print("written: " + ", ".join(str(f) for f in files), markup=False,
                  highlight=False, soft_wrap=True)
        failed = [r for r in runs if r.error]
        for r in failed:
            error(f"{r.case.label}: lab run failed: {r.error}")
        if failed:
            raise typer.Exit(EXIT_ENGINE)
        if (df["within_target"] == False).any():  # noqa: E712 (None: not judged)
            raise typer.Exit(EXIT_CLAIM_FAILED)
