"""The whole scenario: one cluster, its VMs, what happens to it, and what it claims."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from hcisim.scenario.base import Strict
from hcisim.scenario.claims import ClaimSpec
from hcisim.scenario.cluster import Host, Network, NetworkRole, Volume
from hcisim.scenario.compute import Compute
from hcisim.scenario.faults import Fault, Operation, make_fault
from hcisim.scenario.profile import DEFAULT_PROFILE, fill_model, load_profile
from hcisim.scenario.workload import IoProfile, Phase, Vm

DetectionPhase = Literal["known", "unknown"]
# Keys of the triangular draw that the ping-timer mechanism replaced (refused with a hint).
_DRAW_KEYS = ("min_factor", "mode_factor", "max_factor", "outlier_p", "outlier_max_factor")


class Detection(Strict):
    """When a client notices a silently lost brick: glusterfs's ping timer (rpc-clnt-ping.c,
    docs/model.md "Silent-loss detection: the mechanism"), not a fitted draw.

    While I/O is pending a client pings each brick every T (network.ping-timeout) plus a
    round trip, from where its chain started; the first ping after a loss goes unanswered
    and the brick is marked down T after it: a stall between T and 2T set by the chain's
    phase. ``known``: every chain started at ``anchor_s`` (run start, or when the mounts came
    up relative to it) and restarts when a client reconnects. ``unknown``: the phase is
    uniform over one period (a cluster that has been up for a while) until a connection
    reconnects during the run: from then on its chain starts there, a known phase.
    """

    phase: DetectionPhase = Field(
        "unknown", description="unknown (default: a cluster that was up before the run): the "
        "phase is uniform over one period until a connection reconnects in the run; known: "
        "every chain started at anchor_s (a lab whose mounts came up just before t = 0)")
    anchor_s: float = Field(
        default_factory=lambda: _shipped("detection_anchor_s"),
        description="when the clients' ping chains started, relative to t = 0 "
        "(negative: the mounts came up before the run); default: the profile's "
        "detection_anchor_s")
    peer_anchor_s: float | None = Field(
        default_factory=lambda: _shipped_or_none("peer_anchor_s"),
        description="when glusterd's peer connections were last busy, relative to t = 0 "
        "(the last cluster-wide command: their TCP keepalive probes run from there), used "
        "with phase known; null: drawn over one keepalive period as for an unknown phase; "
        "default: the profile's peer_anchor_s")
    later_sends: bool = Field(
        True, description="requests sent to a lost brick after the loss (a VM starting I/O "
        "there) re-arm the ping check for another T: the tail beyond 2T")

    @model_validator(mode="before")
    @classmethod
    def _no_draw(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = [k for k in _DRAW_KEYS if k in data]
            if old:
                raise ValueError(
                    f"{', '.join(old)}: the triangular detection draw was replaced by the "
                    "ping-timer mechanism; use phase (known | unknown) and anchor_s")
        return data


def _shipped(key: str) -> float:
    """A parameter of the shipped profile: the default of a key no profile filled (the
    validator below fills them from the scenario's own profile first)."""
    return float(getattr(load_profile(DEFAULT_PROFILE).parameters, key))


def _shipped_or_none(key: str) -> float | None:
    """:func:`_shipped` for a parameter a profile may leave unmeasured (None)."""
    value = getattr(load_profile(DEFAULT_PROFILE).parameters, key)
    return None if value is None else float(value)


class ModelParams(Strict):
    """Knobs of the model itself (not facts about the cluster). Its timing values come from
    a calibration profile (``profile``, docs/calibration.md) unless the scenario sets them."""

    profile: str = Field(
        DEFAULT_PROFILE, description="calibration profile the timing values come from: a "
        "shipped name (hcisim/builtin/profiles) or a path to a profile file")
    detection: Detection = Field(default_factory=Detection)
    sample_s: PositiveFloat = Field(10.0, description="volume-state sampling during heal")
    heal_noticed_s: float = Field(
        default_factory=lambda: _shipped("heal_noticed_s"), ge=0,
        description="delay before shd starts healing a brick that reconnected (profile)")
    heal_share: float = Field(
        0.5, gt=0, le=1, description="max share of a disk/NIC heal may take under VM load"
    )
    engine_overhead_ms: float = Field(
        default_factory=lambda: _shipped("engine_overhead_ms"), ge=0,
        description="fixed client+translator cost per request (FUSE, AFR) (profile)")
    heal_thread_mb_s: PositiveFloat = Field(
        default_factory=lambda: _shipped("heal_thread_mb_s"),
        description="copy rate of one self-heal thread (one shard at a time), MB/s "
        "(profile; the shipped one's is fitted to the netns lab's heal trials, "
        "docs/calibration.md)")
    heal_entry_s: float = Field(
        default_factory=lambda: _shipped("heal_entry_s"), ge=0,
        description="fixed cost per healed shard and thread (lookup, locks, xattrs, fsync) "
        "(profile)")
    heal_core_mb_s: float = Field(
        default_factory=lambda: _shipped("heal_core_mb_s"), ge=0,
        description="most MB/s a self-heal daemon heals per CPU core of its host, whatever "
        "its threads (heal is CPU work); 0: no such cap (profile)")
    heal_concurrency: float = Field(
        default_factory=lambda: _shipped("heal_concurrency"), ge=0,
        description="how much heal's CPU rate per core falls with each entry in flight per "
        "core beyond one (profile)")
    heal_cpu_pool_cores: PositiveFloat | None = Field(
        None, description="cores that every host's heal shares, when the hosts are not "
        "machines of their own (the netns lab: its machine's two; the calibration and "
        "validation cases say so, like for like); None: each host heals on its own cores")
    ping_timer_late_s: float = Field(
        default_factory=lambda: _shipped("ping_timer_late_s"), ge=0,
        description="how late each ping-timer callback fires: pings every T + rtt + late, "
        "bail-out T + late after the lost ping (profile)")
    reconnect_delay_s: float = Field(
        default_factory=lambda: _shipped("reconnect_delay_s"), ge=0,
        description="from a brick being reachable again until its clients use it (profile)")
    reconnect_timer_s: float = Field(
        default_factory=lambda: _shipped("reconnect_timer_s"), ge=0,
        description="the clients' reconnect timer (3 s in glusterfs): a client uses a "
        "repaired brick at its first try after the repair, every this long from its "
        "disconnect, plus reconnect_delay_s; 0: reconnect_delay_s after the repair (profile)")

    syn_linear_timeouts: NonNegativeInt = Field(
        default_factory=lambda: int(_shipped("syn_linear_timeouts")),
        description="net.ipv4.tcp_syn_linear_timeouts of the clients' kernel: when a "
        "connect to a host that does not answer retransmits its SYN (profile)")

    @model_validator(mode="before")
    @classmethod
    def _from_profile(cls, data: Any) -> Any:
        return fill_model(data) if isinstance(data, dict) else data


class LabParams(Strict):
    """How a lab realises the scenario's VMs (the model does not read it)."""

    vms: Literal["fio", "guests"] = Field(
        "fio", description="fio writers per VM disk, or one real qemu guest per VM "
        "(hcisim.lab.guests; its vm_state, stalls, pauses and migrations are measured)")
    plane: bool = Field(
        False, description="with vms: guests, the management plane too (hcisim.lab.plane: "
        "sanlock, agents, engine, hosted-engine HA agents); the lab restarts HA VMs")
    impose: bool = Field(
        False, description="like for like: the netns lab imposes the hosts' NIC rates (tbf "
        "on its links) and brick disks' bandwidth and IOPS (block-I/O cgroup), both times "
        "its I/O scale; meta['imposed'] says what was and was not imposed (docs/lab.md)")

    @model_validator(mode="after")
    def _plane_runs_guests(self) -> LabParams:
        if self.plane and self.vms != "guests":
            raise ValueError("plane: true needs vms: guests (the plane starts real guests)")
        return self


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    seed: NonNegativeInt = 1
    duration_s: PositiveFloat = 3600.0
    hosts: tuple[Host, ...] = Field(
        min_length=3, max_length=64, description="three hosts with bricks (the volumes' "
        "replica sets), and any compute-only hosts (disks: [])")
    networks: tuple[Network, ...] = (Network(role="management"), Network(role="storage"))
    volumes: tuple[Volume, ...] = Field(min_length=1)
    io_profiles: dict[str, IoProfile] = Field(default_factory=dict)
    vms: tuple[Vm, ...] = ()
    phases: tuple[Phase, ...] = (Phase(start_s=0.0),)
    faults: tuple[Fault, ...] = ()
    operations: tuple[Operation, ...] = ()
    compute: Compute = Compute()
    claims: tuple[ClaimSpec, ...] = ()
    model: ModelParams = Field(default_factory=ModelParams)
    lab: LabParams = LabParams()

    # --- cross-references: every name points at something that exists -----------------
    @model_validator(mode="after")
    def _references(self) -> Self:
        from hcisim.scenario.references import check_references

        check_references(self)
        return self

    # --- look-ups ------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def volume(self, name: str) -> Volume:
        for v in self.volumes:
            if v.name == name:
                return v
        raise KeyError(name)

    def vm(self, name: str) -> Vm:
        for v in self.vms:
            if v.name == name:
                return v
        raise KeyError(name)

    def network(self, role: NetworkRole) -> Network:
        for n in self.networks:
            if n.role == role:
                return n
        return Network(role=role)

    def make_fault(self, **fields: Any) -> Fault:
        """One fault on this scenario's hosts, as if it were in its ``faults`` (a fault
        injected by hand, or read back from a lab's state): validated by kind and with
        ``network: migration`` bound to the target's NICs. Raises ValueError (pydantic's
        ValidationError is one) naming the field; KeyError for an unknown target."""
        f = make_fault(**fields)
        f.bind_networks(tuple(n.networks for n in self.host(f.target).nics))
        return f

    def io_profile(self, ref: str | IoProfile | None) -> IoProfile | None:
        if ref is None or isinstance(ref, IoProfile):
            return ref
        return self.io_profiles[ref]

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)
