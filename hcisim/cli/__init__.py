"""The ``hcisim`` command. Sits on top of everything; nothing imports it.

Each feature adds its commands from its own module (``hcisim/cli/<feature>.py`` with a
``register(app)`` function), listed in ``FEATURES``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from hcisim.observations import SchemaError
from hcisim.scenario import ScenarioError

app = typer.Typer(
    name="hcisim",
    help="Predict (model) and prove (lab) what a three-node HCI oVirt + GlusterFS cluster does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

FEATURES = ("hcisim.cli.core", "hcisim.cli.capacity", "hcisim.cli.sweep", "hcisim.cli.report",
            "hcisim.cli.accept", "hcisim.cli.failover", "hcisim.cli.lab", "hcisim.cli.compare",
            "hcisim.cli.labimage")

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input from the user: printed as one clear message, exit code 2."""


def friendly(fn: F) -> F:
    """Turn known failures into a clear message and a non-zero exit, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScenarioError as exc:
            err.print(f"[red]error:[/red] {exc.source}: invalid scenario", highlight=False)
            for p in exc.problems:
                err.print(f"  {p}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except (UserError, SchemaError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]: cleaned up, nothing left running")
            raise typer.Exit(130) from None
        except _engine_errors() as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _engine_errors() -> tuple[type[Exception], ...]:
    from hcisim.runner import EngineError

    return (EngineError,)


def main() -> None:
    for name in FEATURES:
        importlib.import_module(name).register(app)
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
