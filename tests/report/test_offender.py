"""The worst offender of a failed claim (terminal and report) and readable times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hcisim.report import write_report
from hcisim.report.offender import worst_offender
from hcisim.report.units import axis_unit, format_duration, format_time
from tests.report.runs import month_run, small_run


def _claims(result: Path) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads((result / "summary.json").read_text())["claims"]}


def test_a_failed_stall_claim_names_the_vm_and_when(tmp_path: Path) -> None:
    claim = _claims(month_run(tmp_path))["survivors"]
    assert claim["verdict"] == "fail"
    worst = worst_offender(claim)
    assert worst is not None
    assert (worst.subject_kind, worst.at_s) == ("VM", 15 * 86400.0)
    assert worst.subject in ("a", "c")
    assert worst.describe() == (f"VM {worst.subject} at 15 d 00 h (1,296,000.0 s): "
                                "stall 35.0 s")
    page = write_report(tmp_path).read_text()
    assert "Failed claims and their worst offender" in page
    assert f"VM {worst.subject} at 15 d 00 h (1,296,000.0 s): stall 35.0 s" in page


def test_a_failed_heal_claim_names_the_volume(tmp_path: Path) -> None:
    claims = _claims(small_run(tmp_path))
    assert worst_offender(claims["survivors"]) is None  # passed: nobody to blame
    worst = worst_offender(claims["heal_within"])
    assert worst is not None
    assert worst.describe() == "volume data at 2 min 30 s (150.0 s): healing took 50.0 s"


@pytest.mark.parametrize(("claim", "said"), [
    ({"kind": "vm_restart_within", "evidence": [
        {"vm": "db1", "failed_host": "host2", "fault_at_s": 100.0, "restart_s": None}]},
     "VM db1 at 1 min 40 s (100.0 s): not running again by the end of the run"),
    ({"kind": "ha_reservation", "evidence": [
        {"failed_host": "host1", "ha_vms": 2, "unplaced": []},
        {"failed_host": "host3", "ha_vms": 4, "unplaced": ["db2", "web4"]}]},
     "host host3: no room for db2, web4"),
    ({"kind": "latency_p99_at_most", "evidence": [
        {"vm": "db3", "p99_ms": 12.5, "window_s": [30.0, 90.0]}]},
     "VM db3 at 30.0 s: p99 12.5 ms"),
    ({"kind": "replicas", "evidence": [{"note": "x"}, {
        "vm": "web1", "volume": "data", "from_s": 5.0, "problem": "acknowledged but lost",
        "lost_bytes": 4096.0}]},
     "VM web1 at 5.0 s: acknowledged but lost, lost 4,096 B"),
])
def test_offender_of_each_claim_kind(claim: dict[str, object], said: str) -> None:
    worst = worst_offender({"name": "c", "verdict": "fail", **claim})
    assert worst is not None and worst.describe() == said


def test_times_read_in_the_unit_of_their_size() -> None:
    assert format_duration(35.2) == "35.2 s"
    assert format_duration(0.25) == "0.25 s"
    assert format_duration(250) == "4 min 10 s"
    assert format_duration(7500) == "2 h 05 min"
    assert format_duration(15 * 86400 + 3 * 3600) == "15 d 03 h"
    assert format_time(12.0) == "12.0 s"
    assert format_time(1_296_000.0) == "15 d 00 h (1,296,000.0 s)"
    assert [axis_unit(s)[0] for s in (60, 600, 601, 3 * 3600, 86400, 30 * 86400)] == [
        "s", "s", "min", "min", "h", "d"]
