"""The planner's heal rate against the model's: the same hardware, volume options and
profile, run through the model (a node away 600 s under a sequential writer), heal at the
rate the planner estimates where the heal is CPU-bound (few cores, many threads: the case
the planner once got wrong by ignoring the CPU cap). The model heals its last shards with
fewer in flight (faster a core), which the planner's steady rate leaves out: within 1 %."""

from __future__ import annotations

import pytest

from hcisim.capacity import Candidate, place, replica_sets
from hcisim.capacity.placement import HostRoom
from hcisim.capacity.storage import heal_estimate
from hcisim.model import simulate
from hcisim.scenario.load import parse_scenario
from tests.capacity.cases import SEQ_WRITE, candidate, spec, vm

SCENARIO = """
name: heal-rate-check
seed: 3
duration_s: 4500
hosts:
  - &host
    name: host1
    cores: {cores}
    ram_gib: 64
    disks: [{{name: brick0, capacity_gb: 4000, bandwidth_mb_s: 2000, iops: 100000}}]
    nics:
      - {{name: mgmt0, gbps: 1, networks: [management]}}
      - {{name: stor0, gbps: 10, networks: [storage, migration]}}
  - {{<<: *host, name: host2}}
  - {{<<: *host, name: host3}}
networks:
  - {{role: management}}
  - {{role: storage}}
io_profiles:
  seq: {{read_pct: 0, block_kib: 1024, mb_s: 100, queue_depth: 4, random: false}}
vms:
  - {{name: w1, host: host1, vcpus: 1, ram_gib: 4,
      disks: [{{volume: data, size_gb: 400, io: seq}}]}}
volumes:
  - name: data
    type: {volume_type}
    size_gb: 1000
    bricks: [{{host: host1}}, {{host: host2}}, {{host: host3}}]
    options: {{shard_block_size_mib: {shard_mib}, shd_max_threads: {threads}}}
faults:
  - {{at_s: 600, kind: node_power_loss, target: host2, duration_s: 600}}
"""


@pytest.mark.parametrize(("cores", "threads", "shard_mib", "volume_type"), [
    (2, 8, 4, "replica3"),  # 16 in flight on 4 cores
    (4, 16, 16, "arbiter"),  # the oVirt wizard's arbiter: 32 in flight on 8 cores
])
def test_planner_heals_at_the_models_rate(cores: int, threads: int, shard_mib: int,
                                          volume_type: str) -> None:
    sc = parse_scenario(SCENARIO.format(cores=cores, threads=threads, shard_mib=shard_mib,
                                        volume_type=volume_type))
    heals = simulate(sc)["heal"]
    main = heals.sort_values("bytes").iloc[-1]  # the heal after the repair (then a resweep)
    model_mb_s = float(main["bytes"]) / (float(main["t_end_s"]) - float(main["t_start_s"])) / 1e6

    s = spec(candidates=[candidate(cores=cores)], arbiter_layout="dedicated",
             volume_options={"shd_max_threads": threads, "shard_block_size_mib": shard_mib})
    cand = Candidate.model_validate(candidate(cores=cores))
    vms = [vm("w1", io=SEQ_WRITE, vcpus=1, ram=4, disk_gb=400, host=1)]
    he = heal_estimate(cand, s, vms, place(vms, HostRoom(1000, 1000)),
                       replica_sets(volume_type, "dedicated"))  # type: ignore[arg-type]
    row = next(r for r in he.per_host if r["host"] == 1)  # host2, as in the scenario
    assert row["limited_by"] == "heal CPU"
    assert float(row["rate_mb_s"]) == pytest.approx(model_mb_s, rel=0.01)
