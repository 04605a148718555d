"""The one error a lab raises: which step failed, and why, in words a user can act on."""

from __future__ import annotations

from hcisim.engines import EngineError


class LabError(EngineError):
    """A lab step failed. ``step`` names it (``create namespaces``, ``start glusterd``...).

    It subclasses the shared EngineError (:mod:`hcisim.engines`) so that ``hcisim run
    --engine lab+netns`` reports it as one clear line (exit code 3) instead of a traceback.
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"lab step '{step}' failed: {reason}")
        self.step = step
        self.reason = reason
