"""``hcisim failover``: the n+1 verdict and the stranded VMs, as text, JSON and exit code."""

from __future__ import annotations

import json

from tests.test_cli import hcisim


def test_failover_json_names_stranded_vms() -> None:
    r = hcisim("failover", "scenarios/compute-n1-fails.yaml", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["ha_reservation"]["ok"] is False
    assert data["ha_reservation"]["hosts"]["host2"]["stranded"] == ["sap2", "db2"]
    pairs = {p["vm"]: p for p in data["failover_pairs"]}
    assert pairs["sap2"]["failover_host"] is None and pairs["app2"]["failover_host"] == "host1"


def test_failover_strict_fails_when_not_n_plus_one() -> None:
    assert hcisim("failover", "scenarios/compute-n1-fails.yaml", "--strict").returncode == 1
    ok = hcisim("failover", "--strict")
    assert ok.returncode == 0 and "n+1 ok" in ok.stdout


def test_failover_bad_file_is_a_clear_error() -> None:
    r = hcisim("failover", "no-such.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no-such.yaml" in r.stderr
