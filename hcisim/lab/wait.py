"""The one deadline wait: poll a condition until it holds or its time is up (tenacity).

Every "wait until glusterd answers / the mount appears / heal is done" in the real-target
half goes through here, so a wait always has a bound, and says (by returning False or
raising LabError) when it ran out instead of ending silently. ``clock`` and ``sleep`` are
injectable so that unit tests run waits on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import Retrying, retry_if_exception_type, retry_if_result, wait_fixed

from hcisim.lab.errors import LabError


def wait_until(ok: Callable[[], object], timeout_s: float, every_s: float = 0.1, *,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep,
               ignore: tuple[type[BaseException], ...] = ()) -> bool:
    """Call ``ok`` every ``every_s`` until it returns something true or ``timeout_s`` is up.

    Returns whether it came true. An exception of a type in ``ignore`` counts as "not yet".
    """
    deadline = clock() + timeout_s
    retrying = Retrying(stop=lambda _state: clock() >= deadline, wait=wait_fixed(every_s),
                        sleep=sleep,
                        retry=retry_if_result(lambda v: not v) | retry_if_exception_type(ignore),
                        retry_error_callback=lambda _state: False)
    return bool(retrying(ok))


def require(ok: Callable[[], object], timeout_s: float, step: str, reason: str,
            every_s: float = 0.1, ignore: tuple[type[BaseException], ...] = ()) -> None:
    """:func:`wait_until`, and a LabError naming ``step`` when the time runs out."""
    if not wait_until(ok, timeout_s, every_s, ignore=ignore):
        raise LabError(step, reason)
