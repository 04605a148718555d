"""The ``hcisim`` command. Sits on top of everything; nothing imports it.

Each feature adds its commands from its own module (``hcisim/cli/<feature>.py`` with a
``register(app)`` function), listed in ``FEATURES``. This module owns what every command
shares: the consoles, the exit codes, and :func:`friendly`, which turns every failure into
one readable message and a documented exit code (never a traceback on screen).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hcisim.observations import SchemaError
from hcisim.scenario import ScenarioError

# Exit codes: the same meaning for every command (docs/results.md).
EXIT_OK = 0  # every claim held (or failed where the scenario expects it to)
EXIT_CLAIM_FAILED = 1  # a claim (or a check) did not hold
EXIT_USAGE = 2  # usage or bad input: a flag, a scenario, an output folder
EXIT_ENGINE = 3  # the engine or the target failed (a lab that did not come up, a host)
EXIT_INTERNAL = 4  # a bug in hcisim: the traceback is in a file whose path is printed
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES_HELP = (
    "Exit codes: 0 every claim holds; 1 a claim failed; 2 usage or bad input; "
    "3 engine or target error; 4 internal error (traceback written to a file); "
    "130 interrupted."
)

# Rich cuts tables and help at 80 columns when stdout is no terminal (CI logs, pipes): there
# is nobody whose window they must fit, so give them room (COLUMNS still wins when set).
WIDE = 160


def _width() -> int | None:
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return WIDE


app = typer.Typer(
    name="hcisim",
    help="Predict (model) and prove (lab) what a three-node HCI oVirt + GlusterFS cluster does.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, width=_width())
out = Console(width=_width())

FEATURES = ("hcisim.cli.core", "hcisim.cli.capacity", "hcisim.cli.sweep", "hcisim.cli.report",
            "hcisim.cli.accept", "hcisim.cli.failover", "hcisim.cli.lab", "hcisim.cli.compare",
            "hcisim.cli.labimage", "hcisim.cli.importer", "hcisim.cli.availability",
            "hcisim.cli.calibrate")

BACKENDS = ("netns", "libvirt")

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input from the user: printed as one clear message, exit code 2."""


def error(message: str, label: str = "error") -> None:
    """Print ``label: message`` on stderr; the message is text, never Rich markup (an SSH
    reason such as ``[Errno 113]`` must show, not vanish as a style tag)."""
    err.print(f"[red]{label}:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def choice(what: str, choices: Sequence[str]) -> Callable[[str], str]:
    """A typer callback that accepts only ``choices`` (a usage error, exit 2, otherwise)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"unknown {what} {value!r}{did_you_mean(value, choices)}"
                                     f" (use {' or '.join(choices)})")
        return value

    return check


def friendly(fn: F) -> F:
    """Turn every failure into a clear message and its exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer reports these itself
            raise
        except ScenarioError as exc:
            error(f"{exc.source}: invalid scenario")
            for p in exc.problems:
                err.print(f"  {p}", highlight=False, markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]: cleaned up, nothing left running")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if isinstance(exc, _usage_errors()):
                error(str(exc))
                raise typer.Exit(EXIT_USAGE) from None
            if isinstance(exc, _engine_errors()):
                error(str(exc))
                raise typer.Exit(EXIT_ENGINE) from None
            internal_error(exc)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def internal_error(exc: BaseException) -> str:
    """Write the traceback to a file, print one line naming it; return the file's path."""
    fd, path = tempfile.mkstemp(prefix="hcisim-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write("".join(traceback.format_exception(exc)))
    error(f"{type(exc).__name__}: {exc}", label="internal error")
    err.print(f"  a bug in hcisim; the traceback is in {path}", highlight=False, markup=False)
    return path


def _usage_errors() -> tuple[type[Exception], ...]:
    from hcisim.engines import EngineNameError
    from hcisim.results import ResultFolderError
    from hcisim.scenario.profile import ProfileError

    return (UserError, SchemaError, ResultFolderError, EngineNameError, ProfileError)


def _engine_errors() -> tuple[type[Exception], ...]:
    from hcisim.engines import EngineError

    return (EngineError,)


def _version(value: bool) -> None:
    if value:
        from hcisim.results import hcisim_version

        print(f"hcisim {hcisim_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print hcisim's version and exit"),
) -> None:
    """Predict (model) and prove (lab) what a three-node HCI oVirt + GlusterFS cluster does."""


def main() -> None:
    width = _width()
    if width is not None:  # typer's help has its own console
        import typer.rich_utils

        typer.rich_utils.MAX_WIDTH = width
    for name in FEATURES:
        importlib.import_module(name).register(app)
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # outside a friendly command: still no traceback on screen
        internal_error(exc)
        sys.exit(EXIT_INTERNAL)
