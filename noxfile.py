"""Sessions: `nox` runs the tests; `nox -s lint`, `nox -s verify`, `nox -s gpu`, `nox -s bench`,
`nox -s evidence`."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

# On Linux x86-64 this resolves to the CPU wheel; elsewhere pip honours
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, which is how a user points it at a CPU index.
CPU_TORCH = os.environ.get("REPRO_TORCH_SPEC", "torch==2.13.0")


def _install_cpu_stack(session: nox.Session, *extras: str) -> None:
    """A CPU build of torch first (an unpinned torch would pull a multi-GB CUDA build), then repro."""
    installed = session.run(
        "python",
        "-c",
        "import importlib.util as u; print(u.find_spec('torch') is not None)",
        silent=True,
    )
    if not installed or "True" not in installed:
        session.install(CPU_TORCH, "numpy")
    target = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", target)


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test that does not need a GPU (slow ones included)."""
    _install_cpu_stack(session, "test")
    session.run("pytest", "-m", "not gpu", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy, clean."""
    _install_cpu_stack(session, "lint")
    session.run("ruff", "check", "repro", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "repro", "tests", "benchmarks", "noxfile.py")
    session.run("mypy")


@nox.session
def verify(session: nox.Session) -> None:
    """Install repro and run `repro verify` against the shipped baseline."""
    _install_cpu_stack(session)
    session.run("repro", "verify", *session.posargs)


@nox.session(default=False, venv_params=["--system-site-packages"])
def gpu(session: nox.Session) -> None:
    """GPU runners: the machine's own CUDA torch; gpu-marked tests, then `repro verify` (full profile).

    When no GPU baseline matches, `repro verify --record-missing` records one into the
    configured baseline folder and exits 3 (NO_BASELINE) with its path: keep it as a
    cache or artifact; the session never passes silently.
    """
    session.install("--no-deps", "-e", ".")
    session.install("pytest", "pyyaml", "gitpython", "nvidia-ml-py", "scipy", "matplotlib")
    session.run("python", "-c", "import torch; assert torch.cuda.is_available(), 'no CUDA device'")
    session.run("pytest", "-m", "gpu", *session.posargs)
    session.run("repro", "verify", "--profile", "full", "--record-missing")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run every measured claim and print one table."""
    _install_cpu_stack(session, "test")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(default=False)
def evidence(session: nox.Session) -> None:
    """The verdict's false-alarm rate and power on real changes (about an hour on 2 cores)."""
    _install_cpu_stack(session, "test")
    session.run("python", "benchmarks/evidence.py", *session.posargs)
