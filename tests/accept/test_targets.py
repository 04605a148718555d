"""Host strings: what is accepted, and the clear error for everything else."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.accept.targets import TargetError, bind_targets, parse_target, parse_targets
from hcisim.scenario import load_scenario


def test_full_form() -> None:
    t = parse_target("ssh://root@10.0.0.1:2222?name=host2&glusterd_sock=/run/g.sock"
                     "&glusterd_workdir=/var/lib/g2&storage_if=sto0")
    assert (t.user, t.address, t.port, t.name) == ("root", "10.0.0.1", 2222, "host2")
    assert t.glusterd_workdir == "/var/lib/g2" and t.storage_if == "sto0"
    assert t.url == "ssh://root@10.0.0.1:2222"


def test_defaults() -> None:
    t = parse_target("ssh://h1.example.com")
    assert (t.user, t.port, t.glusterd_sock) == (None, 22, None)
    assert t.glusterd_workdir == "/var/lib/glusterd"


def test_ipv6() -> None:
    t = parse_target("ssh://admin@[fd00::1]:22")
    assert t.address == "fd00::1" and t.url == "ssh://admin@[fd00::1]"


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty host"),
    ("h1", "no scheme"),
    ("http://h1", "scheme 'http' not supported"),
    ("ssh://", "no host name"),
    ("ssh://root@h1:99999", "bad port"),
    ("ssh://root@h1:abc", "bad port"),
    ("ssh://root@h1/some/path", "unexpected path"),
    ("ssh://bad_host!", "not a valid host name"),
    ("ssh://Root;rm@h1", "not a valid user name"),
    ("ssh://h1?colour=blue", "unknown option 'colour'"),
    ("ssh://h1?glusterd_sock=relative/path", "absolute path"),
    ("ssh://h1?glusterd_sock=/x;reboot", "absolute path"),
    ("ssh://h1?storage_if=eth0;reboot", "not an interface name"),
])
def test_bad_strings_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(TargetError, match=says):
        parse_target(text)


def test_password_refused_and_never_echoed() -> None:
    with pytest.raises(TargetError) as exc:
        parse_target("ssh://root:S3cretPw@h1")
    assert "passwords are not accepted" in str(exc.value)
    assert "S3cretPw" not in str(exc.value)


@settings(max_examples=50)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#%", min_size=4, max_size=20))
def test_password_never_in_any_error(pw: str) -> None:
    """Whatever else is wrong with the string, the message does not carry the password
    (it may contain the same letters only as words of its own, like 'pass' in 'passwords')."""
    def message(secret: str, form: str) -> str:
        try:
            parse_target(form.format(secret))
        except TargetError as exc:
            return str(exc)
        return ""

    for form in ("ssh://root:{}@h1", "ssh://root:{}@h1:0", "ftp://root:{}@h1",
                 "ssh://root:{}@h1?x=1"):
        got = message(pw, form)
        # the password is in the message only where the same words are there anyway
        assert pw not in got or pw in message("Z" * len(pw), form), got


def test_list_and_duplicates() -> None:
    ts = parse_targets("ssh://root@h1, ssh://root@h2 ,ssh://root@h3")
    assert [t.address for t in ts] == ["h1", "h2", "h3"]
    with pytest.raises(TargetError, match="given twice"):
        parse_targets("ssh://h1,ssh://root@h1")
    with pytest.raises(TargetError, match="no host given"):
        parse_targets(" , ")


def test_bind_in_order_and_by_name() -> None:
    sc = load_scenario()
    bound = bind_targets(sc, parse_targets("ssh://a?name=host3,ssh://b,ssh://c"))
    assert {h: t.address for h, t in bound.items()} == {"host3": "a", "host1": "b", "host2": "c"}
    assert all(t.name == h for h, t in bound.items())
    with pytest.raises(TargetError, match="3 hosts"):
        bind_targets(sc, parse_targets("ssh://a,ssh://b"))
    with pytest.raises(TargetError, match="not a host of scenario"):
        bind_targets(sc, parse_targets("ssh://a?name=host9,ssh://b,ssh://c"))
    with pytest.raises(TargetError, match="already"):
        bind_targets(sc, parse_targets("ssh://a?name=host1,ssh://b?name=host1,ssh://c"))


def test_hosts_engine_runs_the_acceptance_on_its_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hosts+ssh://...`` in the engine registry is the acceptance run on those servers,
    with the engine's SSH options and safety policy."""
    import hcisim.accept.run as accept_mod
    from hcisim.engines import HostsOptions, observe

    seen: dict[str, Any] = {}
    marker: Any = object()

    def fake_accept(sc: Any, targets: Any, ssh: Any, opts: Any) -> Any:
        seen.update(targets=targets, ssh=ssh, opts=opts)
        return SimpleNamespace(observations=marker)

    monkeypatch.setattr(accept_mod, "accept", fake_accept)
    got = observe("hosts+ssh://root@h1,h2:2222,h3", load_scenario(None),
                  options=HostsOptions(trust_new_hosts=True, max_fault_s=30.0))
    assert got is marker
    assert [(t.user, t.address, t.port) for t in seen["targets"]] == [
        ("root", "h1", 22), (None, "h2", 2222), (None, "h3", 22)]
    assert seen["ssh"].trust_new_hosts and not seen["opts"].allow_destructive
    assert seen["opts"].max_fault_s == 30.0
