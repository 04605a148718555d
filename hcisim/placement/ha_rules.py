"""The engine's HA clocks that every engine shares: the fence grace and the retry times.

Pure functions of the scenario's ``compute.fencing`` and ``compute.ha_restart``, here in
the vocabulary so that the model (:mod:`hcisim.model.compute.ha`) and the lab's
management plane (:mod:`hcisim.lab.plane.engine`) run the same rules without importing
each other. Sources: ovirt-engine ``ConfigValues`` (TimeoutToResetVdsInSeconds,
DelayResetPerVmInSeconds, DelayResetForSpmInSeconds, RetryToRunAutoStartVm*).
"""

from __future__ import annotations

from collections.abc import Iterator

from hcisim.scenario.compute import Fencing, HaRestart


def fence_grace_s(f: Fencing, running_vms: int, spm: bool) -> float:
    """TimeoutToResetVdsInSeconds + 0.5 s per running VM + 20 s if SPM."""
    return f.reset_vds_timeout_s + f.per_vm_delay_s * running_vms + (f.spm_delay_s if spm else 0)


def iter_retry_times(policy: HaRestart, first_try_s: float, until_s: float) -> Iterator[float]:
    """When the engine retries an HA VM that failed to start (30 s x 10, then every 30 min),
    lazily: a year holds 17,520 half-hours, and most restarts need none of them."""
    t = first_try_s
    n = 0
    while True:
        t += policy.retry_short_s if n < policy.retry_short_tries else policy.retry_long_s
        n += 1
        if t > until_s:
            return
        yield t
