"""SSH error classification and the generated ssh_config (no passwords, nothing secret)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hcisim.accept.junit import junit_xml
from hcisim.accept.rows import row
from hcisim.accept.ssh import SshOptions, ssh_config_text
from hcisim.accept.targets import parse_target
from hcisim.lab.node import (
    AuthenticationFailed,
    HostKeyRejected,
    HostUnreachable,
    SshError,
    classify,
)

T = parse_target("ssh://root@10.0.0.2:2222?name=host2")


def test_classify_real_ssh_messages() -> None:
    cases = {
        "root@10.0.0.2: Permission denied (publickey).": AuthenticationFailed,
        "ssh: connect to host 10.0.0.2 port 2222: Connection refused": HostUnreachable,
        "ssh: connect to host 10.0.0.2 port 2222: No route to host": HostUnreachable,
        "ssh: connect to host 10.0.0.2 port 2222: Connection timed out": HostUnreachable,
        "ssh: Could not resolve hostname h9: Name or service not known": HostUnreachable,
        "Host key verification failed.": HostKeyRejected,
        "something new": SshError,
    }
    for stderr, kind in cases.items():
        exc = classify(T.label, stderr)
        assert type(exc) is kind, stderr
        assert str(exc).startswith("host2 (ssh://root@10.0.0.2:2222): ")


def test_config_forbids_passwords_and_records_no_key(tmp_path: Path) -> None:
    key = tmp_path / "id_secret"
    opts = SshOptions(identity=key, known_hosts=tmp_path / "kh")
    text = ssh_config_text(opts, tmp_path)
    for line in ("BatchMode yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "StrictHostKeyChecking yes", "IdentitiesOnly yes", "ForwardAgent no"):
        assert line in text
    assert "accept-new" in ssh_config_text(SshOptions(trust_new_hosts=True), tmp_path)
    assert str(key) not in str(opts.describe()) and opts.describe()["auth"] == "key file"


def test_junit_counts() -> None:
    rows = [row("a", "host1", "1", "1", True), row("b", "host2", "1", "2", False, "data"),
            row("c", "host3", "x", "y", False, warn=True)]
    claims: list[dict[str, Any]] = [
        {"name": "replicas", "verdict": "fail", "measured": 1, "limit": 2, "unit": "copies"},
        {"name": "heal", "verdict": "n/a", "measured": None, "limit": 1, "unit": "s"}]
    xml = junit_xml(rows, ["refused nic_loss on host2: ..."], claims)
    assert 'tests="6" failures="2" errors="0" skipped="2"' in xml
    assert 'name="b [data]"' in xml and "expected 1; actual 2" in xml
