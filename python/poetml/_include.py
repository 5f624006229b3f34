"""Where poetml's C++ core headers are, for C++ programs compiled against them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["get_include"]


def get_include() -> str:
    """The directory to pass to the compiler as ``-I``: it holds ``poetml/emulate.hpp``,
    ``poetml/features.hpp`` and the rest of the header-only C++ core (pure C++17, no Python).

    An installed poetml ships them as ``poetml/include/poetml/*.hpp`` (CMake installs them
    next to the compiled module); a source checkout (``PYTHONPATH=python``, or an editable
    install) has them in ``cpp/include``.  Example::

        g++ -std=c++17 -O2 -pthread -I"$(python -c 'import poetml; print(poetml.get_include())')" prog.cpp
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "include", here.parents[1] / "cpp" / "include"):
        if (candidate / "poetml" / "emulate.hpp").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"poetml's C++ headers are neither installed in {here / 'include'} nor in a source "
        f"checkout at {here.parents[1] / 'cpp' / 'include'}; reinstall poetml"
    )
