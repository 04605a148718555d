"""The Markov oracle: one replica set whose bricks fail and are repaired independently with
exponential times, solved exactly as a continuous-time Markov chain.

State = which of the three bricks are up (8 states). From a state, each up brick fails at
rate ``failure_rate`` and each down brick is repaired at rate ``repair_rate``. The
stationary distribution ``pi`` solves ``pi Q = 0``, ``sum(pi) = 1``. Client quorum (``auto``
on three bricks) needs at least two bricks up; for ``arbiter`` the third brick holds no data,
so copies count data bricks only. This is the check on the Monte Carlo study: with brick
crashes only (detected at once, nothing to heal without VM writes), the model's quorum-loss
and fewer-copies times must agree with this chain within their confidence intervals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from hcisim.availability.table import YEAR_S

BRICKS = 3


@dataclass(frozen=True)
class ChainResult:
    """Long-run fractions of time, and how often quorum is lost (per year)."""

    unavailable: float  # no client quorum
    fewer_copies: float  # fewer data copies up than the layout promises
    one_copy: float  # exactly one data copy up
    quorum_losses_per_year: float


def states() -> list[tuple[bool, ...]]:
    return list(itertools.product((True, False), repeat=BRICKS))


def generator(failure_rate: float, repair_rate: float) -> np.ndarray:
    """The CTMC generator Q over :func:`states` (rows sum to 0)."""
    ss = states()
    index = {s: i for i, s in enumerate(ss)}
    q = np.zeros((len(ss), len(ss)))
    for s in ss:
        for b in range(BRICKS):
            t = tuple(not u if i == b else u for i, u in enumerate(s))
            q[index[s], index[t]] += failure_rate if s[b] else repair_rate
    np.fill_diagonal(q, -q.sum(axis=1))
    return q


def stationary(q: np.ndarray) -> np.ndarray:
    """``pi`` with ``pi Q = 0`` and ``sum(pi) = 1`` (one balance equation replaced by the
    normalisation, then an exact solve)."""
    a = q.T.copy()
    a[-1, :] = 1.0
    rhs = np.zeros(len(q))
    rhs[-1] = 1.0
    return np.asarray(np.linalg.solve(a, rhs))


def replica_set(failures_per_year: float, mean_repair_s: float,
                layout: str = "replica3") -> ChainResult:
    """The exact long-run answer for one replica set (rates per brick)."""
    lam = failures_per_year / YEAR_S
    mu = 1.0 / mean_repair_s
    q = generator(lam, mu)
    pi = stationary(q)
    ss = states()
    data = 3 if layout == "replica3" else 2
    quorum = np.array([sum(s) >= 2 for s in ss])
    copies = np.array([sum(s[:data]) for s in ss])
    # frequency of entering the no-quorum set: flow from quorum states into it
    flow = sum(pi[i] * q[i, j] for i in range(len(ss)) for j in range(len(ss))
               if quorum[i] and not quorum[j])
    return ChainResult(
        unavailable=float(pi[~quorum].sum()),
        fewer_copies=float(pi[copies < data].sum()),
        one_copy=float(pi[copies == 1].sum()),
        quorum_losses_per_year=float(flow * YEAR_S),
    )
