"""Bytes healed on the real lab: the brick write counters against data of known size.

One replica-3 lab (4 MiB shards, ping-timeout 5 s), two cases one after the other:
- host2's brick process is killed, 24 MiB of fresh random data are written through host1's
  mount, the brick is restarted: heal must copy those 24 MiB to it (6 new shard files, the
  'full' algorithm of oVirt's virt group), and no more than host2's storage link received;
- host2's storage NIC is cut while 32 MiB are written, then restored, while a steady
  foreground writer on host3 keeps rewriting a 4 MiB file (one shard) through the whole
  case: the returning brick's counter grows by heal + foreground, and the quiet brick's by
  the foreground alone, so the measured heal must be the 32 MiB plus the one shard the
  foreground dirtied during the cut, 36 MiB (and not 36 MiB + the foreground).
Both within 15 % (issue 12's target for bytes healed), where the heal index estimate of the
same episode is printed beside it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hcisim.lab.backend import Sample
from hcisim.lab.collect import measured_heals
from hcisim.lab.heal import heal_settled
from hcisim.lab.healbytes import IoSample, timed
from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import HostLayout, unique_name
from hcisim.lab.process import run
from hcisim.lab.run import Poller
from hcisim.lab.schedule import FaultWindow
from hcisim.lab.timeline import VolumeTimeline
from hcisim.scenario.faults import Fault, make_fault
from tests.lab.scenarios import small

pytestmark = [pytest.mark.lab, pytest.mark.slow]
MIB = 1 << 20
SHARD_MIB = 4  # tests.lab.scenarios.small's shard size


@dataclass
class Lab:
    be: NetnsBackend
    poller: Poller[Sample]  # one for the module: the clients' views build up from the first poll
    counters: Poller[IoSample]
    windows: list[FaultWindow] = field(default_factory=list)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with NetnsBackend(small(600), name=unique_name("healb")) as be:
        be.build()
        be.deploy()
        lab = Lab(be, Poller(be.observe, 0.5), Poller(timed(be.brick_io), 0.1))
        lab.poller.start()
        lab.counters.start()
        try:
            yield lab
        finally:
            lab.poller.stop()
            lab.counters.stop()


def write_fresh(path: Path, mib: int) -> None:
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
        f.flush()
        os.fsync(f.fileno())


def rx_bytes(h: HostLayout) -> int:
    """Bytes received on the host's storage interface (/proc/net/dev is per namespace)."""
    out = run("read rx bytes", ["cat", "/proc/net/dev"], netns=h.netns).stdout
    for line in out.splitlines():
        name, _, fields = line.partition(":")
        if name.strip() == h.STORAGE_IF:
            return int(fields.split()[0])
    raise AssertionError(f"{h.STORAGE_IF} not in {h.netns}'s /proc/net/dev")


class Foreground(threading.Thread):
    """A steady writer on host3's mount: 1 MiB every 0.5 s, in place, inside one 4 MiB
    file that exists before the case (one shard: a brick that misses any of it is healed
    exactly one shard of it, 4 MiB, by the 'full' algorithm)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stop_evt, self.written = path, threading.Event(), 0
        write_fresh(path, SHARD_MIB)

    def run(self) -> None:
        with self.path.open("r+b") as f:
            while not self.stop_evt.is_set():
                f.seek((self.written // MIB % SHARD_MIB) * MIB)
                f.write(os.urandom(MIB))
                f.flush()
                os.fsync(f.fileno())
                self.written += MIB
                self.stop_evt.wait(0.5)


def settled_since(samples: list[Sample], t: float) -> bool:
    """Heal settled (two polls in a row) in polls taken after ``t`` (the clients' reconnect
    after a repair takes up to their 3 s reconnect timer: polls before it can look healed)."""
    return heal_settled([s for s in samples if s.t > t], ["data"])


def heal_case(lab: Lab, fault: Fault, mib: int, name: str,
              foreground: bool) -> tuple[float, float, int]:
    """Play ``fault`` on host2 while ``mib`` MiB are written; the heal host2's brick got
    (bytes by counters, the index estimate) and host2's storage rx bytes meanwhile.

    One heal, or two: the self-heal daemon reconnects on its own timer and can finish the
    first heal before a foreground client has reconnected (its 3 s timer); what that
    client writes meanwhile still misses host2 and is healed again (one shard)."""
    be = lab.be
    vol = be.scenario.volume("data")
    fg = Foreground(be.mount_path("host3", "data") / f"{name}-fg.img") if foreground else None
    host2 = be.lab_.host("host2")
    try:
        if fg is not None:
            fg.start()
        time.sleep(2)
        t_inject = be.inject(fault)
        write_fresh(be.mount_path("host1", "data") / f"{name}.img", mib)
        rx0 = rx_bytes(host2)
        t_restore = be.restore(fault)
        deadline = time.time() + 120
        while not settled_since(lab.poller.samples, t_restore + 2) and time.time() < deadline:
            time.sleep(0.5)
        rx = rx_bytes(host2) - rx0
    finally:
        if fg is not None:
            fg.stop_evt.set()
            fg.join(timeout=30)
    assert settled_since(lab.poller.samples, t_restore + 2), (
        f"heal did not finish within 120 s: {lab.poller.samples[-1].listing}")
    lab.windows.append(FaultWindow(fault, t_inject, t_restore))
    samples: list[Sample] = list(lab.poller.samples)
    tl = VolumeTimeline(vol, list(be.scenario.host_names), lab.windows)
    for s in samples:
        tl.add(s)
    pts = tl.points(samples[0].t, samples[-1].t, [s.t for s in samples])
    measured = measured_heals(vol, pts, lab.counters.samples, lab.windows)
    heals = [(ep, got, how) for i, ep, got, how in measured
             if vol.bricks[i].host == "host2" and ep.start > t_inject]
    b2 = next(i for i, b in enumerate(vol.bricks) if b.host == "host2")
    assert 1 <= len(heals) <= (1 if fg is None else 2), "\n".join([  # host2's brick, seen
        f"{heals}; restored at {t_restore - t_inject:.2f} s after the fault; host2's brick:",
        *(f"  {p.t - t_inject:7.2f} s up={p.up[b2]} pending={p.pending[b2]}"
          for p in pts if p.t >= t_inject - 1)])
    assert all(how.startswith("brick write counter") for _, _, how in heals), heals
    assert all(ep.bytes <= SHARD_MIB * MIB for ep, _, _ in heals[1:]), heals
    got, estimate = sum(g for _, g, _ in heals), sum(ep.bytes for ep, _, _ in heals)
    fg_mib = 0 if fg is None else fg.written / MIB
    print(f"\n{fault.kind}: wrote {mib} MiB while host2 was away (foreground {fg_mib:.0f} "
          f"MiB meanwhile); heal {got / MIB:.2f} MiB by the counters "
          f"({', '.join(f'{g / MIB:.2f}' for _, g, _ in heals)}), "
          f"{estimate / MIB:.2f} MiB by the heal index, host2 rx {rx / MIB:.2f} MiB, "
          + ", ".join(f"{ep.start - t_restore:.1f}-{ep.end - t_restore:.1f}" for ep, _, _ in heals)
          + " s after the repair")
    return got, estimate, rx


def test_crashed_brick_receives_exactly_what_was_written_while_it_was_down(
        lab: Lab) -> None:
    fault = make_fault(at_s=1, kind="brick_crash", target="host2", volume="data", duration_s=1)
    got, _estimate, rx = heal_case(lab, fault, 24, "crash", foreground=False)
    assert 0.85 * 24 * MIB <= got <= 1.15 * 24 * MIB
    assert got <= rx, "heal cannot write more than host2's storage link received"


def test_foreground_writes_are_not_counted_as_heal(lab: Lab) -> None:
    fault = make_fault(at_s=1, kind="nic_loss", target="host2", network="storage",
                       duration_s=1)
    got, _estimate, rx = heal_case(lab, fault, 32, "nic", foreground=True)
    # the 32 MiB file plus the foreground's shard dirtied during the cut (36 MiB), plus that
    # shard once more when the foreground's client reconnected after the first heal ended
    # (40 MiB), and never the foreground's own 12-15 MiB on top (host2's raw counter grew by
    # ~50 MiB). 12 runs on 2026-11-29: 36-44 MiB, median 40: docs/lab.md
    assert 0.85 * 36 * MIB <= got <= 1.15 * 40 * MIB
    assert got <= rx
