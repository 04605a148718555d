"""The commands of docs/import.md run as written (outputs redirected to a temporary folder)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.importers.conftest import ROOT, hcisim


def _commands() -> list[str]:
    text = (ROOT / "docs" / "import.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.split("#")[0].strip() for line in lines
            if line.startswith("hcisim ") and "runs/import/" in line]


def test_every_import_command_of_the_page_runs(tmp_path: Path) -> None:
    commands = _commands()
    assert sum(c.startswith("hcisim import") for c in commands) == 3
    for command in commands:
        args = shlex.split(command.replace("runs/import/", f"{tmp_path}/"))[1:]
        r = hcisim(*args)
        assert r.returncode == 0, (command, r.stdout[-1000:], r.stderr[-2000:])
