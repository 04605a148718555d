"""One worker runs every real lab, one after the other.

The labs measure time: stalls, lease expiry, guest switch-over. On this 2-core machine two
labs at once (each 3 glusterfsd, 3 FUSE clients, glusterd, fio or TCG guests) starve each
other's daemons for seconds, and timing claims failed that pass on a quiet machine (CI
runs of session 2: a survivor's sanlock renewals, a guest's fdatasync, a FUSE client's
reconnect). ``--dist loadgroup`` keeps an xdist group on one worker, so every item marked
``lab`` joins the single group ``real-lab``: the other worker runs the unit, property and
model tests beside it. The groups the lab modules declared for themselves (one lab per
module) are replaced, because xdist joins all of an item's group names into one.
Needs pytest < 9 (pyproject's test extra): under pytest 9.2 xdist 3.8 sets the group on an
attribute pytest no longer reads, and no group held at all (session 3 found the labs of every
earlier full run side by side).
"""

from __future__ import annotations

import pytest

LAB_GROUP = "real-lab"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("lab") is None:
            continue
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name != "xdist_group"]
        item.add_marker(pytest.mark.xdist_group(LAB_GROUP))
