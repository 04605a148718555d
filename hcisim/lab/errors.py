"""The one error a lab raises: which step failed, and why, in words a user can act on."""

from __future__ import annotations

from hcisim.runner import EngineError


class LabError(EngineError):
    """A lab step failed. ``step`` names it (``create namespaces``, ``start glusterd``...).

    It subclasses the runner's EngineError so that ``hcisim run --engine lab`` reports it as
    one clear line (exit code 3) instead of a traceback.
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"lab step '{step}' failed: {reason}")
        self.step = step
        self.reason = reason
