"""Images and features inside a columnar analysis: awkward arrays of events, eager (a coffea
processor's NanoEvents, ``uproot`` arrays) or lazy (a dask-awkward collection, made
partition by partition).

.. code-block:: python

    from coffea.nanoevents import NanoEventsFactory
    from poetml import columnar

    events = NanoEventsFactory.from_root({"nano.root": "Events"}, mode="dask").events()
    images = columnar.rasterize(events)              # dask-awkward, (N, 32, 32, 4) per event
    features, names = columnar.build_features(events)
    images.compute().to_numpy()                      # == poetml.rasterize on the file

The events become an :class:`~poetml.jagged.EventBatch` with
:func:`poetml.jagged.from_awkward` (NanoEvents, flat NanoAOD, POET or canonical names) and
go through the same C++ kernels as ``poetml images`` / ``poetml features``, so the results
are the same bit for bit.  On a dask-awkward collection the kernel runs in
``dask_awkward.map_partitions``; when dask-awkward traces the graph with typetracers, only
the columns the kernel reads are marked as needed, so a coffea job reads just those
branches.  dask-awkward and coffea are imported only when used (``pip install
'poetml[coffea]'``).
"""

from __future__ import annotations

from typing import Any

from ._optional import require
from .datasets.convert import needed_collections
from .features import FeatureSpec, feature_names
from .features import build_features as _build_features
from .images import ImageSpec
from .images import rasterize as _rasterize
from .jagged import (
    from_awkward,
    is_typetracer,
    record_layout,
    rows,
    rows_typetracer,
    touch_columns,
)
from .schema import CANONICAL_FIELDS

__all__ = ["build_features", "is_dask", "kernel_fields", "rasterize"]


def is_dask(events: Any) -> bool:
    """True when ``events`` is a dask-awkward collection (checked without importing it)."""
    return type(events).__module__.split(".")[0] == "dask_awkward"


def _selection_fields(selection: Any, collection: str) -> set[str]:
    """Fields the object selection of ``collection`` cuts on (when the events have them)."""
    sel = getattr(selection, collection, None)
    out = set()
    if getattr(sel, "tight_id", False) or getattr(sel, "jet_id", False):
        out.add("tight_id")  # the jets' tight_id is their jet ID
    if getattr(sel, "max_iso", None) is not None:
        out.add("iso")
    return out


def kernel_fields(kind: str, spec: ImageSpec | FeatureSpec) -> dict[str, tuple[str, ...]]:
    """``{collection: fields}`` the kernel of ``kind`` (``images`` / ``features``) reads for
    ``spec``: kinematics, what the selection cuts on, and what the glyph mode, the feature
    fields and the event quantities use.  Only these are taken from the events (and read,
    on a dask-awkward collection)."""
    out: dict[str, tuple[str, ...]] = {}
    for coll in needed_collections(kind, spec):
        if coll == "met":
            wanted = {"pt", "phi"}
            if isinstance(spec, FeatureSpec):
                wanted |= set(spec.fields) & set(CANONICAL_FIELDS["met"])
        else:
            wanted = {"pt", "eta", "phi"} | _selection_fields(spec.selection, coll)
            if isinstance(spec, ImageSpec):
                if spec.mode == "glyph":
                    wanted.add("charge")
            else:
                wanted |= set(spec.fields) & set(CANONICAL_FIELDS[coll])
                quantities = set(spec.event_quantities)
                if coll == "jet" and "n_bjet" in quantities:
                    wanted.add("btag")
                if coll == "muon" and "m_mumu" in quantities:
                    wanted |= {"charge", "mass"}
                if coll == "jet" and "m_jj" in quantities:
                    wanted.add("mass")
        out[coll] = tuple(f for f in CANONICAL_FIELDS[coll] if f in wanted)
    if "jet" in out and getattr(spec.selection.jet, "lepton_dr", None) is not None:
        # lepton-jet cleaning needs the selected leptons, channels / slots or not
        for lep in ("muon", "electron"):
            have = set(out.get(lep, ()))
            need = {"pt", "eta", "phi"} | _selection_fields(spec.selection, lep)
            out[lep] = tuple(f for f in CANONICAL_FIELDS[lep] if f in have | need)
    return out


def _images_partition(events: Any, spec: ImageSpec, layout: str, n_threads: int | None) -> Any:
    fields = kernel_fields("images", spec)
    if is_typetracer(events):  # dask-awkward tracing: say which columns, give the form
        touch_columns(events, layout=layout, collections=list(fields), if_present=fields)
        return rows_typetracer(spec.shape)
    batch = from_awkward(events, layout=layout, collections=list(fields), if_present=fields)
    return rows(_rasterize(batch, spec, n_threads=n_threads))


def _features_partition(events: Any, spec: FeatureSpec, layout: str, n_threads: int | None) -> Any:
    fields = kernel_fields("features", spec)
    if is_typetracer(events):
        touch_columns(events, layout=layout, collections=list(fields), if_present=fields)
        return rows_typetracer((len(feature_names(spec)),))
    batch = from_awkward(events, layout=layout, collections=list(fields), if_present=fields)
    return rows(_build_features(batch, spec, n_threads=n_threads)[0])


def rasterize(
    events: Any,
    spec: ImageSpec | None = None,
    *,
    layout: str = "auto",
    n_threads: int | None = None,
) -> Any:
    """Event images of an awkward array of events, as :func:`poetml.images.rasterize`.

    ``events``: an awkward record array (NanoEvents included) -> float32 NumPy array
    ``(N, n_eta, n_phi, C)``; a dask-awkward array -> a dask-awkward array of the same
    images (one ``n_eta * n_phi * C * float32`` entry per event), built partition by
    partition; ``.compute().to_numpy()`` gives the NumPy array.  ``layout``: how the
    record names its collections (see :func:`poetml.jagged.from_awkward`).
    """
    spec = ImageSpec() if spec is None else spec
    if is_dask(events):
        dak = require("dask_awkward", "images over a dask-awkward collection")
        layout = record_layout(events, layout)
        return dak.map_partitions(
            _images_partition,
            events,
            spec=spec,
            layout=layout,
            n_threads=n_threads,
            label="poetml-rasterize",
        )
    fields = kernel_fields("images", spec)
    batch = from_awkward(events, layout=layout, collections=list(fields), if_present=fields)
    return _rasterize(batch, spec, n_threads=n_threads)


def build_features(
    events: Any,
    spec: FeatureSpec | None = None,
    *,
    layout: str = "auto",
    n_threads: int | None = None,
) -> tuple[Any, list[str]]:
    """Feature vectors of an awkward array of events, as :func:`poetml.features.build_features`.

    Returns ``(features, names)``: for an awkward record array a float32 NumPy array
    ``(N, F)``; for a dask-awkward array a dask-awkward array of the same rows, built
    partition by partition.  ``names`` are those of :func:`poetml.features.feature_names`.
    """
    spec = FeatureSpec() if spec is None else spec
    names = feature_names(spec)
    if is_dask(events):
        dak = require("dask_awkward", "features over a dask-awkward collection")
        layout = record_layout(events, layout)
        lazy = dak.map_partitions(
            _features_partition,
            events,
            spec=spec,
            layout=layout,
            n_threads=n_threads,
            label="poetml-build-features",
        )
        return lazy, names
    fields = kernel_fields("features", spec)
    batch = from_awkward(events, layout=layout, collections=list(fields), if_present=fields)
    return _build_features(batch, spec, n_threads=n_threads)[0], names
