"""Lazy imports of heavy optional dependencies, with an install hint when missing.

``import poetml`` never imports TensorFlow, QKeras, hls4ml, pythia8, fastjet or dask;
stages call :func:`require` at the moment they need one.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .exceptions import MissingDependencyError

__all__ = ["EXTRAS", "require"]

#: module -> (pip distribution, poetml extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow==2.15.1", "learn"),
    "qkeras": ("qkeras==0.9.0", "learn"),
    "tensorflow_model_optimization": ("tensorflow-model-optimization", "learn"),
    "sklearn": ("scikit-learn", "learn"),
    "scipy": ("scipy", "learn"),
    "matplotlib": ("matplotlib", "learn"),
    "mplhep": ("mplhep", "learn"),
    "hls4ml": ("hls4ml==1.3.0", "firmware"),
    "pythia8mc": ("pythia8mc==8.317.2", "generate"),
    "pythia8": ("pythia8mc==8.317.2", "generate"),
    "fastjet": ("fastjet", "generate"),
    "dask": ("dask[distributed]", "batch"),
    "distributed": ("dask[distributed]", "batch"),
    "fsspec_xrootd": ("fsspec-xrootd", "xrootd"),
    "dask_awkward": ("dask-awkward", "coffea"),
    "coffea": ("coffea", "coffea"),
}


_TENSORFLOW_FAMILY = {"tensorflow", "qkeras", "tensorflow_model_optimization", "hls4ml"}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install."""
    if module.split(".")[0] in _TENSORFLOW_FAMILY:
        # TensorFlow's C++ start-up chatter says nothing a user can act on: CUDA/TensorRT not
        # found, CPU instruction notes, and TF 2.15's three "Unable to register cuDNN/cuFFT/
        # cuBLAS factory" lines, which it logs at ERROR level on every import (a known,
        # harmless double registration), so only FATAL C++ messages are kept.  Failures
        # still raise Python exceptions.  A value the user set wins.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        dist, extra = EXTRAS.get(top, (top, ""))
        hint = f"pip install 'poetml[{extra}]'" if extra else f"pip install {dist}"
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module} is needed{what} but cannot be imported ({exc}); install it with: {hint}"
        ) from exc
