"""The volume options a scenario expects: the virt group, with the scenario's own values on top.

The group file the server's package ships (``<glusterd workdir>/groups/virt``) is the
truth for "the virt group"; the copy below (glusterfs 10.3 extras/group-virt.example, see
reference/semantics.md) stands in only when a server has none. Values are compared after
normalising Gluster's spellings: on/enable/true/yes/1 are one value, sizes in KB/MB/GB are
binary multiples, numbers compare as numbers.
"""

from __future__ import annotations

import re

from hcisim.lab.gluster import plain_number, scenario_options
from hcisim.scenario import Volume, VolumeOptions
from hcisim.scenario.cluster import (
    VIRT_SERVER_KEEPALIVE_COUNT,
    VIRT_SERVER_KEEPALIVE_INTERVAL_S,
    VIRT_SERVER_KEEPALIVE_TIME_S,
)

VIRT_GROUP_10_3: dict[str, str] = {
    "performance.quick-read": "off", "performance.read-ahead": "off",
    "performance.io-cache": "off", "performance.low-prio-threads": "32",
    "network.remote-dio": "disable", "performance.strict-o-direct": "on",
    "cluster.eager-lock": "enable", "cluster.quorum-type": "auto",
    "cluster.server-quorum-type": "server", "cluster.data-self-heal-algorithm": "full",
    "cluster.locking-scheme": "granular", "cluster.shd-max-threads": "8",
    "cluster.shd-wait-qlength": "10000", "features.shard": "on", "user.cifs": "off",
    "cluster.choose-local": "off", "client.event-threads": "4", "server.event-threads": "4",
    "performance.client-io-threads": "on", "network.ping-timeout": "20",
    # the bricks' keepalive: the vocabulary's, which the model assumes too
    "server.tcp-user-timeout": plain_number(VolumeOptions().tcp_user_timeout_s),
    "server.keepalive-time": plain_number(VIRT_SERVER_KEEPALIVE_TIME_S),
    "server.keepalive-interval": plain_number(VIRT_SERVER_KEEPALIVE_INTERVAL_S),
    "server.keepalive-count": plain_number(VIRT_SERVER_KEEPALIVE_COUNT),
    "cluster.lookup-optimize": "off",
}

_TRUE = {"on", "enable", "enabled", "true", "yes", "1"}
_FALSE = {"off", "disable", "disabled", "false", "no", "0"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# Options whose value is a boolean in Gluster's option table (so 1/0 mean on/off).
_BOOLEAN_HINT = ("features.shard", "cluster.choose-local", "cluster.eager-lock",
                 "performance.", "network.remote-dio", "user.cifs")


def expected_options(vol: Volume, group: dict[str, str] | None) -> dict[str, str]:
    """Every option the acceptance checks on ``vol``, with the value it must have."""
    expected = dict(group if group else VIRT_GROUP_10_3)
    expected.update(scenario_options(vol))
    return dict(sorted(expected.items()))


def normalise(option: str, value: str) -> str:
    """One spelling per meaning, so that ``enable`` matches ``on`` and ``64MB`` ``67108864``."""
    v = value.strip().strip('"').lower()
    boolean = any(option.startswith(h) for h in _BOOLEAN_HINT)
    if v in _TRUE - {"1"} or (boolean and v == "1"):
        return "on"
    if v in _FALSE - {"0"} or (boolean and v == "0"):
        return "off"
    m = _SIZE.match(value.strip())
    if m:
        n = float(m.group(1)) * _UNITS[m.group(2).upper()]
        return plain_number(n)
    return v


def same_value(option: str, expected: str, actual: str | None) -> bool:
    if actual is None:
        return False
    return normalise(option, expected) == normalise(option, actual)
