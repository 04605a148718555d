"""Recording levels: ``simulate(sc, record="intervals")`` (availability studies) keeps the
status intervals of every VM's I/O and everything else exactly as the full record does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hcisim.model import simulate
from hcisim.observations import conform
from hcisim.scenario import load_scenario

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
# faults that stall (ping timeout), fail (quorum loss), pause VMs and heal
NAMES = ("replica3-power-loss", "two-failures-quorum", "node-hang", "lab-all-faults")


def status_intervals(io: pd.DataFrame) -> pd.DataFrame:
    """vm_io reduced to its status: consecutive rows of a (VM, volume) with the same
    status joined into one."""
    rows = []
    for (vm, vol), g in io.groupby(["vm", "volume"], sort=True):
        cur: list[object] | None = None
        for t0, t1, st in zip(g["t_start_s"], g["t_end_s"], g["status"], strict=True):
            if cur is not None and cur[4] == st and cur[3] == t0:
                cur[3] = t1
                continue
            if cur is not None:
                rows.append(tuple(cur))
            cur = [vm, vol, t0, t1, st]
        if cur is not None:
            rows.append(tuple(cur))
    return pd.DataFrame(rows, columns=["vm", "volume", "t_start_s", "t_end_s", "status"])


@pytest.mark.parametrize("name", NAMES)
def test_intervals_level_keeps_status_intervals_and_every_other_table(name: str) -> None:
    sc = load_scenario(CATALOGUE / f"{name}.yaml")
    full, brief = simulate(sc), simulate(sc, record="intervals")
    for table in full.tables:
        if table != "vm_io":
            pd.testing.assert_frame_equal(full[table], brief[table], check_exact=True)
    statuses = set(full["vm_io"]["status"])
    assert statuses - {"ok", "stopped"}, f"{name}: no stall or error to keep"
    pd.testing.assert_frame_equal(status_intervals(full["vm_io"]),
                                  status_intervals(brief["vm_io"]), check_exact=True)
    # nothing joined at the intervals level: one row per status interval
    assert len(brief["vm_io"]) == len(status_intervals(brief["vm_io"]))
    assert len(brief["vm_io"]) < len(full["vm_io"])
    numeric = brief["vm_io"].drop(columns=["vm", "volume", "t_start_s", "t_end_s", "status"])
    assert np.isnan(numeric.to_numpy(float)).all()


def test_unknown_record_level_is_refused() -> None:
    sc = load_scenario(CATALOGUE / "brick-crash.yaml")
    with pytest.raises(ValueError, match="record level 'latency'"):
        simulate(sc, record="latency")  # type: ignore[arg-type]


def test_built_tables_equal_the_generic_conversion() -> None:
    """Recorder.build types each column itself: the tables equal those of the generic path
    (object frame, then conform's astype), and conform still converts a table whose dtypes
    differ (here strings in another storage) instead of passing it through."""
    obs = simulate(load_scenario(CATALOGUE / "replica3-power-loss.yaml"))
    for name, table in obs.tables.items():
        generic = conform(name, pd.DataFrame(table.astype(object).to_numpy().tolist(),
                                             columns=list(table.columns)))
        pd.testing.assert_frame_equal(table, generic, check_exact=True)
    vm_io = obs["vm_io"]
    other = vm_io.astype({"vm": pd.StringDtype("python")})
    assert other["vm"].dtype != vm_io["vm"].dtype
    pd.testing.assert_frame_equal(conform("vm_io", other), vm_io, check_exact=True)
