"""What each client mount believes about each brick, and glusterd's server quorum.

Per (client host, volume, brick) a client sees the brick ``up``, ``lost`` (gone without a
word: no TCP RST, so in-flight I/O waits; only the ping timer will mark it down) or
``down``. A refused connection (brick process killed, disk failed, brick stopped) is seen
at once. A silent loss becomes ``down`` after ``ping_timeout × factor`` with a factor drawn
per loss from the detection distribution.

Server quorum: glusterd on each host counts the peers it can reach (itself included); we
assume glusterd talks over the storage network. A host that stays below the ratio for as
long as a client needs to notice a lost peer (same distribution) has its bricks killed;
they are restarted as soon as it sees enough peers again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster
from hcisim.model.gluster import detection_factor, server_quorum_met
from hcisim.model.world import World
from hcisim.observations import Recorder
from hcisim.scenario import Detection

Seen = Literal["up", "lost", "down"]
ViewKey = tuple[str, str, str]  # client host, volume, brick host
Schedule = Callable[[float, Callable[[], None]], None]  # (delay, action)


class ClientViews:
    def __init__(self, cluster: Cluster, world: World, rng: np.random.Generator,
                 detection: Detection, rec: Recorder, schedule: Schedule,
                 clock: Callable[[], float]) -> None:
        self.clock = clock
        self.cluster = cluster
        self.world = world
        self.rng = rng
        self.detection = detection
        self.rec = rec
        self.schedule = schedule
        self.seen: dict[ViewKey, Seen] = {}
        self.version = 0  # bumped whenever any view changes
        self._token: dict[ViewKey, int] = {}
        self.alive: dict[str, bool] = {}
        for c in cluster.hosts:
            self.alive[c] = True
            for v in cluster.volumes.values():
                for b in v.bricks:
                    self.seen[(c, v.name, b.host)] = "up"
                    self._token[(c, v.name, b.host)] = 0
        # host -> pending loss token, and the bricks it killed
        self._sq_token: dict[str, int] = {h: 0 for h in cluster.hosts}
        self._sq_pending: dict[str, bool] = {h: False for h in cluster.hosts}
        self.sq_lost: dict[str, bool] = {h: False for h in cluster.hosts}

    def state(self, client: str, volume: str, brick: str) -> Seen:
        return self.seen[(client, volume, brick)]

    # --- client views -------------------------------------------------------------------
    def reconcile(self, t: float) -> bool:
        """Bring every running client's view in line with the world; True if any changed."""
        changed = False
        for c in self.cluster.hosts:
            running = self.world.running(c)
            if not running:
                self.alive[c] = False  # frozen or off: its view no longer matters
                continue
            fresh = not self.alive[c]
            self.alive[c] = True
            for v in self.cluster.volumes.values():
                for b in v.bricks:
                    changed |= self._reconcile_one(t, c, b, fresh)
        return changed

    def _reconcile_one(self, t: float, c: str, b: BrickModel, fresh: bool) -> bool:
        key = (c, b.volume, b.host)
        st = self.seen[key]
        if self.world.reachable(c, b):
            new: Seen = "up"
        elif fresh or self.world.refused(c, b):
            new = "down"  # a (re)started client connects or fails at once
        elif st == "up":
            new = "lost"
            self._token[key] += 1
            token = self._token[key]
            vol = self.cluster.volumes[b.volume]
            delay = vol.spec.options.ping_timeout_s * detection_factor(self.rng, self.detection)
            self.schedule(delay, lambda: self._ping_timeout(key, token))
        else:
            new = st
        if new == st:
            return False
        if new != "lost":
            self._token[key] += 1  # a pending ping timer no longer applies
        self.seen[key] = new
        self.version += 1
        return True

    def _ping_timeout(self, key: ViewKey, token: int) -> None:
        if self._token[key] == token and self.seen[key] == "lost":
            self.seen[key] = "down"
            self.version += 1

    # --- server quorum ------------------------------------------------------------------
    def _sq_bricks(self, host: str) -> list[BrickModel]:
        return [v.brick(host) for v in self.cluster.volumes.values()
                if v.spec.options.server_quorum_type == "server"]

    def _sq_met(self, host: str) -> bool:
        hosts = self.cluster.hosts
        active = sum(1 for p in hosts if self.world.link(host, p))
        return all(server_quorum_met(active, len(hosts),
                                     self.cluster.volumes[b.volume].spec.options
                                     .server_quorum_ratio_pct)
                   for b in self._sq_bricks(host))

    def reconcile_server_quorum(self, t: float) -> bool:
        changed = False
        for h in self.cluster.hosts:
            bricks = self._sq_bricks(h)
            if not bricks:
                continue
            if not self.world.running(h) or self._sq_met(h):
                self._sq_token[h] += 1
                self._sq_pending[h] = False
                if self.sq_lost[h]:
                    self.sq_lost[h] = False
                    for b in bricks:
                        self.world.sq_killed.discard(b.key)
                    if self.world.running(h):
                        self.rec.event(t, "server_quorum_regained", h, "bricks restarted")
                    changed = True
            elif not self.sq_lost[h] and not self._sq_pending[h]:
                self._sq_pending[h] = True
                self._sq_token[h] += 1
                token = self._sq_token[h]
                timeout = min(self.cluster.volumes[b.volume].spec.options.ping_timeout_s
                              for b in bricks)
                delay = timeout * detection_factor(self.rng, self.detection)
                self.schedule(delay, self._sq_timer(h, token))
        return changed

    def _sq_timer(self, host: str, token: int) -> Callable[[], None]:
        return lambda: self._sq_timeout(host, token)

    def _sq_timeout(self, host: str, token: int) -> None:
        if self._sq_token[host] != token or not self._sq_pending[host]:
            return
        self._sq_pending[host] = False
        if self._sq_met(host) or not self.world.running(host):
            return
        self.sq_lost[host] = True
        bricks = self._sq_bricks(host)
        for b in bricks:
            self.world.sq_killed.add(b.key)
        self.rec.event(self.clock(), "server_quorum_lost", host,
                       "glusterd stopped local bricks: " + ", ".join(b.volume for b in bricks))
