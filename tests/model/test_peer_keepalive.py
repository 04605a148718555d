"""glusterd's peer keepalive with a known phase: when a cut-off host's glusterd loses its
peers (server quorum), against hand-computed Linux keepalive chains, and the fit that
recovers the phase from measured stops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.calibration.fit import fit_peer_anchor, peer_stops_s
from hcisim.model import simulate
from hcisim.model.keepalive import known_last_keepalive_s
from hcisim.observations import Observations
from hcisim.scenario import Scenario

from .test_examples import OLTP, scenario, vm

EPS = 1e-6
HAND = {"ping_timer_late_s": 0.0, "reconnect_delay_s": 0.0}
DETECTED_AFTER_S = 10.0 + 9 * 2.0  # glusterd.vol keepalive-time 10, interval 2, 9 probes


def _cuts(cuts: list[tuple[float, float]], detection: dict[str, Any],
          kind: str = "partition", timeout: float = 5.0, **model: Any) -> Scenario:
    """host2's storage network cut (a partition, or ``kind``) at each (at, duration)."""
    faults = [{"at_s": at, "kind": kind, "target": "host2", "duration_s": d,
               **({"network": "storage"} if kind == "partition" else {})}
              for at, d in cuts]
    return scenario([vm("a", "host1", OLTP, 2.0)], faults, duration=300.0,
                    volumes=[{"name": "data", "type": "replica3",
                              "bricks": [{"host": h} for h in ("host1", "host2", "host3")],
                              "options": {"ping_timeout_s": timeout}}],
                    model={"detection": detection, **HAND, **model})


def _lost(obs: Observations, host: str = "host2") -> list[float]:
    ev = obs["events"]
    return [float(t) for t in ev[(ev["kind"] == "server_quorum_lost")
                                 & (ev["target"] == host)]["t_s"]]


@settings(max_examples=40, deadline=None)
@given(cut=st.floats(-50, 500), anchor=st.floats(-50, 500), time=st.sampled_from([10.0, 20.0]))
def test_last_probe_is_on_the_chain_and_within_one_period(cut: float, anchor: float,
                                                          time: float) -> None:
    last = known_last_keepalive_s(cut, anchor, time)
    assert last <= cut + EPS
    if cut <= anchor:
        assert last == cut  # busy up to the cut
        return
    assert cut - last < time + EPS
    k = (last - anchor) / time
    assert abs(k - round(k)) < 1e-6


def test_the_validation_cut_loses_quorum_on_the_chain() -> None:
    """The chain from -2.2 s (probes answered at 7.8, 17.8, ...): a cut at 11.3 s was last
    answered at 7.8 s; keepalive gives up 10 + 9 x 2 s later, at 35.8 s, whatever the
    ping-timeout: 24.5 s after the cut (the lab's NIC loss of the validation matrix)."""
    obs = simulate(_cuts([(11.3, 40.0)], {"phase": "known", "peer_anchor_s": -2.2}))
    assert _lost(obs) == [pytest.approx(35.8, abs=1e-9)]
    det = obs.meta["detection"]
    assert (det["peer_phase"], det["peer_anchor_s"]) == ("known", -2.2)


@settings(max_examples=15, deadline=None)
@given(at=st.floats(1, 150), anchor=st.floats(-10, 0, exclude_max=True))
def test_known_phase_stops_the_bricks_where_the_chain_says(at: float, anchor: float) -> None:
    """Any cut long enough: quorum lost at the last answered probe + 28 s (both of host2's
    peer connections on one chain), the time the fit predicts."""
    obs = simulate(_cuts([(at, 45.0)], {"phase": "known", "peer_anchor_s": anchor}))
    last = anchor + 10.0 * np.floor((at - anchor) / 10.0 + 1e-12)
    assert _lost(obs) == [pytest.approx(last + DETECTED_AFTER_S, abs=1e-6)]
    assert _lost(obs)[0] - at == pytest.approx(
        float(peer_stops_s(np.array([at]), anchor)[0]), abs=1e-6)


def test_a_cut_shorter_than_the_keepalive_shifts_the_chain() -> None:
    """Chain from 0: the cut at 15-25 s leaves the probe of 20 s and its retries at 22 and
    24 s unanswered (3 of 9: the connection holds); the retry at 26 s is answered and the
    chain runs from there (36, 46, ...). A second cut at 40 s was last answered at 36 s:
    lost at 64 s. Without the shift (chain still from 0) it would be 40 + 28 = 68 s."""
    obs = simulate(_cuts([(15.0, 10.0), (40.0, 60.0)],
                         {"phase": "known", "peer_anchor_s": 0.0}))
    assert _lost(obs) == [pytest.approx(64.0, abs=1e-9)]


def test_a_restarted_glusterd_runs_its_chain_from_its_connect() -> None:
    """host2 powered off at 10 s for 20 s: its glusterd starts again at 30 s and connects
    to both peers (with the reconnect timer off, at once): their chains run from 30 s. A
    partition at 52 s was last answered at 50 s: quorum lost at 78 s."""
    obs = simulate(scenario(
        [vm("a", "host1", OLTP, 2.0)],
        [{"at_s": 10.0, "kind": "node_power_loss", "target": "host2", "duration_s": 20.0},
         {"at_s": 52.0, "kind": "partition", "target": "host2", "duration_s": 60.0,
          "network": "storage"}],
        duration=300.0, volumes=[{"name": "data", "type": "replica3",
                                  "bricks": [{"host": h} for h in ("host1", "host2", "host3")],
                                  "options": {"ping_timeout_s": 5.0}}],
        model={"detection": {"phase": "known", "peer_anchor_s": -3.0}, **HAND,
               "reconnect_timer_s": 0.0}))
    # from the scenario's chain (-3, 7, ..., 47) it would be 47 + 28 = 75 s
    assert _lost(obs) == [pytest.approx(30.0 + 20.0 + DETECTED_AFTER_S, abs=1e-9)]


def test_unknown_or_unmeasured_phase_is_drawn() -> None:
    """phase unknown, or known without a peer anchor: the last answer is drawn over one
    keepalive period (18-28 s after the cut), and the output says so."""
    for det in ({"phase": "unknown", "peer_anchor_s": -2.2},
                {"phase": "known", "peer_anchor_s": None}):
        seen = set()
        for seed in range(8):
            sc = _cuts([(11.3, 40.0)], det)
            obs = simulate(sc.model_copy(update={"seed": seed}))
            (t,) = _lost(obs)
            assert 11.3 + 18.0 - EPS <= t <= 11.3 + 28.0 + EPS
            seen.add(round(t, 6))
            assert obs.meta["detection"]["peer_phase"] == "unknown"
        assert len(seen) > 4, det


@settings(max_examples=25, deadline=None)
@given(anchor=st.floats(-10, 0, exclude_max=True), seed=st.integers(0, 2**32 - 1))
def test_fit_recovers_the_anchor_from_spread_cuts(anchor: float, seed: int) -> None:
    """Cuts spread over one keepalive period (as the server-quorum experiment's trials),
    the measured stops jittered by up to 50 ms: the fitted anchor predicts every stop
    within that jitter."""
    rng = np.random.default_rng(seed)
    faults = 8.0 + np.arange(10) * 1.0
    stops = peer_stops_s(faults, anchor) + rng.uniform(-0.05, 0.05, len(faults))
    f = fit_peer_anchor(list(faults), list(stops), None)
    assert np.abs(np.asarray(f.predicted) - stops).max() <= 0.1 + 1e-3


def test_clients_refused_by_portmap_wait_for_their_timer() -> None:
    """The validation matrix's NIC loss (host2, 25 s from 11.3 s, T = 8, the lab's anchors
    -0.24 s for the clients and -2.2 s for glusterd's peers): host2's glusterd drops its
    peers at 35.8 s and stops its brick; the repair at 36.3 s; its peers come back on
    the reconnect timer 3 s after their drop (38.8 s, + 0.02 s handshake) and it starts
    the brick. host1's mount, down since its ping timer bailed out at 23.76 s, tries on
    its SYN schedule (first try at 26.76 s; SYNs 1.022 s apart five times, then 2.02 and
    4.22 s later): its SYN at 38.11 s reaches glusterd before the brick is back, the
    portmap has no port, and it connects on its timer 3 s later: 41.13 s. (The lab's kept
    logs: 41.18 s; the next SYN would have come at 46.3 s.)"""
    obs = simulate(_cuts([(11.3, 25.0)], {"phase": "known", "anchor_s": -0.24,
                                          "peer_anchor_s": -2.2}, kind="nic_loss",
                         timeout=8.0, reconnect_timer_s=3.0, reconnect_delay_s=0.02,
                         syn_linear_timeouts=4))
    ev = obs["events"]
    back = ev[(ev["kind"] == "server_quorum_regained") & (ev["target"] == "host2")]["t_s"]
    assert list(back) == [pytest.approx(38.82, abs=1e-6)]
    (x,) = [x for x in obs.meta["detection"]["losses"]
            if (x["client"], x["brick"]) == ("host1", "host2")]
    assert x["down_s"] == pytest.approx(23.7602, abs=1e-6)
    assert x["back_s"] == pytest.approx(23.7602 + 3.0 + 11.352 + 3.0 + 0.02, abs=1e-6)
