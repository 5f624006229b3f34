"""Fixed-length feature vectors: pT-ordered, zero-padded object slots plus event-level
quantities.

Thin wrapper over ``poetml._core.build_features``; ``poetml._reference.build_features`` is
its plain NumPy twin.  The default layout is the one of the CMS Level-1 anomaly-detection
work: MET, then up to 4 electrons, 4 muons and 10 jets, each (pT, eta, phi): 57 numbers.
Feature names are ``met_pt, met_eta, met_phi, electron_0_pt, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .exceptions import ConfigError
from .schema import CANONICAL_FIELDS, COLLECTIONS, MASSES
from .selection import Selection

if TYPE_CHECKING:
    from .jagged import EventBatch

__all__ = ["EVENT_QUANTITIES", "MAX_SLOTS", "FeatureSpec", "build_features", "feature_names"]

#: Most object slots per collection (the Level-1 layout uses at most 10).
MAX_SLOTS = 1024

#: Event-level quantities that can be appended after the object slots.
EVENT_QUANTITIES = {
    "ht": "scalar sum of selected jet pT [GeV]",
    "met": "missing transverse momentum [GeV]",
    "n_muon": "number of selected muons",
    "n_electron": "number of selected electrons",
    "n_jet": "number of selected jets",
    "n_bjet": "number of selected jets above the b-tag threshold",
    "m_mumu": "invariant mass of the leading opposite-charge selected muon pair [GeV], 0 if none",
    "m_jj": "invariant mass of the two leading selected jets [GeV], 0 if fewer than two",
}


@dataclass(frozen=True)
class FeatureSpec:
    """Which object slots and event quantities make the feature vector."""

    slots: tuple[tuple[str, int], ...] = (("met", 1), ("electron", 4), ("muon", 4), ("jet", 10))
    fields: tuple[str, ...] = ("pt", "eta", "phi")
    event_quantities: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)

    def __post_init__(self) -> None:
        slots = tuple((str(c), int(n)) for c, n in self.slots)
        object.__setattr__(self, "slots", slots)
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "event_quantities", tuple(self.event_quantities))
        for i, (coll, count) in enumerate(slots):
            if coll not in COLLECTIONS:
                raise ConfigError(
                    f"unknown slot collection {coll!r}; valid: {', '.join(COLLECTIONS)}",
                    key=f"slots[{i}]",
                )
            if count < 0 or (coll == "met" and count > 1):
                raise ConfigError(
                    f"slot count for {coll!r} must be >= 0{' and at most 1' if coll == 'met' else ''}, "
                    f"got {count}",
                    key=f"slots[{i}]",
                )
            if coll in [c for c, _ in slots[:i]]:
                raise ConfigError(f"collection {coll!r} is given twice", key=f"slots[{i}]")
            if count > MAX_SLOTS:
                raise ConfigError(
                    f"{count} {coll} slots is more than the limit of {MAX_SLOTS} per collection",
                    key=f"slots[{i}]",
                )
        known = sorted({f for fields in CANONICAL_FIELDS.values() for f in fields})
        bad = [f for f in self.fields if f not in known]
        if bad:
            raise ConfigError(
                f"unknown feature fields {bad}; valid: {', '.join(known)}", key="fields"
            )
        bad = [q for q in self.event_quantities if q not in EVENT_QUANTITIES]
        if bad:
            raise ConfigError(
                f"unknown event quantities {bad}; valid: {', '.join(EVENT_QUANTITIES)}",
                key="event_quantities",
            )

    @property
    def n_features(self) -> int:
        """Length of the feature vector."""
        return sum(n for _, n in self.slots) * len(self.fields) + len(self.event_quantities)


def feature_names(spec: FeatureSpec | None = None) -> list[str]:
    """Names of the features :func:`build_features` writes for ``spec``, in order:
    ``met_pt, met_eta, met_phi`` (a one-slot ``met`` has no index), ``<collection>_<i>_<field>``
    for object slots, then the event quantities by their own names."""
    spec = FeatureSpec() if spec is None else spec
    names: list[str] = []
    for coll, count in spec.slots:
        for i in range(count):
            prefix = coll if coll == "met" else f"{coll}_{i}"
            names.extend(f"{prefix}_{f}" for f in spec.fields)
    names.extend(spec.event_quantities)
    return names


def slot_column(batch: EventBatch, coll: str, field_name: str) -> np.ndarray | None:
    """The column filling ``field_name`` of collection ``coll``, or None for zeros.

    Zeros for ``met`` eta and for fields a collection does not define (``btag`` of a
    muon) or defines as always 0 (jet ``charge``) when the batch lacks them; a field the
    collection defines but the batch lacks is a ValueError naming it.
    """
    from .images import batch_collection, met_field

    canonical = CANONICAL_FIELDS[coll]
    if coll == "met":
        if field_name == "eta":
            return None
        if field_name in batch.met:
            return met_field(batch, field_name)
        present: Any = batch.met
    else:
        c = batch_collection(batch, coll)
        if field_name in c.fields:
            return c.fields[field_name]
        present = c.fields
    if field_name not in canonical or canonical[field_name].startswith("always"):
        return None
    raise ValueError(
        f"feature field {field_name!r} requested but the batch's {coll!r} has no such field "
        f"(it has: {', '.join(present) or 'none'})"
    )


#: collections each event quantity reads
QUANTITY_NEEDS = {
    "ht": "jet",
    "met": "met",
    "n_muon": "muon",
    "n_electron": "electron",
    "n_jet": "jet",
    "n_bjet": "jet",
    "m_mumu": "muon",
    "m_jj": "jet",
}


def build_features(
    batch: EventBatch,
    spec: FeatureSpec | None = None,
    *,
    n_threads: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Feature vectors of a whole batch, in one call to the C++ core.

    Returns ``(features, names)``: float32 ``(N, F)`` and the F names of
    :func:`feature_names`.  Per event and slot, the objects passing ``spec.selection`` are
    sorted by pT (descending; ties keep input order) and the first ``count`` written, one
    value per field, the rest zero.  ``met`` reads ``batch.met`` (eta = 0).  Event
    quantities follow (see :data:`EVENT_QUANTITIES`): ``n_bjet`` counts selected jets with
    ``btag > selection.jet.btag_threshold``; ``m_mumu`` is the mass of the first
    opposite-charge pair (i < j) among the pT-ordered selected muons (muon mass from the
    batch, else the PDG value); ``m_jj`` of the two leading selected jets (massless when
    the batch has no jet mass).  ``n_threads``: None or 0 uses every core.

    ``out``: None gives a fresh array; or a C-contiguous float32 array of exactly
    ``(N, F)`` (else TypeError for the type/dtype, ValueError for the shape/layout), e.g. a
    buffer reused from chunk to chunk: it is zero-filled, written and returned as
    ``features``.
    """
    from . import _core
    from .images import (
        batch_collection,
        check_out,
        clean_jets,
        core_columns,
        resolve_cuts,
        resolve_threads,
    )

    spec = FeatureSpec() if spec is None else spec
    threads = resolve_threads(n_threads)
    names = feature_names(spec)
    check_out(out, (batch.n_events, len(names)), "build_features")
    batch = clean_jets(batch, spec.selection, threads)
    order: list[str] = []
    for coll, _ in spec.slots:
        if coll not in order:
            order.append(coll)
    for q in spec.event_quantities:
        if QUANTITY_NEEDS[q] not in order:
            order.append(QUANTITY_NEEDS[q])
    extra: dict[str, set[str]] = {c: set() for c in order}
    if "n_bjet" in spec.event_quantities:
        extra["jet"].add("btag")
    if "m_mumu" in spec.event_quantities:
        extra["muon"].update(("charge", "mass"))
    if "m_jj" in spec.event_quantities:
        extra["jet"].add("mass")
    collections = []
    for name in order:
        collection = None if name == "met" else batch_collection(batch, name)
        cuts = resolve_cuts(spec.selection, name, collection)
        collections.append(core_columns(batch, name, cuts, tuple(sorted(extra[name]))))
    slots = [
        (order.index(c), n, [slot_column(batch, c, f) for f in spec.fields]) for c, n in spec.slots
    ]
    index = {c: order.index(c) if c in order else -1 for c in ("muon", "electron", "jet", "met")}
    features = _core.build_features(
        collections,
        batch.n_events,
        slots,
        event_quantities=list(spec.event_quantities),
        **index,
        btag_threshold=float(spec.selection.jet.btag_threshold),
        muon_mass=MASSES["muon"],
        n_threads=threads,
        out=out,
    )
    return features, names
