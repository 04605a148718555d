"""The ``libvirt`` lab backend: one node VM per scenario host, the stack deployed over SSH.

Same interface as the namespace lab (:class:`hcisim.lab.backend.Backend`), so run_lab, the
history checker, the observation tables and the claims are the namespace lab's, unchanged.
What differs is where things are: bricks, mounts, fio and the history writers live inside
the nodes, so paths the harness hands out (``mount_path``) are local mirrors that are
filled over SSH when the checker reads them, and the writers' logs stream back to the
harness as they are written (a node that loses power keeps its acknowledgements).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.faults import FaultBook, FaultInjector
from hcisim.lab.guests.image import GuestImage
from hcisim.lab.guests.qemu import Guest
from hcisim.lab.libvirt import deploy, nodes
from hcisim.lab.libvirt.faults import LibvirtMachine, migration_faults
from hcisim.lab.libvirt.hypervisor import (
    DAEMON_DIR,
    DomainType,
    HypervisorError,
    choose_domain_type,
    connect,
    stop_started_daemons,
)
from hcisim.lab.libvirt.image import DEFAULT_CACHE, ImageRecipe, build_image, machine_apt_source
from hcisim.lab.libvirt.layout import DEFAULT_WORKDIR, PREFIX, LabPlan, Machine, plan_lab
from hcisim.lab.libvirt.nested import (
    NestedVerdict,
    NodeGuestImage,
    check_node,
    guest_layer_disk,
    require_carried,
    require_nested,
)
from hcisim.lab.libvirt.ssh import CONTROL_DIR, NodeShells, make_key, ssh_config
from hcisim.lab.netns.state import LabState
from hcisim.lab.node import SshShell
from hcisim.lab.process import file_lock
from hcisim.lab.remote import RemoteNodes, parallel
from hcisim.lab.scale import LabScale
from hcisim.scenario import Fault, Scenario, load_scenario, save_scenario


@dataclasses.dataclass
class LibvirtLeftovers:
    """What of a libvirt lab is still there after ``reclaim`` (normally nothing)."""

    left: list[str]

    @property
    def empty(self) -> bool:
        return not self.left

    def describe(self) -> str:
        return ", ".join(self.left) or "nothing"

NODE_DIR = "/opt/hcisim"
NODE_RUN = "/var/lib/hcisim/run"


class LibvirtBackend(FaultBook, RemoteNodes):
    """See :class:`hcisim.lab.backend.Backend`. Options beyond the common ones: ``uri``
    (default qemu:///system, or $HCISIM_LIBVIRT_URI), ``accel`` (auto|kvm|qemu, or
    $HCISIM_LIBVIRT_ACCEL), ``workdir``, ``image_cache``, ``boot_timeout_s``, ``node_checks``
    (run the acceptance's read-only checks after deploy; results in meta["node_checks"])."""

    def __init__(self, scenario: Scenario, name: str | None = None,
                 scale: LabScale | None = None, volume_set: dict[str, str] | None = None,
                 uri: str | None = None, accel: str | None = None,
                 workdir: Path | None = None, image_cache: Path | None = None,
                 boot_timeout_s: float = 600.0, node_checks: bool = True, **_: Any) -> None:
        self.scenario = scenario
        self.uri = uri or os.environ.get("HCISIM_LIBVIRT_URI", "qemu:///system")
        self.accel = accel or os.environ.get("HCISIM_LIBVIRT_ACCEL", "auto")
        self.workdir = Path(workdir or DEFAULT_WORKDIR)
        self.image_cache = Path(image_cache or DEFAULT_CACHE)
        self.boot_timeout_s = boot_timeout_s
        self.node_checks = node_checks
        self.name = name if name and name.isalnum() and len(name) <= 8 else nodes.new_lab_name()
        self.scale = scale or LabScale.fit(scenario)
        self.volume_set = dict(volume_set or {})
        self.conn: Any = None
        self.plan: LabPlan | None = None
        self.state: LabState | None = None
        self.shell: NodeShells | None = None
        self.faults: FaultInjector | None = None
        self.domain_type: DomainType | None = None
        self.timings: dict[str, float] = {}
        self._meta: dict[str, Any] = {}
        self._active: list[Fault] = []
        self._lock = threading.Lock()
        self._remote_init()
        self.node_dir, self.node_run = NODE_DIR, NODE_RUN
        self.background_heal = True
        self.guest_image: GuestImage | None = None
        self.nested: list[NestedVerdict] = []
        self._guest_histories: dict[str, set[str]] = {}

    # --- labs that are up: listed here; poked by hand with `hcisim lab libvirt ...` ---------
    @staticmethod
    def lab_names(workdir: Path | None = None) -> list[str]:
        from hcisim.lab.libvirt.nodes import STATE_FILE

        return sorted(p.name for p in Path(workdir or DEFAULT_WORKDIR).glob("*")
                      if (p / STATE_FILE).exists())

    @classmethod
    def attach(cls, name: str, workdir: Path | None = None) -> LibvirtBackend:
        """The backend of a lab that is up (``hcisim lab status/fault/restore``): its plan
        again from the lab's state (slot, URI) and scenario, faults through the same
        injector, the active ones from the state file."""
        directory = Path(workdir or DEFAULT_WORKDIR) / name
        state = LabState(directory / nodes.STATE_FILE)
        slot = state.data.get("slot")
        if not isinstance(slot, int) or not (directory / "scenario.yaml").exists():
            raise LabError("find the lab", f"no libvirt lab named {name!r} (no state in "
                           f"{directory})")
        be = cls(load_scenario(directory / "scenario.yaml"), name=name,
                 uri=state.data.get("uri"), workdir=workdir)
        try:
            be.conn = connect(be.uri)
        except (HypervisorError, RuntimeError) as exc:
            raise LabError("attach to the lab", str(exc)) from None
        be.plan = plan_lab(be.scenario, name, slot, "kvm", Machine.here(), be.workdir)
        be.state = state
        be.shell = NodeShells(directory / "ssh_config")
        be.faults = FaultInjector(be.scenario, LibvirtMachine(
            be.conn, be.plan, be.shell, be._node_back, be.set_clock))
        be._active = [be.scenario.make_fault(**f) for f in state.get_list("active_faults")]
        return be

    @staticmethod
    def reclaim(name: str, workdir: Path | None = None) -> LibvirtLeftovers:
        """Remove lab ``name`` (``hcisim lab down``, also after a SIGKILL of its harness):
        its domains, networks, SSH masters and directory, through its own libvirt URI
        (the daemons are started when they are not running, so orphaned domains are found;
        the libvirtd and virtlogd hcisim started are stopped again once no lab is left, as
        :func:`nodes.reclaim` does: a `down` that started them must not leave them running)."""
        directory = Path(workdir or DEFAULT_WORKDIR) / name
        uri = LabState(directory / nodes.STATE_FILE).data.get("uri") or "qemu:///system"
        try:
            conn = connect(str(uri))
        except (HypervisorError, RuntimeError) as exc:
            raise LabError("remove the lab", f"cannot reach libvirt at {uri}: {exc}") from None
        try:
            nodes.teardown(conn, directory)
            prefix = f"{PREFIX}{name}-"
            left = [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        if directory.exists():
            left.append(str(directory))
        elif not any(p.is_dir() for p in directory.parent.glob("*")):
            stop_started_daemons()  # no lab left: the daemons we started go too
        return LibvirtLeftovers(left)

    def detach(self) -> None:
        """Forget the lab without destroying it."""
        self.plan = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    @property
    def plan_(self) -> LabPlan:
        if self.plan is None:
            raise LabError("use lab", "the lab is not built")
        return self.plan

    @property
    def shell_(self) -> NodeShells:
        if self.shell is None:
            raise LabError("use lab", "the lab is not built")
        return self.shell

    # --- build ----------------------------------------------------------------------
    def build(self) -> None:
        t = time.monotonic()
        if os.geteuid() != 0:
            raise LabError("check prerequisites", "the libvirt lab needs root")
        unplayable = migration_faults(self.scenario)
        if unplayable:  # before anything is made: nothing half-built to leave behind
            raise LabError("check the scenario", f"{', '.join(unplayable)} cut the migration "
                           "network; libvirt nodes have no migration NIC (the netns lab has)")
        try:
            image = build_image(ImageRecipe(machine_apt_source()), self.image_cache)
            self.timings["image_s"] = round(time.monotonic() - t, 1)
            self.conn = connect(self.uri)
            self.domain_type = choose_domain_type(self.conn, self.uri, image.kernel, self.accel)
        except (HypervisorError, RuntimeError) as exc:
            raise LabError("prepare hypervisor", str(exc)) from None
        brick_gib = max(self.scale.image_bytes(self.scenario, h.name, d.name)
                        for h in self.scenario.hosts for d in h.disks) / 2**30
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        with file_lock(DAEMON_DIR / "slots.lock"):  # labs started at once
            free = sorted(set(range(256)) - nodes.used_slots(self.conn, self.workdir))
            if not free:
                raise LabError("allocate lab subnets", "all 256 lab slots are in use")
            self.plan = plan_lab(self.scenario, self.name, free[0], self.domain_type.name,
                                 Machine.here(), self.workdir, brick_gib)
            self.plan.directory.mkdir(parents=True)
            self.state = LabState(self.plan.directory / nodes.STATE_FILE)
            self.state.data.update({"lab": self.name, "slot": self.plan.slot, "uri": self.uri,
                                    "scenario": self.scenario.name,
                                    "hosts": [n.host for n in self.plan.nodes]})
            nodes.record_owner(self.state)
        plan = self.plan
        layer = self._guest_layer()
        save_scenario(self.scenario, plan.directory / "scenario.yaml")  # for checks.py
        key, public = make_key(plan.directory)
        CONTROL_DIR.mkdir(parents=True, exist_ok=True)
        (plan.directory / "ssh_config").write_text(ssh_config(plan, key))
        self.shell = NodeShells(plan.directory / "ssh_config")
        for n in plan.nodes:
            nodes.create_disks(plan, n, image, public)
        nodes.start_networks(self.conn, plan, self.state)
        for n in plan.nodes:
            nodes.start_domain(self.conn, plan, n, image, self.state, layer)
        t_boot = time.monotonic()
        parallel(self._node_ready, [n.host for n in plan.nodes])
        self.timings["boot_s"] = round(time.monotonic() - t_boot, 1)
        self._check_nested()
        self.faults = FaultInjector(self.scenario, LibvirtMachine(
            self.conn, plan, self.shell, self._node_back, self.set_clock))
        self._meta.update({"image": image.digest, "image_dir": str(image.directory),
                           "domain_type": self.domain_type.name,
                           "domain_type_reason": self.domain_type.reason})
        self.timings["build_s"] = round(time.monotonic() - t, 1)

    @property
    def wants_guests(self) -> bool:
        return self.scenario.lab.vms == "guests"

    def _guest_layer(self) -> Path | None:
        """The guest layer disk every node gets (hcisim.lab.libvirt.nested). A lab whose
        scenario runs no guests boots without it when the guest image cannot be built."""
        from hcisim.lab.guests.image import ensure_image

        try:
            self.guest_image = ensure_image()
            layer = guest_layer_disk(self.guest_image, self.image_cache)
        except (LabError, OSError, subprocess.CalledProcessError) as exc:
            if self.wants_guests:
                raise LabError("make the guest layer disk", str(exc)) from None
            self._meta["guest_layer"] = {"error": str(exc)}
            return None
        self._meta["guest_layer"] = {"image": self.guest_image.hash, "disk": str(layer)}
        return layer

    def _check_nested(self) -> None:
        """Can every node run guests under KVM? Checked in each node (facts in
        meta["nested"]); a ``vms: guests`` scenario is refused here, before the deploy,
        when one cannot (the caller's destroy removes the lab)."""
        assert self.domain_type is not None
        t = time.monotonic()
        dt = self.domain_type
        want = self.guest_image.hash if self.guest_image is not None else None
        self.nested = parallel(lambda h: check_node(self.shell_, h, dt.name, dt.reason, want,
                                                    self.wants_guests),
                               [n.host for n in self.plan_.nodes])
        self._meta["nested"] = {v.host: v.to_dict() for v in self.nested}
        self.timings["nested_check_s"] = round(time.monotonic() - t, 1)
        if self.wants_guests:
            require_nested(self.nested)
            require_carried(self.scenario)

    def start_node_guest(self, vm: str, host: str, volume: str, image: GuestImage | None,
                         disk_bytes: int, **options: Any) -> Guest:
        """A guest inside ``host``'s node (hcisim.lab.guests.lab.start_guest comes here):
        refused, before anything is made, unless every node passed the nested check."""
        require_nested(self.nested)
        return self.launch_node_guest(vm, host, volume, image, disk_bytes, "kvm", **options)

    def launch_node_guest(self, vm: str, host: str, volume: str, image: GuestImage | None,
                          disk_bytes: int, accel: str, **options: Any) -> Guest:
        """The guest of ``vm`` in ``host``'s node, launched (paused, QMP and agent
        connected; ``boot()`` next), with no check: :meth:`start_node_guest` is the entry
        that checks. The image must be the one on the nodes' guest layer disk."""
        from hcisim.lab.guests.lab import history_relname
        from hcisim.lab.libvirt.guests import NodeGuest, make_node_disk, node_guest_spec

        layer = self.guest_image
        if layer is None or (image is not None and image.hash != layer.hash):
            have = layer.hash if layer is not None else "none"
            raise LabError(f"start guest {vm} in node {host}",
                           f"the nodes' guest layer disk holds guest image {have}, not "
                           f"{image.hash if image is not None else 'any'}")
        spec = node_guest_spec(self.plan_.directory / "guests", host,
                               self.node_mount(host, volume), vm, disk_bytes, accel, **options)
        node = self.node(host)
        make_node_disk(node, str(spec.disk), disk_bytes)
        self._guest_histories.setdefault(volume, set()).add(history_relname(vm))
        self._fetched.discard(volume)  # the checker must read the new history too
        guest = NodeGuest(spec, NodeGuestImage.of(layer), node)
        guest.launch()
        return guest

    def history_names(self, volume: str) -> list[str]:
        return [*super().history_names(volume), *sorted(self._guest_histories.get(volume, ()))]

    def _node_ready(self, host: str) -> None:
        """sshd answers; the node tools are in place and its clock is the harness's."""
        self.shell_.wait_ready(host, self.boot_timeout_s)
        self.put_tools(host)
        self.set_clock(host)

    def set_clock(self, host: str) -> None:
        """Step the node's clock to the harness's (one SSH round trip of error, ~10 ms)."""
        self.shell_.run(host, f"date -s @{time.time():.6f} >/dev/null", f"set clock of {host}")

    def _node_back(self, host: str) -> None:
        """After a power-on: sshd, clock, glusterd, then the node's mounts (its init)."""
        self._node_ready(host)
        deploy.wait_glusterd(self.shell_, host, self.boot_timeout_s)
        mps = " ".join(deploy.mount_point(v.name) for v in self.scenario.volumes)
        self.shell_.script(host, f"for i in $(seq 1 120); do ok=1; for m in {mps}; do "
                           "grep -q \" $m fuse.glusterfs \" /proc/mounts || ok=0; done; "
                           "[ $ok = 1 ] && exit 0; mount -a -t glusterfs 2>/dev/null; "
                           "sleep 2; done; exit 1\n", f"remount volumes on {host}", timeout=400)

    # --- deploy ---------------------------------------------------------------------
    def deploy(self) -> None:
        t = time.monotonic()
        applied = deploy.deploy_stack(self.shell_, self.plan_, self.scenario)
        if self.volume_set:
            opts = " ".join(f"{k} {v}" for k, v in self.volume_set.items())
            for v in self.scenario.volumes:
                self.shell_.run(self.plan_.nodes[0].host,
                                f"{deploy.GLUSTER} volume set {v.name} {opts}", "set extra options")
        first = self.plan_.nodes[0].host
        version = self.shell_.run(first, "glusterfs --version | head -1", "gluster version")
        self._meta.update({
            "lab_name": self.name, "backend": "libvirt", "uri": self.uri,
            "gluster_version": version.stdout.strip(), "scale": self.scale.to_dict(),
            "applied_options": applied,
            "hosts": {n.host: {"domain": n.domain, "storage": n.storage_address,
                               "management": n.mgmt_address, "vcpus": n.vcpus,
                               "ram_mib": n.ram_mib} for n in self.plan_.nodes},
            "lab_dir": str(self.plan_.directory),
            "ssh_config": str(self.plan_.directory / "ssh_config")})
        self.timings["deploy_s"] = round(time.monotonic() - t, 1)
        if self.node_checks:
            t = time.monotonic()
            self._meta["node_checks"] = self._run_node_checks()
            self.timings["node_checks_s"] = round(time.monotonic() - t, 1)

    def _run_node_checks(self) -> dict[str, Any]:
        """The acceptance's read-only checks on every node: host -> check -> problems."""
        from hcisim.lab.libvirt.checks import check_lab

        try:
            return dict(check_lab(self.plan_.directory))
        except Exception as exc:  # a check that cannot run is a finding, not a crash
            return {"error": str(exc)}

    # --- where things are on the nodes (hcisim.lab.remote does the rest) --------------
    def node(self, host: str) -> SshShell:
        return self.shell_.node(host)

    def node_hosts(self) -> list[str]:
        return [n.host for n in self.plan_.nodes]

    def node_mount(self, host: str, volume: str) -> str:
        return deploy.mount_point(volume)

    def node_brick(self, host: str, volume: str) -> str:
        v = self.scenario.volume(volume)
        brick = v.brick_on(host)
        assert brick is not None
        return deploy.brick_path(v, self.scenario.host(host).disk(brick.disk).name)

    def node_client_log(self, host: str, volume: str) -> str:
        return deploy.client_log(volume)

    def node_brick_pidfile(self, host: str, volume: str) -> str:
        path = self.node_brick(host, volume)
        return f"/var/run/gluster/vols/{volume}/{host}-{path.strip('/').replace('/', '-')}.pid"

    @property
    def view_dir(self) -> Path:
        return self.plan_.directory / "view"

    def meta(self) -> dict[str, Any]:
        return {**self._meta, "timings_s": dict(self.timings),
                "node_clock_error_max_s": self.clock_errors()}

    # --- destroy --------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """Domains, networks, overlays, seeds and ssh masters of this lab; safe twice."""
        self._stop_streams()
        if self.plan is None:
            return []
        removed = nodes.teardown(self.conn, self.plan.directory)
        self.plan = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        return removed
