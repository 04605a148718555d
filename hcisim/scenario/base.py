"""Common base for every scenario object: immutable, and strict about unknown keys.

Units are in the field names: ``_s`` seconds, ``_ms`` milliseconds, ``_gb`` 10^9 bytes,
``_gib``/``_mib``/``_kib`` powers of two, ``_mb_s`` 10^6 bytes per second, ``_gbps`` 10^9 bits
per second.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A frozen, strictly validated scenario node (unknown keys are errors, not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
