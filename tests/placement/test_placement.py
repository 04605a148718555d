"""The shared placement rules give the model's placement and failover pairs, and stay pure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hcisim.model import simulate
from hcisim.placement import failover_order, initial_placement
from hcisim.scenario import load_scenario

CATALOGUE = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", CATALOGUE, ids=[p.stem for p in CATALOGUE])
def test_the_model_places_and_fails_over_by_the_shared_rules(path: Path) -> None:
    sc = load_scenario(path)
    obs = simulate(sc)
    where = initial_placement(sc)
    assert set(where) == {vm.name for vm in sc.vms}
    assert all(where[vm.name] == vm.host for vm in sc.vms if vm.host)
    fp = obs["failover_pairs"]
    recorded = {(str(v), str(h), str(f) or None)
                for v, h, f in zip(fp["vm"], fp["host"], fp["failover_host"], strict=True)}
    assert recorded == {(p.vm, p.host, p.failover_host) for p in failover_order(sc)}
    st = obs["vm_state"]
    first = st.sort_values("t_start_s").groupby("vm").head(1)
    for vm, host, state in zip(first["vm"], first["host"], first["state"], strict=True):
        assert (where[str(vm)] or "") == (str(host) if state != "down" else "")


def test_placement_imports_only_the_scenario() -> None:
    code = ("import sys, hcisim.placement; "
            "print(sorted(m for m in sys.modules if m.startswith('hcisim.')))")
    mods = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                     capture_output=True, text=True).stdout.replace("'", '"'))
    assert [m for m in mods if not m.startswith(("hcisim.placement", "hcisim.scenario"))] == []
