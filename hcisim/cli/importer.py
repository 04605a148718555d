"""``hcisim import inventory|gluster|ovirt``: a scenario file from a real cluster's description.

Every source ends in the same step: the scenario is validated by the scenario loader, then
written; what the source did not say is listed in the file's header. Bad input (a missing
file, a file of the wrong kind, a cluster hcisim cannot model) is exit 2 with the file named.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hcisim.cli import UserError, friendly, out
from hcisim.importers.facts import ClusterFacts, ImportSourceError, write_scenario

if TYPE_CHECKING:
    from hcisim.importers.gluster import GlusterOutputs

Output = Annotated[Path, typer.Option("-o", "--output", help="scenario file to write")]
Force = Annotated[bool, typer.Option("--force", help="overwrite an existing output file")]
Name = Annotated[str | None, typer.Option("--name", help="scenario name (default: from the "
                                                        "source)")]
HostNameOpt = Annotated[list[str] | None, typer.Option(
    "--host-name", metavar="ADDR=NAME",
    help="name for a host the source knows by IP address (repeatable)")]


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UserError(f"{flag} {item}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _write(facts_of: ClusterFacts, output: Path, force: bool) -> None:
    if output.exists() and not force:
        raise UserError(f"{output}: exists (give --force to overwrite)")
    sc = write_scenario(facts_of, output)
    out.print(f"wrote {output}: {len(sc.hosts)} hosts, {len(sc.volumes)} volumes, "
              f"{len(sc.vms)} VMs; {len(facts_of.assumptions)} assumptions listed in its "
              "header", highlight=False, markup=False, soft_wrap=True)
    out.print(f"check it: hcisim check {output}; run it: hcisim run {output}",
              highlight=False, markup=False, soft_wrap=True)


def _source_errors(fn: typer.models.CommandFunctionType) -> typer.models.CommandFunctionType:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except ImportSourceError as exc:
            raise UserError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _ask_over_ssh(target: str, identity: Path | None,
                  volumes: tuple[str, ...]) -> GlusterOutputs:
    """``gluster ... --xml`` on ``[user@]host[:port]`` over OpenSSH (keys only, batch mode)."""
    import tempfile

    from hcisim.importers.gluster import read_node
    from hcisim.lab.gluster import Gluster
    from hcisim.lab.node import SshShell, connect

    user, _, hostport = target.rpartition("@")
    host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()):
        raise UserError(f"--ssh {target}: expected [USER@]HOST[:PORT]")
    with tempfile.TemporaryDirectory(prefix="hcisim-import-") as tmp:
        config = Path(tmp) / "ssh_config"
        config.write_text("Host *\n  BatchMode yes\n  ConnectTimeout 15\n"
                          "  StrictHostKeyChecking accept-new\n"
                          + (f"  IdentityFile {identity}\n  IdentitiesOnly yes\n"
                             if identity else ""))
        shell = SshShell(config, host, user or None, int(port) if port else None, label=target)
        connect(shell)  # a classified SshError (unreachable, key refused) if it cannot
        return read_node(Gluster(shell), volumes)


def register(app: typer.Typer) -> None:
    imp = typer.Typer(help="Write a scenario from a real cluster: a deployment inventory, "
                           "Gluster CLI XML, or an oVirt engine.", no_args_is_help=True)
    app.add_typer(imp, name="import")

    @imp.command("inventory")
    @friendly
    @_source_errors
    def inventory(
        file: Annotated[Path, typer.Argument(help="gluster-ansible / oVirt HCI inventory YAML "
                                                  "(hc_nodes, gluster_features_hci_volumes)")],
        output: Output,
        he_vars: Annotated[Path | None, typer.Option(
            "--he-vars", help="hosted-engine variables (he_gluster_vars.json)")] = None,
        name: Name = None,
        host_name: HostNameOpt = None,
        force: Force = False,
    ) -> None:
        """From a hyperconverged deployment inventory (and he_gluster_vars.json)."""
        from hcisim.importers.inventory import inventory_facts

        _write(inventory_facts(file, he_vars, name, _pairs(host_name, "--host-name")),
               output, force)

    @imp.command("gluster")
    @friendly
    @_source_errors
    def gluster(
        output: Output,
        info: Annotated[Path | None, typer.Option(
            "--info", help="output of `gluster volume info --xml`, saved to a file")] = None,
        get: Annotated[list[str] | None, typer.Option(
            "--get", metavar="VOL=FILE",
            help="output of `gluster volume get VOL all --xml` (repeatable)")] = None,
        status: Annotated[Path | None, typer.Option(
            "--status", help="output of `gluster volume status all detail --xml` (brick "
                             "sizes)")] = None,
        ssh: Annotated[str | None, typer.Option(
            "--ssh", metavar="[USER@]HOST[:PORT]",
            help="instead of files: ask this server's glusterd over SSH (read-only)")] = None,
        identity: Annotated[Path | None, typer.Option(
            "--identity", help="--ssh: private key (default: agent / default keys)")] = None,
        volume: Annotated[list[str] | None, typer.Option(
            "--volume", help="import only these volumes (repeatable)")] = None,
        name: Name = None,
        host_name: HostNameOpt = None,
        force: Force = False,
    ) -> None:
        """From the Gluster CLI's XML: files saved on a server, or asked over SSH."""
        from hcisim.importers.gluster import gluster_facts, read_files

        if (info is None) == (ssh is None):
            raise UserError("give either --info FILE (saved outputs) or --ssh HOST")
        if ssh is not None:
            if get or status:
                raise UserError("--get and --status are for saved files; --ssh asks for them")
            outputs = _ask_over_ssh(ssh, identity, tuple(volume or ()))
        else:
            assert info is not None
            gets = {k: Path(v) for k, v in _pairs(get, "--get").items()}
            outputs = read_files(info, gets, status)
        _write(gluster_facts(outputs, tuple(volume or ()), _pairs(host_name, "--host-name"),
                             name or (ssh.split("@")[-1].split(":")[0] if ssh else None)),
               output, force)

    @imp.command("ovirt")
    @friendly
    @_source_errors
    def ovirt(
        output: Output,
        url: Annotated[str | None, typer.Option(
            "--url", help="engine API, https://engine.example.com/ovirt-engine/api")] = None,
        user: Annotated[str, typer.Option("--user")] = "admin@internal",
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="file holding the password (not on the command line)")
        ] = None,
        ca_file: Annotated[Path | None, typer.Option("--ca-file", help="engine CA PEM")] = None,
        insecure: Annotated[bool, typer.Option("--insecure",
                                               help="do not verify TLS")] = False,
        recorded: Annotated[Path | None, typer.Option(
            "--recorded", help="folder of saved API answers instead of a live engine "
                               "(hosts.xml, vms.xml, storagedomains.xml, glustervolumes.xml)")
        ] = None,
        arbiter: Annotated[list[str] | None, typer.Option(
            "--arbiter", help="volume whose third brick is an arbiter (the API does not "
                              "say; repeatable)")] = None,
        name: Name = None,
        host_name: HostNameOpt = None,
        force: Force = False,
    ) -> None:
        """From an oVirt engine (hosts, VMs, storage domains, Gluster volumes)."""
        from hcisim.importers.engine import engine_facts, read_engine, read_recorded

        if (url is None) == (recorded is None):
            raise UserError("give either --url (a live engine) or --recorded DIR")
        if recorded is not None:
            snap = read_recorded(recorded)
        else:
            assert url is not None
            if password_file is None:
                raise UserError("--url needs --password-file FILE")
            try:
                password = password_file.read_text().strip()
            except OSError as exc:
                raise UserError(f"{password_file}: cannot read file: {exc.strerror}") from None
            snap = read_engine(url, user, password, str(ca_file) if ca_file else None,
                               insecure)
        _write(engine_facts(snap, tuple(arbiter or ()), _pairs(host_name, "--host-name"),
                            name), output, force)
