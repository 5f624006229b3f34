"""Developer tasks, after the Scientific Python development guide
(https://learn.scientific-python.org/development/guides/tasks/).

    nox -l                                  # list the sessions
    nox -s tests                            # the test suite, as .ci/run runs it
    nox -s tests -- -m slow -k training     # extra arguments go to pytest
    nox -s tests_numpy2                     # the core on NumPy 2, no TensorFlow, with coffea
    nox -s notebooks                        # execute the tutorial notebooks (docs/tutorials)
    nox -s lint                             # pre-commit hooks on every file (ruff, mypy ...)
    nox -s lint -- ruff                     # one hook (arguments go to pre-commit run)
    nox -s bench                            # every bench/bench_*.py with its defaults
    nox -s bench -- bench/bench_batch.py --only throughput

Each session builds poetml (the C++ core too) into its own virtual environment; pass
``-R`` to reuse an environment without reinstalling.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

DIR = Path(__file__).parent.resolve()

nox.needs_version = ">=2024.3.2"
nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "uv|virtualenv"


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """Run the pre-commit hooks on all files: file checks, ruff, ruff format --check and mypy
    (the lint and type checks that .ci/run runs, except stubtest, which needs the built core).
    """
    session.install("pre-commit")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Install poetml with every extra, as .ci/run does, and run pytest."""
    session.env["POETML_WERROR"] = os.environ.get("POETML_WERROR", "ON")
    session.install(".[all,test]")
    session.run("pytest", *session.posargs)


@nox.session
def tests_numpy2(session: nox.Session) -> None:
    """The core on NumPy 2 without TensorFlow, as .ci/run's second environment: poetml with
    the generate, batch and coffea extras and ``numpy>=2``; the whole default suite runs,
    the tests that need TensorFlow, scikit-learn or hls4ml skip with their reason."""
    session.env["POETML_WERROR"] = os.environ.get("POETML_WERROR", "ON")
    session.install(".[generate,batch,coffea,test]", "numpy>=2")
    session.run(
        "python",
        "-c",
        "import numpy, sys; sys.exit(int(numpy.__version__.split('.')[0]) < 2)",
    )
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def notebooks(session: nox.Session) -> None:
    """Execute the tutorial notebooks as .ci/run does; ``-- --overwrite`` stores the new
    outputs in them (what the documentation shows)."""
    session.install(".[all,test]")
    session.run("pytest", "--nbmake", "docs/tutorials", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks; they print ratios measured against baselines in the same run.

    Without arguments every ``bench/bench_*.py`` runs with its defaults, one after the
    other; with arguments, ``python <arguments>`` runs (a script and its options).
    """
    session.install(".[all,test]")
    if session.posargs:
        session.run("python", *session.posargs)
        return
    scripts = sorted((DIR / "bench").glob("bench_*.py"))
    if not scripts:
        session.error(f"no bench/bench_*.py scripts under {DIR}")
    for script in scripts:
        session.log(f"--- {script.relative_to(DIR)}")
        session.run("python", str(script))
