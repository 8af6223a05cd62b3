"""Sessions: `nox` runs the tests; `nox -s lint`, `nox -s verify`, `nox -s gpu`, `nox -s bench`,
`nox -s evidence`."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

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
    # The test extra too: the tests are type-checked against pytest's own types (without
    # them pytest.skip is not known to end a test, and narrowing after it is lost).
    _install_cpu_stack(session, "test", "lint")
    session.run("ruff", "check", "repro", "tests", "benchmarks", "examples", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "repro", "tests", "benchmarks", "examples", "noxfile.py"
    )
    session.run("mypy")  # strict on repro/ (pyproject.toml)
    session.run("mypy", "tests", "benchmarks", "examples", "noxfile.py")  # tests need not annotate


@nox.session
def verify(session: nox.Session) -> None:
    """Install repro and run `repro verify` against the shipped baseline."""
    _install_cpu_stack(session)
    session.run("repro", "verify", *session.posargs)


# Run by the gpu session in the runner's interpreter (`python -c`): its torch, and which of
# the requirements given as arguments it lacks or has below their `>=` floor. Prints one JSON line.
GPU_PREFLIGHT = r"""
import importlib.metadata as metadata, json, re, sys

def numbers(version):
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])

facts = {"python": sys.executable, "torch": None, "missing": []}
try:
    import torch
except Exception as exc:
    facts["torch_error"] = f"{type(exc).__name__}: {exc}"
else:
    facts.update(
        torch=torch.__file__,
        torch_version=torch.__version__,
        cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
    )
try:
    facts["numpy_version"] = metadata.version("numpy")
except metadata.PackageNotFoundError:
    facts["numpy_version"] = None
for requirement in sys.argv[1:]:
    name, _, floor = re.match(r"([A-Za-z0-9._-]+)\s*(>=\s*([\w.]+))?", requirement).groups()
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    if installed is None or (floor and numbers(installed) < numbers(floor)):
        facts["missing"].append(requirement)
print(json.dumps(facts))
"""


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


@nox.session(default=False, venv_backend="none")
def gpu(session: nox.Session) -> None:
    """GPU runners: the runner's own environment and CUDA torch; gpu-marked tests, then `repro verify`.

    Runs in the interpreter that runs nox (`python -m nox -s gpu` from the environment that
    holds the CUDA build of torch: a venv, conda or uv environment alike). It installs only
    the requirements that environment lacks, never torch, and never a numpy other than the
    one installed (a constraints file pins both), then repro itself without build isolation
    or dependencies, so no step needs the network when everything is present. When no GPU
    baseline matches, `repro verify --record-missing` records one into the configured
    baseline folder and exits 3 (NO_BASELINE) with its path: keep it as a cache or artifact;
    the session never passes silently.
    """
    python = sys.executable
    project = nox.project.load_toml("pyproject.toml")["project"]
    wanted = [
        requirement
        for requirement in [*project["dependencies"], *project["optional-dependencies"]["test"]]
        if _requirement_name(requirement) != "torch"
    ] + ["setuptools>=68"]  # the build backend, which --no-build-isolation takes from here
    output = session.run(python, "-c", GPU_PREFLIGHT, *wanted, silent=True, external=True)
    facts = json.loads(str(output).strip().splitlines()[-1])
    if facts["torch"] is None:
        session.error(
            f"{facts['python']} cannot import torch ({facts['torch_error']}); run nox from the "
            "environment that holds your CUDA build of torch: `python -m pip install nox && "
            "python -m nox -s gpu`."
        )
    session.log(
        f"python {facts['python']}; torch {facts['torch_version']} (CUDA {facts['cuda']}) "
        f"at {facts['torch']}"
    )
    if not facts["cuda_available"]:
        session.error(
            f"torch {facts['torch_version']} at {facts['torch']} sees no CUDA GPU "
            f"(torch.version.cuda is {facts['cuda']}); run `nox -s gpu` on a GPU machine, "
            "from the environment that holds its CUDA build of torch."
        )
    pip = (python, "-m", "pip", "install")
    if facts["missing"]:
        with tempfile.TemporaryDirectory(prefix="repro-nox-") as scratch:
            # pip may add packages but must keep this torch and numpy: a newer numpy pulled
            # in by scipy or matplotlib would shadow the one torch was built against.
            pins = [f"torch=={facts['torch_version']}"]
            if facts["numpy_version"]:
                pins.append(f"numpy=={facts['numpy_version']}")
            constraints = Path(scratch) / "constraints.txt"
            constraints.write_text("\n".join(pins) + "\n")
            session.run(*pip, "--constraint", str(constraints), *facts["missing"], external=True)
    session.run(*pip, "--no-build-isolation", "--no-deps", "-e", ".", external=True)
    session.run(python, "-m", "pytest", "-m", "gpu", *session.posargs, external=True)
    session.run(
        python, "-m", "repro", "verify", "--profile", "full", "--record-missing", external=True
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run every measured claim and print one table."""
    _install_cpu_stack(session, "test")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(default=False)
def evidence(session: nox.Session) -> None:
    """The verdict's false-alarm rate and power on real changes: the unperturbed environment
    rows (about 40 min on 2 cores), then the perturbed draws (hours; --rows to choose)."""
    _install_cpu_stack(session, "test")
    session.run("python", "benchmarks/evidence.py", *session.posargs)
