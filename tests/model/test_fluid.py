"""Max-min fairness of the fluid network: an exact oracle, and small worked examples."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hcisim.model.fluid import (
    SPARSE_MAX_FLOWS,
    FlowNetwork,
    SolverError,
    _fill_sparse,
    max_min_fair,
)
from hcisim.model.fluid_kernel import fill_csr

TOL = 1e-6


@st.composite
def networks(draw: st.DrawFn, min_flows: int = 1,
             max_flows: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_flows = draw(st.integers(min_flows, max_flows))
    n_res = draw(st.integers(1, 5))
    coef = draw(arrays(float, (n_flows, n_res), elements=st.sampled_from(
        [0.0, 0.0, 0.5, 1.0, 2.0, 0.001, 3.7])))
    cap = draw(arrays(float, n_res, elements=st.floats(0.0, 100.0)))
    demand = draw(arrays(float, n_flows, elements=st.floats(0.0, 200.0)))
    weight = draw(arrays(float, n_flows, elements=st.sampled_from([1.0, 1.0, 2.0, 8.0, 0.5])))
    return coef, cap, demand, weight


@settings(max_examples=150, deadline=None)
@given(networks())
def test_max_min_fair_oracle(
        net: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Feasible, within demand, and every flow short of its demand has a bottleneck: a full
    resource it uses on which no other flow gets more per unit of weight (the definition of
    weighted max-min fairness: no flow can grow without shrinking one with a smaller or
    equal weighted rate)."""
    coef, cap, demand, w = net
    x = max_min_fair(coef, cap, demand, w)
    y = x / w
    used = x @ coef
    assert np.all(x >= -TOL)
    assert np.all(x <= demand + TOL)
    assert np.all(used <= cap + TOL * np.maximum(cap, 1))
    for f in range(len(x)):
        if x[f] >= demand[f] - TOL * max(demand[f], 1):
            continue
        full = [r for r in range(len(cap)) if coef[f, r] > 0
                and used[r] >= cap[r] - TOL * max(cap[r], 1)]
        assert any(all(y[g] <= y[f] + TOL * max(y[f], 1) for g in range(len(x))
                       if coef[g, r] > 0) for r in full), (f, x, used, cap)


@settings(max_examples=300, deadline=None)
@given(st.one_of(networks(), networks(SPARSE_MAX_FLOWS - 2, SPARSE_MAX_FLOWS + 10)))
def test_network_gives_exactly_the_rates_of_max_min_fair(
        net: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """FlowNetwork solves small problems on sparse rows and large ones (or those with one
    resource) with numpy: both give the rates and utilisations of :func:`max_min_fair`, bit
    for bit (so the oracle above holds for them too)."""
    coef, cap, demand, w = net
    network = FlowNetwork()
    for r, c in enumerate(cap):
        network.add_resource(f"r{r}", float(c))
    for f, row in enumerate(coef):
        network.add_flow(f"f{f}", float(demand[f]),
                         {f"r{r}": float(a) for r, a in enumerate(row) if a > 0}, float(w[f]))
    x = max_min_fair(coef, cap, demand, w)
    rates = network.resolve()
    assert [rates[f"f{f}"] for f in range(len(x))] == x.tolist()
    used = x @ coef
    assert [network.utilisation(f"r{r}") for r in range(len(cap))] == [
        min(1.0, u / c) if c > 0 else float(u > 0) for u, c in zip(used.tolist(), cap.tolist(),
                                                                     strict=True)]


def test_equal_share_of_one_link() -> None:
    net = FlowNetwork()
    net.add_resource("link", 100.0)
    net.add_flow("a", 1000.0, {"link": 1.0})
    net.add_flow("b", 1000.0, {"link": 1.0})
    net.add_flow("small", 10.0, {"link": 1.0})
    rates = net.resolve()
    assert rates["small"] == pytest.approx(10.0)
    assert rates["a"] == pytest.approx(45.0)
    assert rates["b"] == pytest.approx(45.0)
    assert net.utilisation("link") == pytest.approx(1.0)


def test_weights_share_a_link() -> None:
    """A heal with 8 shards in flight gets 8 shares of a contended link."""
    net = FlowNetwork()
    net.add_resource("link", 90.0)
    net.add_flow("vm", 1000.0, {"link": 1.0})
    net.add_flow("heal", 1000.0, {"link": 1.0}, weight=8.0)
    rates = net.resolve()
    assert rates["vm"] == pytest.approx(10.0)
    assert rates["heal"] == pytest.approx(80.0)


def test_coefficients_fan_out() -> None:
    """A client writing to two remote bricks sends every byte twice: NIC / 2."""
    net = FlowNetwork()
    net.add_resource("tx", 1250.0)
    net.add_flow("write", 5000.0, {"tx": 2.0})
    assert net.resolve()["write"] == pytest.approx(625.0)


def test_remove_flow_and_capacity_change() -> None:
    net = FlowNetwork()
    net.add_resource("link", 100.0)
    net.add_flow("a", 1000.0, {"link": 1.0})
    net.add_flow("b", 1000.0, {"link": 1.0})
    net.resolve()
    net.remove_flow("b")
    net.set_capacity("link", 40.0)
    assert net.resolve() == {"a": pytest.approx(40.0)}
    assert net.solver_calls == 2


def test_unknown_resource_is_an_error() -> None:
    net = FlowNetwork()
    with pytest.raises(KeyError):
        net.add_flow("a", 1.0, {"nowhere": 1.0})


def test_round_bound_raises_instead_of_stopping_silently() -> None:
    """A capacity of NaN never saturates nor lets a flow reach its demand: progressive
    filling cannot finish, and says so."""
    with pytest.raises(SolverError, match="still growing"):
        max_min_fair(np.array([[1.0]]), np.array([np.nan]), np.array([1.0]))


def test_resolve_without_a_change_reuses_the_solution() -> None:
    net = FlowNetwork()
    net.add_resource("link", 100.0)
    use = {"link": 1.0}
    net.add_flow("a", 80.0, use)
    net.add_flow("b", 80.0, use)
    first = net.resolve()
    net.add_flow("a", 80.0, use)  # same demand, same path: nothing changed
    net.set_capacity("link", 100.0)
    assert net.resolve() == first and net.solver_calls == 1
    net.add_flow("a", 20.0, use)  # a demand change is solved again
    assert net.resolve() == {"a": pytest.approx(20.0), "b": pytest.approx(80.0)}
    assert net.solver_calls == 2


def test_a_flow_reweighted_in_place_is_solved_with_its_new_weight() -> None:
    """A heal's thread count changes its weight on the same path: the solved problem is
    patched, not rebuilt, and must give what a fresh network gives."""
    net = FlowNetwork()
    net.add_resource("link", 100.0)
    net.add_resource("disk", 1000.0)
    use = {"link": 1.0, "disk": 0.5}
    net.add_flow("a", 100.0, use)
    net.add_flow("b", 100.0, use)
    assert net.resolve() == {"a": 50.0, "b": 50.0}
    net.add_flow("a", 100.0, dict(use), weight=3.0)
    assert net.resolve() == {"a": 75.0, "b": 25.0}
    assert net.solver_calls == 2


Step = tuple[str, str, float, int, float]  # (op, flow, demand or capacity, path, weight)
PATHS = ({"x": 1.0}, {"x": 0.5, "y": 2.0}, {"y": 1.0, "z": 1.0}, {"z": 3.0})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "add", "remove", "capacity", "resolve"]),
                          st.sampled_from(["f0", "f1", "f2", "f3"]),
                          st.sampled_from([0.0, 5.0, 40.0, 500.0]),
                          st.integers(0, len(PATHS) - 1),
                          st.sampled_from([1.0, 2.0, 4.0])), max_size=25))
def test_incremental_resolve_equals_a_fresh_network(steps: list[Step]) -> None:
    """However flows were added, re-routed, re-weighted (in place, on a path equal to the
    old one), removed, capacities changed and solved in between, the next resolve gives
    exactly what a network built from scratch in the same order gives."""
    net = FlowNetwork()
    caps = {r: 100.0 for r in "xyz"}
    for r, c in caps.items():
        net.add_resource(r, c)
    live: dict[str, tuple[float, dict[str, float], float]] = {}
    for op, name, demand, path, weight in steps:
        if op == "add":
            usage = dict(PATHS[path])  # an equal mapping, not the same object
            net.add_flow(name, demand, usage, weight)
            live[name] = (demand, usage, weight)
        elif op == "remove":
            net.remove_flow(name)
            live.pop(name, None)
        elif op == "capacity":
            r = "xyz"[path % 3]
            caps[r] = demand
            net.set_capacity(r, demand)
        else:
            net.resolve()
    fresh = FlowNetwork()
    for r, c in caps.items():
        fresh.add_resource(r, c)
    for name, (demand, usage, weight) in live.items():
        fresh.add_flow(name, demand, usage, weight)
    assert net.resolve() == fresh.resolve()
    assert all(net.utilisation(r) == fresh.utilisation(r) for r in "xyz")


@settings(max_examples=300, deadline=None)
@given(st.one_of(networks(), networks(SPARSE_MAX_FLOWS - 2, SPARSE_MAX_FLOWS + 10)),
       st.randoms(use_true_random=False))
def test_compiled_filling_is_the_python_filling_bit_for_bit(
        net: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], rnd: Random) -> None:
    """The compiled solver (fluid_kernel.fill_csr, what FlowNetwork runs) and its readable
    Python reference (_fill_sparse) give the same rates, bit for bit, also with each flow's
    resources in a shuffled order (a usage mapping's order is the caller's) and with weights
    and demands of zero."""
    coef, cap, demand, w = net
    w = np.where(np.arange(len(w)) % 7 == 3, 0.0, w)
    rows = [[(j, float(a) * float(w[i])) for j, a in enumerate(row) if a > 0]
            for i, row in enumerate(coef)]
    for r in rows:
        rnd.shuffle(r)
    full_at = 1e-9 * np.maximum(cap, 1.0)
    expected = _fill_sparse(rows, [frozenset(j for j, _ in r) for r in rows], cap.tolist(),
                            full_at.tolist(), demand.tolist(), w.tolist())
    ptr = np.cumsum([0] + [len(r) for r in rows], dtype=np.int64)
    idx = np.array([j for r in rows for j, _ in r], dtype=np.int64)
    val = np.array([a for r in rows for _, a in r], dtype=float)
    rates, finished = fill_csr(ptr, idx, val, cap.astype(float), full_at, demand.astype(float),
                               w.astype(float))
    assert finished
    assert np.array(expected).tobytes() == rates.tobytes()


def test_the_sparse_round_bound_raises_too() -> None:
    """A NaN capacity never saturates: the compiled solver stops at its round bound and
    the network raises, as the dense solver does."""
    net = FlowNetwork()
    net.add_resource("a", float("nan"))
    net.add_resource("b", 10.0)
    net.add_flow("f", 5.0, {"a": 1.0, "b": 1.0})
    with pytest.raises(SolverError, match="still growing"):
        net.resolve()
