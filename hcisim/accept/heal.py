"""Watching a cluster through a fault: bricks up, quorum, pending heal, as volume_state rows.

Everything is read from a host the fault did not hit, through its glusterd and
``heal info summary``. Heal is counted in entries by Gluster; the observation schema wants
bytes, so an entry counts as one shard (``features.shard-block-size``), an upper bound that
reaches 0 exactly when heal is done, which is what the heal claims judge.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcisim.accept.faults import FaultRun
from hcisim.accept.ssh import Shell, SshError, gluster_of
from hcisim.lab.gluster import GlusterError
from hcisim.lab.heal import healed
from hcisim.lab.timeline import has_quorum
from hcisim.lab.wait import wait_until


@dataclass(frozen=True)
class VolumeSample:
    volume: str
    up: dict[str, bool]  # scenario host -> brick online
    pending_entries: dict[str, int]  # scenario host -> entries waiting to be healed to it



def sample(run: FaultRun, shell: Shell, volume: str, faulted: str) -> VolumeSample | None:
    """One look at ``volume`` from ``shell``'s host; rows go to the run's recorder."""
    try:
        procs = gluster_of(shell).volume_status(volume)
        heal = gluster_of(shell).heal_summary(volume, timeout_s=60)
    except (GlusterError, SshError):
        return None
    sc_vol = run.sc.volume(volume)
    by_uuid = {u: h for h, u in run.uuids.items()}
    up = {b.host: False for b in sc_vol.bricks}
    for p in procs:
        host = by_uuid.get(p.peer_id)
        if p.kind == "brick" and host in up:
            up[host] = p.online
    # Entries are indexed on the bricks that hold the good copy; they are owed to the
    # brick that was away (the faulted host's), or spread over the others if unknown.
    owed = max((b.pending or 0) for b in heal) if heal else 0
    pending = {h: 0 for h in up}
    if faulted in pending:
        pending[faulted] = owed
    run.peak_pending[volume] = max(run.peak_pending.get(volume, 0), owed)
    for host, is_up in up.items():  # glusterd's view changed: a brick went or came back
        key = f"{volume}/{host}"
        if run.brick_up.get(key, True) != is_up:
            run.event("brick_up" if is_up else "brick_down", key, "seen by glusterd")
            run.brick_up[key] = is_up
    t = run.now()
    shard = sc_vol.options.shard_block_size_mib * 1024 * 1024
    quorum = has_quorum(sc_vol, tuple(up[b.host] for b in sc_vol.bricks))
    for b in sc_vol.bricks:
        role = "arbiter" if sc_vol.is_arbiter(b.host) else "data"
        run.recorder.add("volume_state", t, volume, b.host, role, up[b.host],
                         float(pending[b.host] * shard), quorum)
    return VolumeSample(volume, up, pending)


def trigger_heal(run: FaultRun, shell: Shell, volume: str, attempts: int = 10) -> bool:
    """``gluster volume heal VOL``: right after a brick returns glusterd may refuse it."""
    return wait_until(lambda: gluster_of(shell).start_heal(volume, timeout_s=0), 3.0 * attempts,
                      3.0, clock=run.clock, sleep=run.sleep, ignore=(SshError,))


def wait_for_heal(run: FaultRun, volumes: list[str], faulted: str, timeout_s: float,
                  every_s: float = 2.0) -> dict[str, float | None]:
    """Trigger heal and sample until nothing is pending; heal-done time per volume (None:
    not done within ``timeout_s``). Heal episodes go to the ``heal`` table, sized by the most
    entries seen pending since the fault began (one shard each: an upper bound)."""
    _, shell = run.survivor(faulted)
    start = run.now()
    done: dict[str, float | None] = dict.fromkeys(volumes)
    for vol in volumes:
        run.event("heal_start", f"{vol}/{faulted}")
        trigger_heal(run, shell, vol)

    def all_healed() -> bool:
        for vol in [v for v in volumes if done[v] is None]:
            s = sample(run, shell, vol, faulted)
            if s is not None and healed(s.up.values(), s.pending_entries.values()):
                done[vol] = run.now()
                run.event("heal_done", f"{vol}/{faulted}")
        return all(t is not None for t in done.values())

    wait_until(all_healed, timeout_s, every_s, clock=run.clock, sleep=run.sleep)
    for vol in volumes:
        shard = run.sc.volume(vol).options.shard_block_size_mib * 1024 * 1024
        end = done[vol] if done[vol] is not None else run.now()
        peak = run.peak_pending.pop(vol, 0)  # entries seen pending since the fault began
        run.recorder.add("heal", vol, faulted, start, end, float(peak * shard), peak)
    return done
