"""When the engine refuses to put a Gluster host into maintenance (model and lab alike).

ovirt-engine ``MaintenanceNumberOfVdssCommand.validateGlusterParams``, applied when the
maintenance stops the host's Gluster services (as the model's and the lab's maintenance
do: its bricks are stopped cleanly) unless the operator ticks "Ignore Gluster Quorum and
Self-Heal validations":

1. ``GlusterHostValidator.checkGlusterQuorum`` (``isQuorumMet``): for every replicated
   volume, in each replica set that loses an UP brick of the host, the other UP bricks must
   still be at least the quorum count: ``ceil(replica / 2)`` for ``cluster.quorum-type
   auto`` (the virt group's setting). Message ``VDS_CANNOT_MAINTENANCE_GLUSTER_QUORUM_
   CANNOT_BE_MET``.
2. only if 1 passed, ``checkUnsyncedEntries``: no UP brick *of the host* may have unsynced
   entries (``gluster volume heal info`` of that brick: the entries it holds for a copy
   elsewhere that missed writes). Message ``VDS_CANNOT_MAINTENANCE_UNSYNCED_ENTRIES_
   PRESENT_IN_GLUSTER_BRICKS``.

So after host2 came back, host1 and host3 (whose bricks index what host2 missed) are
refused until heal is done, host2 itself is not (its own brick lists nothing): the engine
checks the bricks of the host going down only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hcisim.placement.ha_rules import GlusterBricks

# volume -> every brick in order: (host, unsynced entries as `heal info` counts them)
UnsyncedEntries = Mapping[str, Sequence[tuple[str, int]]]


def maintenance_refusal(host: str, bricks: GlusterBricks,
                        unsynced: UnsyncedEntries) -> str | None:
    """Why the engine refuses maintenance of ``host`` now (None: it accepts)."""
    short = []
    for volume, replica_set in bricks.items():
        going = sum(1 for h, up in replica_set if h == host and up)
        remaining = sum(1 for h, up in replica_set if h != host and up)
        if going and remaining < math.ceil(len(replica_set) / 2):
            short.append(volume)
    if short:
        return f"Gluster quorum cannot be met for {', '.join(short)} without {host}"
    up = {(v, h) for v, rs in bricks.items() for h, ok in rs if ok}
    pending = [f"{v} ({n})" for v, entries in unsynced.items() for h, n in entries
               if h == host and n > 0 and (v, h) in up]
    if pending:
        return f"unsynced entries present in Gluster bricks of {host}: {', '.join(pending)}"
    return None
