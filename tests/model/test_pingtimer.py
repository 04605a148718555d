"""The ping-timer mechanism against a step-by-step replay of rpc-clnt-ping.c's state machine."""

from __future__ import annotations

import heapq
import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hcisim.model.keepalive import peer_loss_detected_s
from hcisim.model.pingtimer import (
    detect_known_phase,
    detect_unknown_phase,
    next_ping_s,
)


def replay(fault: float, anchor: float, t: int, rtt: float, sends: list[float]) -> float:
    """Replay the C code's timers for a connection that always has a request pending.

    Events: a ping is sent (arms the expiry timer T later), its reply (cancels the expiry,
    arms the next ping T later), the expiry (re-arm if whole-second activity within T, else
    disconnect). Data requests flow until ``fault`` (replies too); after it, only the
    writer's stuck request at ``fault`` and ``sends`` go out, and nothing comes back.
    """
    last_sent = last_received = anchor
    queue: list[tuple[float, int, str]] = [(anchor, 0, "ping")]
    seq = 1
    expiry_gen = 0
    armed_gen = -1
    extra = sorted(sends)
    while queue:
        now, _, what = heapq.heappop(queue)
        # data traffic up to the fault, and the later sends, as seen at ``now``
        if now <= fault:
            last_sent = last_received = now
        else:
            last_received = max(last_received, fault)
            last_sent = max([last_sent, fault, *[s for s in extra if s <= now]])
        if what == "ping":
            last_sent = max(last_sent, now)
            expiry_gen += 1
            armed_gen = expiry_gen
            heapq.heappush(queue, (now + t, seq, f"expiry:{expiry_gen}"))
            seq += 1
            if now + rtt <= fault:
                heapq.heappush(queue, (now + rtt, seq, "reply"))
                seq += 1
        elif what == "reply":
            last_received = now
            armed_gen = -1  # cancelled
            heapq.heappush(queue, (now + t, seq, "ping"))
            seq += 1
        else:
            gen = int(what.split(":")[1])
            if gen != armed_gen:
                continue
            cur = math.floor(now + 1e-9)
            if (cur - math.floor(last_received + 1e-9) < t
                    or cur - math.floor(last_sent + 1e-9) < t):
                expiry_gen += 1
                armed_gen = expiry_gen
                heapq.heappush(queue, (now + t, seq, f"expiry:{expiry_gen}"))
                seq += 1
            else:
                return now
    raise AssertionError("never detected")


times = st.floats(min_value=0.0, max_value=500.0, allow_nan=False)


def no_tie(fault: float, anchor: float, t: int, rtt: float) -> None:
    """Skip a fault that coincides (to 1 us) with a ping's reply: which side of it the
    reply falls on is float rounding, in the closed form as in the replay."""
    k = (fault - rtt - anchor) / (t + rtt)
    assume(abs(k - round(k)) * (t + rtt) > 1e-6)


@settings(max_examples=300, deadline=None)
@given(anchor=times, offset=st.floats(min_value=0.0, max_value=200.0),
       t=st.sampled_from([3, 5, 10, 15, 20, 42]),
       rtt=st.sampled_from([0.0, 0.0005, 0.002, 0.05]))
def test_closed_form_matches_the_state_machine(anchor: float, offset: float, t: int,
                                               rtt: float) -> None:
    fault = anchor + offset
    no_tie(fault, anchor, t, rtt)
    got = detect_known_phase(fault, anchor, t, rtt)
    assert math.isclose(got.at_s, replay(fault, anchor, t, rtt, []), abs_tol=1e-6)
    assert got.phase == "known"


@settings(max_examples=200, deadline=None)
@given(anchor=times, offset=st.floats(min_value=0.0, max_value=100.0),
       t=st.sampled_from([3, 5, 20]),
       gaps=st.lists(st.floats(min_value=0.0, max_value=60.0), max_size=4))
def test_later_sends_push_detection_out_as_the_code_does(anchor: float, offset: float, t: int,
                                                         gaps: list[float]) -> None:
    fault = anchor + offset
    no_tie(fault, anchor, t, 0.001)
    sends = [fault + g for g in gaps]
    got = detect_known_phase(fault, anchor, t, 0.001, sends)
    assert math.isclose(got.at_s, replay(fault, anchor, t, 0.001, sends), abs_tol=1e-6)
    assert got.at_s >= detect_known_phase(fault, anchor, t, 0.001).at_s


@settings(max_examples=300, deadline=None)
@given(anchor=times, offset=st.floats(min_value=0.0, max_value=300.0),
       t=st.sampled_from([3, 5, 10, 20, 42]))
def test_a_closed_loop_writer_stalls_between_t_and_2t(anchor: float, offset: float,
                                                      t: int) -> None:
    """No ack arrives before T (the property the brief names), nor after 2T + a round trip."""
    stall = detect_known_phase(anchor + offset, anchor, t, 0.001).stall_s
    assert t - 0.001 - 1e-9 <= stall <= 2 * t + 0.01 + 1e-9


def test_phase_decides_the_stall() -> None:
    """A fault just after a ping waits almost 2T; just before a ping, about T."""
    assert detect_known_phase(100.1, 0.0, 5).stall_s > 9.5  # pings at 100, 105: down at 110
    assert detect_known_phase(104.9, 0.0, 5).stall_s < 5.2  # ping at 105: down at 110
    assert next_ping_s(12.0, 0.0, 5.0) == 15.0


def test_unknown_phase_is_uniform_over_one_period() -> None:
    rng = np.random.default_rng(7)
    stalls = np.array([detect_unknown_phase(rng, 0.0, 10).stall_s for _ in range(4000)])
    assert stalls.min() >= 10 and stalls.max() < 20
    assert abs(float(np.median(stalls)) - 15.0) < 0.5
    assert detect_unknown_phase(rng, 0.0, 10).phase == "unknown"


def test_glusterd_peer_loss_ignores_ping_timeout() -> None:
    """Keepalive 10 s + 9 probes x 2 s: 18-28 s after a cut, whatever network.ping-timeout."""
    assert peer_loss_detected_s(100.0, 100.0) == 128.0
    assert peer_loss_detected_s(100.0, 90.5) == 118.5
