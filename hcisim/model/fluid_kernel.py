"""Progressive filling on compressed sparse rows, compiled (numba): the solver's hot loop.

Why compiled: an availability year solves ~760 max-min problems of ~13 flows over ~15
resources, each 4-5 rounds of progressive filling; in Python lists that is ~27 us a solve
(~13 % of a year), compiled ~3 us, the call included (measured on the 8,324 solves of ten
drawn years and the benchmark month, each giving the same rates bit for bit).

Why the rates stay the same, bit for bit: :func:`fill_csr` is
:func:`hcisim.model.fluid._fill_sparse` (itself :func:`hcisim.model.fluid._fill` on sparse
rows) with the same IEEE-754 double operations in the same order: a resource's load adds
the active flows' coefficients in flow order, every other step is elementwise, and numba
compiles without ``fastmath`` (no reassociation, no fused multiply-add, no reciprocal
division), so every sum, product, quotient and comparison is the one Python would compute.
``tests/model/test_fluid.py`` compares the three solvers bit for bit.

The problem (a :class:`~hcisim.model.fluid.FlowNetwork` keeps it between solves): flow
``i``'s paced row (coefficient times weight) is ``idx[ptr[i]:ptr[i + 1]]`` (resource
columns, in the order of the flow's usage mapping) and ``val[ptr[i]:ptr[i + 1]]``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# Relative slack when deciding that a resource is full or a flow has its demand (the same
# as hcisim.model.fluid._TOL, kept here so that this module imports nothing of hcisim)
_TOL = 1e-9


@njit(cache=True)
def fill_csr(ptr: Ints, idx: Ints, val: Floats, capacity: Floats, full_at: Floats,
             demand: Floats, w: Floats) -> tuple[Floats, bool]:  # pragma: no cover (compiled)
    """Weighted max-min fair rates of the flows (progressive filling), and whether every
    flow froze within the round bound (``False``: the caller raises ``SolverError``).
    The statements mirror :func:`hcisim.model.fluid._fill_sparse` one for one."""
    n = demand.shape[0]
    m = capacity.shape[0]
    inf = math.inf
    rate = np.zeros(n)
    remaining = capacity.copy()
    active = np.empty(n, np.int64)  # the active flows, in flow order, first ``na`` of it
    na = 0
    for i in range(n):
        if demand[i] > 0 and w[i] > 0:
            active[na] = i
            na += 1
    met_at = np.empty(n)
    for i in range(n):
        d = demand[i]
        met_at[i] = _TOL * (d if d > 1.0 else 1.0)
    bound = n + m + 1
    # the resources an active flow crosses, in order: no other resource is ever loaded
    crossing = np.zeros(m, np.bool_)
    for k in range(na):
        i = active[k]
        for e in range(ptr[i], ptr[i + 1]):
            crossing[idx[e]] = True
    crossed = np.empty(m, np.int64)
    nc = 0
    for j in range(m):
        if crossing[j]:
            crossed[nc] = j
            nc += 1
    load = np.zeros(m)
    loaded = np.empty(m, np.int64)
    full = np.zeros(m, np.bool_)
    for _ in range(bound):
        if na == 0:
            break
        # one pass over the active flows: their load, and the pace to the nearest demand
        for j in range(m):
            load[j] = 0.0
        to_demand = inf
        for k in range(na):
            i = active[k]
            for e in range(ptr[i], ptr[i + 1]):
                load[idx[e]] += val[e]
            x = (demand[i] - rate[i]) / w[i]
            if x < to_demand:
                to_demand = x
        room = inf
        nl = 0
        for c in range(nc):
            j = crossed[c]
            x = load[j]
            if x > 0:
                loaded[nl] = j
                nl += 1
                r = remaining[j]
                r = (r if r > 0.0 else 0.0) / x
                if r < room:
                    room = r
        step = to_demand if to_demand < room else room  # min(room, to_demand)
        any_full = False
        for j in range(m):
            full[j] = False
        if step < inf:  # an unloaded resource keeps its room (minus step x 0: itself)
            for c in range(nl):
                j = loaded[c]
                x = remaining[j] - step * load[j]
                remaining[j] = x
                if x <= full_at[j]:
                    full[j] = True
                    any_full = True
        else:
            for j in range(m):
                remaining[j] -= step * load[j]
                if load[j] > 0 and remaining[j] <= full_at[j]:
                    full[j] = True
                    any_full = True
        # and one more: raise them, keep those still below their demand and off full ones
        still = 0
        for k in range(na):
            i = active[k]
            x = rate[i] + step * w[i]
            rate[i] = x
            if demand[i] - x > met_at[i]:
                keep = True
                if any_full:
                    for e in range(ptr[i], ptr[i + 1]):
                        if full[idx[e]]:
                            keep = False
                            break
                if keep:
                    active[still] = i
                    still += 1
        na = still
    for i in range(n):
        if not rate[i] <= demand[i]:  # r if r <= d else d (NaN included)
            rate[i] = demand[i]
    return rate, na == 0
