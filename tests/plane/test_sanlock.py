"""sanlock pieces without a lab: names, arguments, result codes, reclaim of nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hcisim.lab.errors import LabError
from hcisim.lab.plane import sanlock as sl


def test_lease_slots_and_arguments() -> None:
    store = sl.LeaseStore(vms=("db1", "app1"), io_timeout_s=2)
    mount = Path("/m/data")
    assert store.offset("app1") == sl.ALIGN
    assert store.lockspace_arg(mount, 3) == "hcisim:3:/m/data/ids:0"
    assert store.resource_arg(mount, "app1") == f"hcisim:app1:/m/data/xleases:{1 << 20}"
    with pytest.raises(LabError, match="no lease slot"):
        store.offset("web")


@pytest.mark.parametrize("bad", [{"vms": ("a" * 49,)}, {"vms": ("has space",)},
                                 {"vms": (), "io_timeout_s": 0}])
def test_bad_store_is_a_clear_error(bad: dict[str, object]) -> None:
    with pytest.raises(LabError):
        sl.LeaseStore(**bad)  # type: ignore[arg-type]


def test_sanlock_timeouts() -> None:
    # sanlock 3.8 timeouts.c: id_renewal_fail = 8 io; host_dead = 8 io + watchdog 60 s
    assert sl.lease_expiry_s(10) == 80 and sl.host_dead_s(10) == 140
    assert sl.host_dead_s(2) == 76


def test_result_codes_are_explained() -> None:
    assert sl.done_code("acquire fd 3\nacquire done -243\n") == -243
    assert sl.done_code("nothing") is None
    assert "alive" in sl.explain(-243)
    assert "No such file" in sl.explain(-2)


def test_holder_argv_execs_the_program_under_its_lease(tmp_path: Path) -> None:
    h = sl.SanlockHost("host1", "ns", tmp_path)
    store = sl.LeaseStore(vms=("vm1",))
    argv = sl.holder_argv(h, store, Path("/m"), "vm1", ["sleep", "5"])
    assert argv[:3] == ["env", f"SANLOCK_RUN_DIR={tmp_path}/run/sanlock", "SANLOCK_PRIVILEGED=0"]
    i = argv.index("-c")
    assert argv[i - 3:i] == ["command", "-r", "hcisim:vm1:/m/xleases:0"]
    assert argv[i + 1].endswith("/sleep") and argv[i + 2:] == ["5"]


def test_reclaim_kills_only_our_daemons(tmp_path: Path) -> None:
    (tmp_path / "h" / "host1" / "pids").mkdir(parents=True)
    # a pid file naming a process that is not a sanlock daemon of this lab: left alone
    (tmp_path / "h" / "host1" / "pids" / "sanlock.pid").write_text("1\n")
    assert sl.reclaim_sanlock(tmp_path) == []
    assert not (tmp_path / "h" / "host1" / "pids" / "sanlock.pid").exists()



def test_lease_timeline_from_the_daemon_log(tmp_path: Path) -> None:
    h = sl.SanlockHost("host1", "ns", tmp_path)
    h.log.parent.mkdir(parents=True)
    h.log.write_text(
        "2026-11-29 12:33:54 12726 [3552]: s1 check_our_lease failed 16\n"
        "2026-11-29 12:34:12 12743 [3561]: cmd_acquire 2,9,16649 ci_in 2 fd 9 count 1 flags 0\n"
        "2026-11-29 12:35:24 12815 [3561]: cmd_acquire 2,9,16649 result 0 pid_dead 0\n"
        "2026-11-29 12:35:30 12821 [3561]: cmd_acquire 2,9,16700 result -243 pid_dead 0\n"
        "not a log line\n")
    t = time.mktime(time.strptime("2026-11-29 12:33:54", "%Y-%m-%d %H:%M:%S"))
    assert sl.lease_lost_times(h) == [t]
    assert sl.acquired_times(h) == [(t + 90.0, 16649)]  # the refused one is not a grant
    assert sl.acquired_times(sl.SanlockHost("h2", "ns", tmp_path / "none")) == []
