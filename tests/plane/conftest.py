"""Plane tests: unit tests always run; ``lab`` ones need root, the netns lab's packages and
sanlock (the guest tests also qemu and gcc), and skip saying what is missing."""

from __future__ import annotations

import pytest

from hcisim.lab.errors import LabError


def plane_unavailable(guests: bool) -> str | None:
    from hcisim.lab.netns.backend import preflight as lab_preflight
    from hcisim.lab.plane.sanlock import preflight as sanlock_preflight

    checks = [lab_preflight, sanlock_preflight]
    if guests:
        from hcisim.lab.guests.image import preflight as guest_preflight

        checks.append(guest_preflight)
    for check in checks:
        try:
            check()
        except LabError as exc:
            return exc.reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[bool, str | None] = {}
    for item in items:
        if item.get_closest_marker("lab") is None or "tests/plane" not in str(item.path):
            continue
        guests = item.get_closest_marker("guests") is not None or "guest" in item.name
        if guests not in cache:
            cache[guests] = plane_unavailable(guests)
        if cache[guests]:
            item.add_marker(pytest.mark.skip(reason=f"plane lab unavailable: {cache[guests]}"))
