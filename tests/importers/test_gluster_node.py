"""``hcisim import gluster`` asking a node's glusterd (the NodeShell path: nsenter into a
netns lab host here, SSH for a real server) gives the same scenario as the saved files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcisim.importers.gluster import gluster_facts, read_files, read_node
from hcisim.lab.gluster import Gluster
from hcisim.lab.node import NsenterShell
from hcisim.scenario import load_scenario
from tests.importers.conftest import FIXTURES, ROOT

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("import-lab")]
LAB = "e-import"


def _lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", "lab",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def lab_node() -> Iterator[Gluster]:
    from hcisim.lab.netns.backend import preflight

    preflight()  # raises LabError (a clear failure) if the conftest did not skip already
    up = _lab_cli("up", "scenarios/lab-power-loss.yaml", "--name", LAB)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        yield Gluster(NsenterShell(f"hcl-{LAB}-host1", "host1"),
                      sock=f"/var/tmp/hcisim-lab/{LAB}/h/host1/run/glusterd.socket")
    finally:
        _lab_cli("down", "--name", LAB)


def test_node_answers_equal_the_saved_files(lab_node: Gluster, tmp_path: Path) -> None:
    live = gluster_facts(read_node(lab_node), name="lab")
    saved = gluster_facts(read_files(
        FIXTURES / "lab-volume-info.xml",
        {v: FIXTURES / f"lab-volume-get-{v}.xml" for v in ("engine", "data", "vmstore")},
        FIXTURES / "lab-volume-status-detail.xml"), name="lab")
    assert [(v.name, v.type, v.options, [b.host for b in v.bricks]) for v in live.volumes] == \
        [(v.name, v.type, v.options, [b.host for b in v.bricks]) for v in saved.volumes]
    assert [h.name for h in live.hosts] == ["host1", "host2", "host3"]
    assert all(v.size_gb and v.size_gb > 1.5 for v in live.volumes)  # 2 GB loop devices
    lab = load_scenario(ROOT / "scenarios" / "lab-power-loss.yaml")
    assert {v.name: v.type for v in live.volumes} == {v.name: v.type for v in lab.volumes}
