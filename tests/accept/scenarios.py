"""Small scenarios shaped like the fixture cluster (and like a small lab)."""

from __future__ import annotations

from hcisim.scenario import Scenario, parse_scenario

SMALL = """
name: accept-small
duration_s: 60
hosts:
  - {name: host1, nics: [{name: mgmt0, gbps: 1, networks: [management]},
                         {name: sto0, gbps: 10, networks: [storage]}]}
  - {name: host2, nics: [{name: mgmt0, gbps: 1, networks: [management]},
                         {name: sto0, gbps: 10, networks: [storage]}]}
  - {name: host3, nics: [{name: mgmt0, gbps: 1, networks: [management]},
                         {name: sto0, gbps: 10, networks: [storage]}]}
networks:
  - {role: management, mtu: 1500}
  - {role: storage, mtu: 9000}
volumes:
  - {name: data, type: replica3, size_gb: 0.2, files: 1000,
     bricks: [{host: host1}, {host: host2}, {host: host3}]}
  - {name: engine, type: arbiter, size_gb: 0.05, files: 2000,
     bricks: [{host: host1}, {host: host2}, {host: host3}]}
io_profiles:
  small: {read_pct: 70, block_kib: 8, iops: 50, queue_depth: 2, catch_up: true}
vms:
  - {name: vm1, host: host1, disks: [{volume: data, size_gb: 1, io: small}]}
  - {name: vm2, host: host2, disks: [{volume: data, size_gb: 1, io: small}]}
faults:
  - {at_s: 10, kind: brick_crash, target: host3, volume: data, duration_s: 5}
claims:
  - {kind: replicas, min_copies: 2}
  - {kind: no_split_brain}
"""


def small(**replace: str) -> Scenario:
    text = SMALL
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_scenario(text, "accept-small")
