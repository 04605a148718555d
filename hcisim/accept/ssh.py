"""Commands on existing servers over SSH, through pytest-testinfra's ``ssh`` backend.

Every command runs under a remote ``timeout`` and over a connection with keep-alives, so a
server that hangs or drops off the network cannot hold the run: the remote side kills the
command at its bound, and the local ssh gives up after a few missed keep-alives.

Authentication is by key or agent only: the generated ssh_config turns batch mode on and
password and keyboard-interactive methods off, so ssh fails instead of asking. Nothing of
the key (only whether one was given) is ever recorded.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hcisim.accept.targets import HostTarget

# ssh exits 255 for its own failures; a remote command that exits 255 is reported as 254,
# so that 255 always means "the connection failed".
SSH_FAILED = 255
REMOTE_255 = 254


@dataclass(frozen=True)
class Completed:
    """What one remote command did."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Shell(Protocol):
    """A way to run shell commands on one server (SSH here; a fake in unit tests)."""

    @property
    def target(self) -> HostTarget: ...

    def run(self, command: str, timeout_s: float = 60.0) -> Completed: ...


class SshError(Exception):
    """The server could not be used over SSH; the message names it and says why."""

    def __init__(self, target: HostTarget, reason: str) -> None:
        super().__init__(f"{target.label}: {reason}")
        self.target = target
        self.reason = reason


class HostUnreachable(SshError):
    """No SSH server answered at the target's address and port."""


class AuthenticationFailed(SshError):
    """The server answered but refused our key (or no key/agent was offered)."""


class HostKeyRejected(SshError):
    """The server's host key is unknown or changed (strict host key checking)."""


_UNREACHABLE = ("connection refused", "no route to host", "connection timed out",
                "timed out", "could not resolve", "network is unreachable",
                "name or service not known", "connection closed", "connection reset")


def classify(target: HostTarget, stderr: str) -> SshError:
    """Turn ssh's stderr into a clear error naming the host (and never a secret)."""
    text = " ".join(stderr.split())
    low = text.lower()
    if "permission denied" in low or "too many authentication failures" in low:
        return AuthenticationFailed(
            target, "the server refused the SSH key (key-based login only: check --identity "
            f"or the agent, and the user name) [{_last_line(stderr)}]")
    if "host key verification failed" in low or "remote host identification" in low:
        return HostKeyRejected(
            target, "its host key is not in the known_hosts file (or changed): add it, or "
            "pass --trust-new-hosts to accept it on first contact")
    if any(s in low for s in _UNREACHABLE):
        return HostUnreachable(target, f"unreachable over SSH [{_last_line(stderr)}]")
    return SshError(target, f"ssh failed [{_last_line(stderr) or 'no message'}]")


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


@dataclass(frozen=True)
class SshOptions:
    """How to reach the servers; recorded in the journal only through ``describe()``."""

    identity: Path | None = None
    known_hosts: Path | None = None
    trust_new_hosts: bool = False
    user_config: Path | None = None
    connect_timeout_s: int = 10
    keepalive_s: int = 3

    def describe(self) -> dict[str, Any]:
        """What may be written to reports: the kind of credential, never the key or a path."""
        return {"auth": "key file" if self.identity else "ssh agent / default keys",
                "host_keys": "accept new" if self.trust_new_hosts else "strict"}


def ssh_config_text(opts: SshOptions, control_dir: Path) -> str:
    """The ssh_config every connection of the run uses (first value wins in ssh_config)."""
    lines = [
        "Host *",
        "  BatchMode yes",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication no",
        "  PubkeyAuthentication yes",
        "  GSSAPIAuthentication no",
        f"  StrictHostKeyChecking {'accept-new' if opts.trust_new_hosts else 'yes'}",
        f"  ConnectTimeout {opts.connect_timeout_s}",
        f"  ServerAliveInterval {opts.keepalive_s}",
        "  ServerAliveCountMax 3",
        f"  ControlPath {control_dir}/%C",
        "  LogLevel ERROR",
        "  ForwardAgent no",
    ]
    if opts.identity is not None:
        lines += [f"  IdentityFile {opts.identity}", "  IdentitiesOnly yes"]
    if opts.known_hosts is not None:
        lines.append(f"  UserKnownHostsFile {opts.known_hosts}")
    if opts.user_config is not None:
        lines.append(f"Include {opts.user_config}")
    return "\n".join(lines) + "\n"


class SshShell:
    """Commands on one server through testinfra's ssh backend (OpenSSH, multiplexed)."""

    def __init__(self, target: HostTarget, config: Path, opts: SshOptions) -> None:
        import testinfra

        self._target = target
        self._config = config
        self.host: Any = testinfra.get_host(
            _hostspec(target), ssh_config=str(config),
            timeout=opts.connect_timeout_s, controlpersist=60)

    @property
    def target(self) -> HostTarget:
        return self._target

    def run(self, command: str, timeout_s: float = 60.0) -> Completed:
        limit = max(1, math.ceil(timeout_s))
        wrapped = (f"timeout -k 5 {limit} sh -c {shlex.quote(command)}; r=$?; "
                   f"[ $r -eq {SSH_FAILED} ] && r={REMOTE_255}; exit $r")
        try:
            out = self.host.run(wrapped)
        except RuntimeError as exc:
            result = exc.args[0] if exc.args else None
            raise classify(self._target, str(getattr(result, "stderr", exc))) from None
        return Completed(int(out.rc), str(out.stdout), str(out.stderr))

    def close(self) -> None:
        """Stop this server's multiplexing master (a process of ours), if one runs."""
        subprocess.run(["ssh", "-F", str(self._config), "-O", "exit", *_ssh_args(self._target)],
                       capture_output=True, timeout=10, check=False)


def _hostspec(t: HostTarget) -> str:
    user = f"{t.user}@" if t.user else ""
    host = f"[{t.address}]" if ":" in t.address else t.address
    return f"ssh://{user}{host}:{t.port}"


def _ssh_args(t: HostTarget) -> list[str]:
    return [*(["-l", t.user] if t.user else []), "-p", str(t.port), t.address]


class SshSession:
    """The SSH side of one run: a private config and control dir, one shell per server."""

    def __init__(self, opts: SshOptions) -> None:
        if opts.identity is not None and not opts.identity.is_file():
            raise FileNotFoundError(f"--identity {opts.identity}: no such key file")
        if opts.user_config is not None and not opts.user_config.is_file():
            raise FileNotFoundError(f"--ssh-config {opts.user_config}: no such file")
        self.opts = opts
        # Control sockets need a short path (108 bytes); /tmp keeps it short.
        self.dir = Path(tempfile.mkdtemp(prefix="hcisim-ssh-", dir="/tmp"))
        os.chmod(self.dir, 0o700)
        self.config = self.dir / "ssh_config"
        self.config.write_text(ssh_config_text(opts, self.dir))
        self.shells: dict[str, SshShell] = {}

    def shell(self, target: HostTarget) -> SshShell:
        key = target.url
        if key not in self.shells:
            self.shells[key] = SshShell(target, self.config, self.opts)
        return self.shells[key]

    def close(self) -> None:
        for sh in self.shells.values():
            with suppress(OSError, subprocess.SubprocessError):
                sh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def ssh_session(opts: SshOptions) -> Iterator[SshSession]:
    session = SshSession(opts)
    try:
        yield session
    finally:
        session.close()


def connect(shell: Shell) -> None:
    """Prove the server answers and runs commands (raises a classified SshError)."""
    res = shell.run("echo hcisim-ok", timeout_s=30)
    if "hcisim-ok" not in res.stdout:
        raise SshError(shell.target, f"logged in but a test command failed (rc {res.rc})")
