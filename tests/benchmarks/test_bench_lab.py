"""The netns lab's speed: nothing to a ready three-node lab with three volumes (target under
15 s), and the wall time of one fault cycle (inject, repair, heal triggered and settled).

Off by default; run with ``.venv/bin/pytest tests/benchmarks/test_bench_lab.py -m benchmark
-s`` as root. Times go to stdout and nothing asserts a time (the machine is shared); what is
asserted is that each cycle really ended healed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hcisim.lab.heal import heal_settled
from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import unique_name
from hcisim.lab.scale import LabScale
from hcisim.scenario import load_scenario, make_fault

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "lab-power-loss.yaml"


@pytest.mark.benchmark
@pytest.mark.lab
def test_lab_up_and_fault_cycles() -> None:
    sc = load_scenario(SCENARIO)
    t = time.monotonic()
    with NetnsBackend(sc, name=unique_name("bench"), scale=LabScale()) as be:
        be.build()
        be.deploy()
        up = time.monotonic() - t
        print(f"\nlab up (3 hosts, {len(sc.volumes)} volumes, mounted): {up:.1f} s "
              f"(build {be.timings['build_s']:.1f}, deploy {be.timings['deploy_s']:.1f})")
        for v in sc.volumes:  # something to heal
            (be.mount_path("host1", v.name) / "bench").write_bytes(b"x" * 2**20)
        for kind in ("brick_crash", "node_hang", "nic_loss", "node_power_loss"):
            f = make_fault(at_s=0, kind=kind, target="host2", duration_s=1)
            t = time.monotonic()
            be.inject(f)
            for v in sc.volumes:
                (be.mount_path("host1", v.name) / "bench").write_bytes(b"y" * 2**20)
            t_inject = time.monotonic() - t
            be.background_heal = False
            be.restore(f)
            t_restore = time.monotonic() - t
            samples = [be.observe()]
            while not heal_settled(samples, [v.name for v in sc.volumes]):
                assert time.monotonic() - t < 300, f"{kind}: heal did not settle"
                time.sleep(0.5)
                samples.append(be.observe())
            print(f"{kind}: inject+write {t_inject:.1f} s, repaired at {t_restore:.1f} s, "
                  f"healed at {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        left = be.destroy()
        print(f"down: {time.monotonic() - t:.1f} s")
        assert left is not None and left.empty, left
