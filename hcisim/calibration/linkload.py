"""The ``link-efficiency`` experiment: what writers get through a shaped storage link, and
their latency when they saturate it (issue 12: "goodput of replica-3 and arbiter writes
through tbf-shaped links, and latency of a saturated closed-loop writer").

No fault. Every host's storage NIC is 0.2 Gb/s (25 MB/s each way) and the lab imposes it
(``lab.impose``: tbf on its links, docs/lab.md), so the links, not the machine, bound the
writes. Each of the three VMs writes 64 KiB blocks as fast as its queue depth lets it
(a demand far above any link: the lab's rate-paced fio never reaches its rate, so it is
a closed loop at its queue depth; ``catch_up`` as the lab's fio needs, with no stall it
never matters), for replica 3 and arbiter, at
queue depth 1 and 16. A replica-3 write leaves its client's host once per remote brick
(two copies on the wire, the local brick over loopback), an arbiter write once per remote
data brick plus the arbiter's metadata, so the goodput per VM is the link's share of its
copies, and a saturated writer's latency is Little's law, queue depth x block / goodput
(docs/model.md "Latency"). Readings per VM over the steady window (from
:data:`SETTLE_S` to the end): ``goodput`` (MB/s of writes done) and ``write_latency``
(ms, mean); a check of the model, fitting nothing.
"""

from __future__ import annotations

from hcisim.calibration.cases import Case, Reading, lab_scenario
from hcisim.observations import Observations
from hcisim.scenario import Scenario

LINK_GBPS = 0.2
QUEUE_DEPTHS = (1, 16)
VOLUME_TYPES = ("replica3", "arbiter")
BLOCK_KIB = 64
DEMAND_MB_S = 200.0  # per VM: far above what a 25 MB/s link carries
RUN_S = 40.0
SETTLE_S = 10.0  # the window starts here: mounts warm, fio at its pace


def link_case(volume_type: str, queue_depth: int, trial: int, exp: str,
              profile: str | None) -> Case:
    """One case: the lab-sized cluster with shaped storage NICs, imposed, no fault."""
    base = lab_scenario(f"cal-{exp}-{volume_type}-qd{queue_depth}-{trial}", [], RUN_S,
                        volume_type=volume_type, profile=profile,
                        description=f"{exp}: {volume_type}, queue depth {queue_depth}, "
                        f"storage links {LINK_GBPS:g} Gb/s")
    data = base.model_dump(mode="json")
    for h in data["hosts"]:
        for nic in h["nics"]:
            if "storage" in nic["networks"]:
                nic["gbps"] = LINK_GBPS
    data["io_profiles"]["writer"] = {"read_pct": 0.0, "block_kib": BLOCK_KIB,
                                     "mb_s": DEMAND_MB_S, "queue_depth": queue_depth,
                                     "random": True, "catch_up": True}
    data["lab"] = {**data.get("lab", {}), "impose": True}
    return Case(exp, f"{volume_type} qd={queue_depth}", Scenario.model_validate(data),
                {"volume_type": volume_type, "queue_depth": queue_depth,
                 "link_gbps": LINK_GBPS, "block_kib": BLOCK_KIB})


def link_cases(trial: int, profile: str | None, exp: str = "link-efficiency") -> list[Case]:
    return [link_case(v, q, trial, exp, profile) for v in VOLUME_TYPES for q in QUEUE_DEPTHS]


def read_link(case: Case, obs: Observations) -> list[Reading]:
    """Each VM's goodput and mean write latency over the steady window (time-weighted over
    its vm_io rows there)."""
    io = obs["vm_io"]
    out: list[Reading] = []
    for vm in sorted(set(io["vm"])):
        rows = io[(io["vm"] == vm) & (io["t_end_s"] > SETTLE_S)]
        start = rows["t_start_s"].clip(lower=SETTLE_S)
        dur = (rows["t_end_s"] - start).clip(lower=0.0)
        span = float(dur.sum())
        if span <= 0:
            continue
        mb = float((rows["write_mb_s"] * dur).sum())
        goodput = mb / span
        out.append(Reading("goodput", "MB/s", goodput, vm))
        weights = rows["write_mb_s"] * dur  # latency per MB written, as fio averages it
        if float(weights.sum()) > 0:
            lat = float((rows["latency_ms"] * weights).sum() / weights.sum())
            out.append(Reading("write_latency", "ms", lat, vm))
    return out
