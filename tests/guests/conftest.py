"""Guest tests: unit tests always run; ``lab`` ones need what they use (root, qemu, gcc,
apt, the netns lab packages) and skip saying what is missing."""

from __future__ import annotations

import pytest

from hcisim.lab.errors import LabError


def guests_unavailable() -> str | None:
    from hcisim.lab.guests.image import preflight as image_preflight
    from hcisim.lab.guests.qemu import preflight as qemu_preflight
    from hcisim.lab.netns.backend import preflight as lab_preflight

    try:
        image_preflight()
        qemu_preflight()
        lab_preflight()
    except LabError as exc:
        return exc.reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason: str | None = None
    checked = False
    for item in items:
        if item.get_closest_marker("lab") is None or "tests/guests" not in str(item.path):
            continue
        if not checked:
            reason, checked = guests_unavailable(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"guests unavailable: {reason}"))
