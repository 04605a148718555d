"""A real sanlock daemon per lab host, leases on the Gluster volume, expiry after a cut.

Three daemons (one per host namespace, own run dirs, unprivileged, no watchdog) join one
lockspace on ``data`` through their own FUSE mounts with io_timeout 2 s. A holder process
on host1 owns ``vm1``'s lease: host2 is refused while host1 renews (-243, owner alive).
host1's storage link is cut: sanlock kills the holder once host1 cannot renew
(8 x io_timeout), and host2 gets the lease only after host1's delta lease is dead
(8 x io_timeout + 60 s): never while the holder lived. ``lab down`` finds the daemons,
an agent and the engine's namespace; the plane's reclaim kills them.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from hcisim.lab.errors import LabError
from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import unique_name
from hcisim.lab.netns.reclaim import find_leftovers
from hcisim.lab.plane import sanlock as sl
from hcisim.lab.plane.ha_agent import format_metadata
from hcisim.lab.plane.hosts import (
    PlaneConfig,
    engine_addr,
    ha_agent_pidfile,
    make_engine_netns,
    reclaim_plane,
    remove_engine_netns,
    start_agent,
    start_ha_agents,
)
from hcisim.lab.process import alive, read_pid, spawn
from hcisim.scenario import with_overrides
from hcisim.scenario.faults import make_fault
from tests.lab.scenarios import small

pytestmark = [pytest.mark.lab, pytest.mark.slow]
# sanlock's io_timeout: 5 s, not 2 (oVirt: 10). At 2 s a survivor's renewal write to the cut
# volume blocked 12 s ("delta_renew long write time 12 sec") and, 5 s after its last
# renewal, passed id_renewal_fail (16 s): host2 dropped the lockspace (-28 on acquire), on a
# quiet machine (1 of 2 runs, 13:45) and in CI. At 5 s the survivors have 40 s.
IO_TIMEOUT = 5


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[NetnsBackend, dict[str, sl.SanlockHost], sl.LeaseStore]]:
    # Gluster's ping-timeout below sanlock's renewal period (2 x io_timeout): each renewal the
    # survivors send to the cut brick is a new request, and a request sent within T of the
    # ping check re-arms it (rpc-clnt-ping.c, hcisim/model/pingtimer.py). With T = 5 s and a
    # renewal every 4 s the survivors' clients never marked host1's brick down, their own
    # renewals stalled past id_renewal_fail (16 s) and host2 left the lockspace (-28).
    sc = with_overrides(small(600), {"volumes[0].options.ping_timeout_s": 2,
                                     "volumes[0].options.tcp_user_timeout_s": 2})
    with NetnsBackend(sc, name=unique_name("sanlock")) as be:
        be.build()
        be.deploy()
        store = sl.LeaseStore(vms=("vm1", "vm2"), io_timeout_s=IO_TIMEOUT)
        hosts = {h.name: sl.SanlockHost(h.name, h.netns, h.dir) for h in be.lab_.hosts}
        for h in hosts.values():
            sl.start_daemon(h)
        sl.format_store(store, be.mount_path("host1", "data"))
        joins = [threading.Thread(target=sl.add_lockspace,
                                  args=(h, store, be.mount_path(n, "data"), i + 1))
                 for i, (n, h) in enumerate(hosts.items())]
        for j in joins:
            j.start()
        for j in joins:
            j.join()
        yield be, hosts, store


def try_acquire(be: NetnsBackend, h: sl.SanlockHost, store: sl.LeaseStore) -> str:
    argv = sl.holder_argv(h, store, be.mount_path(h.name, "data"), "vm1", ["true"])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    rv = sl.done_code(proc.stdout)
    return "ok" if proc.returncode == 0 else str(rv if rv is not None else proc.returncode)


def test_one_daemon_per_host_joins_the_lockspace(
        lab: tuple[NetnsBackend, dict[str, sl.SanlockHost], sl.LeaseStore]) -> None:
    be, hosts, store = lab
    for i, (name, h) in enumerate(hosts.items()):
        assert sl.lockspaces(h) == [store.lockspace_arg(be.mount_path(name, "data"), i + 1)]
        # the slots were formatted with the hosts' own io_timeout: a join waits 2 x 2 s, not
        # 2 x sanlock's default 10 s (longer than id_renewal_fail, 16 s: the lockspace could be
        # dropped right after the join)
        log = h.log.read_text(errors="replace")
        assert "delta_acquire other_io_timeout" not in log, log
        assert f"delta_short_delay {2 * IO_TIMEOUT}" in log, log


def test_lease_expires_only_after_the_holders_host_is_dead(
        lab: tuple[NetnsBackend, dict[str, sl.SanlockHost], sl.LeaseStore]) -> None:
    be, hosts, store = lab
    h1, h2 = hosts["host1"], hosts["host2"]
    argv = sl.holder_argv(h1, store, be.mount_path("host1", "data"), "vm1", ["sleep", "600"])
    holder = spawn(argv, h1.netns, h1.dir / "log" / "holder.log")
    (h1.dir / "pids" / "holder-vm1.pid").write_text(f"{holder.pid}\n")
    try:
        deadline = time.monotonic() + 30
        while sl.lease_owners(h1).get("vm1") != holder.pid:
            assert holder.poll() is None, (h1.dir / "log" / "holder.log").read_text()
            assert time.monotonic() < deadline, "the holder did not get vm1's lease"
            time.sleep(0.2)
        assert try_acquire(be, h2, store) == "-243"  # the owner's host renews: refused

        cut = make_fault(at_s=1, kind="nic_loss", target="host1", network="storage",
                         duration_s=1)
        t_cut = be.inject(cut)
        try:
            holder.wait(timeout=sl.host_dead_s(IO_TIMEOUT))
            t_killed = time.time()
            assert holder.returncode == -15, "sanlock kills the holder with SIGTERM"
            # an acquire is refused (-243) while host2 still saw host1's delta lease move
            # lately, and blocks when it did not, until host1 is dead: retry like the engine
            result = try_acquire(be, h2, store)
            while result == "-243" and time.time() - t_cut < 3 * sl.host_dead_s(IO_TIMEOUT):
                time.sleep(IO_TIMEOUT)
                result = try_acquire(be, h2, store)
            t_acquired = time.time()
        finally:
            be.restore(cut)
        print(f"\nsanlock io_timeout {IO_TIMEOUT} s: holder killed {t_killed - t_cut:.1f} s "
              f"after the cut (id_renewal_fail {sl.lease_expiry_s(IO_TIMEOUT):g} s after the "
              f"last renewal); host2 acquired {t_acquired - t_cut:.1f} s after the cut "
              f"(host_dead {sl.host_dead_s(IO_TIMEOUT):g} s)")
        assert result == "ok", (f"host2's acquire answered {result}; host2's sanlock log:\n"
                                + "\n".join(h2.log.read_text(errors="replace").splitlines()[-40:]))
        assert t_killed < t_acquired
        # safety, not speed: host2 may not take the lease before host1's delta lease could
        # be dead (its last renewal was at most one renewal interval, 2 io_timeouts, back)
        assert t_acquired - t_cut >= sl.host_dead_s(IO_TIMEOUT) - 2 * IO_TIMEOUT
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        (h1.dir / "pids" / "holder-vm1.pid").unlink(missing_ok=True)


def test_lab_down_finds_the_planes_processes_and_reclaim_kills_ours(
        lab: tuple[NetnsBackend, dict[str, sl.SanlockHost], sl.LeaseStore]) -> None:
    be, hosts, store = lab
    h3 = hosts["host3"]
    with pytest.raises(LabError, match="runs already"):
        sl.start_daemon(h3)
    layout = be.lab_
    cfg = PlaneConfig("data", store.vms, IO_TIMEOUT)
    agent = start_agent(layout, layout.host("host1"), cfg)
    ns = make_engine_netns(layout)
    # a hosted-engine HA agent on host2 (no engine VM here: it only publishes)
    format_metadata(layout.mount("host2", "data"), 3)
    he_cfg = layout.dir / "hosted-engine.json"
    he_cfg.write_text(json.dumps({
        "vm": "engine", "volume": "data", "loop_s": 1, "alive_s": 60, "margin": 800,
        "base_score": 3400, "host_ids": {h.name: i + 1 for i, h in enumerate(layout.hosts)},
        "hosts": {h.name: {"cores": 2, "ram_gib": 4} for h in layout.hosts},
        "vm_ram_gib": {}, "gateway": [engine_addr(layout), 80], "create": {}}))
    start_ha_agents(layout, [layout.host("host2")], he_cfg)
    ha = read_pid(ha_agent_pidfile(layout.host("host2")))
    pids = [read_pid(h.pidfile) for h in hosts.values()]
    assert all(p is not None and alive(p) for p in [*pids, ha])
    # what `hcisim lab down` after a SIGKILLed harness finds: every daemon, the agents and
    # the engine's namespace
    left = find_leftovers(be.name, be.root)
    assert {agent.pid, ha, *pids} <= set(left.pids) and ns in left.netns
    assert reclaim_plane(layout.dir) == []
    assert not any(p is not None and alive(p) for p in [agent.pid, ha, *pids])
    agent.wait(5)
    remove_engine_netns(layout)
