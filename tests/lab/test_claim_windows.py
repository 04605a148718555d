"""The same fault gives the same claim windows on the model and on the netns lab, and the
lab's rows are all in the vocabulary (tests/engines/conformance.py; the libvirt lab and the
hosts backend are held to the same in their own tiers). One short storage NIC loss."""

from __future__ import annotations

import pytest

from hcisim.engines import LabOptions, observe, parse_engine
from hcisim.lab.netns.layout import unique_name
from tests.engines.conformance import assert_conforms

from .scenarios import small


@pytest.mark.lab
def test_nic_loss_windows_match_on_model_and_lab() -> None:
    sc = small(30.0, "[{at_s: 8, kind: nic_loss, target: host3, network: storage, "
                     "duration_s: 8}]")
    lab = observe(parse_engine("lab+netns"), sc,
                  options=LabOptions(name=unique_name("windows"), heal_wait_s=60))
    assert_conforms(sc, lab)
