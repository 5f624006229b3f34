"""Leading dimuon invariant mass from muon collections, flat arrays or feature vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MUON_MASS", "dimuon_mass", "dimuon_mass_from_features"]

#: Muon mass [GeV] (PDG).
MUON_MASS = 0.1056584


def _pair_mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2) -> np.ndarray:
    px1, py1, pz1 = pt1 * np.cos(phi1), pt1 * np.sin(phi1), pt1 * np.sinh(eta1)
    px2, py2, pz2 = pt2 * np.cos(phi2), pt2 * np.sin(phi2), pt2 * np.sinh(eta2)
    e1 = np.sqrt(px1**2 + py1**2 + pz1**2 + m1**2)
    e2 = np.sqrt(px2**2 + py2**2 + pz2**2 + m2**2)
    m2_ = (e1 + e2) ** 2 - (px1 + px2) ** 2 - (py1 + py2) ** 2 - (pz1 + pz2) ** 2
    return np.sqrt(np.maximum(m2_, 0.0))


def dimuon_mass(
    batch_or_pt: Any,
    eta: Any = None,
    phi: Any = None,
    charge: Any = None,
    offsets: Any = None,
    *,
    mass: Any = MUON_MASS,
    opposite_sign: bool = True,
    min_pt: float = 0.0,
    collection: str = "muon",
) -> np.ndarray:
    """Invariant mass [GeV] of the leading dimuon of every event (``NaN`` when none).

    The pair is the highest-pT muon and the highest-pT other muon of opposite charge
    (of any charge with ``opposite_sign=False``), among muons with ``pt > min_pt``.

    Inputs, one of:

    * a :class:`poetml.jagged.EventBatch` (its ``collection``, default ``muon``, with fields
      ``pt``, ``eta``, ``phi``, ``charge`` and ``mass`` if present) or a
      :class:`poetml.jagged.Collection`;
    * flat per-muon arrays ``pt, eta, phi, charge`` plus ``offsets`` (length
      ``n_events + 1``);
    * padded per-event arrays ``(N, M)`` (slots with ``pt <= 0`` are empty), as in the
      feature vectors; ``offsets`` must then be ``None``.

    ``mass`` is a constant or a per-muon array (the muon mass by default); ``charge`` may be
    ``None`` only with ``opposite_sign=False``.
    """
    from ..jagged import Collection, EventBatch

    if isinstance(batch_or_pt, EventBatch):
        batch_or_pt = batch_or_pt[collection]
    if isinstance(batch_or_pt, Collection):
        coll = batch_or_pt
        pt, eta, phi = coll["pt"], coll["eta"], coll["phi"]
        charge = coll.fields.get("charge")
        if "mass" in coll:
            mass = coll["mass"]
        offsets = coll.offsets
    else:
        pt = batch_or_pt
        if eta is None or phi is None:
            raise ValueError("dimuon_mass needs pt, eta and phi (or an EventBatch / Collection)")
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if opposite_sign and charge is None:
        raise ValueError(
            "dimuon_mass: no muon charge given; pass charge or opposite_sign=False "
            "(feature vectors carry no charge)"
        )
    q = None if charge is None else np.asarray(charge, dtype=np.float64)
    m = np.broadcast_to(np.asarray(mass, dtype=np.float64), pt.shape)
    if offsets is None:
        if pt.ndim != 2:
            raise ValueError(
                f"without offsets, pt must be a padded (N, M) array; got shape {pt.shape}"
            )
        for name, a in (("eta", eta), ("phi", phi), ("charge", q)):
            if a is not None and a.shape != pt.shape:
                raise ValueError(f"{name} has shape {a.shape}, pt has {pt.shape}")
        n_events = pt.shape[0]
        valid = pt > 0
        counts = valid.sum(axis=1)
        offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        pt, eta, phi, m = pt[valid], eta[valid], phi[valid], m[valid]
        q = None if q is None else q[valid]
    else:
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must be 1-D, start at 0 and be non-decreasing")
        n_events = len(offsets) - 1
        for name, a in (("pt", pt), ("eta", eta), ("phi", phi), ("charge", q), ("mass", m)):
            if a is not None and (a.ndim != 1 or len(a) != offsets[-1]):
                raise ValueError(
                    f"{name} has shape {a.shape}; offsets end at {int(offsets[-1])} muons"
                )
    out = np.full(n_events, np.nan)
    counts = np.diff(offsets)
    event = np.repeat(np.arange(n_events), counts)
    keep = pt > min_pt
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return out
    ev = event[idx]
    order = idx[np.lexsort((-pt[idx], ev))]  # by event, then decreasing pt
    ev = event[order]
    first = np.r_[True, ev[1:] != ev[:-1]]
    starts = np.flatnonzero(first)
    lead_pos = np.repeat(starts, np.diff(np.r_[starts, len(order)]))  # leading of own event
    lead = order[lead_pos]
    cand = ~first
    if opposite_sign:
        assert q is not None
        cand &= q[order] * q[lead] < 0
    cpos = np.flatnonzero(cand)
    if len(cpos) == 0:
        return out
    cev = ev[cpos]
    firstc = np.r_[True, cev[1:] != cev[:-1]]
    sub = order[cpos[firstc]]
    ld = lead[cpos[firstc]]
    out[cev[firstc]] = _pair_mass(
        pt[ld], eta[ld], phi[ld], m[ld], pt[sub], eta[sub], phi[sub], m[sub]
    )
    return out


def dimuon_mass_from_features(
    features: Any, feature_names: Sequence[str], *, mass: float = MUON_MASS, prefix: str = "muon"
) -> np.ndarray:
    """Leading dimuon mass from feature vectors with slots ``muon_<i>_pt/eta/phi``.

    Feature vectors carry no charge, so this is the mass of the two leading muons whatever
    their charges (``NaN`` with fewer than two).  Features must be *unscaled* (GeV).
    """
    x = np.asarray(features, dtype=np.float64)
    names = list(feature_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features shape {x.shape} does not match {len(names)} feature names")
    slots = []
    i = 0
    while f"{prefix}_{i}_pt" in names:
        slots.append(i)
        i += 1
    if not slots:
        raise ValueError(f"no '{prefix}_0_pt' in feature names (have: {', '.join(names[:8])}...)")
    cols = {
        v: np.stack([x[:, names.index(f"{prefix}_{i}_{v}")] for i in slots], axis=1)
        for v in ("pt", "eta", "phi")
    }
    return dimuon_mass(cols["pt"], cols["eta"], cols["phi"], None, mass=mass, opposite_sign=False)
