"""Observations: the tables of one run, with a cheap row recorder and Parquet storage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hcisim.observations.schema import COLUMNS


class SchemaError(ValueError):
    """A table that does not follow the observation schema."""


def empty_table(name: str) -> pd.DataFrame:
    cols = COLUMNS[name]
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


def conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with exactly the schema's columns and dtypes, or SchemaError naming the gap."""
    cols = COLUMNS[name]
    missing = [c for c in cols if c not in df.columns]
    extra = [c for c in df.columns if c not in cols]
    if missing or extra:
        raise SchemaError(f"table {name}: missing columns {missing}, unknown columns {extra}")
    if df.empty:
        return empty_table(name)
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
            self.tables[name] = conform(name, self.tables.get(name, empty_table(name)))
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


class Recorder:
    """Collects rows as plain lists (cheap to append in hot paths) and builds Observations."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}

    def add(self, table: str, *row: Any) -> None:
        """Append one row, values in the schema's column order."""
        self._rows[table].append(row)

    def count(self, table: str) -> int:
        return len(self._rows[table])

    def event(self, t_s: float, kind: str, target: str, detail: str = "",
              source: str = "engine") -> None:
        self.add("events", t_s, kind, target, detail, source)

    def frame(self, table: str) -> pd.DataFrame:
        cols = list(COLUMNS[table])
        rows = self._rows[table]
        df = pd.DataFrame.from_records(rows, columns=cols) if rows else empty_table(table)
        if table == "events" and not df.empty:
            df = df.sort_values("t_s", kind="stable")
        return df

    def build(self, engine: str, scenario: str, seed: int, duration_s: float,
              meta: dict[str, Any] | None = None) -> Observations:
        return Observations(engine=engine, scenario=scenario, seed=seed, duration_s=duration_s,
                            tables={t: self.frame(t) for t in COLUMNS}, meta=meta or {})
