"""The wheel a user installs: built from this checkout, installed non-editable into a fresh
venv, and run from a folder outside the checkout.

An editable install reads the checkout, so it hides a package or data file the wheel
lacks (a wheel once shipped without ``repro.explain`` and could not start). The fresh
venv gets nothing but the wheel; torch and repro's other dependencies come from the
environment running the tests through a ``.pth`` file placed after the venv's own
site-packages. Installing torch into the venv instead takes about 30 s and needs an index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# At the checkout's root, what a build must not read: environments, run folders and the
# output of earlier builds (a stale build/ folder would put deleted modules in the wheel).
NOT_SOURCE_AT_ROOT = {"venv", "build", "dist", "runs"}
NO_BASELINE_EXIT = 3


def _copy_source(dest: Path) -> Path:
    def skip(folder: str, names: list[str]) -> set[str]:
        at_root = Path(folder) == REPO
        return {
            name
            for name in names
            if name == "__pycache__"
            or name.endswith(".egg-info")
            or (at_root and (name.startswith(".") or name in NOT_SOURCE_AT_ROOT))
        }

    shutil.copytree(REPO, dest, ignore=skip)
    return dest


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        capture_output=True,
    )


class Install:
    """A venv holding repro from its wheel, and a scratch folder outside the checkout."""

    def __init__(self, root: Path) -> None:
        self.source = _copy_source(root / "source")
        # Built without isolation from this environment's setuptools: no index needed.
        _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
             "--wheel-dir", str(root / "dist"), str(self.source))  # fmt: skip
        (self.wheel,) = (root / "dist").glob("repro-*.whl")
        self.venv = root / "venv"
        venv.create(self.venv, with_pip=False)
        self.python = str(self.venv / "bin" / "python")
        # Installed before the venv can see this environment, so pip finds no other repro.
        _pip("--python", self.python, "install", "--no-deps", "--no-index", "-q", str(self.wheel))
        site = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        # A path line only: the .pth files of this environment (an editable repro's finder
        # among them) are not run, so `import repro` can only find the wheel's.
        ours = sysconfig.get_paths()
        Path(site, "dependencies.pth").write_text(f"{ours['purelib']}\n{ours['platlib']}\n")
        self.cwd = root / "elsewhere"
        self.cwd.mkdir()
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.home = root / "home"  # runs go here; no baselines but the shipped ones
        self.env["REPRO_HOME"] = str(self.home)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    return Install(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_module_and_data_file_of_the_checkout(install):
    names = set(zipfile.ZipFile(install.wheel).namelist())
    package = install.source / "repro"
    expected = {
        f"repro/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    shipped = install.source / "manifests"
    expected |= {
        f"repro/_manifests/{path.relative_to(shipped).as_posix()}"
        for path in shipped.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }
    assert expected - names == set(), "add their patterns to package-data in pyproject.toml"


def test_the_installed_command_starts_outside_the_checkout(install):
    done = install.run("repro", "--help")
    assert done.returncode == 0, done.stderr
    assert "verify" in done.stdout
    where = install.run("python", "-c", "import repro; print(repro.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(install.venv), where.stdout + where.stderr


def test_the_installed_repro_lists_the_baselines_its_wheel_ships(install):
    done = install.run("repro", "baseline", "list")
    assert done.returncode == 0, done.stderr
    shipped = sorted(p.name for p in (REPO / "manifests" / "baselines").iterdir() if p.is_dir())
    assert shipped
    for name in shipped:
        (line,) = [line for line in done.stdout.splitlines() if line.startswith(f"{name} ")]
        assert f"{install.venv}/" in line, line  # read from the wheel, not from the checkout


def test_a_smoke_verify_from_the_install_trains_and_finds_no_baseline(install):
    # No baseline of the smoke profile ships: the run trains, and the verdict says how to
    # record one (exit 3) rather than failing to start or judging by another profile's.
    done = install.run("repro", "verify", "--profile", "smoke", "--quiet")
    assert done.returncode == NO_BASELINE_EXIT, done.stdout + done.stderr
    assert done.stdout.startswith("NO_BASELINE"), done.stdout
    assert "repro baseline record --profile smoke" in done.stdout
    (run,) = (install.home / "runs").iterdir()
    assert (run / "record.json").is_file()
