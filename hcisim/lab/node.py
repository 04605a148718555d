"""One way to run a command on a node: an argv in, quoted once, over nsenter or SSH.

Every backend reaches its nodes through a :class:`NodeShell`: the netns lab with ``nsenter
--net`` (:class:`NsenterShell`), libvirt node VMs and existing servers with OpenSSH
(:class:`SshShell`). Callers pass argv lists; a shell pipeline is ``sh(script)``, visibly.

``nsenter --net`` only, never ``ip netns exec`` (which also makes a private mount namespace:
a FUSE mount made there would be invisible to the harness). Over SSH every command runs
under a remote ``timeout``, so a server that hangs cannot hold the run; ssh's own failures
(exit 255) become :class:`SshError` naming the host, a remote exit 255 is reported as 254.
"""

from __future__ import annotations

import math
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hcisim.lab.errors import LabError

NETNS_DIR = Path("/run/netns")
SSH_FAILED = 255
REMOTE_255 = 254
TIMED_OUT = 124  # as timeout(1) says it


@dataclass(frozen=True)
class Completed:
    """What one command did on a node (``data``: stdout as bytes, for file fetches)."""

    rc: int
    stdout: str
    stderr: str
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def tail(self) -> str:
        """The last line the command said (stderr first): what an error message quotes."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1][:200] if lines else f"exit code {self.rc}"


class NodeShell(Protocol):
    """Runs argv on one node; never raises for a non-zero exit (see :func:`checked`)."""

    @property
    def label(self) -> str: ...

    def run(self, argv: Sequence[str], timeout_s: float = 60.0,
            input: bytes | None = None) -> Completed: ...


def sh(script: str) -> list[str]:
    """argv of a POSIX shell script: pipelines and redirections stay explicit at call sites."""
    return ["sh", "-c", script]


def checked(shell: NodeShell, argv: Sequence[str], step: str, timeout_s: float = 60.0,
            input: bytes | None = None) -> Completed:
    """Run ``argv``; a non-zero exit is a LabError naming ``step``, the node and the output."""
    res = shell.run(argv, timeout_s, input)
    if not res.ok:
        raise LabError(step, f"{shell.label}: {shlex.join(argv)[:100]}: {res.tail}")
    return res


def put_file(shell: NodeShell, path: str, data: bytes, mode: str = "0644") -> None:
    """Write ``data`` to ``path`` on the node (through stdin, renamed into place)."""
    q = shlex.quote(path)
    checked(shell, sh(f'mkdir -p "$(dirname {q})" && umask 077 && cat > {q}.tmp && '
                      f"chmod {mode} {q}.tmp && mv {q}.tmp {q}"),
            f"copy {path} to {shell.label}", input=data)


def _local(argv: Sequence[str], timeout_s: float, input: bytes | None) -> Completed:
    try:
        proc = subprocess.run(list(argv), capture_output=True, timeout=timeout_s, input=input,
                              check=False)
    except FileNotFoundError:
        return Completed(127, "", f"command not found: {argv[0]} (is its package installed?)")
    except subprocess.TimeoutExpired:
        return Completed(TIMED_OUT, "", f"did not finish within {timeout_s:.0f} s")
    return Completed(proc.returncode, proc.stdout.decode(errors="replace"),
                     proc.stderr.decode(errors="replace"), proc.stdout)


def ns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed to run inside network namespace ``netns`` (None: the harness's)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net={NETNS_DIR / netns}", *argv]


@dataclass(frozen=True)
class NsenterShell:
    """A netns node: the harness's processes, in the node's network namespace."""

    netns: str | None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.netns or "harness"

    def run(self, argv: Sequence[str], timeout_s: float = 60.0,
            input: bytes | None = None) -> Completed:
        return _local(ns_argv(self.netns, argv), timeout_s, input)


class SshError(LabError):
    """The node could not be used over SSH; the message names it and says why."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"reach {label}", reason)
        self.args = (f"{label}: {reason}",)
        self.label = label

    def __str__(self) -> str:
        return str(self.args[0])


class HostUnreachable(SshError):
    """No SSH server answered at the node's address and port."""


class AuthenticationFailed(SshError):
    """The server answered but refused our key (or no key/agent was offered)."""


class HostKeyRejected(SshError):
    """The server's host key is unknown or changed (strict host key checking)."""


_UNREACHABLE = ("connection refused", "no route to host", "connection timed out",
                "timed out", "could not resolve", "network is unreachable",
                "name or service not known", "connection closed", "connection reset")


def classify(label: str, stderr: str) -> SshError:
    """Turn ssh's stderr into a clear error naming the node (and never a secret)."""
    low = " ".join(stderr.split()).lower()
    last = Completed(SSH_FAILED, "", stderr).tail
    if "permission denied" in low or "too many authentication failures" in low:
        return AuthenticationFailed(
            label, "the server refused the SSH key (key-based login only: check --identity "
            f"or the agent, and the user name) [{last}]")
    if "host key verification failed" in low or "remote host identification" in low:
        return HostKeyRejected(
            label, "its host key is not in the known_hosts file (or changed): add it, or "
            "pass --trust-new-hosts to accept it on first contact")
    if any(s in low for s in _UNREACHABLE):
        return HostUnreachable(label, f"unreachable over SSH [{last}]")
    return SshError(label, f"ssh failed [{last}]")


class SshShell:
    """A node over OpenSSH with a run's own ssh_config (keys only, multiplexed)."""

    def __init__(self, config: Path, host: str, user: str | None = None,
                 port: int | None = None, label: str | None = None) -> None:
        self.config = config
        self.host = host
        self.user = user
        self.port = port
        self._label = label or host

    @property
    def label(self) -> str:
        return self._label

    def ssh_argv(self, *extra: str) -> list[str]:
        return ["ssh", "-F", str(self.config), *(["-l", self.user] if self.user else []),
                *(["-p", str(self.port)] if self.port else []), *extra, self.host]

    def run(self, argv: Sequence[str], timeout_s: float = 60.0,
            input: bytes | None = None) -> Completed:
        limit = max(1, math.ceil(timeout_s))
        remote = (f"timeout -k 5 {limit} {shlex.join(argv)}; r=$?; "
                  f"[ $r -eq {SSH_FAILED} ] && r={REMOTE_255}; exit $r")
        res = _local([*self.ssh_argv(), remote], timeout_s + 30, input)
        if res.rc == TIMED_OUT and not res.stdout and res.stderr.startswith("did not finish"):
            raise HostUnreachable(self.label, f"no answer over SSH within {limit + 30} s")
        if res.rc == SSH_FAILED:
            raise classify(self.label, res.stderr)
        return res

    def close(self) -> None:
        """Stop this node's multiplexing master (a process of ours), if one runs."""
        _local(self.ssh_argv("-O", "exit"), 10, None)


def ssh_config_text(control_path: str, *, hosts: dict[str, str] | None = None,
                    user: str | None = None, identity: Path | None = None,
                    known_hosts: Path | None = None, host_keys: str = "yes",
                    connect_timeout_s: int = 10, keepalive_s: int = 3, persist_s: int = 60,
                    include: Path | None = None) -> str:
    """The ssh_config of every SSH connection hcisim makes (first value wins): keys only,
    batch mode (ssh fails instead of asking), keep-alives, one shared connection per node.
    ``hosts``: alias -> address; ``host_keys``: StrictHostKeyChecking (yes, accept-new, no)."""
    lines = [line for alias, address in (hosts or {}).items()
             for line in (f"Host {alias}", f"  HostName {address}", "")]
    lines += ["Host *", *([f"  User {user}"] if user else []), "  BatchMode yes",
              "  PasswordAuthentication no", "  KbdInteractiveAuthentication no",
              "  PubkeyAuthentication yes", "  GSSAPIAuthentication no", "  ForwardAgent no",
              f"  StrictHostKeyChecking {host_keys}", f"  ConnectTimeout {connect_timeout_s}",
              f"  ServerAliveInterval {keepalive_s}", "  ServerAliveCountMax 3",
              "  ControlMaster auto", f"  ControlPersist {persist_s}",
              f"  ControlPath {control_path}", "  LogLevel ERROR"]
    if identity is not None:
        lines += [f"  IdentityFile {identity}", "  IdentitiesOnly yes"]
    if known_hosts is not None:
        lines.append(f"  UserKnownHostsFile {known_hosts}")
    if include is not None:
        lines.append(f"Include {include}")
    return "\n".join(lines) + "\n"


def connect(shell: NodeShell) -> None:
    """Prove the node answers and runs commands (raises a classified SshError over SSH)."""
    res = shell.run(["echo", "hcisim-ok"], timeout_s=30)
    if "hcisim-ok" not in res.stdout:
        raise SshError(shell.label, f"logged in but a test command failed (rc {res.rc})")
