"""Spec and inventory validation (path-named errors) and ``hcisim capacity`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hcisim.capacity import SpecError, load_spec, parse_spec, read_inventory
from hcisim.cli import capacity as capacity_cli
from hcisim.scenario import IoProfile
from hcisim.scenario.profile import DEFAULT_PROFILE, dump_profile, load_profile

EXAMPLE = Path(__file__).resolve().parents[2] / "scenarios" / "capacity"
app = typer.Typer()
app.callback()(lambda: None)  # a command group, as `hcisim` is
capacity_cli.register(app)


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, "spec.yaml")
    return exc.value.problems


def test_unknown_key_is_named_with_its_line() -> None:
    text = """inventory: inv.csv
candidates:
  - name: small
    ram_gb: 128
    nics: [{name: s, gbps: 10, networks: [storage, management]}]
"""
    assert _problems(text) == [
        "candidates[0].ram_gb: unknown key; did you mean 'ram_gib'? (line 4)"]


def test_candidate_without_storage_nic() -> None:
    text = """inventory: inv.csv
candidates:
  - name: small
    nics: [{name: m, gbps: 1, networks: [management]}]
"""
    [p] = _problems(text)
    assert p.startswith("candidates[0].nics: no NIC carries the storage network")


def test_costs_all_or_none() -> None:
    text = """inventory: inv.csv
candidates:
  - {name: a, cost: 1, nics: [{name: s, gbps: 10, networks: [storage, management]}]}
  - {name: b, nics: [{name: s, gbps: 10, networks: [storage, management]}]}
"""
    [p] = _problems(text)
    assert p.startswith("candidates[1].cost: give every candidate a cost")


def test_inventory_rows_are_named_by_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.csv"
    inv.write_text("name,vcpus,ram_gib,disk_gb,io,ha,iops\n"
                   "a,2,4,10,web,true,\n"
                   "b,two,4,10,,false,\n"
                   "c,2,4,10,nosuch,false,\n"
                   "d,2,4,10,web,false,100\n"
                   "a,2,4,10,,yes,\n")
    with pytest.raises(SpecError) as exc:
        read_inventory(inv, {"web": IoProfile(iops=100)})
    probs = exc.value.problems
    assert probs[0] == ("line 3: vcpus: must be a valid integer, unable to parse string as an "
                        "integer, got 'two'")
    assert probs[1] == "line 4: io: unknown io profile 'nosuch'"
    assert probs[2] == "line 5: io: give a profile name or inline fields, not both"
    assert probs[3] == "name: duplicate VM 'a'"


def test_inventory_inline_profile_and_unknown_column(tmp_path: Path) -> None:
    inv = tmp_path / "inv.csv"
    inv.write_text("name,vcpus,ram_gib,disk_gb,mb_s,read_pct,random\nx,2,4,10,50,0,false\n")
    [x] = read_inventory(inv, {})
    assert x.io == IoProfile(mb_s=50, read_pct=0, random=False)
    inv.write_text("name,vcpus,ram_gib,disk_gb,colour\nx,2,4,10,red\n")
    with pytest.raises(SpecError, match="unknown column 'colour'"):
        read_inventory(inv, {})


def test_example_spec_answer(tmp_path: Path) -> None:
    """The catalogue example: arbiter fits on 'large', replica 3 needs 'xlarge' (capacity)."""
    result = CliRunner().invoke(app, ["capacity", str(EXAMPLE / "spec.yaml"),
                                      "-o", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert data["answer"] == {"candidate": "large", "volume_type": "arbiter"}
    by_type = {s["volume_type"]: s for s in data["smallest"]}
    assert by_type["replica3"]["candidate"] == "xlarge"
    medium = by_type["replica3"]["rejected"][1]
    assert medium["candidate"] == "medium"
    assert medium["reasons"][0].startswith("capacity: 14398 GB of VM disks on 7680 GB usable")
    _, vms = load_spec(EXAMPLE / "spec.yaml")
    assert data["inventory"]["vms"] == len(vms)
    html = (tmp_path / "capacity.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2  # plots inline, and as files:
    for img in ("headroom.png", "capacity.png"):
        assert f'href="{img}"' in html
        assert (tmp_path / img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_passing_candidate_exits_1(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "inventory.csv", tmp_path / "inventory.csv")
    text = (EXAMPLE / "spec.yaml").read_text().replace("rebuild_s: 86400", "rebuild_s: 60")
    (tmp_path / "spec.yaml").write_text(text)
    result = CliRunner().invoke(app, ["capacity", str(tmp_path / "spec.yaml"),
                                      "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    data = json.loads((tmp_path / "out" / "capacity.json").read_text())
    assert data["answer"] is None
    assert all(any(r.startswith("rebuild:") for r in rej["reasons"])
               for s in data["smallest"] for rej in s["rejected"])


def test_bad_spec_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("inventory: missing.csv\ncandidates: []\n")
    result = CliRunner().invoke(app, ["capacity", str(tmp_path / "spec.yaml"),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "candidates: needs at least 1 candidate, got 0" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_heal_costs_come_from_the_named_profile(tmp_path: Path) -> None:
    """The heal costs a spec leaves out are its profile's (default: the shipped one); a key
    the spec sets wins; a profile that cannot be read is an error at heal.profile."""
    shipped = load_profile(DEFAULT_PROFILE)
    mine = shipped.model_copy(update={"parameters": shipped.parameters.model_copy(
        update={"heal_core_mb_s": 500.0, "heal_concurrency": 0.5, "heal_entry_s": 0.01})})
    path = tmp_path / "mine.yaml"
    path.write_text(dump_profile(mine))
    base = "inventory: inv.csv\ncandidates:\n  - {name: a, nics: [{name: s, gbps: 10, " \
           "networks: [storage, management]}]}\n"
    default = parse_spec(base).heal
    assert (default.core_mb_s, default.concurrency, default.entry_s, default.shd_thread_mb_s) \
        == (shipped.parameters.heal_core_mb_s, shipped.parameters.heal_concurrency,
            shipped.parameters.heal_entry_s, shipped.parameters.heal_thread_mb_s)
    heal = parse_spec(base + f"heal: {{profile: {path}, concurrency: 1.5}}\n").heal
    assert (heal.core_mb_s, heal.concurrency, heal.entry_s) == (500.0, 1.5, 0.01)
    [p] = _problems(base + "heal: {profile: no-such-profile}\n")
    assert p.startswith("heal.profile: ") and "no shipped profile of that name" in p
