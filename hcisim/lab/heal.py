"""When is heal done: the one definition, used by every backend's heal wait and by accept.

A volume has healed when every brick is connected and nothing is pending for any of them;
a lab run's heal has *settled* when two polls in a row say so for every volume (one poll
can fall between the self-heal daemon's crawls and see a moment of nothing pending).
"""

from __future__ import annotations

from collections.abc import Iterable

from hcisim.lab.backend import Sample


def healed(up: Iterable[bool], pending: Iterable[float]) -> bool:
    """Every brick up (and at least one known), nothing pending on any of them."""
    ups = list(up)
    return bool(ups) and all(ups) and not any(pending)


def heal_settled(samples: list[Sample], volumes: list[str]) -> bool:
    """Two polls in a row saw every volume healed."""
    return len(samples) >= 2 and all(
        v in s.pending and healed(s.connected.get(v, []),
                                  [p.entries + p.bytes for p in s.pending[v].values()])
        for s in samples[-2:] for v in volumes)
