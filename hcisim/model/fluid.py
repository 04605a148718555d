"""A fluid network: named resources with capacities, flows with per-resource coefficients.

A flow ``f`` at rate ``x_f`` uses ``a_fr * x_f`` of resource ``r``; resource ``r`` holds
``sum_f a_fr x_f <= c_r``. Rates are weighted max-min fair (progressive filling): every
unfrozen flow rises at its weight times a common pace until it reaches its demand or one of
its resources saturates. VM disks have weight 1; a heal flow counts as one flow per shard
in flight (shd threads are independent streams).
The result is recomputed only when :meth:`FlowNetwork.resolve` is called, i.e. when
something changed; nothing here knows about time.

The storage model adds VM disk and heal flows; the compute model may add migration flows on
the same NIC resources (``add_flow`` / ``remove_flow`` with its own names) and the next
``resolve`` shares the links between all of them.

Why it is incremental: the model re-adds every flow at every change, but between two
changes most flows keep their path and many their demand. The coefficient matrix is rebuilt
only when a flow's path or the set of flows changed, a demand or weight change only
writes one number, and a resolve with nothing changed reuses the last solution (same inputs, same
rates, so this is exact). Small problems (all of an availability year's) are solved by a
compiled twin of :func:`_fill_sparse` (:mod:`hcisim.model.fluid_kernel`: the same
operations in the same order, so the same rates bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hcisim.model.fluid_kernel import fill_csr

Array = npt.NDArray[np.float64]

# Relative slack when deciding that a resource is full or a flow has its demand.
_TOL = 1e-9


class SolverError(RuntimeError):
    """Progressive filling did not freeze every flow within its round bound (a bug: every
    round freezes at least one flow)."""


@dataclass
class Flow:
    demand: float
    usage: Mapping[str, float]  # resource -> coefficient per unit of rate (all > 0)
    weight: float = 1.0  # share relative to other flows when a resource is contended
    row: Array | None = None  # usage over the resources in order (kept between rebuilds)
    sparse: list[tuple[int, float]] | None = None  # (resource index, coefficient), the same
    cols: list[int] | None = None  # the resource indexes of ``sparse``, in its order
    pace: list[float] | None = None  # the coefficients of ``sparse`` times the weight


def max_min_fair(coef: Array, capacity: Array, demand: Array,
                 weight: Array | None = None) -> Array:
    """Weighted max-min fair rates for flows (rows of ``coef``) over resources (columns).

    Progressive filling: raise every active flow at ``weight`` times a common pace by the
    largest step that keeps every resource within capacity and no flow above its demand;
    freeze the flows that reach their demand or cross a saturated resource; repeat. Every
    round freezes at least one flow, so at most flows + 1 rounds, each vectorised: the cost
    does not depend on how large the rates are. With unit weights this is plain max-min
    fairness. Raises :class:`SolverError` if flows are still active after the bound.
    """
    w = np.ones(coef.shape[0]) if weight is None else weight.astype(float)
    return _fill(coef, coef > 0, coef * w[:, None], capacity.astype(float),
                 _TOL * np.maximum(capacity, 1.0), demand, w)


def _fill(coef: Array, uses: npt.NDArray[np.bool_], pace: Array, capacity: Array,
          full_at: Array, demand: Array, w: Array) -> Array:
    """:func:`max_min_fair` with what depends only on the paths (``uses``), the weights
    (``pace``: ``coef`` times each flow's weight) and the capacities (``full_at``) given,
    so that :class:`FlowNetwork` computes them once per path, weight or capacity change
    instead of at every solve. Same arithmetic, same rates."""
    n_flows = coef.shape[0]
    rate = np.zeros(n_flows)
    if n_flows == 0:
        return rate
    remaining = capacity.copy()
    active = (demand > 0) & (w > 0)
    met_at = _TOL * np.maximum(demand, 1.0)
    bound = n_flows + coef.shape[1] + 1
    room = np.empty(coef.shape[1])
    for _ in range(bound):
        if not active.any():
            break
        load = pace[active].sum(axis=0)
        loaded = load > 0
        room.fill(np.inf)
        np.divide(np.maximum(remaining, 0.0), load, out=room, where=loaded)
        step = min(float(room.min()) if room.size else np.inf,
                   float(((demand - rate) / w)[active].min()))
        rate[active] += step * w[active]
        remaining -= step * load
        full = loaded & (remaining <= full_at)
        frozen = demand - rate <= met_at
        if full.any():
            frozen |= uses[:, full].any(axis=1)
        active &= ~frozen
    else:
        if active.any():
            raise SolverError(f"max-min fairness: {int(active.sum())} of {n_flows} flows "
                              f"still growing after {bound} rounds")
    return np.minimum(rate, demand)


# Up to this many flows progressive filling runs on sparse Python lists: a flow crosses a
# handful of resources, so the rounds cost less than numpy's per-call overhead (a year of
# the default cluster has 11-15 flows, the 100-VM month 50-60: measured, the sparse rounds
# are still ~3 % of the month faster there than numpy's); above it, numpy's vectorised rounds
# win. Not with a single resource: numpy then sums the column as one contiguous run,
# pairwise, in another order than flow by flow (the cluster always has a dozen resources or
# more).
SPARSE_MAX_FLOWS = 80


def _fill_sparse(pace: list[list[tuple[int, float]]], uses: list[frozenset[int]],
                 capacity: list[float], full_at: list[float], demand: list[float],
                 w: list[float]) -> list[float]:
    """:func:`_fill` on sparse rows (``pace[i]``: (resource, coefficient x weight) of flow
    ``i``; ``uses[i]``: its resources), with the same arithmetic in the same order, hence
    the same rates, bit for bit: a resource's load adds the active flows' coefficients in
    flow order as numpy's column sum does (a zero adds nothing), and every other step is
    elementwise. :class:`FlowNetwork` solves with its compiled twin
    (:func:`hcisim.model.fluid_kernel.fill_csr`, statement for statement the same); this
    one is the readable reference the tests compare both with."""
    inf = math.inf
    n, m = len(demand), len(capacity)
    rate = [0.0] * n
    remaining = list(capacity)
    active = [i for i in range(n) if demand[i] > 0 and w[i] > 0]
    met_at = [_TOL * (d if d > 1.0 else 1.0) for d in demand]
    bound = n + m + 1
    # the resources an active flow crosses, in order: no other resource is ever loaded
    crossed = sorted(set().union(*[uses[i] for i in active]))
    for _ in range(bound):
        if not active:
            break
        # one pass over the active flows: their load, and the pace to the nearest demand
        load = [0.0] * m
        to_demand = inf
        for i in active:
            for j, a in pace[i]:
                load[j] += a
            x = (demand[i] - rate[i]) / w[i]
            if x < to_demand:
                to_demand = x
        room = inf
        loaded = []
        for j in crossed:
            x = load[j]
            if x > 0:
                loaded.append(j)
                r = remaining[j]
                r = (r if r > 0.0 else 0.0) / x
                if r < room:
                    room = r
        step = to_demand if to_demand < room else room  # min(room, to_demand)
        full = set()
        if step < inf:  # an unloaded resource keeps its room (minus step x 0: itself)
            for j in loaded:
                x = remaining[j] - step * load[j]
                remaining[j] = x
                if x <= full_at[j]:
                    full.add(j)
        else:
            for j in range(m):
                remaining[j] -= step * load[j]
                if load[j] > 0 and remaining[j] <= full_at[j]:
                    full.add(j)
        # and one more: raise them, keep those still below their demand and off full ones
        still = []
        for i in active:
            x = rate[i] + step * w[i]
            rate[i] = x
            if demand[i] - x > met_at[i] and (not full or full.isdisjoint(uses[i])):
                still.append(i)
        active = still
    else:
        if active:
            raise SolverError(f"max-min fairness: {len(active)} of {n} flows still growing "
                              f"after {bound} rounds")
    return [r if r <= d else d for r, d in zip(rate, demand, strict=True)]


class FlowNetwork:
    """Resources and flows by name; :meth:`resolve` gives max-min fair rates."""

    def __init__(self) -> None:
        self._capacity: dict[str, float] = {}
        self._flows: dict[str, Flow] = {}
        self._rates: dict[str, float] = {}
        self._used: dict[str, float] | None = {}
        self._solved: tuple[Array | list[float], Array | None, list[Flow], list[str]] = (
            [], None, [], [])
        self._flow_list: list[Flow] = []  # the flows in row order
        self._res_names: list[str] = []  # the resources in column order
        self.solver_calls = 0
        self.capacity_version = 0  # bumped when a capacity changes
        # the last solved problem: rebuilt when a path changed, patched when a demand did
        self._structure_dirty = True  # flows added, removed or re-routed, a capacity changed
        self._resources_dirty = True  # a resource added or a capacity changed
        self._dirty = True  # anything at all changed since the last solve
        self._names: list[str] = []
        self._pos: dict[str, int] = {}
        self._index: dict[str, int] = {}  # resource -> column
        self._coef: Array | None = np.zeros((0, 0))  # None: sparse (built when asked)
        self._demand: Array = np.zeros(0)
        self._weight: Array = np.zeros(0)
        self._cap: Array = np.zeros(0)
        # what the solver derives from paths, weights and capacities, kept until they change
        self._uses: npt.NDArray[np.bool_] = np.zeros((0, 0), dtype=bool)
        self._full_at: Array = np.zeros(0)
        self._pace: Array = np.zeros((0, 0))
        self._pace_dirty = True
        # the same as compressed sparse rows for small problems (fluid_kernel.fill_csr):
        # flow i's paced row is _csr_idx / _csr_val[_csr_ptr[i]:_csr_ptr[i + 1]]; every
        # flow keeps its sparse row and paced row between rebuilds
        self._csr_ptr: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._csr_idx: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._csr_val: Array = np.zeros(0)
        self._small = False  # solved by fill_csr
        self._rows_for = 0  # number of resources the flows' cached rows were built for
        # the dense matrix of a sparse problem's flows, built when resource use is first
        # asked and kept until the next rebuild (re-weighting or a new demand keeps it)
        self._dense: tuple[list[Flow], Array] | None = None

    # --- resources --------------------------------------------------------------------
    def add_resource(self, name: str, capacity: float) -> None:
        self._capacity[name] = float(capacity)
        self._structure_dirty = self._resources_dirty = self._dirty = True

    def set_capacity(self, name: str, capacity: float) -> None:
        if name not in self._capacity:
            raise KeyError(name)
        if self._capacity[name] != float(capacity):
            self._capacity[name] = float(capacity)
            self._structure_dirty = self._resources_dirty = self._dirty = True
            self.capacity_version += 1

    def capacity(self, name: str) -> float:
        return self._capacity[name]

    # --- flows ------------------------------------------------------------------------
    def add_flow(self, name: str, demand: float, usage: Mapping[str, float],
                 weight: float = 1.0) -> None:
        """Add or replace flow ``name``; ``usage`` maps resources to coefficients;
        ``weight`` is its share of a contended resource relative to weight-1 flows.
        ``usage`` is kept, not copied: callers share one mapping per path and must not
        change it afterwards."""
        demand, weight = float(demand), float(weight)
        old = self._flows.get(name)
        if old is not None and (old.usage is usage or old.usage == usage):
            if old.demand != demand:
                old.demand = demand
                self._dirty = True
                if not self._structure_dirty:
                    self._demand[self._pos[name]] = demand
            if old.weight != weight:
                old.weight = weight
                old.pace = None
                self._dirty = True
                if self._structure_dirty:
                    return
                i = self._pos[name]
                self._weight[i] = weight
                if self._small:  # one sparse row to re-weight (a heal's thread count)
                    ptr = self._csr_ptr
                    self._csr_val[ptr[i]:ptr[i + 1]] = self._paced(old)
                else:
                    self._pace_dirty = True
            return
        for r in usage:
            if r not in self._capacity:
                raise KeyError(f"flow {name}: unknown resource {r!r}")
        if any(a <= 0 for a in usage.values()):
            usage = {r: float(a) for r, a in usage.items() if a > 0}
        self._flows[name] = Flow(demand, usage, weight)
        self._structure_dirty = self._dirty = True

    def remove_flow(self, name: str) -> None:
        if self._flows.pop(name, None) is not None:
            self._structure_dirty = self._dirty = True
        self._rates.pop(name, None)

    # --- solution ---------------------------------------------------------------------
    def _rebuild(self) -> None:
        """The problem in row order after flows were added, removed or re-routed or a
        capacity changed. Small problems (:data:`SPARSE_MAX_FLOWS`) are kept in plain lists
        of the rows each flow keeps between rebuilds: a rebuild then costs a few list
        copies, not numpy arrays (an availability year has ~300 rebuilds)."""
        if self._resources_dirty:
            res = list(self._capacity)
            if self._rows_for != len(res):  # resources were added: every row is stale
                for f in self._flows.values():
                    f.row = f.sparse = f.pace = f.cols = None
                self._rows_for = len(res)
            self._index = {r: j for j, r in enumerate(res)}
            self._res_names = res
            self._cap = np.array([self._capacity[r] for r in res], dtype=float)
            self._full_at = _TOL * np.maximum(self._cap, 1.0)
            self._resources_dirty = False
        names = list(self._flows)
        flows = list(self._flows.values())
        self._names, self._pos = names, {n: i for i, n in enumerate(names)}
        self._small = len(names) <= SPARSE_MAX_FLOWS and len(self._res_names) >= 2
        if self._small:  # the dense matrix only if resource use is asked (_resource_use)
            # two arrays, not five (numpy's constructors cost more than the copies): the
            # floats are the demands, the weights and the paced rows, the integers the row
            # pointers and the rows' columns; the solver and the patches use views of them
            n = len(flows)
            paced = self._paced
            floats = [f.demand for f in flows]
            floats += [f.weight for f in flows]
            ints = [0]
            at = 0
            cols: list[int] = []
            for f in flows:
                floats += f.pace if f.pace is not None else paced(f)
                assert f.cols is not None  # set with the pace
                cols += f.cols
                at += len(f.cols)
                ints.append(at)
            ints += cols
            fa = np.array(floats, dtype=float)
            ia = np.array(ints, dtype=np.int64)
            self._demand, self._weight, self._csr_val = fa[:n], fa[n:2 * n], fa[2 * n:]
            self._csr_ptr, self._csr_idx = ia[:n + 1], ia[n + 1:]
            self._coef = None
        else:
            self._demand = np.array([f.demand for f in flows], dtype=float)
            self._weight = np.array([f.weight for f in flows], dtype=float)
            self._coef = self._matrix(flows, self._index)
            self._uses = self._coef > 0
            self._pace_dirty = True
        self._flow_list = flows
        self._structure_dirty = False

    def _paced(self, f: Flow) -> list[float]:
        """``f``'s sparse row's coefficients times its weight (kept on the flow until its
        weight or path changes): the same products the dense ``coef * weight`` holds."""
        if f.sparse is None:
            index = self._index
            f.sparse = [(index[r], a) for r, a in f.usage.items()]
            f.cols = [j for j, _ in f.sparse]
        w = f.weight
        f.pace = [a * w for _, a in f.sparse]
        return f.pace

    @staticmethod
    def _matrix(flows: list[Flow], index: dict[str, int]) -> Array:
        """The coefficient matrix: a row per flow (kept on the flow between rebuilds)."""
        rows = []
        for f in flows:
            if f.row is None:
                f.row = np.zeros(len(index))
                for r, a in f.usage.items():
                    f.row[index[r]] = a
            rows.append(f.row)
        return np.array(rows) if rows else np.zeros((0, len(index)))

    def resolve(self) -> dict[str, float]:
        """Recompute every flow's rate (max-min fair) and every resource's use; with nothing
        changed since the last call, the last solution stands (no solver call)."""
        if self._dirty:
            if self._structure_dirty:
                self._rebuild()
            self.solver_calls += 1
            if self._small:
                solved, finished = fill_csr(self._csr_ptr, self._csr_idx, self._csr_val,
                                            self._cap, self._full_at, self._demand,
                                            self._weight)
                if not finished:
                    raise SolverError(f"max-min fairness: flows still growing after "
                                      f"{len(self._names) + len(self._res_names) + 1} rounds")
                rates = solved.tolist()
                rate: Array | list[float] = rates
            else:
                assert self._coef is not None
                if self._pace_dirty:
                    self._pace = self._coef * self._weight[:, None]
                    self._pace_dirty = False
                rate = _fill(self._coef, self._uses, self._pace, self._cap, self._full_at,
                             self._demand, self._weight)
                rates = rate.tolist()
            self._rates = dict(zip(self._names, rates, strict=True))
            # resource use only when asked (latency; not at the intervals record level)
            self._used = None
            self._solved = (rate, self._coef, self._flow_list, self._res_names)
            self._dirty = False
        return dict(self._rates)

    def _resource_use(self) -> dict[str, float]:
        """Use of every resource by the last solution (computed once per solution)."""
        if self._used is None:
            rate, coef, flows, res = self._solved
            if coef is None:  # a sparse solve: the matrix of the flows it solved
                if self._dense is None or self._dense[0] is not flows:
                    self._dense = (flows, self._matrix(flows, {r: j for j, r in enumerate(res)}))
                coef = self._dense[1]
            used = (np.asarray(rate, dtype=float) @ coef if len(rate)
                    else np.zeros(len(res)))
            self._used = dict(zip(res, used.tolist(), strict=True))
        return self._used

    def rate(self, name: str) -> float:
        return self._rates.get(name, 0.0)

    @property
    def rates(self) -> Mapping[str, float]:
        """Every flow's rate from the last resolve, by flow name (a flow without one has
        none: :meth:`rate` says 0). For loops over many flows; read it, do not keep it
        across a resolve."""
        return self._rates

    def utilisations(self) -> dict[str, float]:
        """:meth:`utilisation` of every resource (one dict, for callers that need many)."""
        used = self._resource_use()
        return {r: (min(1.0, used.get(r, 0.0) / cap) if cap > 0
                    else 1.0 if used.get(r, 0.0) > 0 else 0.0)
                for r, cap in self._capacity.items()}

    def utilisation(self, resource: str) -> float:
        """Used share of the resource's capacity (1.0 when a zero-capacity link is in use)."""
        cap = self._capacity[resource]
        u = self._resource_use().get(resource, 0.0)
        if cap <= 0:
            return 1.0 if u > 0 else 0.0
        return min(1.0, u / cap)
