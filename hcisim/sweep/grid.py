"""The factorial grid of a sweep: factors from ``--set PATH=V1,V2``, runs, and their seeds.

Paths are the dotted/indexed form :func:`hcisim.scenario.with_overrides` accepts
(``volumes[1].type``, ``hosts[0].nics[1].gbps``), plus ``[*]`` for "every element"
(``hosts[*].ram_gib``), expanded here against the scenario. In ``default.yaml`` the three
hosts share a YAML anchor, but after loading they are three separate hosts: ``hosts[0]``
changes only the first, ``hosts[*]`` all of them.

Seeds: replication ``r`` runs with ``SeedSequence(base_seed, spawn_key=(r,))`` at every grid
point. The seed depends on the base seed and the replication only, never on the grid
position, so adding a factor level does not change any other run, and every grid point sees
the same random streams (common random numbers: differences between levels are not noise
from different draws).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from hcisim.scenario import Scenario, ScenarioError, with_overrides

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
RESERVED = {"seed": "the seed comes from --seed and --replications"}


class SweepError(Exception):
    """A sweep that cannot start; ``problems`` name the ``--set`` path and value at fault."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid sweep\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Factor:
    path: str  # as written; also the column name in the results table
    levels: tuple[Any, ...]


def split_levels(text: str) -> list[str]:
    """Split on commas that are not inside brackets, braces or quotes (``[a,b],c``)."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_set(arg: str) -> Factor:
    """``PATH=V1,V2,...`` with each value read as a YAML scalar (``10`` int, ``x`` str)."""
    path, sep, values = arg.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SweepError([f"--set {arg!r}: expected PATH=V1,V2,..."])
    if path in RESERVED:
        raise SweepError([f"--set {path}: {RESERVED[path]}"])
    tokens(path)  # syntax now; whether the field exists is checked against the scenario
    raw = split_levels(values)
    if any(not r for r in raw):
        raise SweepError([f"--set {path}: empty value in {values!r}"])
    levels = []
    for r in raw:
        try:
            levels.append(yaml.safe_load(r))
        except yaml.YAMLError:
            raise SweepError([f"--set {path}: {r!r} is not a YAML value"]) from None
    if len(set(map(repr, levels))) != len(levels):
        raise SweepError([f"--set {path}: a value is given twice in {values!r}"])
    return Factor(path, tuple(levels))


def tokens(path: str) -> list[str | int]:
    out: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        if m.start() != pos and path[pos:m.start()] != ".":
            break
        name, idx = m.groups()
        out.append(name if name is not None else (idx if idx == "*" else int(idx)))
        pos = m.end()
    if pos != len(path) or not out or not isinstance(out[0], str):
        raise SweepError([f"--set {path}: not a field path (like hosts[0].ram_gib)"])
    return out


def _render(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def expand(data: Any, path: str) -> list[str]:
    """Concrete paths for ``path``: each ``[*]`` becomes every index of that list."""
    paths: list[list[str | int]] = [[]]
    nodes = [data]
    for tok in tokens(path):
        new_paths, new_nodes = [], []
        for p, node in zip(paths, nodes, strict=True):
            if tok == "*":
                if node is None:
                    raise SweepError([f"--set {path}: {_render(p)}: no such field"])
                if not isinstance(node, list) or not node:
                    raise SweepError([f"--set {path}: {_render(p)} is not a list"])
                new_paths += [[*p, i] for i in range(len(node))]
                new_nodes += node
            else:
                new_paths.append([*p, tok])
                try:
                    new_nodes.append(node[tok])
                except (KeyError, IndexError, TypeError):
                    new_nodes.append(None)  # with_overrides names the missing field
        paths, nodes = new_paths, new_nodes
    return [_render(p) for p in paths]


def replication_seed(base_seed: int, replication: int) -> int:
    """The seed of replication ``replication`` (same at every grid point)."""
    ss = np.random.SeedSequence(base_seed, spawn_key=(replication,))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class SweepRun:
    """One run of the grid: which cell, which replication, its seed and overrides."""

    index: int
    point: int
    replication: int
    seed: int
    levels: tuple[tuple[str, Any], ...]  # factor path -> level
    overrides: tuple[tuple[str, Any], ...]  # concrete path -> value (seed included)


@dataclass(frozen=True)
class SweepPlan:
    base: Scenario
    factors: tuple[Factor, ...]
    replications: int
    base_seed: int
    runs: tuple[SweepRun, ...]

    @property
    def points(self) -> int:
        return len(self.runs) // self.replications


def _check(base: Scenario, overrides: dict[str, Any], what: str) -> list[str]:
    try:
        with_overrides(base, overrides)
    except ScenarioError as exc:
        return [f"{what}: {p}" for p in exc.problems]
    return []


def plan_sweep(base: Scenario, factors: Sequence[Factor], replications: int = 1,
               base_seed: int | None = None) -> SweepPlan:
    """Every run of the grid, each level and each cell validated before anything runs."""
    if replications < 1:
        raise SweepError([f"--replications {replications}: must be at least 1"])
    paths = [f.path for f in factors]
    dups = sorted({p for p in paths if paths.count(p) > 1})
    if dups:
        raise SweepError([f"--set {p}: given twice" for p in dups])
    data = base.model_dump(mode="json")
    concrete = {f.path: expand(data, f.path) for f in factors}
    owner: dict[str, str] = {}
    for f in factors:
        for c in concrete[f.path]:
            if c in owner:
                raise SweepError([f"--set {f.path}: overlaps --set {owner[c]} at {c}"])
            owner[c] = f.path
    problems = []
    for f in factors:
        for level in f.levels:
            problems += _check(base, dict.fromkeys(concrete[f.path], level),
                               f"--set {f.path}={level}")
    if problems:
        raise SweepError(problems)
    seed0 = base.seed if base_seed is None else base_seed
    seeds = [replication_seed(seed0, r) for r in range(replications)]
    runs: list[SweepRun] = []
    for point, combo in enumerate(itertools.product(*(f.levels for f in factors))):
        overrides: dict[str, Any] = {}
        for f, level in zip(factors, combo, strict=True):
            overrides.update(dict.fromkeys(concrete[f.path], level))
        what = ", ".join(f"{f.path}={lv}" for f, lv in zip(factors, combo, strict=True))
        problems += _check(base, overrides, what or "the scenario")
        levels = tuple((f.path, lv) for f, lv in zip(factors, combo, strict=True))
        for r, seed in enumerate(seeds):
            runs.append(SweepRun(len(runs), point, r, seed, levels,
                                 (*overrides.items(), ("seed", seed))))
    if problems:
        raise SweepError(problems)
    return SweepPlan(base, tuple(factors), replications, seed0, tuple(runs))
