"""Plain NumPy twins of every ``poetml._core`` function, written for clarity, not speed.

:func:`rasterize` and :func:`build_features` take the same arguments as
:func:`poetml.images.rasterize` and :func:`poetml.features.build_features` and return the
same arrays; the property tests (``tests/test_core_properties.py``) compare them with the
C++ core on random batches.  They share the Python-side decisions (which cuts apply, which
column fills a feature) with the fast wrappers and redo everything the C++ does here.

Floating point: bins are computed in float64 from the float32 inputs with exactly the C++
expressions, ``(eta - eta_min) * (n_eta / (eta_max - eta_min))`` and
``(phi + pi) * (n_phi / (2 pi))``, so pixel indices agree bit for bit, also for objects on
bin edges and at phi = +-pi.  Histogram deposits are float32 sums in the same order
(``np.add.at``), so histogram images agree exactly; ``exp``/``log1p`` and the normalisation
sum may differ from the C++ in the last bit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import QUANTITY_NEEDS, FeatureSpec, feature_names, slot_column
from .images import (
    CutParams,
    ImageSpec,
    SparseImages,
    batch_collection,
    check_out,
    keep_objects,
    lepton_cleaning_inputs,
    met_field,
    resolve_cuts,
    resolve_threads,
)
from .schema import MASSES

if TYPE_CHECKING:
    from .jagged import EventBatch

__all__ = ["build_features", "clean_jets", "densify", "rasterize", "rasterize_sparse"]


def _objects(batch: EventBatch, name: str) -> dict[str, Any]:
    """Offsets and columns of one collection (MET: one object per event at eta 0)."""
    if name == "met":
        pt = met_field(batch, "pt")
        return {
            "offsets": np.arange(batch.n_events + 1, dtype=np.int64),
            "pt": pt,
            "eta": np.zeros_like(pt),
            "phi": met_field(batch, "phi"),
            "fields": {},
        }
    c = batch_collection(batch, name)
    return {
        "offsets": c.offsets,
        "pt": c["pt"],
        "eta": c["eta"],
        "phi": c["phi"],
        "fields": c.fields,
    }


def _check(name: str, obj: dict[str, Any]) -> None:
    off = obj["offsets"]
    n = len(obj["pt"])
    if off[0] != 0:
        raise ValueError(f"collection '{name}': offsets[0] = {off[0]}, must be 0")
    dec = np.nonzero(np.diff(off) < 0)[0]
    if len(dec):
        raise ValueError(f"collection '{name}': offsets decrease at event {dec[0]}")
    if off[-1] != n:
        raise ValueError(
            f"collection '{name}': offsets end at {off[-1]} but the columns hold {n} objects"
        )
    for f in ("pt", "eta", "phi"):
        v = obj[f]
        bad = ~np.isfinite(v) | ((v < 0) if f == "pt" else False)
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            event = int(np.searchsorted(off, k, side="right") - 1)
            raise ValueError(f"collection '{name}', field '{f}': value {v[k]} at event {event}")


def _selected(obj: dict[str, Any], cuts: CutParams) -> np.ndarray:
    """Boolean mask of the objects passing ``cuts`` (comparisons in float64)."""
    pt = obj["pt"].astype(np.float64)
    mask = (pt >= cuts.min_pt) & (np.abs(obj["eta"].astype(np.float64)) <= cuts.max_abs_eta)
    if cuts.tight_id:
        mask &= obj["fields"]["tight_id"] > np.float32(0.5)
    if cuts.max_iso is not None:
        mask &= obj["fields"]["iso"].astype(np.float64) <= cuts.max_iso
    return mask


def _bins(eta: np.ndarray, phi: np.ndarray, spec: ImageSpec) -> tuple[np.ndarray, ...]:
    """(inside, ix, iy, fu, fv) exactly as the C++ Binner computes them."""
    u = (eta.astype(np.float64) - spec.eta_min) * (spec.n_eta / (spec.eta_max - spec.eta_min))
    inside = (u >= 0.0) & (u < spec.n_eta)
    fu = np.floor(u)
    v = (phi.astype(np.float64) + math.pi) * (spec.n_phi / (2.0 * math.pi))
    fy = np.floor(v)
    frac_u = u - fu
    frac_v = v - fy
    fy = fy - spec.n_phi * np.floor(fy / spec.n_phi)
    ix = np.where(inside, fu, 0).astype(np.int64)
    iy = fy.astype(np.int64)
    return inside, ix, iy, frac_u, frac_v


def _window(ix: int, R: int, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    di = np.arange(max(-R, -ix), min(R, spec.n_eta - 1 - ix) + 1)
    if spec.n_phi > 2 * R + 1:
        dj = np.arange(-R, R + 1)
    else:
        lo = -(spec.n_phi // 2)
        dj = np.arange(lo, lo + spec.n_phi)
    return di, dj


def _footprint(
    mode: str, spec: ImageSpec, ix: int, iy: int, fu: float, fv: float, pt: float, charge: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (rows, columns) and float32 values one object deposits (gaussian / glyph)."""
    if mode == "gaussian":
        s = spec.sigma
        R = math.ceil(3.0 * s)
        di, dj = _window(ix, R, spec)
        DI, DJ = np.meshgrid(di, dj, indexing="ij")
        du = DI + 0.5 - fu
        dv = DJ + 0.5 - fv
        d2 = du * du + dv * dv
        keep = (d2 <= 9.0 * s * s) | ((DI == 0) & (DJ == 0))
        d2own = (0.5 - fu) * (0.5 - fu) + (0.5 - fv) * (0.5 - fv)
        w = np.exp(-(d2[keep] - d2own) * (1.0 / (2.0 * s * s)))
        total = 0.0
        for x in w:  # sequential, as the C++ sums
            total += x
        vals = (pt * w / total).astype(np.float32)
        return ix + DI[keep], (iy + DJ[keep]) % spec.n_phi, vals
    # glyph
    r = max(0.0, spec.glyph_radius0 + spec.glyph_radius_per_log * math.log(pt)) if pt > 0 else 0.0
    half = 0.5 * (spec.glyph_width_positive if charge > 0 else spec.glyph_width)
    R = math.ceil(r + half) + 1
    di, dj = _window(ix, R, spec)
    DI, DJ = np.meshgrid(di, dj, indexing="ij")
    du = DI + 0.5 - fu
    dv = DJ + 0.5 - fv
    on = np.abs(np.sqrt(du * du + dv * dv) - r) <= half
    n = int(on.sum())
    if n == 0:
        return np.array([ix]), np.array([iy]), np.array([pt], dtype=np.float32)
    vals = np.full(n, np.float32(pt / n), dtype=np.float32)
    return ix + DI[on], (iy + DJ[on]) % spec.n_phi, vals


_TWO_PI = 6.283185307179586  # the C++ core's constants, so the decisions are identical
_PI = 3.141592653589793


def clean_jets(
    jets: dict[str, Any], leptons: list[tuple[dict[str, Any], CutParams]], dr: float
) -> np.ndarray:
    """NumPy twin of :func:`poetml._core.clean_jets` on ``_objects`` dicts: float32 per jet,
    0 when a lepton passing its cuts lies in the same event within Delta R < ``dr``."""
    n = len(jets["offsets"]) - 1
    keep = np.ones(len(jets["pt"]), np.float32)
    jev = np.repeat(np.arange(n), np.diff(jets["offsets"]))
    for obj, cuts in leptons:
        sel = _selected(obj, cuts)
        lev = np.repeat(np.arange(n), np.diff(obj["offsets"]))[sel]
        leta = obj["eta"][sel].astype(np.float64)
        lphi = obj["phi"][sel].astype(np.float64)
        for k in range(len(keep)):
            same = lev == jev[k]
            deta = np.float64(jets["eta"][k]) - leta[same]
            dphi = np.fmod(np.abs(np.float64(jets["phi"][k]) - lphi[same]), _TWO_PI)
            dphi = np.where(dphi > _PI, _TWO_PI - dphi, dphi)
            if np.any(deta * deta + dphi * dphi < dr * dr):
                keep[k] = 0.0
    return keep


def _clean(batch: EventBatch, selection: Any) -> EventBatch:
    """The twin of :func:`poetml.images.clean_jets` (cleaning decided by :func:`clean_jets`)."""
    leps = lepton_cleaning_inputs(batch, selection)
    if not leps or batch["jet"].n_objects == 0:
        return batch
    jets = _objects(batch, "jet")
    _check("jet", jets)
    leptons = []
    for name in leps:
        obj = _objects(batch, name)
        _check(name, obj)
        leptons.append((obj, resolve_cuts(selection, name, batch[name])))
    keep = clean_jets(jets, leptons, float(selection.jet.lepton_dr))
    if bool(np.all(keep > 0.5)):
        return batch
    return keep_objects(batch, "jet", keep > 0.5)


def rasterize(
    batch: EventBatch,
    spec: ImageSpec | None = None,
    *,
    n_threads: int | None = None,
    return_dropped: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`poetml.images.rasterize` (``n_threads`` is checked, then unused;
    ``out`` is checked alike, overwritten with the images and returned)."""
    spec = ImageSpec() if spec is None else spec
    resolve_threads(n_threads)
    n = batch.n_events
    C = len(spec.channels)
    check_out(out, (n, spec.n_eta, spec.n_phi, C), "rasterize")
    if "jet" in spec.channels:
        batch = _clean(batch, spec.selection)
    images = np.zeros((n, spec.n_eta, spec.n_phi, C), dtype=np.float32)
    dropped = np.zeros(C, dtype=np.int64)
    for c, name in enumerate(spec.channels):
        obj = _objects(batch, name)
        cuts = resolve_cuts(spec.selection, name, None if name == "met" else batch[name])
        _check(name, obj)
        sel = _selected(obj, cuts)
        inside, ix, iy, fu, fv = _bins(obj["eta"], obj["phi"], spec)
        dropped[c] = int((sel & ~inside).sum())
        use = sel & inside
        event = np.repeat(np.arange(n), np.diff(obj["offsets"]))
        if spec.mode == "histogram":
            np.add.at(images, (event[use], ix[use], iy[use], c), obj["pt"][use])
            continue
        charge = obj["fields"].get("charge")
        for k in np.nonzero(use)[0]:
            q = float(charge[k]) if charge is not None else 0.0
            rows, cols, vals = _footprint(
                spec.mode,
                spec,
                int(ix[k]),
                int(iy[k]),
                float(fu[k]),
                float(fv[k]),
                float(obj["pt"][k]),
                q,
            )
            np.add.at(images[..., c], (event[k], rows, cols), vals)  # a view: adds in place
    if spec.saturate_bits:
        top = 2.0**spec.saturate_bits - 1.0
        images = np.minimum(np.floor(images.astype(np.float64) / spec.lsb_gev), top).astype(
            np.float32
        )
    if spec.log1p:
        images = np.log1p(images)
    if spec.normalize:
        sums = images.astype(np.float64).sum(axis=(1, 2, 3), keepdims=True)
        safe = np.where(sums != 0.0, sums, 1.0)
        images = (images.astype(np.float64) / safe).astype(np.float32)
    if out is not None:
        out[...] = images
        images = out
    if return_dropped:
        return images, dropped
    return images


def rasterize_sparse(
    batch: EventBatch,
    spec: ImageSpec | None = None,
    *,
    n_threads: int | None = None,
    return_dropped: bool = False,
) -> SparseImages | tuple[SparseImages, np.ndarray]:
    """NumPy twin of :func:`poetml.images.rasterize_sparse`: the non-zero pixels of
    :func:`rasterize`'s images, event by event in ascending flat pixel index."""
    spec = ImageSpec() if spec is None else spec
    images, dropped = rasterize(batch, spec, n_threads=n_threads, return_dropped=True)
    flat = images.reshape(len(images), int(np.prod(spec.shape)))
    event, pixel = np.nonzero(flat)  # row-major: events in order, pixels ascending
    offsets = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(np.bincount(event, minlength=len(images)), out=offsets[1:])
    sparse = SparseImages(
        offsets, pixel.astype(np.int32), flat[event, pixel].astype(np.float32), spec.shape
    )
    return (sparse, dropped) if return_dropped else sparse


def densify(
    sparse: SparseImages, *, n_threads: int | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """NumPy twin of :func:`poetml.images.densify` (``n_threads`` checked, then unused)."""
    resolve_threads(n_threads)
    n = sparse.n_events
    shape = (n, *sparse.shape)
    check_out(out, shape, "densify")
    off = np.asarray(sparse.offsets)
    if off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(sparse.index):
        raise ValueError(
            f"densify: offsets must start at 0, never decrease and end at {len(sparse.index)}"
        )
    per_event = int(np.prod(sparse.shape))
    bad = (sparse.index < 0) | (sparse.index >= per_event)
    if bad.any():
        raise ValueError(f"densify: pixel index {sparse.index[bad][0]} is outside [0, {per_event})")
    images = np.zeros((n, per_event), dtype=np.float32)
    images[np.repeat(np.arange(n), np.diff(off)), sparse.index] = sparse.values
    if out is not None:
        out[...] = images.reshape(shape)
        return out
    return images.reshape(shape)


def _pair_mass(pt, eta, phi, mass) -> float:
    px = py = pz = e = 0.0
    for a in range(2):
        x = pt[a] * math.cos(phi[a])
        y = pt[a] * math.sin(phi[a])
        z = pt[a] * math.sinh(eta[a])
        px += x
        py += y
        pz += z
        e += math.sqrt(x * x + y * y + z * z + mass[a] * mass[a])
    m2 = e * e - (px * px + py * py + pz * pz)
    return math.sqrt(m2) if m2 > 0 else 0.0


def build_features(
    batch: EventBatch,
    spec: FeatureSpec | None = None,
    *,
    n_threads: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """NumPy twin of :func:`poetml.features.build_features` (``n_threads`` unused; ``out``
    is checked alike, overwritten with the features and returned)."""
    spec = FeatureSpec() if spec is None else spec
    resolve_threads(n_threads)
    n = batch.n_events
    given = check_out(out, (n, len(feature_names(spec))), "build_features")
    batch = _clean(batch, spec.selection)
    wanted = [c for c, _ in spec.slots] + [QUANTITY_NEEDS[q] for q in spec.event_quantities]
    objs: dict[str, dict[str, Any]] = {}
    masks: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(wanted):
        obj = _objects(batch, name)
        _check(name, obj)
        cuts = resolve_cuts(spec.selection, name, None if name == "met" else batch[name])
        objs[name] = obj
        masks[name] = _selected(obj, cuts)
    for q in spec.event_quantities:
        if q == "n_bjet" and "btag" not in objs["jet"]["fields"]:
            raise ValueError("event quantity 'n_bjet' needs the jet field 'btag'")
        if q == "m_mumu" and "charge" not in objs["muon"]["fields"]:
            raise ValueError("event quantity 'm_mumu' needs the muon field 'charge'")
    names = feature_names(spec)
    out = np.zeros((n, len(names)), dtype=np.float32)

    def ordered(name: str, i: int) -> np.ndarray:
        off = objs[name]["offsets"]
        idx = np.arange(off[i], off[i + 1])
        idx = idx[masks[name][idx]]
        return idx[np.argsort(-objs[name]["pt"][idx], kind="stable")]

    columns = {(c, f): slot_column(batch, c, f) for c, _ in spec.slots for f in spec.fields}
    for i in range(n):
        col = 0
        for c, count in spec.slots:
            idx = ordered(c, i)[:count]
            for j, k in enumerate(idx):
                for fi, f in enumerate(spec.fields):
                    values = columns[(c, f)]
                    out[i, col + j * len(spec.fields) + fi] = (
                        values[k] if values is not None else 0.0
                    )
            col += count * len(spec.fields)
        for q in spec.event_quantities:
            value = 0.0
            if q == "ht":
                jets = objs["jet"]
                sl = slice(jets["offsets"][i], jets["offsets"][i + 1])
                ht = 0.0
                for p, m in zip(jets["pt"][sl], masks["jet"][sl], strict=False):
                    if m:
                        ht += float(p)
                value = ht
            elif q == "met":
                value = float(objs["met"]["pt"][i])
            elif q in ("n_muon", "n_electron", "n_jet", "n_bjet"):
                name = QUANTITY_NEEDS[q]
                sl = slice(objs[name]["offsets"][i], objs[name]["offsets"][i + 1])
                m = masks[name][sl]
                if q == "n_bjet":
                    m = m & (
                        objs["jet"]["fields"]["btag"][sl].astype(np.float64)
                        > spec.selection.jet.btag_threshold
                    )
                value = float(m.sum())
            elif q == "m_mumu":
                mu = objs["muon"]
                idx = ordered("muon", i)
                ch = mu["fields"]["charge"]
                mass = mu["fields"].get("mass")
                pairs = [
                    (a, b)
                    for a in range(len(idx))
                    for b in range(a + 1, len(idx))
                    if ch[idx[a]] * ch[idx[b]] < 0
                ]
                if pairs:
                    sel = [idx[pairs[0][0]], idx[pairs[0][1]]]
                    masses = [float(mass[k]) if mass is not None else MASSES["muon"] for k in sel]
                    value = _pair_mass(
                        [float(mu["pt"][k]) for k in sel],
                        [float(mu["eta"][k]) for k in sel],
                        [float(mu["phi"][k]) for k in sel],
                        masses,
                    )
            elif q == "m_jj":
                jets = objs["jet"]
                idx = ordered("jet", i)
                if len(idx) >= 2:
                    sel = [idx[0], idx[1]]
                    mass = jets["fields"].get("mass")
                    masses = [float(mass[k]) if mass is not None else 0.0 for k in sel]
                    value = _pair_mass(
                        [float(jets["pt"][k]) for k in sel],
                        [float(jets["eta"][k]) for k in sel],
                        [float(jets["phi"][k]) for k in sel],
                        masses,
                    )
            out[i, col] = value
            col += 1
    if given is not None:
        given[...] = out
        out = given
    return out, names
