"""The one observation schema that the model and every lab produce.

Each table is a pandas DataFrame with exactly these columns (documented, with units, in
docs/observations.md). Interval tables cover ``[t_start_s, t_end_s)``; sample tables give the
state at ``t_s``. Times are seconds since the start of the run.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from hcisim.scenario.faults import FAULT_KINDS

# column -> pandas dtype
COLUMNS: Final[dict[str, dict[str, str]]] = {
    # Things that happened: faults and repairs, bricks down/up, quorum, heal, VM transitions.
    "events": {
        "t_s": "float64",
        "kind": "string",  # EVENT_KINDS
        "target": "string",
        "detail": "string",  # free text for people (a reason, a byte count); never parsed
        "source": "string",  # scenario | engine
        # fault_start / fault_end only (empty on other events): the fault, structured
        "fault_kind": "string",  # FAULT_KINDS (the scenario's fault table)
        "network": "string",  # the networks it cuts or slows, comma-separated roles
        "volume": "string",  # brick faults: the volume (empty: every brick of the host)
        "peers": "string",  # partition: the peer hosts, comma-separated (empty: all others)
    },
    # Per VM disk, piecewise-constant I/O (model: between changes; lab: per second).
    "vm_io": {
        "vm": "string",
        "volume": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "demand_mb_s": "float64",
        "read_mb_s": "float64",
        "write_mb_s": "float64",
        "read_iops": "float64",
        "write_iops": "float64",
        "latency_ms": "float64",
        "latency_p99_ms": "float64",
        "status": "string",  # ok | stalled | error | stopped
    },
    # Per VM, its lifecycle state (running, paused, migrating, down, restarting).
    "vm_state": {
        "vm": "string",
        "host": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "state": "string",
        "reason": "string",
    },
    # Per brick, state sampled at change points (and periodically during heal).
    "volume_state": {
        "t_s": "float64",
        "volume": "string",
        "brick": "string",  # host name of the brick
        "role": "string",  # data | arbiter
        "up": "bool",  # the clients see the brick connected
        "pending_heal_bytes": "float64",  # bytes this brick still has to receive by heal
        "quorum": "bool",  # the volume has client quorum at t_s (same on all its rows)
    },
    # Writes acknowledged to clients, and on how many data bricks they were at ack time.
    "writes": {
        "vm": "string",
        "volume": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "acked_bytes": "float64",
        "copies": "int64",  # data bricks holding every write acknowledged in the interval
        "quorum": "bool",  # the volume had client quorum when they were accepted
        "lost_bytes": "float64",  # acknowledged but not readable at the end (checker)
    },
    # Heal episodes: one per brick that received heal traffic.
    "heal": {
        "volume": "string",
        "brick": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "bytes": "float64",
        "shards": "int64",
    },
    # Windows in which a volume's newest data had fewer good copies than it should.
    "exposure": {
        "volume": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "good_copies": "int64",
        "unavailable_bytes": "float64",
    },
    # Live migrations (compute model / libvirt lab).
    "migrations": {
        "vm": "string",
        "src_host": "string",
        "dst_host": "string",
        "t_start_s": "float64",
        "t_end_s": "float64",
        "downtime_s": "float64",
        "rounds": "int64",
        "transferred_mb": "float64",
        "outcome": "string",  # converged | post_copy | aborted | running (at the run's end)
        "policy": "string",
    },
    # For every VM: the host it runs on and where it restarts if that host fails.
    "failover_pairs": {
        "vm": "string",
        "host": "string",
        "failover_host": "string",  # empty: fits nowhere
        "ha": "bool",
    },
}

INTERVAL_TABLES: Final = frozenset(
    name for name, cols in COLUMNS.items() if "t_start_s" in cols and "t_end_s" in cols
)
VmIoStatus = Literal["ok", "stalled", "error", "stopped"]
VmState = Literal["running", "paused", "migrating", "down", "restarting"]
EventSource = Literal["scenario", "engine"]
EventKind = Literal[
    "fault_start", "fault_end", "operation", "brick_down", "brick_up", "quorum_lost",
    "quorum_regained", "server_quorum_lost", "server_quorum_regained", "heal_start",
    "heal_done", "data_unavailable", "vm_paused", "vm_resumed", "vm_down", "vm_started",
    "migration_start", "migration_end", "engine_down", "engine_up", "host_non_responsive",
    "host_fenced", "fence_skipped", "lease_lost", "lease_expired", "lease_acquired",
    "vm_ran_twice", "shd_brick_down", "shd_brick_up", "writes_interrupted",
]
VM_IO_STATUSES: Final[tuple[VmIoStatus, ...]] = get_args(VmIoStatus)
VM_STATES: Final[tuple[VmState, ...]] = get_args(VmState)
EVENT_SOURCES: Final[tuple[EventSource, ...]] = get_args(EventSource)
FAULT_EVENTS: Final = frozenset({"fault_start", "fault_end"})
# Columns only fault events fill.
FAULT_COLUMNS: Final = ("fault_kind", "network", "volume", "peers")

# Event kinds every engine uses for the same happening (EventKind, in words).
_EVENT_KIND_NOTES: Final = (
    "fault_start", "fault_end",  # target host; fault_kind, network, volume, peers
    "operation",  # target host or VM, detail: maintenance | activate | migrate
    "brick_down", "brick_up",  # target volume/host
    "quorum_lost", "quorum_regained",  # target volume
    "server_quorum_lost", "server_quorum_regained",  # target host
    "heal_start", "heal_done",  # target volume/host
    "data_unavailable",  # target volume, detail: bytes
    "vm_paused", "vm_resumed", "vm_down", "vm_started",  # target VM
    "migration_start", "migration_end",  # target VM
    "engine_down", "engine_up",  # hosted engine
    "host_non_responsive", "host_fenced",  # target host (compute model: engine's view)
    "fence_skipped",  # target host, detail: the fencing policy's reason (HCI: Gluster)
    "lease_lost",  # target host: no delta-lease renewal for 8 x io_timeout, holders killed
    "lease_expired", "lease_acquired",  # target VM: its VM lease free for others / taken
    "vm_ran_twice",  # target VM: two boots wrote its disk at once (lab: the write history)
    # target volume/brick host, detail "glustershd on HOST": a self-heal daemon's own
    # connection to the brick dropped / came back (its CHILD_UP wakes heal; lab: the
    # daemon's log, glustershd.log)
    "shd_brick_down", "shd_brick_up",
    # target volume/VM: a writer died or lost its quorum with writes not post-op'ed; detail
    # names the disk, the source and the bricks its last writes are healed into (model)
    "writes_interrupted",
)
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
assert set(EVENT_KINDS) == set(_EVENT_KIND_NOTES)
# Values a column may take (checked when a row is recorded and by check_vocabulary).
VOCABULARY: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("events", "kind"): frozenset(EVENT_KINDS),
    ("events", "source"): frozenset(EVENT_SOURCES),
    ("events", "fault_kind"): frozenset({"", *FAULT_KINDS}),
    ("vm_io", "status"): frozenset(VM_IO_STATUSES),
    ("vm_state", "state"): frozenset(VM_STATES),
    ("volume_state", "role"): frozenset({"data", "arbiter"}),
    ("migrations", "outcome"): frozenset({"converged", "post_copy", "aborted", "running"}),
}
