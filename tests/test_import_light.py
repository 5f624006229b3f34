"""``import poetml`` (and its CLI and reading/datasets modules) stays light: no heavy
optional dependency is imported until a function that needs it runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "tensorflow",
    "qkeras",
    "hls4ml",
    "pythia8",
    "pythia8mc",
    "fastjet",
    "dask",
    "distributed",
    "dask_awkward",
    "coffea",
)


@pytest.mark.parametrize(
    "statement",
    [
        "import poetml",
        "import poetml.cli; poetml.cli.build_parser()",
        "import poetml.reading, poetml.jagged, poetml.datasets, poetml.schema",
        "import poetml.columnar",
    ],
)
def test_import_does_not_load_heavy_dependencies(statement):
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(res.stdout.strip().splitlines()[-1]))
    assert "poetml" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"{statement!r} imported {heavy}"


def test_public_names_are_the_lazy_ones():
    import poetml

    assert sorted(poetml.__all__) == sorted(["__version__", *poetml._LAZY])
    for name in poetml.__all__:
        assert getattr(poetml, name) is not None
