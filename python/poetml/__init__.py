"""poetml: CMS Open Data events from POET and NanoAOD ntuples to event images, feature
vectors, trained networks and hls4ml trigger firmware.

``import poetml`` is light: NumPy plus poetml's own modules.  uproot, awkward, h5py and the
heavy optional dependencies (TensorFlow, QKeras, hls4ml, pythia8, dask) load only when a
function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> module that defines it (imported on first access)
_LAZY = {
    "iterate": "reading",
    "inspect": "reading",
    "EventBatch": "jagged",
    "Collection": "jagged",
    "from_awkward": "jagged",
    "rasterize": "images",
    "rasterize_sparse": "images",
    "densify": "images",
    "SparseImages": "images",
    "ImageSpec": "images",
    "build_features": "features",
    "FeatureSpec": "features",
    "Selection": "selection",
    "MuonSelection": "selection",
    "ElectronSelection": "selection",
    "JetSelection": "selection",
    "ConfigError": "exceptions",
    "ReadError": "exceptions",
    "PoetmlError": "exceptions",
    "MissingDependencyError": "exceptions",
    "get_include": "_include",
}

# spelled out (not built from _LAZY) so linters and type checkers see the public names;
# the TYPE_CHECKING imports below give them their types.  tests/test_import_light.py checks
# that it names exactly __version__ and the keys of _LAZY.
__all__ = [
    "Collection",
    "ConfigError",
    "ElectronSelection",
    "EventBatch",
    "FeatureSpec",
    "ImageSpec",
    "JetSelection",
    "MissingDependencyError",
    "MuonSelection",
    "PoetmlError",
    "ReadError",
    "Selection",
    "SparseImages",
    "__version__",
    "build_features",
    "densify",
    "from_awkward",
    "get_include",
    "inspect",
    "iterate",
    "rasterize",
    "rasterize_sparse",
]

if TYPE_CHECKING:
    from ._include import get_include
    from .exceptions import ConfigError, MissingDependencyError, PoetmlError, ReadError
    from .features import FeatureSpec, build_features
    from .images import ImageSpec, SparseImages, densify, rasterize, rasterize_sparse
    from .jagged import Collection, EventBatch, from_awkward
    from .reading import inspect, iterate
    from .selection import ElectronSelection, JetSelection, MuonSelection, Selection


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'poetml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
