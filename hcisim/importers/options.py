"""Gluster volume options (as ``gluster volume get``/``info`` and the engine print them) in
the scenario's terms.

Only the options the model uses are read; values Gluster marks ``(DEFAULT)`` count like set
ones (they are what the volume runs with). A value that cannot be understood is left at the
scenario's default and said so, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hcisim.importers.facts import binary_bytes

_ON = {"on", "yes", "true", "enable", "1"}
_OFF = {"off", "no", "false", "disable", "0"}


def _bool(v: str) -> bool:
    if v in _ON:
        return True
    if v in _OFF:
        return False
    raise ValueError(v)


def _seconds(v: str) -> float:
    return float(v.removesuffix("s"))


def _mib(v: str) -> int:
    n = binary_bytes(v, default_unit="b") / 2**20
    if n < 1 or n != int(n):
        raise ValueError(v)
    return int(n)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v not in allowed:
            raise ValueError(v)
        return v
    return parse


def _server_quorum(v: str) -> str:
    return {"server": "server", "none": "none", "off": "none"}[v]


def _percent(v: str) -> float:
    return float(v.removesuffix("%"))


# gluster option -> (scenario option, parser)
OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "network.ping-timeout": ("ping_timeout_s", _seconds),
    "server.tcp-user-timeout": ("tcp_user_timeout_s", _seconds),
    "features.shard": ("shard", _bool),
    "features.shard-block-size": ("shard_block_size_mib", _mib),
    "cluster.shd-max-threads": ("shd_max_threads", int),
    "cluster.heal-timeout": ("heal_timeout_s", _seconds),
    "cluster.quorum-type": ("quorum_type", _choice("auto", "fixed", "none")),
    "cluster.quorum-count": ("quorum_count", int),
    "cluster.server-quorum-type": ("server_quorum_type", _server_quorum),
    "cluster.server-quorum-ratio": ("server_quorum_ratio_pct", _percent),
    "cluster.data-self-heal-algorithm": ("data_self_heal_algorithm", _choice("full", "diff")),
    "cluster.choose-local": ("choose_local", _bool),
    "cluster.eager-lock": ("eager_lock", _bool),
}


def clean_value(raw: str) -> str | None:
    """``on (DEFAULT)`` -> ``on``; ``(null)`` (not set, no default) -> None."""
    v = raw.strip().removesuffix("(DEFAULT)").strip().lower()
    return None if v in ("", "(null)") else v


def scenario_options(gluster: Mapping[str, str], volume: str,
                     assumptions: list[str]) -> dict[str, Any]:
    """The scenario ``options:`` of a volume from its Gluster options."""
    out: dict[str, Any] = {}
    for key, (field, parse) in OPTIONS.items():
        if key not in gluster:
            continue
        value = clean_value(gluster[key])
        if value is None:
            continue
        try:
            out[field] = parse(value)
        except (ValueError, KeyError):
            assumptions.append(f"volume {volume}: {key}={gluster[key]!r} not understood, "
                               f"{field} left at its default")
    if out.get("quorum_type") != "fixed":
        out.pop("quorum_count", None)  # only meaningful with a fixed quorum
    return out
