"""Observations: the tables of one run, with a cheap row recorder and Parquet storage."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from hcisim.observations.schema import (
    COLUMNS,
    FAULT_COLUMNS,
    FAULT_EVENTS,
    VOCABULARY,
    EventKind,
    EventSource,
    VmIoStatus,
    VmState,
)
from hcisim.scenario.faults import Fault

# a table column given whole (Recorder.add_columns): values, or a pandas array of the
# column's dtype
Column = Sequence[Any] | pd.api.extensions.ExtensionArray


class SchemaError(ValueError):
    """A table that does not follow the observation schema."""


_EMPTY: dict[str, pd.DataFrame] = {}


def empty_table(name: str) -> pd.DataFrame:
    """A table with the schema's columns and no rows (built once per table, then copied:
    building typed empty Series costs more than a simulated day of the model)."""
    proto = _EMPTY.get(name)
    if proto is None:
        proto = _EMPTY[name] = pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in COLUMNS[name].items()})
    return proto.copy()


def _typed(name: str, rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows (values in the schema's column order) as a table with the schema's dtypes."""
    _check_width(name, rows)
    return _typed_columns(name, list(zip(*rows, strict=True)))


def _check_width(name: str, rows: list[tuple[Any, ...]]) -> None:
    cols = COLUMNS[name]
    if set(map(len, rows)) - {len(cols)}:
        raise SchemaError(f"table {name}: a row does not have the {len(cols)} columns "
                          f"{', '.join(cols)}")


def _typed_columns(name: str, columns: list[Column]) -> pd.DataFrame:
    """Columns (in the schema's order) as a table with the schema's dtypes, built column
    by column: the same values ``astype`` would give, without first building an object
    frame. A column that is a pandas array of its dtype already is taken as it is."""
    data: dict[str, Any] = {}
    try:
        for (c, dtype), values in zip(COLUMNS[name].items(), columns, strict=True):
            if isinstance(values, pd.api.extensions.ExtensionArray):
                if values.dtype != _dtype(dtype):
                    raise TypeError(f"column {c} is {values.dtype}, not {dtype}")
                data[c] = values
            else:
                data[c] = (pd.array(list(values), dtype=pd.StringDtype())
                           if dtype == "string" else np.array(values, dtype=dtype))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"table {name}: {exc}") from None
    return pd.DataFrame(data, copy=False)


@functools.cache
def _dtype(name: str) -> Any:
    """The pandas dtype a schema names (``string``: the default string storage)."""
    return pandas_dtype(name)


def _conforms(df: pd.DataFrame, cols: dict[str, str]) -> bool:
    """Exactly the schema's columns, in order, with its dtypes, on a default index."""
    return (list(df.columns) == list(cols)
            and all(dt == _dtype(t) for dt, t in zip(df.dtypes, cols.values(), strict=True))
            and isinstance(df.index, pd.RangeIndex) and df.index.start == 0
            and df.index.step == 1)


def _with_fault_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Events saved before faults had their own columns: the kind was the detail's first
    word (``nic_loss (storage)``); the other fault columns stay empty."""
    df = df.copy()
    faults = df["kind"].isin(list(FAULT_EVENTS)) if "kind" in df else pd.Series(dtype=bool)
    for col in FAULT_COLUMNS:
        df[col] = ""
    if "detail" in df and len(faults):
        df.loc[faults, "fault_kind"] = df.loc[faults, "detail"].astype(str).str.split(" ").str[0]
    return df


def conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with exactly the schema's columns and dtypes, or SchemaError naming the gap."""
    cols = COLUMNS[name]
    names = list(df.columns)
    if name == "events" and not any(c in names for c in FAULT_COLUMNS):
        df = _with_fault_columns(df)
        names = list(df.columns)
    have = set(names)
    missing = [c for c in cols if c not in have]
    extra = [c for c in names if c not in cols]
    if missing or extra:
        raise SchemaError(f"table {name}: missing columns {missing}, unknown columns {extra}")
    if df.empty:
        return empty_table(name)
    if _conforms(df, cols):
        return df
    try:
        return df[list(cols)].astype(cols).reset_index(drop=True)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"table {name}: {exc}") from None


@dataclass
class Observations:
    """What one run (model or lab) saw. ``engine`` is ``model`` or ``lab:<backend>``."""

    engine: str
    scenario: str
    seed: int
    duration_s: float
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in COLUMNS:
            df = self.tables.get(name)
            self.tables[name] = empty_table(name) if df is None else conform(name, df)
        unknown = set(self.tables) - set(COLUMNS)
        if unknown:
            raise SchemaError(f"unknown tables {sorted(unknown)}")

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def save(self, out: Path) -> None:
        """Write ``out/observations/<table>.parquet`` and ``out/observations/meta.json``."""
        d = out / "observations"
        d.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df.to_parquet(d / f"{name}.parquet", index=False)
        head = {"engine": self.engine, "scenario": self.scenario, "seed": self.seed,
                "duration_s": self.duration_s, "meta": self.meta}
        (d / "meta.json").write_text(json.dumps(head, indent=2, default=str))

    @classmethod
    def load(cls, out: Path) -> Observations:
        d = out / "observations"
        try:
            head = json.loads((d / "meta.json").read_text())
        except OSError as exc:
            raise SchemaError(f"{d}: no observations here ({exc.strerror})") from None
        tables = {name: pd.read_parquet(d / f"{name}.parquet")
                  for name in COLUMNS if (d / f"{name}.parquet").exists()}
        return cls(engine=head["engine"], scenario=head["scenario"], seed=int(head["seed"]),
                   duration_s=float(head["duration_s"]), tables=tables, meta=head.get("meta", {}))


class VocabularyError(SchemaError):
    """A row with a value outside the observation vocabulary (an unknown event kind, VM
    state, I/O status, fault kind...)."""


def _check(table: str, column: str, value: str) -> None:
    allowed = VOCABULARY[(table, column)]
    if value not in allowed:
        raise VocabularyError(f"{table}.{column}: {value!r} is not one of "
                              f"{', '.join(sorted(v for v in allowed if v))}")


class Recorder:
    """Collects rows as plain tuples and builds Observations.

    The typed constructors (:meth:`event`, :meth:`fault_event`, :meth:`vm_io`,
    :meth:`vm_state`, ...) check enumerated values when the row is recorded and raise
    :class:`VocabularyError`. :meth:`add` is the fast path for hot loops (the model's
    recording): values in the schema's column order, unchecked until :meth:`build`, which
    checks every row against the vocabulary in one pass.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}
        # rows given column by column (add_columns): per table, (rows added before, columns)
        self._blocks: dict[str, list[tuple[int, list[Column]]]] = {}

    def add(self, table: str, *row: Any) -> None:
        """Append one row, values in the schema's column order (checked at build)."""
        self._rows[table].append(row)

    def add_columns(self, table: str, columns: Sequence[Column]) -> None:
        """Append rows given column by column (in the schema's column order, all of one
        length), after the rows so far; checked at build like :meth:`add`'s. For a
        recorder that holds its rows as columns already (the model's vm_io, tens of
        thousands of rows a month): no tuple per row."""
        cols = COLUMNS[table]
        if len(columns) != len(cols) or len({len(c) for c in columns}) > 1:
            raise SchemaError(f"table {table}: columns of unequal length, or not the "
                              f"{len(cols)} columns {', '.join(cols)}")
        if len(columns[0]):
            self._blocks.setdefault(table, []).append((len(self._rows[table]),
                                                       list(columns)))

    def count(self, table: str) -> int:
        return len(self._rows[table]) + sum(len(c[0]) for _, c in self._blocks.get(table, ()))

    # --- typed rows ----------------------------------------------------------------------
    def event(self, t_s: float, kind: EventKind, target: str, detail: str = "",
              source: EventSource = "engine") -> None:
        """One event. For a fault prefer :meth:`fault_event`, which fills every fault
        column; here a fault_start/fault_end must name its fault kind as ``detail``'s first
        word, and only ``fault_kind`` is filled."""
        _check("events", "kind", kind)
        _check("events", "source", source)
        fault_kind = ""
        if kind in FAULT_EVENTS:
            fault_kind = detail.split(" ", 1)[0]
            _check("events", "fault_kind", fault_kind)
        self._rows["events"].append((t_s, kind, target, detail, source, fault_kind, "", "",
                                     ""))

    def fault_event(self, t_s: float, start: bool, fault: Fault, detail: str = "",
                    source: EventSource = "scenario") -> None:
        """``fault_start`` (``start``) or ``fault_end`` of ``fault``, with its kind, the
        networks it cuts or slows, its volume and peers in their own columns."""
        _check("events", "source", source)
        volume = getattr(fault, "volume", None) or ""
        peers = ",".join(getattr(fault, "peers", None) or ())
        network = ",".join(fault.networks) if fault.traits.cuts != "host" else ""
        self._rows["events"].append((t_s, "fault_start" if start else "fault_end",
                                     fault.target, detail, source, fault.kind, network,
                                     volume, peers))

    def vm_io(self, vm: str, volume: str, t_start_s: float, t_end_s: float,
              demand_mb_s: float, read_mb_s: float, write_mb_s: float, read_iops: float,
              write_iops: float, latency_ms: float, latency_p99_ms: float,
              status: VmIoStatus) -> None:
        _check("vm_io", "status", status)
        self._rows["vm_io"].append((vm, volume, t_start_s, t_end_s, demand_mb_s, read_mb_s,
                                    write_mb_s, read_iops, write_iops, latency_ms,
                                    latency_p99_ms, status))

    def vm_state(self, vm: str, host: str, t_start_s: float, t_end_s: float, state: VmState,
                 reason: str = "") -> None:
        _check("vm_state", "state", state)
        self._rows["vm_state"].append((vm, host, t_start_s, t_end_s, state, reason))

    def volume_state(self, t_s: float, volume: str, brick: str, role: str, up: bool,
                     pending_heal_bytes: float, quorum: bool) -> None:
        _check("volume_state", "role", role)
        self._rows["volume_state"].append((t_s, volume, brick, role, up, pending_heal_bytes,
                                           quorum))

    def write(self, vm: str, volume: str, t_start_s: float, t_end_s: float,
              acked_bytes: float, copies: int, quorum: bool, lost_bytes: float) -> None:
        self._rows["writes"].append((vm, volume, t_start_s, t_end_s, acked_bytes, copies,
                                     quorum, lost_bytes))

    def heal(self, volume: str, brick: str, t_start_s: float, t_end_s: float, bytes_: float,
             shards: int) -> None:
        self._rows["heal"].append((volume, brick, t_start_s, t_end_s, bytes_, shards))

    def exposure(self, volume: str, t_start_s: float, t_end_s: float, good_copies: int,
                 unavailable_bytes: float) -> None:
        self._rows["exposure"].append((volume, t_start_s, t_end_s, good_copies,
                                       unavailable_bytes))

    # --- build ---------------------------------------------------------------------------
    def frame(self, table: str) -> pd.DataFrame:
        rows, blocks = self._rows[table], self._blocks.get(table)
        if blocks:
            df = _typed_columns(table, self._columns(table, rows, blocks))
        elif not rows:
            return empty_table(table)
        else:
            df = _typed(table, rows)
        if table == "events":
            df = df.sort_values("t_s", kind="stable", ignore_index=True)
        return df

    @staticmethod
    def _columns(table: str, rows: list[tuple[Any, ...]],
                 blocks: list[tuple[int, list[Column]]]) -> list[Column]:
        """A table's rows and column blocks as columns, in the order they were added."""
        _check_width(table, rows)
        if not rows and len(blocks) == 1:
            return blocks[0][1]
        out: list[list[Any]] = [[] for _ in COLUMNS[table]]
        done = 0
        for at, block in [*blocks, (len(rows), [])]:
            if at > done:
                for o, c in zip(out, zip(*rows[done:at], strict=True), strict=True):
                    o.extend(c)
                done = at
            for o, col in zip(out, block, strict=False):
                o.extend(col)
        return list(out)

    def build(self, engine: str, scenario: str, seed: int, duration_s: float,
              meta: dict[str, Any] | None = None) -> Observations:
        """The tables as Observations; VocabularyError if a row (from :meth:`add`) holds a
        value outside the vocabulary (the rows are checked as recorded; the tables only if
        that finds something, to name it)."""
        from hcisim.observations.vocabulary import (
            check_vocabulary,
            columns_conform,
            rows_conform,
        )

        obs = Observations(engine=engine, scenario=scenario, seed=seed, duration_s=duration_s,
                           tables={t: self.frame(t) for t in COLUMNS}, meta=meta or {})
        if not (rows_conform(self._rows)
                and all(columns_conform(t, c) for t, bl in self._blocks.items() for _, c in bl)):
            check_vocabulary(obs)
        return obs
