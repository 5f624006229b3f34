"""The C++ core needs no Python: compile tests/cpp/*.cpp with a plain C++17 compiler
against cpp/include only (no Python or pybind11 headers) and run them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tests" / "cpp").glob("*.cpp"))


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return name
    return None


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_standalone_program(source: Path, tmp_path: Path) -> None:
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (g++, clang++ or $CXX) on PATH")
    exe = tmp_path / source.stem
    cmd = [
        cxx,
        "-std=c++17",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-I",
        str(ROOT / "cpp" / "include"),
        str(source),
        "-o",
        str(exe),
    ]
    build = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert build.returncode == 0, f"{' '.join(cmd)} failed:\n{build.stderr}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("OK")


def test_core_headers_have_no_python() -> None:
    for header in (ROOT / "cpp" / "include" / "poetml").glob("*.hpp"):
        text = header.read_text()
        assert "pybind11" not in text, header
        assert "Python.h" not in text, header
        assert "#pragma once" in text, header
