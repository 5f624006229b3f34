"""Event images: eta-phi grids with one channel per object type.

Thin wrapper over ``poetml._core.rasterize``; ``poetml._reference.rasterize`` is its plain
NumPy twin.  Conventions: eta in [eta_min, eta_max), phi in [-pi, pi),
``ix = floor((eta - eta_min) / (eta_max - eta_min) * n_eta)``,
``iy = floor((phi + pi) / (2 pi) * n_phi)``, phi periodic, objects outside the eta range
dropped (and counted), MET at eta = 0 in its own channel.  Output ``(N, n_eta, n_phi, C)``
float32, channels last.

:func:`rasterize_sparse` builds the same images but returns only their non-zero pixels
(:class:`SparseImages`: per-event int64 offsets, int32 flat pixel indices, float32
values); :func:`densify` turns them back into the dense array, bit for bit.

The exact definitions (binning precision, the gaussian and glyph footprints, the order of
saturation, log1p and normalisation) are in the docstring of :func:`rasterize` and in
``cpp/include/poetml/rasterize.hpp``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from .exceptions import ConfigError
from .schema import OBJECT_COLLECTIONS
from .selection import ElectronSelection, JetSelection, MuonSelection, ObjectSelection, Selection

if TYPE_CHECKING:
    from .jagged import Collection, EventBatch

__all__ = ["IMAGE_MODES", "ImageSpec", "SparseImages", "densify", "rasterize", "rasterize_sparse"]

#: Rasterization modes.
IMAGE_MODES = ("histogram", "gaussian", "glyph")
#: Most pixels along eta or phi (a 1024 x 1024 image of 4 channels is 16 MB per event).
MAX_PIXELS = 1024


@dataclass(frozen=True)
class ImageSpec:
    """How events become images.

    mode
        ``histogram``: pT summed per pixel per channel.  ``gaussian``: each object spread as a
        normalised Gaussian of ``sigma`` pixels (periodic in phi, truncated at 3 sigma).
        ``glyph``: the cnn-hep-thesis encoding, a ring per object whose radius grows with
        ln pT and whose line is thicker for positive charge.
    log1p
        apply ``log1p`` to the pixel values.
    normalize
        divide each event's image by its total so it sums to 1 (empty events stay 0).
    saturate_bits, lsb_gev
        when ``saturate_bits`` is set, pixel values become unsigned integers of that many
        bits: ``min(floor(value / lsb_gev), 2**bits - 1)``, as Level-1 calorimeter images.
    """

    n_eta: int = 32
    n_phi: int = 32
    eta_min: float = -2.5
    eta_max: float = 2.5
    channels: tuple[str, ...] = ("muon", "electron", "jet", "met")
    mode: str = "histogram"
    sigma: float = 1.0
    glyph_radius0: float = 0.5
    glyph_radius_per_log: float = 0.5
    glyph_width: float = 0.5
    glyph_width_positive: float = 1.0
    log1p: bool = False
    normalize: bool = False
    saturate_bits: int | None = None
    lsb_gev: float = 0.5
    selection: Selection = field(default_factory=Selection)

    def __post_init__(self) -> None:
        if self.mode not in IMAGE_MODES:
            raise ConfigError(
                f"unknown image mode {self.mode!r}; valid: {', '.join(IMAGE_MODES)}", key="mode"
            )
        for name in ("n_eta", "n_phi"):
            n = getattr(self, name)
            if not 1 <= n <= MAX_PIXELS:
                raise ConfigError(f"must be in [1, {MAX_PIXELS}] pixels, got {n}", key=name)
        if not (math.isfinite(self.eta_min) and math.isfinite(self.eta_max)) or not (
            self.eta_max > self.eta_min
        ):
            raise ConfigError(
                f"eta_max ({self.eta_max}) must be larger than eta_min ({self.eta_min}), both "
                "finite",
                key="eta_max",
            )
        object.__setattr__(self, "channels", tuple(self.channels))
        valid = (*OBJECT_COLLECTIONS, "met")
        bad = [c for c in self.channels if c not in valid]
        if bad or not self.channels:
            raise ConfigError(
                f"image channels must be a non-empty list of {', '.join(valid)}; got "
                f"{list(self.channels)}",
                key="channels",
            )
        if len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"image channels repeat: {list(self.channels)}", key="channels")
        if not (0.0 < self.sigma <= 1000.0):
            raise ConfigError(f"sigma must be in (0, 1000] pixels, got {self.sigma}", key="sigma")
        for name in ("glyph_width", "glyph_width_positive"):
            if not 0.0 <= getattr(self, name) <= 1000.0:
                raise ConfigError(
                    f"must be in [0, 1000] pixels, got {getattr(self, name)}", key=name
                )
        for name in ("glyph_radius0", "glyph_radius_per_log"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"must be finite, got {getattr(self, name)}", key=name)
        if self.saturate_bits is not None and not (1 <= self.saturate_bits <= 31):
            raise ConfigError(
                f"saturate_bits must be in [1, 31] or None, got {self.saturate_bits}",
                key="saturate_bits",
            )
        if not (self.lsb_gev > 0.0 and math.isfinite(self.lsb_gev)):
            raise ConfigError(f"lsb_gev must be positive, got {self.lsb_gev}", key="lsb_gev")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image: (n_eta, n_phi, n_channels)."""
        return (self.n_eta, self.n_phi, len(self.channels))


# --------------------------------------------------------------------------------------
# selection -> cuts (shared by images, features and the NumPy reference)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutParams:
    """The cuts one collection gets after checking which fields the batch has.

    An object passes when ``pt >= min_pt``, ``|eta| <= max_abs_eta``, (``tight_id``)
    ``tight_id > 0.5`` and (``max_iso`` not None) ``iso <= max_iso``.
    """

    min_pt: float = 0.0
    max_abs_eta: float = math.inf
    tight_id: bool = False
    max_iso: float | None = None


def resolve_cuts(selection: Selection, name: str, collection: Collection | None) -> CutParams:
    """The cuts of ``selection`` for collection ``name``.  A cut whose field the batch lacks
    is skipped with a UserWarning naming the field.  ``met`` has no cuts."""
    if name == "met":
        return CutParams()
    sel: Any = getattr(selection, name, None)
    if sel is None:
        return CutParams()
    tight = False
    max_iso = None
    if isinstance(sel, MuonSelection | ElectronSelection):
        tight = bool(sel.tight_id)
        max_iso = sel.max_iso
        fields = collection.fields if collection is not None else {}
        if tight and "tight_id" not in fields:
            warnings.warn(
                f"selection: {name} tight_id cut skipped: the batch has no {name} field 'tight_id'",
                UserWarning,
                stacklevel=3,
            )
            tight = False
        if max_iso is not None and "iso" not in fields:
            warnings.warn(
                f"selection: {name} isolation cut (iso <= {max_iso}) skipped: the batch has no "
                f"{name} field 'iso'",
                UserWarning,
                stacklevel=3,
            )
            max_iso = None
    elif isinstance(sel, JetSelection):
        # the jet ID where the file has one (NanoAOD); POET has no jet-ID branch: no warning
        fields = collection.fields if collection is not None else {}
        tight = bool(sel.jet_id) and "tight_id" in fields
    elif not isinstance(sel, ObjectSelection):
        raise TypeError(f"selection.{name} is a {type(sel).__name__}, not a selection")
    return CutParams(float(sel.min_pt), float(sel.max_abs_eta), tight, max_iso)


def batch_collection(batch: EventBatch, name: str) -> Collection:
    """``batch[name]`` with an error naming the collections the batch has."""
    if name not in batch.collections:
        raise ValueError(
            f"the batch has no {name!r} collection (it has: "
            f"{', '.join(batch.collections) or 'none'}; MET fields: {', '.join(batch.met) or 'none'})"
        )
    return batch.collections[name]


def met_field(batch: EventBatch, field_name: str) -> np.ndarray:
    """``batch.met[field_name]`` with an error naming the MET fields the batch has."""
    if field_name not in batch.met:
        raise ValueError(
            f"the batch has no MET field {field_name!r} (it has: {', '.join(batch.met) or 'none'})"
        )
    return batch.met[field_name]


def core_columns(
    batch: EventBatch, name: str, cuts: CutParams, extra: tuple[str, ...] = ()
) -> tuple[Any, Any]:
    """(``_core.Columns``, ``_core.Cuts``) for collection ``name`` of ``batch``."""
    from . import _core

    if name == "met":
        cols = _core.Columns("met", None, met_field(batch, "pt"), met_field(batch, "phi"))
        return cols, _core.Cuts()
    coll = batch_collection(batch, name)
    for f in ("pt", "eta", "phi"):
        if f not in coll.fields:
            raise ValueError(
                f"the batch's {name!r} collection has no field {f!r} (it has: {', '.join(coll.fields)})"
            )
    wanted = set(extra)
    if cuts.tight_id:
        wanted.add("tight_id")
    if cuts.max_iso is not None:
        wanted.add("iso")
    optional = {
        f: coll.fields[f]
        for f in ("charge", "mass", "tight_id", "iso", "btag")
        if f in wanted and f in coll.fields
    }
    cols = _core.Columns(name, coll.offsets, coll["pt"], coll["phi"], eta=coll["eta"], **optional)
    return cols, _core.Cuts(cuts.min_pt, cuts.max_abs_eta, cuts.tight_id, cuts.max_iso)


def keep_objects(batch: EventBatch, name: str, keep: np.ndarray) -> EventBatch:
    """``batch`` with only the objects of collection ``name`` where ``keep`` is true."""
    import dataclasses

    from .jagged import Collection

    coll = batch.collections[name]
    keep = np.asarray(keep, bool)
    start, stop = int(coll.offsets[0]), int(coll.offsets[-1])
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    new = Collection(
        kept[coll.offsets - start], {k: v[start:stop][keep] for k, v in coll.fields.items()}
    )
    return dataclasses.replace(batch, collections={**batch.collections, name: new})


def lepton_cleaning_inputs(batch: EventBatch, selection: Selection) -> list[str]:
    """The lepton collections jets are cleaned against (none when cleaning is off or the
    batch has no jets)."""
    if selection.jet.lepton_dr is None or "jet" not in batch.collections:
        return []
    return [n for n in ("muon", "electron") if n in batch.collections]


def clean_jets(batch: EventBatch, selection: Selection, n_threads: int | None = None) -> EventBatch:
    """Lepton-jet cleaning in the C++ core (:func:`poetml._core.clean_jets`): ``batch``
    without the jets that lie within Delta R < ``selection.jet.lepton_dr`` of a muon or
    electron passing ``selection``.  Unchanged when cleaning is off or nothing to clean."""
    from . import _core

    leps = lepton_cleaning_inputs(batch, selection)
    if not leps or batch["jet"].n_objects == 0:
        return batch
    jets, _ = core_columns(batch, "jet", CutParams())
    leptons = [core_columns(batch, n, resolve_cuts(selection, n, batch[n])) for n in leps]
    dr = selection.jet.lepton_dr
    assert dr is not None
    keep = _core.clean_jets(jets, leptons, float(dr), n_threads=resolve_threads(n_threads))
    if bool(np.all(keep > 0.5)):
        return batch
    return keep_objects(batch, "jet", keep > 0.5)


def resolve_threads(n_threads: int | None) -> int:
    """``None`` or 0: all cores (0 for the core); otherwise a positive int."""
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, int | np.integer) or n_threads < 0:
        raise ValueError(f"n_threads must be None or an integer >= 0, got {n_threads!r}")
    return int(n_threads)


def check_out(out: Any, shape: tuple[int, ...], func: str) -> np.ndarray | None:
    """Check an ``out=`` array: None, or a numpy float32 array of exactly ``shape``
    (TypeError otherwise), C-contiguous and writeable (ValueError otherwise)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(
            f"{func}: out must be a numpy float32 array of shape {shape}, got {type(out).__name__}"
        )
    if out.dtype != np.float32:
        raise TypeError(f"{func}: out must have dtype float32, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{func}: out must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{func}: out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{func}: out must be writeable")
    return out


def spec_kwargs(spec: ImageSpec) -> Mapping[str, Any]:
    """Keyword arguments of ``_core.rasterize`` for ``spec``."""
    return {
        "n_eta": spec.n_eta,
        "n_phi": spec.n_phi,
        "eta_min": float(spec.eta_min),
        "eta_max": float(spec.eta_max),
        "mode": spec.mode,
        "sigma": float(spec.sigma),
        "glyph_radius0": float(spec.glyph_radius0),
        "glyph_radius_per_log": float(spec.glyph_radius_per_log),
        "glyph_width": float(spec.glyph_width),
        "glyph_width_positive": float(spec.glyph_width_positive),
        "log1p": bool(spec.log1p),
        "normalize": bool(spec.normalize),
        "saturate_bits": int(spec.saturate_bits or 0),
        "lsb_gev": float(spec.lsb_gev),
    }


# --------------------------------------------------------------------------------------
# rasterize
# --------------------------------------------------------------------------------------


@overload
def rasterize(
    batch: EventBatch,
    spec: ImageSpec = ...,
    *,
    n_threads: int | None = ...,
    return_dropped: Literal[False] = ...,
    out: np.ndarray | None = ...,
) -> np.ndarray: ...


@overload
def rasterize(
    batch: EventBatch,
    spec: ImageSpec = ...,
    *,
    n_threads: int | None = ...,
    return_dropped: Literal[True],
    out: np.ndarray | None = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


def rasterize(
    batch: EventBatch,
    spec: ImageSpec | None = None,
    *,
    n_threads: int | None = None,
    return_dropped: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Event images of a whole batch, in one call to the C++ core.

    Returns float32 ``(N, n_eta, n_phi, C)``, channels in the order of ``spec.channels``
    (``met``: MET pT at eta = 0 from ``batch.met["pt"]`` / ``batch.met["phi"]``).  With
    ``return_dropped=True`` also an int64 array ``(C,)``: selected objects per channel
    that fell outside the eta range and were dropped.

    Objects pass ``spec.selection`` first (see :class:`CutParams`; a cut whose field the
    batch lacks is skipped with a UserWarning).  Binning, in float64 from the float32
    inputs: ``u = (eta - eta_min) * (n_eta / (eta_max - eta_min))``, ``ix = floor(u)``,
    dropped unless ``0 <= ix < n_eta``; ``v = (phi + pi) * (n_phi / (2 pi))``,
    ``iy = floor(v)`` wrapped periodically into ``[0, n_phi)`` (so phi = +pi lands in pixel
    0).  Deposits are summed in float32 in object order.

    ``histogram``: the pixel gets pT.  ``gaussian``: pixels within 3 sigma of the object
    (plus always its own pixel; phi wraps) get pT * w / sum(w), w = exp(-d^2 / (2 sigma^2))
    with d the distance from the pixel centre in pixels; rows beyond the eta edges are cut
    and the remaining weights renormalised, so each object deposits exactly its pT.
    ``glyph``: a ring of radius ``r = max(0, glyph_radius0 + glyph_radius_per_log *
    ln(pT / GeV))`` pixels, line width ``glyph_width_positive`` for charge > 0 else
    ``glyph_width`` (objects without a charge field count as neutral): the pixels whose
    centre lies within half the width of the circle each get pT / n_ring_pixels (those
    beyond the eta edges are cut, the rest renormalised; a ring with no pixel centre on it
    puts pT in the object's own pixel).  So in every mode an image sums to the selected,
    in-acceptance pT.

    Then per event, in this order: saturation (``saturate_bits``: ``min(floor(value /
    lsb_gev), 2**bits - 1)``, integer-valued float32), ``log1p``, ``normalize`` (divide by
    the event's sum over all pixels and channels; all-zero events stay zero).

    ``n_threads``: None or 0 uses every core; the result does not depend on it.

    ``out``: None returns a fresh array (``numpy.zeros``: for big batches fresh pages,
    each costing a page fault on first touch).  Or a C-contiguous float32 array of exactly
    ``(N, n_eta, n_phi, C)`` (else TypeError for the type/dtype, ValueError for the
    shape/layout), e.g. a buffer reused from chunk to chunk: whatever it holds, it is
    zero-filled (by the worker threads) and written, and returned as the images.
    """
    from . import _core

    spec = ImageSpec() if spec is None else spec
    threads = resolve_threads(n_threads)
    check_out(out, (batch.n_events, spec.n_eta, spec.n_phi, len(spec.channels)), "rasterize")
    if "jet" in spec.channels:
        batch = clean_jets(batch, spec.selection, threads)
    channels = []
    for name in spec.channels:
        coll = None if name == "met" else batch_collection(batch, name)
        cuts = resolve_cuts(spec.selection, name, coll)
        extra = ("charge",) if spec.mode == "glyph" else ()
        channels.append(core_columns(batch, name, cuts, extra))
    images, dropped = _core.rasterize(
        channels, batch.n_events, **spec_kwargs(spec), n_threads=threads, out=out
    )
    if return_dropped:
        return images, dropped
    return images


# --------------------------------------------------------------------------------------
# sparse images
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SparseImages:
    """Images of a batch as their non-zero pixels.

    Event ``i`` owns entries ``offsets[i]:offsets[i + 1]`` of ``index`` (int32, the flat
    pixel index into one C-ordered ``shape`` image: ``(ix * n_phi + iy) * C + c``,
    ascending within an event) and ``values`` (float32, never 0).  ``offsets`` is int64
    of length ``n_events + 1`` starting at 0; ``shape`` is ``(n_eta, n_phi, C)``.
    """

    offsets: np.ndarray
    index: np.ndarray
    values: np.ndarray
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) != 3:
            raise ValueError(f"SparseImages: shape must be (n_eta, n_phi, C), got {self.shape}")
        for name, dtype in (("offsets", np.int64), ("index", np.int32), ("values", np.float32)):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                got = (
                    f"{arr.dtype} {arr.ndim}-D"
                    if isinstance(arr, np.ndarray)
                    else type(arr).__name__
                )
                raise TypeError(
                    f"SparseImages: {name} must be a 1-D {np.dtype(dtype)} array, got {got}"
                )
        if len(self.offsets) < 1:
            raise ValueError("SparseImages: offsets must hold n_events + 1 >= 1 values")
        if len(self.index) != len(self.values):
            raise ValueError(
                f"SparseImages: {len(self.index)} pixel indices but {len(self.values)} values"
            )

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        """Non-zero pixels per event (int64)."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_events

    def slice(self, start: int, stop: int) -> SparseImages:
        """Events ``start:stop`` (offsets rebased to 0; index and values are views)."""
        start, stop, _ = slice(start, stop).indices(self.n_events)
        stop = max(start, stop)
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return SparseImages(
            self.offsets[start : stop + 1] - lo, self.index[lo:hi], self.values[lo:hi], self.shape
        )

    def take(self, idx: np.ndarray | Sequence[int]) -> SparseImages:
        """Events ``idx`` (int indices in any order, repeats allowed), as a new batch."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 1:
            raise IndexError(f"SparseImages.take: indices must be 1-D, got shape {idx.shape}")
        n = self.n_events
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"SparseImages.take: an index is out of range for {n} events")
        idx = np.where(idx < 0, idx + n, idx)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        counts = ends - starts
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        entries = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return SparseImages(offsets, self.index[entries], self.values[entries], self.shape)

    def dense(self, n_threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The dense float32 images ``(n_events, n_eta, n_phi, C)`` (see :func:`densify`)."""
        return densify(self, n_threads=n_threads, out=out)


def concatenate_sparse(parts: Sequence[SparseImages]) -> SparseImages:
    """Events of ``parts`` one after the other (all of the same shape)."""
    if not parts:
        raise ValueError("concatenate_sparse: no parts")
    shapes = {p.shape for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"concatenate_sparse: parts of different image shapes {sorted(shapes)}")
    ends = np.cumsum([0] + [len(p.index) for p in parts[:-1]])
    offsets = np.concatenate(
        [np.zeros(1, np.int64)] + [p.offsets[1:] + e for p, e in zip(parts, ends, strict=True)]
    ).astype(np.int64)
    return SparseImages(
        offsets,
        np.concatenate([p.index for p in parts]).astype(np.int32, copy=False),
        np.concatenate([p.values for p in parts]).astype(np.float32, copy=False),
        parts[0].shape,
    )


@overload
def rasterize_sparse(
    batch: EventBatch,
    spec: ImageSpec = ...,
    *,
    n_threads: int | None = ...,
    return_dropped: Literal[False] = ...,
) -> SparseImages: ...


@overload
def rasterize_sparse(
    batch: EventBatch,
    spec: ImageSpec = ...,
    *,
    n_threads: int | None = ...,
    return_dropped: Literal[True],
) -> tuple[SparseImages, np.ndarray]: ...


def rasterize_sparse(
    batch: EventBatch,
    spec: ImageSpec | None = None,
    *,
    n_threads: int | None = None,
    return_dropped: bool = False,
) -> SparseImages | tuple[SparseImages, np.ndarray]:
    """The images of :func:`rasterize` as their non-zero pixels, in one call to the C++
    core: ``rasterize_sparse(batch, spec).dense()`` equals ``rasterize(batch, spec)``
    exactly, for every mode and post-processing step.  A pixel that is 0 after
    post-processing has no entry (so an event whose pixels all saturate to 0 has none).
    ``return_dropped``: also the int64 ``(C,)`` counts of objects dropped outside the eta
    range."""
    from . import _core

    spec = ImageSpec() if spec is None else spec
    threads = resolve_threads(n_threads)
    if "jet" in spec.channels:
        batch = clean_jets(batch, spec.selection, threads)
    channels = []
    for name in spec.channels:
        coll = None if name == "met" else batch_collection(batch, name)
        cuts = resolve_cuts(spec.selection, name, coll)
        extra = ("charge",) if spec.mode == "glyph" else ()
        channels.append(core_columns(batch, name, cuts, extra))
    offsets, index, values, dropped = _core.rasterize_sparse(
        channels, batch.n_events, **spec_kwargs(spec), n_threads=threads
    )
    sparse = SparseImages(offsets, index, values, spec.shape)
    if return_dropped:
        return sparse, dropped
    return sparse


def densify(
    sparse: SparseImages, *, n_threads: int | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Dense float32 images ``(n_events, n_eta, n_phi, C)`` of ``sparse`` (C++ core).

    ``out``: None for a fresh array, or a C-contiguous float32 array of exactly that shape
    (reused from batch to batch), zero-filled and written.  Offsets that do not start at 0,
    decrease or do not end at the number of entries, or an index outside the image:
    ValueError; wrong dtypes: TypeError."""
    from . import _core

    n_eta, n_phi, c = sparse.shape
    check_out(out, (sparse.n_events, n_eta, n_phi, c), "densify")
    return _core.densify(
        sparse.offsets,
        sparse.index,
        sparse.values,
        n_eta=n_eta,
        n_phi=n_phi,
        n_channels=c,
        n_threads=resolve_threads(n_threads),
        out=out,
    )
