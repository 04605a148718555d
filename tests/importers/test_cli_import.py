"""``hcisim import``: writes a scenario that `hcisim check` accepts; bad input is exit 2 with
the file named and no traceback."""

from __future__ import annotations

from pathlib import Path

from hcisim.scenario import load_scenario
from tests.importers.conftest import FIXTURES, hcisim


def test_import_inventory_then_check(tmp_path: Path) -> None:
    out = tmp_path / "hci.yaml"
    r = hcisim("import", "inventory", str(FIXTURES / "hc_wizard_inventory.yml"),
               "--he-vars", str(FIXTURES / "he_gluster_vars.json"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}: 3 hosts, 3 volumes, 1 VMs" in r.stdout
    assert load_scenario(out).name == "hc_wizard_inventory"
    r = hcisim("check", str(out))
    assert r.returncode == 0, r.stderr


def test_import_gluster_xml(tmp_path: Path) -> None:
    out = tmp_path / "lab.yaml"
    r = hcisim("import", "gluster", "--info", str(FIXTURES / "lab-volume-info.xml"),
               "--get", f"vmstore={FIXTURES / 'lab-volume-get-vmstore.xml'}",
               "--status", str(FIXTURES / "lab-volume-status-detail.xml"),
               "--host-name", "10.213.0.11=host1", "--name", "lab", "-o", str(out))
    assert r.returncode == 0, r.stderr
    sc = load_scenario(out)
    assert sc.name == "lab" and sc.volume("vmstore").type == "arbiter"


def test_import_recorded_engine(tmp_path: Path) -> None:
    out = tmp_path / "ovirt.yaml"
    r = hcisim("import", "ovirt", "--recorded", str(FIXTURES / "engine"), "--arbiter",
               "vmstore", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert len(load_scenario(out).vms) == 5


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    out.write_text("keep")
    r = hcisim("import", "inventory", str(FIXTURES / "gluster_inventory.yml"), "-o", str(out))
    assert r.returncode == 2
    assert "exists (give --force to overwrite)" in r.stderr
    assert out.read_text() == "keep"


def test_bad_sources_exit_2_naming_the_file(tmp_path: Path) -> None:
    cases = [
        ("inventory", str(tmp_path / "missing.yml")),
        ("gluster", "--info", str(FIXTURES / "lab-volume-get-nosuch.xml")),
        ("gluster", "--info", str(FIXTURES / "hc_wizard_inventory.yml")),
        ("ovirt", "--recorded", str(tmp_path)),
    ]
    for args in cases:
        r = hcisim("import", *args, "-o", str(tmp_path / "out.yaml"))
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        named = args[-1] if args[0] != "ovirt" else str(tmp_path / "hosts.xml")
        assert named in r.stderr.replace("\n", ""), (args, r.stderr)
    assert not (tmp_path / "out.yaml").exists()


def test_ovirt_needs_one_source(tmp_path: Path) -> None:
    r = hcisim("import", "ovirt", "-o", str(tmp_path / "o.yaml"))
    assert r.returncode == 2
    assert "give either --url (a live engine) or --recorded DIR" in r.stderr


def test_gluster_needs_files_or_a_server(tmp_path: Path) -> None:
    out = str(tmp_path / "g.yaml")
    r = hcisim("import", "gluster", "-o", out)
    assert r.returncode == 2
    assert "give either --info FILE (saved outputs) or --ssh HOST" in r.stderr
    r = hcisim("import", "gluster", "--ssh", "root@node1:ssh", "-o", out)
    assert r.returncode == 2
    assert "--ssh root@node1:ssh: expected [USER@]HOST[:PORT]" in r.stderr


def test_gluster_over_ssh_to_a_server_that_does_not_answer(tmp_path: Path) -> None:
    r = hcisim("import", "gluster", "--ssh", "root@127.0.0.1:1", "-o", str(tmp_path / "g.yaml"))
    assert r.returncode == 3, r.stderr  # a target error: the server, not the input
    assert "root@127.0.0.1:1" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g.yaml").exists()
