"""The package as a user gets it: build the wheel, install it into a fresh venv, run the main
job there (templates and built-in files must ship inside the package).

Offline and fast: the fresh venv gets only the wheel (``pip install --no-deps``) plus, on its
path, exactly the distributions the wheel declares (``Requires-Dist`` without extras, and
their requirements, recursively), linked from the test environment. So a dependency used
but not declared fails here, and the optional extras (dask, testinfra, the oVirt SDK) are
really absent while ``hcisim run --report`` works.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_LEFT_OUT = ("distributed", "testinfra", "ovirtsdk4")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]  # one build per run


def _source_tree(dest: Path) -> Path:
    """The project's files as a clone has them (tracked and new, not ignored), copied so
    that the build's own files (build/, *.egg-info) never land in the work tree."""
    if (ROOT / ".git").exists():
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                               cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
        for name in filter(None, names):
            src = ROOT / os.fsdecode(name)
            if src.is_file():
                (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / os.fsdecode(name))
    else:
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".venv", "runs", "build", "*.egg-info", "__pycache__"))
    return dest


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names needed by ``requirements`` (markers evaluated, no extras unless
    asked), resolved against what the test environment has installed."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = md.distribution(req.name)
        name = dist.metadata["Name"].lower()
        if name in seen and not req.extras:
            continue
        seen.add(name)
        for sub in dist.requires or []:
            r = Requirement(sub)
            if r.marker is None or r.marker.evaluate({"extra": ""}) or any(
                    r.marker.evaluate({"extra": e}) for e in req.extras):
                todo.append(r)
    return seen


def _link_site(names: set[str], site: Path) -> None:
    """Link each distribution's top-level files from this environment into ``site``."""
    site.mkdir()
    for name in names:
        dist = md.distribution(name)
        base = Path(str(dist.locate_file("")))
        for f in dist.files or []:
            top = f.parts[0]
            if top == ".." or top.endswith(".pth") or (site / top).exists():
                continue
            if (base / top).exists():
                (site / top).symlink_to(base / top)


def _wheel_requirements(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its declared dependencies; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_tree(tmp / "src")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp / "dist"), str(src)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("hcisim-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install",
                              "--no-deps", "-q", str(wheel)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    deps = _closure([*_wheel_requirements(wheel), "pytest"])  # pytest: to load the plugin
    _link_site(deps - {"hcisim"}, tmp / "deps")
    (site / "hcisim-test-deps.pth").write_text(f"{tmp / 'deps'}\n")
    return env_dir / "bin"


def _run(bindir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bindir / args[0]), *args[1:]], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_the_wheel_runs_the_main_job_with_a_report(installed: Path, tmp_path: Path) -> None:
    py = _run(installed, "python", "-c", "import hcisim, importlib.util as u; "
              "print(hcisim.__file__); print([m for m in "
              f"{EXTRAS_LEFT_OUT!r} if u.find_spec(m)])", cwd=tmp_path)
    assert py.returncode == 0, py.stderr
    where, extras = py.stdout.splitlines()
    assert Path(where).is_relative_to(installed.parent)  # not the work tree's hcisim
    assert extras == "[]"  # the optional jobs' packages are really not there
    scenario = tmp_path / "lab-power-loss.yaml"
    shutil.copy(ROOT / "scenarios" / "lab-power-loss.yaml", scenario)
    r = _run(installed, "hcisim", "run", str(scenario), "--report", "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<table" in page and "&lt;table" not in page
    assert "lab-power-loss" in page
    v = _run(installed, "hcisim", "--version", cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.startswith("hcisim "), v.stderr


def test_the_pytest_plugin_works_from_the_install(installed: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "scenarios" / "lab-power-loss.yaml", tmp_path / "cluster.yaml")
    r = _run(installed, "python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
             "--hcisim-target", "model", "cluster.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    from hcisim.scenario import load_scenario

    claims = len(load_scenario(tmp_path / "cluster.yaml").claims)
    assert f"{claims} passed" in r.stdout  # one item per claim of the file
