"""docs/results.md states the exit codes the command really uses."""

from __future__ import annotations

import re

import hcisim.cli as cli
from tests.cli.shell import ROOT


def test_exit_code_table_matches_the_code() -> None:
    text = (ROOT / "docs/results.md").read_text()
    table = text[text.index("## Exit codes"):text.index("## Output for machines")]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    in_code = {cli.EXIT_OK, cli.EXIT_CLAIM_FAILED, cli.EXIT_USAGE, cli.EXIT_ENGINE,
               cli.EXIT_INTERNAL, cli.EXIT_INTERRUPTED}
    assert documented == in_code
    for code in in_code:
        assert f"{code} " in cli.EXIT_CODES_HELP  # --help says the same
