"""How fast the self-heal daemons heal, as plain formulas: one implementation for everyone
who needs the heal rate. The model's heal flows (:mod:`hcisim.model.selfheal`), the
calibration fit (:mod:`hcisim.calibration.fit`, on numpy arrays of many candidate values at
once) and the capacity planner's heal estimate (:mod:`hcisim.capacity.storage`) all call
these, so a planner's heal time is the model's for the same threads, cores and profile.

This module imports nothing of the model's machinery (only numpy's types), so the planner
can use it without building a cluster.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
HEAL_BLOCK = 128 * 1024  # AFR's full self-heal copies an entry in 128 KiB reads/writes


@overload
def heal_thread_mb_s(entry_bytes: float, thread_mb_s: float, entry_s: float) -> float: ...


@overload
def heal_thread_mb_s(entry_bytes: float, thread_mb_s: float,
                     entry_s: FloatArray) -> FloatArray: ...


def heal_thread_mb_s(entry_bytes: float, thread_mb_s: float,
                     entry_s: float | FloatArray) -> float | FloatArray:
    """One heal thread's mean rate on entries of ``entry_bytes``: ``thread_mb_s`` inside an
    entry, less the fixed ``entry_s`` per entry (lookup, locks, xattrs, fsync), so small
    shards heal slower per byte than large ones. No entry cost: ``thread_mb_s`` exactly.

    On a float, or on a numpy array of entry costs (the fit's grid, 0 among them): the
    same expression either way, so the fit's drains are the model's to the last bit."""
    grid = isinstance(entry_s, np.ndarray)
    if not grid and entry_s <= 0:
        return thread_mb_s
    mb = entry_bytes / 1e6
    rate = mb / (mb / thread_mb_s + entry_s)
    return np.where(entry_s > 0, rate, thread_mb_s) if grid else rate


@overload
def heal_cpu_mb_s(cores: float, core_mb_s: float, in_flight: float,
                  concurrency: float) -> float: ...


@overload
def heal_cpu_mb_s(cores: float | FloatArray, core_mb_s: float | FloatArray,
                  in_flight: FloatArray, concurrency: float | FloatArray) -> FloatArray: ...


@overload
def heal_cpu_mb_s(cores: float | FloatArray, core_mb_s: float | FloatArray,
                  in_flight: float | FloatArray, concurrency: FloatArray) -> FloatArray: ...


def heal_cpu_mb_s(cores: float | FloatArray, core_mb_s: float | FloatArray,
                  in_flight: float | FloatArray,
                  concurrency: float | FloatArray) -> float | NDArray[np.floating[Any]]:
    """What the healing daemons' cores heal per second with ``in_flight`` entries at once:
    ``heal_core_mb_s`` per core, less with each entry in flight per core beyond one
    (``heal_concurrency``): the daemons' threads, the brick processes and the FUSE clients
    contend for the cores, and more entries at once heal slower in all (calibration: 16
    entries in flight on the two-core lab take 1.2-1.5 s each, 2 take 0.02-0.06 s).

    Plain arithmetic on floats or numpy arrays (broadcast), so that the fit
    (:mod:`hcisim.calibration.fit`) evaluates the same formula on grids of candidate values;
    the overloads say which: all floats give a float, an array in flight or concurrency an
    array."""
    over = in_flight / cores - 1.0
    beyond = over * (over > 0)  # entries in flight per core beyond one, none below
    return cores * core_mb_s / (1.0 + concurrency * beyond)
