"""The calibration experiments: which cases each runs, and what each trial measured.

An experiment is a set of cases (lab-sized scenarios with one fault on host2,
:mod:`hcisim.calibration.cases`) and a reader that turns one run's observations into
measurement rows. Every reader works on the shared observation schema, so the same code
reads a lab run and a model run.

=================  ===============================================================  ========
experiment         cases (one trial each per repeat; fault offsets spread over the  fits
                   ping period by the trial number)
=================  ===============================================================  ========
detection          nic_loss, node_hang, brick_hang x ping-timeout 3, 5, 10, 15, 20,  anchor,
                   42 s: the survivors' longest stall                                lateness
detection-short    the same at ping-timeout 3, 5, 10 s (a part: run with --merge)    same
detection-long     the same at ping-timeout 15, 20, 42 s (the other part)            same
detection-quick    nic_loss at ping-timeout 3 s                                      same
reconnect          brick_crash, nic_loss, node_power_loss (6 s): repair until the    reconnect
                   clients use host2's brick again                                   delay
reconnect-quick    brick_crash                                                       same
reconnect-hang     node_hang, brick_hang (12 s): the same, after a hang              (none)
heal               power loss 60 s x shard 4, 16, 64 MiB x 1 and 8 shd threads:     heal
                   from the daemons' CHILD_UP to heal done (they wake on their own)  costs
heal-backlog       the same with 5x the bytes (320 MB VM disks), shard 4, 64 MiB    same
heal-under-load    shard 4 MiB, 1 thread, the writers on after the repair at load   (none)
                   0, 0.05, 1 (of 200 IOPS x 64 KiB per VM): heal as in heal
link-efficiency    no fault; storage NICs 0.2 Gb/s, imposed; replica 3 and arbiter x  (none)
                   queue depth 1 and 16, 64 KiB closed-loop writers: goodput and
                   write latency per VM (hcisim.calibration.linkload)
server-quorum      storage partition of host2 for 45 s at ping-timeout 5 and 42 s:  (none:
                   when its glusterd stops its bricks after the cut, and starts      checks
                   them after the repair (glusterd.log)                              the model)
=================  ===============================================================  ========
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hcisim.calibration.cases import (
    SURVIVORS,
    TARGET,
    Case,
    Reading,
    fault,
    lab_scenario,
    offset_s,
)
from hcisim.calibration.linkload import link_cases, read_link
from hcisim.observations import Observations, summarize
from hcisim.scenario import Scenario

DETECTION_TIMEOUTS = (3.0, 5.0, 10.0, 15.0, 20.0, 42.0)
SILENT_KINDS = ("nic_loss", "node_hang", "brick_hang")
RECONNECT_KINDS = ("brick_crash", "nic_loss", "node_power_loss")
FAULT_AT_S = 8.0  # the first fault of a case (the lab's writers run from t = 0)
QUICK_AT_S = 5.0  # the CI smoke's


Reader = Callable[[Case, Observations], list[Reading]]


@dataclass(frozen=True)
class Experiment:
    name: str
    fits: tuple[str, ...]  # profile parameters it informs
    what: str
    cases: Callable[[int, str | None], list[Case]]  # (trial, model profile) -> cases
    read: Reader
    part_of: str | None = None  # the full experiment this one is a part of (its cases)


# --- detection -------------------------------------------------------------------------------
def _detection_case(kind: str, timeout: float, trial: int, exp: str,
                    profile: str | None, quick: bool = False) -> Case:
    at = (QUICK_AT_S if quick else FAULT_AT_S) + offset_s(trial, timeout)
    # long enough for a re-armed check as well (quick: for 2T + a margin only)
    hold = 2 * timeout + 3 if quick else 3 * timeout + 4
    sc = lab_scenario(f"cal-{exp}-{kind}-t{timeout:g}-{trial}",
                      [fault(kind, at, hold)], duration_s=at + hold + (3 if quick else 6),
                      ping_timeout_s=timeout, profile=profile)
    return Case(exp, f"{kind} T={timeout:g}", sc,
                {"kind": kind, "ping_timeout_s": timeout, "fault_s": at})


def read_stalls(case: Case, obs: Observations) -> list[Reading]:
    """The longest I/O stall of each VM on a host the fault did not hit."""
    s = summarize(obs, list(SURVIVORS), [])
    return [Reading("stall", "s", float(s["vms"][vm]["max_io_stall_s"]), vm)
            for vm in SURVIVORS]


def _detection(kinds: Iterable[str], timeouts: Iterable[float], exp: str, quick: bool = False
               ) -> Callable[[int, str | None], list[Case]]:
    kinds, timeouts = tuple(kinds), tuple(timeouts)
    return lambda trial, profile: [_detection_case(k, t, trial, exp, profile, quick)
                                   for k in kinds for t in timeouts]


# --- reconnect -------------------------------------------------------------------------------
def _reconnect_case(kind: str, trial: int, exp: str, profile: str | None,
                    quick: bool = False) -> Case:
    timeout = 3.0
    hold = 4.0 if kind == "brick_crash" else 3 * timeout + 3  # silent: detected first
    at = (QUICK_AT_S if quick else FAULT_AT_S) + offset_s(trial, timeout)
    # after the repair: the client's reconnect timer (3 s) and its log line
    sc = lab_scenario(f"cal-{exp}-{kind}-{trial}", [fault(kind, at, hold)],
                      duration_s=at + hold + (7 if quick else 10), ping_timeout_s=timeout,
                      profile=profile)
    return Case(exp, kind, sc, {"kind": kind, "fault_s": at, "repair_s": at + hold})


def brick_outage(obs: Observations, volume: str, brick: str, repair_s: float
                 ) -> tuple[float | None, float | None]:
    """The clients' view of ``brick`` around ``repair_s``, from one pass over its
    volume_state rows: when they saw it go down last before the repair (their reconnect
    timer runs from there: hcisim.model.pingtimer.reconnect_at_s), and when they used it
    again after it (the first ``up`` row ending that outage). None where they never saw
    it down, or never back."""
    vs = obs["volume_state"]
    rows = vs[(vs["volume"] == volume) & (vs["brick"] == brick)].sort_values("t_s")
    down: float | None = None
    for t, up in zip(rows["t_s"], rows["up"], strict=True):
        if not up and t <= repair_s + 1e-9:
            down = float(t) if down is None else down
        elif up and t >= repair_s - 1e-9 and down is not None:
            return down, float(t)
        elif up:
            down = None  # back before the repair: that was another outage
    return down, None


def reconnect_s(obs: Observations, volume: str, brick: str, repair_s: float) -> float | None:
    """When the clients use ``brick`` again after ``repair_s`` (None: never seen down)."""
    return brick_outage(obs, volume, brick, repair_s)[1]


def read_reconnect(case: Case, obs: Observations, quantity: str = "reconnect"
                   ) -> list[Reading]:
    """Repair until the clients use the brick again; with when they had seen it go down
    (``disconnect_s``), which places the repair in their reconnect timer's cycle."""
    repair = float(case.inputs["repair_s"])
    down, back = brick_outage(obs, "data", TARGET, repair)
    if back is None:
        return []
    extra = (("disconnect_s", round(down, 4)),) if down is not None else ()
    return [Reading(quantity, "s", back - repair, f"data/{TARGET}", extra)]


# After a hang the clients that bailed out had tries answered by the hung host's kernel (the
# handshake completes, the frozen glusterd or brick does not reply): not the SYN mechanism
# of an unanswered loss, not a refusal's grid either (the model assumes the grid: not
# measured yet). Its own quantity, so the reconnect fit does not take it.
HANG_KINDS = ("node_hang", "brick_hang")


# --- heal ------------------------------------------------------------------------------------
# Outages longer than the self-heal daemons' keepalive detection (18-38 s, hcisim.model.shd):
# their brick connections have dropped, so they wake at their own reconnect and "their
# CHILD_UP until heal done" is heal_noticed_s + the drain the fit predicts; a shorter power
# loss wakes them at the next keepalive probe after the return (0-20 s later), a wait no
# trial can predict. The writers stop at the repair: heal is the outage's backlog alone.
# With writers still running, the clients (back on their own SYN schedule, up to ~15 s
# after the daemons here) keep writing past host2 and the daemons heal the same shards
# again at every sweep until the clients are back (calibration part 2b): heal under load,
# a case for the whole model, not for the drain's costs.
# One outage, longer than the daemons' keepalive detection (18-38 s) so that every daemon's
# connection to host2's brick has dropped and comes back (40 s was within 2 s of it);
# the trials go to the shard sizes the issue names instead (4, 16, 64 MiB).
HEAL_OUTAGES_S = (60.0,)
HEAL_SHARDS_MIB = (4, 16, 64)
# The lab's brick disks are loop devices nothing limits in these cases (no `impose`): the
# heal cases declare a disk the heal path cannot saturate, so the model's cap on heal
# (heal_share of the slowest resource: 0.5 x 10 Gb/s here) stays out of the fit, which then
# measures the daemons' own costs (per thread, per entry). Part 2c measured up to ~400 MB/s
# of heal on one thread with 64 MiB shards, above the 100 MB/s the old 200 MB/s disk allowed.
HEAL_DISK_MB_S = 2000.0
# Every heal case above heals the same backlog (two writers' 64 MB disks, all dirty): the
# per-thread rate and the delay before heal then trade off freely (part 2e: heal time did
# not grow with the shard size, the rate went to the search's top). heal-backlog dirties
# 5x as much (two 320 MB disks: ~7,000 random 64 KiB writes per disk in the outage cover
# all 80 shards of 4 MiB), so that the bytes separate the per-byte cost from the delay.
HEAL_VM_DISK_GB = 0.064
HEAL_BACKLOG_VM_DISK_GB = 0.32
HEAL_BACKLOG_SHARDS_MIB = (4, 64)
# heal-under-load: the heal case's 4 MiB / 1 thread heal with the writers going on after the
# repair, at a twentieth of their rate (~0.45 MB/s of writes per VM, the validation
# matrix's writers) and at their full rate (~9 MB/s each), beside the same heal with the
# writers stopped: the validation matrix healed the same 128 MB in 6-9 s under its light
# writers where the heal experiment (writers stopped at the repair) took 1.3-3.8 s.
HEAL_UNDER_LOAD = (0.0, 0.05, 1.0)


def _heal_case(outage: float, shard_mib: int, threads: int, trial: int, exp: str,
               profile: str | None, vm_disk_gb: float = HEAL_VM_DISK_GB,
               load_after: float | None = None) -> Case:
    """A power loss of host2 whose heal is timed; ``load_after``: the writers' load after
    the repair (a fraction of their 200 IOPS of 64 KiB), a case input and part of its name;
    None: they stop at the repair (the heal experiments' cases, named as before)."""
    timeout = 5.0
    at = FAULT_AT_S + offset_s(trial, timeout)
    size = "" if vm_disk_gb == HEAL_VM_DISK_GB else f"-d{round(vm_disk_gb * 1000)}"
    load = "" if load_after is None else f"-l{load_after:g}"
    sc = lab_scenario(f"cal-{exp}-o{outage:g}-s{shard_mib}-k{threads}{size}{load}-{trial}",
                      [fault("node_power_loss", at, outage, heal_after_repair=False)],
                      duration_s=at + outage + 60, ping_timeout_s=timeout,
                      shard_mib=shard_mib, shd_threads=threads, iops=200, block_kib=64,
                      profile=profile, phases=[{"start_s": at + outage, "load": load_after or 0.0}],
                      disk_mb_s=HEAL_DISK_MB_S, vm_disk_gb=vm_disk_gb)
    label = f"outage {outage:g}s shard {shard_mib}MiB threads {threads}"
    if size:
        label += f" disks {round(vm_disk_gb * 1000)}MB"
    if load_after is not None:
        label += f" load after repair {load_after:g}"
    inputs: dict[str, float | str] = {
        "outage_s": outage, "shard_mib": shard_mib, "shd_threads": threads, "fault_s": at,
        "repair_s": at + outage, "vm_disk_gb": vm_disk_gb}
    if load_after is not None:
        inputs["load_after_repair"] = load_after
    return Case(exp, label, sc, inputs)


def heal_cap_mb_s(sc: Scenario) -> float:
    """The most MB/s heal may take on its path: the heal share of the slowest of the
    target's disk and storage NIC (what :mod:`hcisim.model.selfheal` caps a heal flow at,
    without VM load)."""
    host = sc.host(TARGET)
    disk = min(d.bandwidth_mb_s for d in host.disks)
    nic = min(n.gbps * 125.0 for n in host.nics if "storage" in n.networks)
    return sc.model.heal_share * min(disk, nic)


def childup_s(obs: Observations, volume: str, brick: str, after_s: float,
              own: bool = True) -> float | None:
    """When a self-heal daemon first saw its connection to ``brick`` come back at or after
    ``after_s`` (its CHILD_UP: what wakes its index healers, hcisim.model.shd); None if
    none did. ``own`` False: daemons on other hosts than the brick's only."""
    ev = obs["events"]
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == f"{volume}/{brick}")
            & (ev["t_s"] >= after_s - 1e-9)]
    if not own:
        up = up[up["detail"] != f"glustershd on {brick}"]
    return float(up["t_s"].min()) if not up.empty else None


def daemon_joins(obs: Observations, volume: str, brick: str, after_s: float,
                 before_s: float) -> list[float]:
    """Each self-heal daemon's first CHILD_UP of ``brick`` in ``after_s .. before_s``,
    in time order (one per daemon)."""
    ev = obs["events"]
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == f"{volume}/{brick}")
            & (ev["t_s"] >= after_s - 1e-9) & (ev["t_s"] <= before_s)]
    return sorted(float(v) for v in up.groupby("detail")["t_s"].min())


def read_heal(case: Case, obs: Observations) -> list[Reading]:
    """From the first CHILD_UP of the brick in a self-heal daemon to heal done. Any daemon,
    the brick's own host's included: every index healer sweeps its local brick's dirty
    index too (``afr_shd_index_sweep_all``), and a brick lost while written holds the
    files of the writes in flight there (AFR's pre-op marks them dirty, the post-op that
    clears the mark never came), so its own daemon heals them as soon as it sees its brick
    and a source (calibration part 2d: host2's daemon healed 19 of the 34 shards). Not
    from the clients' reconnect: the daemons reconnect on their own (calibration part 2a).
    No reading where no daemon's CHILD_UP is known (a backend that cannot read the
    daemons' log)."""
    repair = float(case.inputs["repair_s"])
    heal = obs["heal"]
    rows = heal[(heal["volume"] == "data") & (heal["brick"] == TARGET)
                & (heal["t_end_s"] >= repair - 1e-9)]
    woke = childup_s(obs, "data", TARGET, repair)
    if rows.empty or woke is None:
        return []
    vol = case.scenario.volume("data")
    shard = vol.options.shard_block_size_mib * 1024 * 1024
    shards = max(int(rows["shards"].sum()), math.ceil(float(rows["bytes"].sum()) / shard))
    done = float(rows["t_end_s"].max())
    extra: tuple[tuple[str, float], ...] = (
        ("shards", float(shards)), ("shard_bytes", float(shard)),
        ("host_cores", float(case.scenario.host(TARGET).cores)),
        ("cap_mb_s", heal_cap_mb_s(case.scenario)), ("bytes", float(rows["bytes"].sum())),
        ("childup_s", round(woke, 4)))
    pool = case.scenario.model.heal_cpu_pool_cores
    if pool is not None:  # the hosts' heal shares one machine's cores (the netns lab)
        extra += (("cpu_pool_cores", float(pool)),)
    others = childup_s(obs, "data", TARGET, repair, own=False)
    if others is not None:  # the first daemon on another host (a source's)
        extra += (("childup_others_s", round(others, 4)),)
    # the daemons back before heal done, the brick's own host's included (its index holds
    # entries of what its brick missed: it heals a share of them, hcisim.model.selfheal
    # SelfHeal.healers), each sweeping its brick's index with shd-max-threads from its own
    # CHILD_UP: how many, and when each joined after the first
    joins = daemon_joins(obs, "data", TARGET, repair, done)
    extra += (("healers", float(max(1, len(joins)))),)
    for i, at in enumerate(joins[1:], start=2):
        extra += ((f"join_{i}_s", round(at - woke, 4)),)
    back = reconnect_s(obs, "data", TARGET, repair)
    if back is not None:  # the clients' own reconnect, for the record
        extra += (("clients_back_s", round(back, 4)),)
    return [Reading("heal_after_childup", "s", done - woke, f"data/{TARGET}", extra)]


def read_heal_under_load(case: Case, obs: Observations) -> list[Reading]:
    """:func:`read_heal`'s reading as ``heal_under_load`` with the load after the repair: a
    check of the model, never fitted (the heal fit's drain assumes no writers after the
    repair; these rows are here to show what writers do to it)."""
    return [Reading("heal_under_load", r.unit, r.value, r.subject, r.extra)
            for r in read_heal(case, obs)]


# --- server quorum ----------------------------------------------------------------------------
# glusterd's peer connections have no ping timer (glusterd.vol: ping-timeout 0): a cut peer
# is noticed by TCP keepalive alone (glusterd.vol: keepalive-time 10 s, interval 2 s; 9
# probes), 18-28 s after the cut in the model (hcisim.model.clients), whatever the
# volume's network.ping-timeout: two ping-timeouts tell whether it plays a part. On the lab
# the keepalive's phase is fixed (the peer connections were last busy with the last command
# of the lab's build, a fixed time before t = 0; parts 2c/2d: the stops at 35.71-35.81 s
# after t = 0 for cuts at 8-11 s), so the trials' cuts, spread over one keepalive period,
# pin that anchor: ``peer_anchor_s``, the model's known phase for glusterd's peers.
SERVER_QUORUM_OUTAGE_S = 45.0
SERVER_QUORUM_TIMEOUTS = (5.0, 42.0)


def _server_quorum_case(timeout: float, trial: int, exp: str, profile: str | None) -> Case:
    at = FAULT_AT_S + offset_s(trial, 10.0)  # over one keepalive-time (10 s)
    sc = lab_scenario(f"cal-{exp}-t{timeout:g}-{trial}",
                      [fault("partition", at, SERVER_QUORUM_OUTAGE_S, network="storage")],
                      duration_s=at + SERVER_QUORUM_OUTAGE_S + 25, ping_timeout_s=timeout,
                      profile=profile)
    return Case(exp, f"partition T={timeout:g}", sc,
                {"kind": "partition", "ping_timeout_s": timeout, "fault_s": at,
                 "repair_s": at + SERVER_QUORUM_OUTAGE_S})


def read_server_quorum(case: Case, obs: Observations) -> list[Reading]:
    """When host2's glusterd stopped its bricks after the cut, and started them again after
    the repair (the first ``server_quorum_lost`` / ``regained`` of host2 after the fault)."""
    fault_s, repair = float(case.inputs["fault_s"]), float(case.inputs["repair_s"])
    ev = obs["events"]
    mine = ev[(ev["target"] == TARGET) & (ev["t_s"] >= fault_s - 1e-9)]
    lost = mine[mine["kind"] == "server_quorum_lost"]["t_s"]
    if lost.empty:
        return []
    stopped = float(lost.min())
    out = [Reading("bricks_stopped_after_cut", "s", stopped - fault_s, TARGET)]
    back = mine[(mine["kind"] == "server_quorum_regained") & (mine["t_s"] > stopped)]["t_s"]
    if not back.empty:
        out.append(Reading("bricks_started_after_repair", "s", float(back.min()) - repair,
                           TARGET))
    return out


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("detection", ("detection_anchor_s", "ping_timer_late_s"),
               "silent loss: survivors' stall per fault kind and ping-timeout",
               _detection(SILENT_KINDS, DETECTION_TIMEOUTS, "detection"), read_stalls),
    Experiment("detection-short", ("detection_anchor_s", "ping_timer_late_s"),
               "silent loss at ping-timeout 3, 5, 10 s (a part of detection)",
               _detection(SILENT_KINDS, DETECTION_TIMEOUTS[:3], "detection-short"),
               read_stalls, part_of="detection"),
    Experiment("detection-long", ("detection_anchor_s", "ping_timer_late_s"),
               "silent loss at ping-timeout 15, 20, 42 s (a part of detection)",
               _detection(SILENT_KINDS, DETECTION_TIMEOUTS[3:], "detection-long"),
               read_stalls, part_of="detection"),
    Experiment("detection-quick", ("detection_anchor_s", "ping_timer_late_s"),
               "silent loss: nic_loss at ping-timeout 3 s (CI smoke)",
               _detection(("nic_loss",), (3.0,), "detection-quick", quick=True), read_stalls),
    Experiment("reconnect", ("reconnect_delay_s",),
               "repair until the clients use the brick, per fault kind",
               lambda trial, prof: [_reconnect_case(k, trial, "reconnect", prof)
                                    for k in RECONNECT_KINDS],
               read_reconnect),
    Experiment("reconnect-quick", ("reconnect_delay_s",),
               "brick restart until the clients use it (CI smoke)",
               lambda trial, prof: [_reconnect_case("brick_crash", trial, "reconnect-quick",
                                                    prof, quick=True)],
               read_reconnect),
    Experiment("reconnect-hang", (),
               "hang repaired until the clients use the brick (a check of the model)",
               lambda trial, prof: [_reconnect_case(k, trial, "reconnect-hang", prof)
                                    for k in HANG_KINDS],
               lambda case, obs: read_reconnect(case, obs, "reconnect_after_hang")),
    Experiment("heal", ("heal_noticed_s", "heal_entry_s", "heal_thread_mb_s", "heal_core_mb_s",
                        "heal_concurrency"),
               "the daemons' CHILD_UP until heal done, per outage, shard size and shd threads",
               lambda trial, prof: [_heal_case(o, s, k, trial, "heal", prof)
                                    for o in HEAL_OUTAGES_S for s in HEAL_SHARDS_MIB
                                    for k in (1, 8)],
               read_heal),
    Experiment("heal-backlog", ("heal_noticed_s", "heal_entry_s", "heal_thread_mb_s",
                                "heal_core_mb_s", "heal_concurrency"),
               "the same as heal with 5x the backlog (320 MB VM disks), shard 4 and 64 MiB",
               lambda trial, prof: [_heal_case(HEAL_OUTAGES_S[0], s, k, trial, "heal-backlog",
                                               prof, HEAL_BACKLOG_VM_DISK_GB)
                                    for s in HEAL_BACKLOG_SHARDS_MIB for k in (1, 8)],
               read_heal),
    Experiment("heal-under-load", (),
               "the heal case (shard 4 MiB, 1 thread) with the writers going on after the "
               "repair at load 0, 0.05 and 1 (a check of the model: it fits nothing)",
               lambda trial, prof: [_heal_case(HEAL_OUTAGES_S[0], 4, 1, trial,
                                               "heal-under-load", prof, load_after=x)
                                    for x in HEAL_UNDER_LOAD],
               read_heal_under_load),
    Experiment("link-efficiency", (),
               "no fault, storage links shaped to 0.2 Gb/s: each VM's goodput and write "
               "latency, replica 3 and arbiter, queue depth 1 and 16 (a check of the model)",
               lambda trial, prof: link_cases(trial, prof), read_link),
    Experiment("server-quorum", ("peer_anchor_s",),
               "storage partition: when the cut-off host's glusterd stops and restarts its "
               "bricks, at two ping-timeouts",
               lambda trial, prof: [_server_quorum_case(t, trial, "server-quorum", prof)
                                    for t in SERVER_QUORUM_TIMEOUTS],
               read_server_quorum),
)}
DEFAULT_EXPERIMENTS = ("detection", "reconnect", "reconnect-hang", "heal", "server-quorum")


def experiments_named(names: Iterable[str]) -> list[Experiment]:
    """The experiments ``names`` name (ValueError listing the valid ones otherwise)."""
    out = []
    for n in names:
        if n not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {n!r}; known: {', '.join(EXPERIMENTS)}")
        out.append(EXPERIMENTS[n])
    return out
