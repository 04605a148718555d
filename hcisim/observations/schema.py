"""The one observation schema that the model and every lab produce.

Each table is a pandas DataFrame with exactly these columns (documented, with units, in
docs/observations.md). Interval tables cover ``[t_start_s, t_end_s)``; sample tables give the
state at ``t_s``. Times are seconds since the start of the run.
"""

from __future__ import annotations

from typing import Final

# column -> pandas dtype
COLUMNS: Final[dict[str, dict[str, str]]] = {
    # Things that happened: faults and repairs, bricks down/up, quorum, heal, VM transitions.
    "events": {
        "t_s": "float64",
        "kind": "string",
        "target": "string",
        "detail": "string",
        "source": "string",  # scenario | engine
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
        "outcome": "string",  # converged | post_copy | aborted
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
VM_IO_STATUSES: Final = ("ok", "stalled", "error", "stopped")
VM_STATES: Final = ("running", "paused", "migrating", "down", "restarting")

# Event kinds every engine uses for the same happening.
EVENT_KINDS: Final = (
    "fault_start", "fault_end",  # target host, detail: fault kind
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
)
