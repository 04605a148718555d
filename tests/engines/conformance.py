"""What every engine's output must satisfy, asserted the same way on each of them: every
row in the vocabulary, and the scenario's faults giving the model's claim windows.

Claims see faults only through the fault windows (claims/timeline.py): an engine that
spelled a fault differently from the model would make a claim skip it silently there.
Used by the netns lab (tests/lab/test_claim_windows.py), the libvirt lab
(tests/libvirt/test_lab_slow.py) and the hosts backend over SSH
(tests/accept/test_lab_e2e.py); the model's own conformance is tests/observations.
"""

from __future__ import annotations

from hcisim.claims.timeline import fault_windows, host_failures
from hcisim.engines import observe, parse_engine
from hcisim.observations import Observations, check_vocabulary
from hcisim.scenario import Scenario

# a real engine reads its clock just before the command that makes the fault real; the
# timeline player may start it a little late, never early
TOLERANCE_S = 2.0


def assert_conforms(sc: Scenario, obs: Observations, tolerance_s: float = TOLERANCE_S) -> None:
    """``obs`` (a real engine's run of ``sc``) speaks the vocabulary, and each fault window
    and host-failure window is the model's, started and ended within ``tolerance_s`` (the
    player cannot repair a fault before the injection before it has returned)."""
    check_vocabulary(obs)
    model = observe(parse_engine("model"), sc)
    for windows in (fault_windows, host_failures):
        on_model, on_engine = windows(sc, model), windows(sc, obs)
        assert [(w.target, w.kind) for w in on_engine] == [
            (w.target, w.kind) for w in on_model], (windows.__name__, on_model, on_engine)
        for m, e in zip(on_model, on_engine, strict=True):
            assert m.start_s <= e.start_s <= m.start_s + tolerance_s, (m, e)
            if m.end_s is None or m.end_s >= sc.duration_s:  # never repaired in the run
                assert e.end_s is None or e.end_s >= sc.duration_s - tolerance_s, (m, e)
            else:
                assert e.end_s is not None and m.end_s <= e.end_s <= m.end_s + tolerance_s, (
                    m, e)
