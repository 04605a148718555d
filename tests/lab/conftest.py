"""Lab tests run for real (root + glusterfs-server glusterfs-client fio xfsprogs iproute2
iptables); without them they skip and say what is missing."""

from __future__ import annotations

import pytest

from hcisim.lab.errors import LabError


def lab_unavailable() -> str | None:
    from hcisim.lab.netns.backend import preflight

    try:
        preflight()
    except LabError as exc:
        return exc.reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    checked = False
    for item in items:
        if item.get_closest_marker("lab") is None:
            continue
        if not checked:
            reason, checked = lab_unavailable(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"netns lab unavailable: {reason}"))
