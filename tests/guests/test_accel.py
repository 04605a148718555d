"""Guests in a host's namespace use KVM where the machine has it, TCG otherwise (issue 13:
"software emulation here, KVM where the machine has it"), and the run says which."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hcisim.lab.guests import lab as guest_lab
from hcisim.lab.guests import run as guest_run
from hcisim.lab.guests.qemu import kvm_usable


@dataclass
class Host:
    name: str
    netns: str
    dir: Path

    @property
    def piddir(self) -> Path:
        return self.dir / "pids"


@pytest.mark.parametrize(("usable", "accel"), [(True, "kvm"), (False, "tcg")])
def test_the_guest_runs_on_what_the_machine_offers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usable: bool, accel: str) -> None:
    monkeypatch.setattr(guest_lab, "kvm_usable", lambda: (usable, "because"))
    spec = guest_lab.guest_spec(Host("host1", "ns-host1", tmp_path), tmp_path, "vm1",
                                mem_mib=160)
    assert spec.accel == accel
    assert spec.ram_kib(spec.accel) == spec.ram_kib(accel)
    # an explicit choice (a libvirt node's nested check) wins over the machine's
    forced = guest_lab.guest_spec(Host("host1", "ns-host1", tmp_path), tmp_path, "vm1",
                                  accel="tcg")
    assert forced.accel == "tcg"


def test_the_run_records_the_accelerator_and_why() -> None:
    usable, why = kvm_usable()
    assert guest_run.guest_accel() == {"accel": "kvm" if usable else "tcg", "why": why}
    assert why  # never an unexplained choice
