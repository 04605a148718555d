"""Small lab scenarios built in code for the reliability tests (one volume, one VM)."""

from __future__ import annotations

from hcisim.scenario import Scenario, parse_scenario

SMALL = """
name: lab-small
duration_s: {duration}
hosts:
  - &host
    name: host1
    disks: [{{name: brick0, capacity_gb: 1}}]
    nics:
      - {{name: n0, gbps: 10, networks: [management]}}
      - {{name: n1, gbps: 10, networks: [storage]}}
  - {{<<: *host, name: host2}}
  - {{<<: *host, name: host3}}
volumes:
  - name: data
    type: replica3
    size_gb: 0.5
    bricks: [{{host: host1}}, {{host: host2}}, {{host: host3}}]
    options: {{ping_timeout_s: 5, tcp_user_timeout_s: 5, shard_block_size_mib: 4}}
vms:
  - {{name: vm1, host: host1, disks: [{{volume: data, size_gb: 0.016,
      io: {{read_pct: 50, block_kib: 4, iops: 20, queue_depth: 1, catch_up: true}}}}]}}
faults: {faults}
"""


def small(duration: float = 20.0, faults: str = "[]") -> Scenario:
    return parse_scenario(SMALL.format(duration=duration, faults=faults), "lab-small")
