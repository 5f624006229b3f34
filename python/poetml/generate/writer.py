"""Write detector output to ROOT files in the POET layouts with uproot.

``poet``: one TTree ``Events`` per analyzer directory (``mymuons/Events``,
``myelectrons/Events``, ``myjets/Events``, ``mymets/Events``, ``mygenparticles/Events``),
aligned entry by entry.  ``merged``: every branch in one tree ``events``.  Branch names and
types are those of :data:`poetml.schema.POET_COLLECTIONS`: counters (``numbermuon`` ...)
are ``int32``, ``std::vector<float>`` branches are jagged float32 (uproot writes them as
counted C arrays ``float[numbermuon]``, which every ROOT and uproot reader reads as the
same jagged values), ``std::vector<int>`` are jagged int32, scalars are float32.

The file is written under a temporary name in the target directory and renamed only when
complete, so an interrupted run never leaves a partial file under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import commit, temp_path
from ..schema import (
    GENERATION_METADATA_KEY,
    PILEUP_PTHAT_BRANCH_NAME,
    POET_COLLECTIONS,
    POET_MERGED_TREE,
    POET_TREE,
    PTHAT_BRANCH_NAME,
    WEIGHT_BRANCH_NAME,
)
from .detector import DetectorOutput

__all__ = [
    "LAYOUTS",
    "METADATA_KEY",
    "WEIGHT_BRANCH",
    "NtupleWriter",
    "read_metadata",
    "tree_paths",
]

#: what the files hold beyond the detector (part of the default dataset's cache key):
#: 1 per-event ``weight``; 2 also ``pthat``; 3 also ``pileup_pthat_max``, and pile-up
#: drawn from the pool's soft events only
NTUPLE_FORMAT = 3

#: the per-event weight [pb] (float64, in the generator-truth tree of either layout)
WEIGHT_BRANCH = WEIGHT_BRANCH_NAME
#: the file-level metadata: a JSON string (TObjString) at the top of the file
METADATA_KEY = GENERATION_METADATA_KEY

#: Output layouts of ``poetml generate`` (``merged`` is the schema's ``poet-merged``).
LAYOUTS = ("poet", "merged")

# collection -> jagged record name (uproot: counter_name(name), field_name(name, field))
_PREFIX = {"muon": "muon", "electron": "electron", "jet": "jet", "genparticle": "GenPart"}


def tree_paths(layout: str) -> dict[str, str]:
    """collection -> tree path for ``layout``."""
    if layout == "poet":
        return {c: f"{p.directory}/{POET_TREE}" for c, p in POET_COLLECTIONS.items()}
    if layout == "merged":
        return dict.fromkeys(POET_COLLECTIONS, POET_MERGED_TREE)
    raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")


def _record(coll: str, out: DetectorOutput) -> dict[str, object]:
    """Branch dict of one collection for uproot (jagged fields zipped under the prefix)."""
    import awkward as ak

    pc = POET_COLLECTIONS[coll]
    cols = out.columns[coll]
    data: dict[str, object] = {}
    if pc.counter is None:  # met: scalars only
        return {b.name: cols[b.name] for b in pc.branches}
    prefix = _PREFIX[coll]
    counts = out.counts[coll]
    jagged = {}
    for b in pc.branches:
        if b.name == pc.counter:
            continue
        if b.ctype.startswith("std::vector"):
            jagged[b.name[len(prefix) + 1 :]] = ak.unflatten(cols[b.name], counts)
        else:  # per-event scalars in a jagged collection's tree (GenMET_*)
            data[b.name] = cols[b.name]
    data = {prefix: ak.zip(jagged), **data}
    return data


_COUNTERS = {prefix: POET_COLLECTIONS[c].counter for c, prefix in _PREFIX.items()}


class NtupleWriter:
    """Context manager: ``with NtupleWriter(path, layout) as w: w.write(chunk) ...``.

    Chunks are appended in the order given; the temporary file becomes ``path`` on a clean
    exit and is deleted on an exception (including KeyboardInterrupt).
    """

    def __init__(self, path: str | os.PathLike[str], layout: str = "poet") -> None:
        self.path = Path(path)
        self.layout = layout
        self.trees = tree_paths(layout)
        self.tmp = temp_path(self.path)
        self._file = None
        self._made = False
        self.entries = 0
        #: JSON-ready dict written as the string ``poetml_generation`` on a clean exit
        self.metadata: dict[str, Any] | None = None

    def __enter__(self) -> NtupleWriter:  # noqa: PYI034
        import uproot

        self._file = uproot.recreate(self.tmp)
        return self

    def write(
        self,
        out: DetectorOutput,
        weight: np.ndarray | None = None,
        pthat: np.ndarray | None = None,
        pileup_pthat: np.ndarray | None = None,
    ) -> None:
        """Append one chunk; ``weight``: its per-event weights [pb] (float64 branch
        ``weight`` of the generator-truth tree); ``pthat``: each event's pT-hat [GeV]
        (float32 branch ``pthat`` beside it); ``pileup_pthat``: the largest pT-hat of its
        pile-up interactions (float32 branch ``pileup_pthat_max``)."""
        f = self._file
        assert f is not None
        per_tree: dict[str, dict[str, object]] = {}
        for coll, tree in self.trees.items():
            per_tree.setdefault(tree, {}).update(_record(coll, out))
        if weight is not None:
            weight = np.ascontiguousarray(weight, dtype=np.float64)
            if weight.shape != (out.n_events,):
                raise ValueError(f"{len(weight)} weights for {out.n_events} events")
            per_tree[self.trees["genparticle"]][WEIGHT_BRANCH] = weight
        for name, values in ((PTHAT_BRANCH_NAME, pthat), (PILEUP_PTHAT_BRANCH_NAME, pileup_pthat)):
            if values is None:
                continue
            values = np.ascontiguousarray(values, dtype=np.float32)
            if values.shape != (out.n_events,):
                raise ValueError(f"{len(values)} {name} values for {out.n_events} events")
            per_tree[self.trees["genparticle"]][name] = values
        if not self._made:
            for tree, data in per_tree.items():
                types = {
                    k: (v.type if hasattr(v, "layout") else np.asarray(v).dtype)
                    for k, v in data.items()
                }
                f.mktree(
                    tree,
                    {k: _branch_type(v) for k, v in data.items()} if types else {},
                    counter_name=lambda name: _COUNTERS[name],
                    field_name=lambda outer, inner: f"{outer}_{inner}",
                )
            self._made = True
        for tree, data in per_tree.items():
            f[tree].extend(data)
        self.entries += out.n_events

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        if f is not None:
            if exc_type is None and self.metadata is not None:
                f[METADATA_KEY] = json.dumps(self.metadata, sort_keys=True)
            f.close()
        if exc_type is None:
            commit(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _branch_type(v: object) -> object:
    import awkward as ak

    if isinstance(v, ak.Array):
        return v.type
    return np.asarray(v).dtype


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The generation metadata of a file ``poetml generate`` wrote (None if it has none)."""
    import uproot

    with uproot.open(path) as f:
        if METADATA_KEY not in f:
            return None
        return dict(json.loads(str(f[METADATA_KEY])))
