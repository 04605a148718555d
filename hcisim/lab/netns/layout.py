"""Where everything of one netns lab lives: names, subnets, directories, sockets.

Pure naming, no side effects except :func:`allocate`, which reserves a lab name and a
subnet index under a lock so that several labs (pytest-xdist workers, two users) never
share a namespace name, a subnet or a directory.

Addresses: lab index k (0..119) owns storage 10.213.2k.0/24, management
10.213.(2k+1).0/24 and migration 10.214.k.0/24; host i (0-based) is .11+i on each. They
exist only inside the lab's namespaces, never on the machine's own interfaces.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.process import file_lock, proc_start

LAB_ROOT = Path(os.environ.get("HCISIM_LAB_ROOT", "/var/tmp/hcisim-lab"))
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
MAX_LABS = 120
NS_PREFIX = "hcl-"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class HostLayout:
    name: str
    index: int
    netns: str
    storage_addr: str
    mgmt_addr: str
    mig_addr: str
    dir: Path

    def address(self, network: str) -> str:
        """The host's address on lab network ``network`` (storage, management, migration)."""
        return {"storage": self.storage_addr, "management": self.mgmt_addr,
                "migration": self.mig_addr}[network]

    @property
    def workdir(self) -> Path:
        return self.dir / "glusterd"

    @property
    def rundir(self) -> Path:
        return self.dir / "run"

    @property
    def logdir(self) -> Path:
        return self.dir / "log"

    @property
    def sock(self) -> Path:
        return self.rundir / "glusterd.socket"

    @property
    def pidfile(self) -> Path:
        return self.dir / "glusterd.pid"

    @property
    def piddir(self) -> Path:
        """Pid files of the processes the harness starts on this host (mounts, workloads)."""
        return self.dir / "pids"

    def image(self, disk: str) -> Path:
        return self.dir / f"{disk}.img"

    def disk_mount(self, disk: str) -> Path:
        return self.dir / "disks" / disk

    def brick(self, disk: str, volume: str) -> Path:
        return self.disk_mount(disk) / volume

    def client_log(self, volume: str) -> Path:
        return self.logdir / f"fuse-{volume}.log"

    @property
    def glusterd_log(self) -> Path:
        return self.logdir / "glusterd.log"

    @property
    def shd_log(self) -> Path:
        """The host's one (multiplexed) self-heal daemon's log: every volume's connections
        (glusterd's cluster-test-mode puts it in the log directory)."""
        return self.logdir / "glustershd.log"

    # Interface names: in the host's namespace, and its peer end in the switch namespace.
    STORAGE_IF = "sto0"
    MGMT_IF = "mgmt0"
    MIG_IF = "mig0"  # a dedicated migration NIC's link (unused when migration shares one)

    @property
    def switch_storage_if(self) -> str:
        return f"s{self.index}"

    @property
    def switch_mgmt_if(self) -> str:
        return f"m{self.index}"

    @property
    def switch_mig_if(self) -> str:
        return f"g{self.index}"


@dataclass(frozen=True)
class LabLayout:
    name: str
    index: int
    dir: Path
    hosts: tuple[HostLayout, ...]

    @classmethod
    def make(cls, name: str, index: int, host_names: Sequence[str],
             root: Path | None = None) -> LabLayout:
        base = (root or LAB_ROOT) / name
        hosts = tuple(
            HostLayout(name=h, index=i, netns=f"{NS_PREFIX}{name}-{h}",
                       storage_addr=f"10.213.{2 * index}.{11 + i}",
                       mgmt_addr=f"10.213.{2 * index + 1}.{11 + i}",
                       dir=base / "h" / h, mig_addr=f"10.214.{index}.{11 + i}")
            for i, h in enumerate(host_names))
        return cls(name=name, index=index, dir=base, hosts=hosts)

    @property
    def switch_netns(self) -> str:
        return f"{NS_PREFIX}{self.name}-sw"

    @property
    def netns_names(self) -> list[str]:
        return [self.switch_netns, *(h.netns for h in self.hosts)]

    @property
    def state_file(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def mount_root(self) -> Path:
        return self.dir / "mnt"

    def mount(self, host: str, volume: str) -> Path:
        """FUSE mount point of ``volume`` on ``host`` (distinct per host: mounts are shared)."""
        return self.mount_root / host / volume

    def host(self, name: str) -> HostLayout:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def prefix_len(self) -> int:
        return 24


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise LabError("name the lab", f"lab name {name!r} must match {NAME_RE.pattern} "
                       "(it becomes part of namespace and socket names)")


def lab_dirs(root: Path | None = None) -> list[Path]:
    base = root or LAB_ROOT
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and NAME_RE.match(p.name))


def read_state(lab_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((lab_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def allocate(name: str, host_names: Sequence[str], root: Path | None = None) -> LabLayout:
    """Reserve ``name`` and a free subnet index; write the first state file at once.

    The state file exists before any resource does, so ``hcisim lab down`` can always find
    what a killed harness left behind.
    """
    check_name(name)
    base = root or LAB_ROOT
    with file_lock(base / ".lock"):
        if (base / name).exists():
            raise LabError("reserve the lab name",
                           f"a lab named {name!r} exists ({base / name}); "
                           f"run `hcisim lab down --name {name}` first")
        used = set()
        for d in lab_dirs(base):
            st = read_state(d)
            if st is not None and isinstance(st.get("index"), int):
                used.add(st["index"])
        free = [i for i in range(MAX_LABS) if i not in used]
        if not free:
            raise LabError("reserve a subnet", f"all {MAX_LABS} lab subnets are in use")
        layout = LabLayout.make(name, free[0], host_names, base)
        layout.dir.mkdir(parents=True)
        state = {"name": name, "index": layout.index, "hosts": list(host_names),
                 "netns": layout.netns_names, "pid": os.getpid(),
                 "pid_start": proc_start(os.getpid())}
        layout.state_file.write_text(json.dumps(state, indent=2))
        return layout


def unique_name(prefix: str = "lab") -> str:
    """A lab name not used by a live lab on this machine (pytest-xdist workers call this)."""
    stem = f"{prefix[:8]}-{os.getpid() % 100000}"
    n = 0
    while (LAB_ROOT / f"{stem}-{n}").exists():
        n += 1
    return f"{stem}-{n}"
