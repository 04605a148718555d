"""The same fault gives the same claim windows on the model and on the netns lab.

Claims see faults only through the fault windows (claims/timeline.py): if the lab spelled a
fault differently from the model, a claim would silently skip it there (it did: the lab
wrote ``nic_loss (storage)``). One short storage NIC loss, run on both engines.
"""

from __future__ import annotations

import pytest

from hcisim.claims.timeline import fault_windows, host_failures
from hcisim.engines import LabOptions, observe, parse_engine
from hcisim.lab.netns.layout import unique_name
from hcisim.observations import check_vocabulary

from .scenarios import small

# the lab reads its clock just before the command that makes the fault real; the timeline
# player may start it a little late, never early
TOLERANCE_S = 2.0


@pytest.mark.lab
def test_nic_loss_windows_match_on_model_and_lab() -> None:
    sc = small(30.0, "[{at_s: 8, kind: nic_loss, target: host3, network: storage, "
                     "duration_s: 8}]")
    model = observe(parse_engine("model"), sc)
    lab = observe(parse_engine("lab+netns"), sc,
                  options=LabOptions(name=unique_name("windows"), heal_wait_s=60))
    check_vocabulary(lab)
    for windows in (fault_windows, host_failures):
        on_model, on_lab = windows(sc, model), windows(sc, lab)
        assert [(w.target, w.kind) for w in on_model] == [("host3", "nic_loss")]
        assert [(w.target, w.kind) for w in on_lab] == [("host3", "nic_loss")]
        (m,), (b,) = on_model, on_lab
        assert m.start_s <= b.start_s <= m.start_s + TOLERANCE_S
        assert m.end_s is not None and b.end_s is not None
        assert m.end_s <= b.end_s <= m.end_s + TOLERANCE_S
