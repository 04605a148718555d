"""A guest whose launch fails half-way leaves nothing running (the one cleanup of
Guest.launch, which every starter relies on: netns, libvirt nodes, the plane's leases)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hcisim.lab.guests.image import GuestImage
from hcisim.lab.guests.qemu import Guest, GuestSpec
from hcisim.lab.process import alive


class SilentQemu(Guest):
    """A 'qemu' that runs, but where its QMP socket should be is a plain file: the connect
    fails while the process lives on."""

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        self.spec.pidfile.write_text(f"{proc.pid}\n")
        self.spec.qmp_sock.write_text("not a socket\n")
        return proc


def test_a_launch_that_fails_half_way_stops_what_it_started(tmp_path: Path) -> None:
    disk = tmp_path / "vm1.img"
    disk.write_bytes(bytes(1 << 20))
    spec = GuestSpec(name="vm1", netns="", host="host1", disk=disk, run_dir=tmp_path / "run",
                     pidfile=tmp_path / "pids" / "guest-vm1.pid")
    guest = SilentQemu(spec, GuestImage(tmp_path, {}))
    with pytest.raises(Exception):  # noqa: B017 - whichever error the wait gives
        guest.launch()
    assert guest.proc is not None
    assert guest.proc.poll() is not None and not alive(guest.proc.pid)
    assert not spec.pidfile.exists()
