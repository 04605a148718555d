"""A fake SSH runner for unit tests of our own code: canned outputs by command pattern.

The outputs are real: captured from a Gluster 10.3 cluster (fixtures/), so the parsers and
checks are exercised on what servers really print.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from hcisim.accept.targets import HostTarget
from hcisim.lab.node import Completed

FIXTURES = Path(__file__).parent / "fixtures"
UUIDS = {"host1": "2512c6a1-6a18-4d2f-a6e8-a620c2e67370",
         "host2": "518ff8e1-783c-472c-9aac-396e554c74fb",
         "host3": "801f5e50-31c6-4476-b1d6-641a7bdcaa34"}
ADDRS = {"host1": "127.1.1.1", "host2": "127.1.1.2", "host3": "127.1.1.3"}

Answer = Completed | Callable[[str], Completed]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def ok(stdout: str = "") -> Completed:
    return Completed(0, stdout, "")


class FakeShell:
    """Answers each command with the first rule whose pattern matches; records commands."""

    def __init__(self, target: HostTarget, rules: list[tuple[str, Answer]]) -> None:
        self._target = target
        self.rules = rules
        self.commands: list[str] = []

    @property
    def target(self) -> HostTarget:
        return self._target

    @property
    def label(self) -> str:
        return self._target.label

    def run(self, argv: Sequence[str], timeout_s: float = 60.0,
            input: bytes | None = None) -> Completed:
        shell = list(argv[:2]) == ["sh", "-c"]
        command = " ".join([argv[2], *argv[3:]]) if shell else shlex.join(argv)
        self.commands.append(command)
        for pattern, answer in self.rules:
            if re.search(pattern, command):
                return answer(command) if callable(answer) else answer
        return Completed(127, "", f"fake: no rule for {command!r}")


def node_rules(host: str) -> list[tuple[str, Answer]]:
    """A healthy node of the fixture cluster (bricks on XFS made the HCI way)."""
    n = host[-1]
    ps = (f"100 glusterd glusterd --xlator-option management.working-directory=/srv/lab/n{n}/wd\n"
          "101 glusterd glusterd --xlator-option management.working-directory=/srv/lab/other\n"
          "102 glusterfsd /usr/sbin/glusterfsd -s 127.1.1.1\n")
    return [
        (r"^ps -eo", ok(ps)),
        (r"system:: uuid get", ok(f"UUID: {UUIDS[host]}\n")),
        (r"--xml peer status", ok(fixture("peer_status.xml"))),
        (r"--xml volume info data", ok(fixture("volume_info_data.xml"))),
        (r"--xml volume info engine", ok(fixture("volume_info_engine.xml"))),
        (r"--xml volume status data", ok(fixture("volume_status_data.xml"))),
        (r"--xml volume status engine", ok(fixture("volume_status_data.xml"))),
        (r"--xml volume get \S+ all", ok(fixture("volume_get_data.xml"))),
        (r"groups/virt", Completed(1, "", "no such file")),
        (r"info-summary|info summary", ok(fixture("heal_summary_clean.txt"))),
        (r"^findmnt", ok(f"xfs    rw,noatime,nodiratime,inode64,logbufs=8 /srv/lab/n{n}/brick\n")),
        (r"^xfs_info", ok(fixture("xfs_info.txt"))),
        (r"^df -B1", ok("Size Avail Inodes IFree\n314572800 300000000 153600 153590\n")),
        (r"^ip -o addr show", ok(f"1: lo    inet 127.0.0.1/8 scope host lo\n"
                                 f"5: sto0@if9    inet {ADDRS[host]}/24 brd x scope global\n")),
        (r"^ip -o link show dev sto0", ok("5: sto0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> "
                                          "mtu 9000 qdisc noqueue state UP\n")),
        (r"^date \+%s", lambda c: ok("1700000000.000000\n")),
        (r"^echo hcisim-ok", ok("hcisim-ok\n")),
        (r"^cat /proc/mounts", ok("".join(
            f"{ADDRS[host]}:/{v} /rhev/data-center/mnt/glusterSD/{ADDRS[host]}:_{v} "
            "fuse.glusterfs rw,relatime 0 0\n" for v in ("data", "engine")))),
        (r"^stat -f -c %T", ok("fuseblk\n")),
    ]


def target(host: str) -> HostTarget:
    n = host[-1]
    return HostTarget(address=f"10.0.0.{n}", user="root", name=host,
                      glusterd_sock=f"/srv/lab/n{n}/run/glusterd.socket",
                      glusterd_workdir=f"/srv/lab/n{n}/wd")


def cluster(overrides: dict[str, list[tuple[str, Answer]]] | None = None) -> dict[str, FakeShell]:
    """Three fake nodes; ``overrides`` puts extra rules first for one host."""
    shells = {}
    for h in ("host1", "host2", "host3"):
        extra = (overrides or {}).get(h, [])
        shells[h] = FakeShell(target(h), [*extra, *node_rules(h)])
    return shells
