"""Re-read a heal campaign part's daemons: who healed and when each joined, from kept logs.

The heal reading (``hcisim.calibration.experiments.read_heal``) records, since session 16,
every self-heal daemon back before heal done (the healed brick's own host's included) and
when each one's CHILD_UP of the brick came after the first (``healers``, ``join_2_s``,
``join_3_s``). A part measured before counted only the other hosts' daemons and said
nothing of when they came. This script reads that from the part's kept glustershd logs
(``--keep-logs``), the same log lines the lab reads at run time
(:func:`hcisim.lab.clientlog.parse_line`: ``Connected`` / ``disconnected`` per brick, a
daemon start), and writes a copy of the part with those inputs set on each heal row.

It also reads each heal's end as the lab reads it since session 16: the last completion
into the brick (:data:`hcisim.lab.timeline.POLL_BRACKET_S`: a completion the daemon logs
after the poll that found the index empty is the heal's). A part measured before cut 8 of
its 30 heals 0.15-1.2 s short there; the row's ``measured`` becomes the log's
(first CHILD_UP to last completion) and the part's own value is kept in its inputs as
``measured_by_polls_s``; and it records that the lab's hosts shared the measuring
machine's cores (``cpu_pool_cores``: the part's ``machine.cpus``), as the reading does
since session 16 (``heal_cpu_pool_cores`` of the cases). Nothing else changes.

    python lab/calibration/reread_heal_joins.py PART.yaml LOGS_DIR OUT.yaml

LOGS_DIR holds one directory per case run, named as the campaign named it
(``cal-heal-o60-s4-k8-0``, ``cal-heal-backlog-o60-s4-k8-d320-2``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hcisim.lab.clientlog import parse_heal_line, parse_line
from hcisim.scenario.profile import Measurement, dump_profile, load_profile

TARGET_INDEX = 1  # host2's brick: the data volume's second brick (client-1)
SET_SIZE = 3


def run_dir(m: Measurement, logs: Path) -> Path:
    i = m.inputs
    disk = float(i["vm_disk_gb"])
    size = "" if disk == 0.064 else f"-d{round(disk * 1000)}"
    name = (f"cal-{m.experiment}-o{float(i['outage_s']):g}-s{int(float(i['shard_mib']))}"
            f"-k{int(float(i['shd_threads']))}{size}-{m.trial}")
    return logs / name


def daemon_ups(run: Path) -> tuple[dict[str, float], float]:
    """Each daemon's CHILD_UP of the target brick that the heal followed (its last up
    before the last data heal into it completed), and that last completion (epoch s)."""
    done = 0.0
    lines: dict[str, list[str]] = {}
    for log in sorted(run.glob("lab/host*/glustershd.log")):
        lines[log.parent.name] = log.read_text(errors="replace").splitlines()
        for line in lines[log.parent.name]:
            h = parse_heal_line(line, "data")
            if (h is not None and h.done and h.kind == "data"
                    and TARGET_INDEX in h.sink_bricks(SET_SIZE)):
                done = max(done, h.t)
    ups: dict[str, float] = {}
    for host, text in lines.items():
        up: float | None = None
        state: bool | None = None
        for line in text:
            ev = parse_line(line, "data")
            if ev is None or ev.t > done:
                continue
            if ev.index < 0:  # the daemon (re)started: it knows no brick yet
                state = None
                up = None
            elif ev.index == TARGET_INDEX and ev.up != state:
                state = ev.up
                up = ev.t if ev.up else None
        if up is not None:
            ups[host] = up
    return ups, done


def main(part: str, logs: str, out: str) -> None:
    profile = load_profile(Path(part))
    rows = []
    for m in profile.measurements:
        if m.quantity != "heal_after_childup":
            rows.append(m)
            continue
        ups, done = daemon_ups(run_dir(m, Path(logs)))
        times = sorted(ups.values())
        first = times[0]
        inputs = {k: v for k, v in m.inputs.items() if not k.startswith("join_")}
        inputs["healers"] = float(len(times))
        inputs.setdefault("measured_by_polls_s", m.measured)
        if profile.machine.cpus:  # the netns lab's hosts share that machine's cores
            inputs["cpu_pool_cores"] = float(profile.machine.cpus)
        for i, t in enumerate(times[1:], start=2):
            inputs[f"join_{i}_s"] = round(t - first, 4)
        print(f"{m.experiment} trial {m.trial} s{float(inputs['shard_mib']):g} "
              f"k{float(inputs['shd_threads']):g}: measured {m.measured:.2f} s, logs "
              f"{done - first:.2f} s, daemons "
              + ", ".join(f"{h}+{t - first:.2f}" for h, t in sorted(ups.items(),
                                                                  key=lambda x: x[1])))
        rows.append(m.model_copy(update={"inputs": inputs,
                                         "measured": round(done - first, 4),
                                         "predicted": None, "residual": None}))
    Path(out).write_text(dump_profile(profile.model_copy(
        update={"measurements": tuple(rows)})))


if __name__ == "__main__":
    main(*sys.argv[1:4])
