"""Pre-production acceptance of existing servers over SSH (``hcisim accept``).

Read-only checks first, a measured baseline against the model, then, only with
``--allow-destructive`` and only on the hosts named, the scenario's faults, each bounded
on the server itself and always rolled back. The run yields the shared Observations
(engine ``hosts``), so claims and the report work on it as on the model and the labs.
"""

from hcisim.accept.run import Acceptance, AcceptOptions, accept
from hcisim.accept.ssh import SshOptions
from hcisim.accept.targets import HostTarget, TargetError, parse_target, parse_targets
from hcisim.lab.node import AuthenticationFailed, HostUnreachable, SshError

__all__ = [
    "AcceptOptions", "Acceptance", "AuthenticationFailed", "HostTarget", "HostUnreachable",
    "SshError", "SshOptions", "TargetError", "accept", "parse_target",
    "parse_targets",
]
