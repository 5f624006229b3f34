"""The flat layout events take to cross into C++: columns + offsets.

An :class:`EventBatch` holds, per object collection, one C-contiguous float32 array per
canonical field and one int64 ``offsets`` array of length ``n_events + 1`` (objects of
event ``i`` are ``offsets[i]:offsets[i+1]``), and MET as one float32 value per event.

This is the only module that knows awkward-array layouts: :func:`flatten` and
:func:`unflatten` convert between the two, once and visibly (any dtype conversion or copy
happens here, never silently in the bindings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from . import schema
from .schema import COLUMN_DTYPE, OFFSETS_DTYPE

__all__ = [
    "Collection",
    "EventBatch",
    "RecordColumn",
    "check_fields",
    "concatenate",
    "flatten",
    "from_awkward",
    "is_typetracer",
    "record_columns",
    "record_layout",
    "rows",
    "rows_typetracer",
    "touch_columns",
    "unflatten",
]


def _as_column(values: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values), dtype=COLUMN_DTYPE)


@dataclass(frozen=True, eq=False)
class Collection:
    """Objects of one kind in a batch of events, as flat columns plus offsets."""

    offsets: np.ndarray
    fields: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        offsets = np.ascontiguousarray(self.offsets, dtype=OFFSETS_DTYPE)
        if offsets.ndim != 1 or len(offsets) < 1:
            raise ValueError("offsets must be a 1-D array of length n_events + 1")
        fields = {k: _as_column(v) for k, v in self.fields.items()}
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "fields", MappingProxyType(fields))

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_objects(self) -> int:
        return int(self.offsets[-1]) if len(self.offsets) else 0

    @property
    def counts(self) -> np.ndarray:
        """Number of objects in each event (int64)."""
        return np.diff(self.offsets)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(
                f"collection has no field {name!r}; it has: {', '.join(self.fields) or 'none'}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    @classmethod
    def empty(cls, n_events: int, field_names: Sequence[str] = ("pt", "eta", "phi")) -> Collection:
        """A collection with no objects in any of ``n_events`` events."""
        return cls(
            np.zeros(n_events + 1, dtype=OFFSETS_DTYPE),
            {f: np.zeros(0, dtype=COLUMN_DTYPE) for f in field_names},
        )

    def slice(self, start: int, stop: int) -> Collection:
        """Events ``start:stop`` as a new collection (offsets rebased to 0)."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return Collection(
            self.offsets[start : stop + 1] - lo,
            {k: v[lo:hi] for k, v in self.fields.items()},
        )


@dataclass(frozen=True, eq=False)
class EventBatch:
    """A batch of events read from one file.

    ``collections`` maps canonical collection names (``muon``, ``electron``, ``jet`` ...)
    to :class:`Collection`; ``met`` maps MET fields (``pt``, ``phi`` ...) to one float32
    value per event.  ``source`` is the file the events came from and ``entry_start`` the
    entry of the first event in it, so ``event_index`` is the entry of every event.
    """

    n_events: int
    collections: Mapping[str, Collection]
    met: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    entry_start: int = 0
    layout: str = ""

    def __post_init__(self) -> None:
        met = {k: _as_column(v) for k, v in self.met.items()}
        for name, coll in self.collections.items():
            if coll.n_events != self.n_events:
                raise ValueError(
                    f"collection {name!r} has {coll.n_events} events, the batch {self.n_events}"
                )
        for name, values in met.items():
            if len(values) != self.n_events:
                raise ValueError(
                    f"met field {name!r} has {len(values)} values, the batch {self.n_events} events"
                )
        object.__setattr__(self, "collections", MappingProxyType(dict(self.collections)))
        object.__setattr__(self, "met", MappingProxyType(met))

    def __len__(self) -> int:
        return self.n_events

    def __getitem__(self, name: str) -> Collection:
        try:
            return self.collections[name]
        except KeyError:
            raise KeyError(
                f"batch has no collection {name!r}; it has: {', '.join(self.collections) or 'none'}"
            ) from None

    @property
    def event_index(self) -> np.ndarray:
        """Entry number of each event in its source file (int64)."""
        return np.arange(self.entry_start, self.entry_start + self.n_events, dtype=np.int64)

    def slice(self, start: int, stop: int) -> EventBatch:
        """Events ``start:stop`` of this batch."""
        start, stop, _ = slice(start, stop).indices(self.n_events)
        stop = max(stop, start)
        return EventBatch(
            n_events=stop - start,
            collections={k: c.slice(start, stop) for k, c in self.collections.items()},
            met={k: v[start:stop] for k, v in self.met.items()},
            source=self.source,
            entry_start=self.entry_start + start,
            layout=self.layout,
        )


def flatten(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """One jagged awkward array (``var * number``) -> (float32 content, int64 offsets).

    A regular NumPy array of shape ``(n_events,)`` is treated as one object per event.
    """
    import awkward as ak

    if isinstance(array, np.ndarray) and array.ndim == 1:
        return _as_column(array), np.arange(len(array) + 1, dtype=OFFSETS_DTYPE)
    layout = ak.to_layout(array)
    fast = _flatten_list_offset(layout)
    if fast is not None:
        return fast
    if layout.is_option or layout.is_indexed:
        layout = layout.project() if layout.is_indexed else layout
    arr = ak.Array(layout)
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(OFFSETS_DTYPE, copy=False)
    offsets = np.zeros(len(counts) + 1, dtype=OFFSETS_DTYPE)
    np.cumsum(counts, out=offsets[1:])
    content = ak.to_numpy(ak.flatten(arr, axis=1))
    return _as_column(content), offsets


def _flatten_list_offset(layout: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path of :func:`flatten` for what uproot returns for a jagged branch: a
    ``ListOffsetArray`` over a 1-D ``NumpyArray``.  The content and offsets buffers are
    taken as they are (no per-event work); offsets that do not start at 0 (RNTuple pages,
    sliced arrays) are rebased.  Returns None for any other layout."""
    import awkward as ak

    if not (
        isinstance(layout, ak.contents.ListOffsetArray)
        and isinstance(layout.content, ak.contents.NumpyArray)
        and layout.content.data.ndim == 1
    ):
        return None
    offsets = np.asarray(layout.offsets.data)
    if len(offsets) == 0:
        return None
    start, stop = int(offsets[0]), int(offsets[-1])
    content = np.asarray(layout.content.data)[start:stop]
    offsets = offsets.astype(OFFSETS_DTYPE, copy=False)
    if start:
        offsets = offsets - start
    return _as_column(content), np.ascontiguousarray(offsets)


def unflatten(content: np.ndarray, offsets: np.ndarray) -> Any:
    """Inverse of :func:`flatten`: an awkward ``var * float32`` array."""
    import awkward as ak

    return ak.unflatten(np.asarray(content), np.diff(np.asarray(offsets)))


def concatenate(batches: Sequence[EventBatch]) -> EventBatch:
    """Join batches event-wise (collections and MET fields present in all of them)."""
    if not batches:
        raise ValueError("concatenate needs at least one batch")
    names = set(batches[0].collections).intersection(*(b.collections for b in batches[1:]))
    collections = {}
    for name in [n for n in batches[0].collections if n in names]:
        parts = [b.collections[name] for b in batches]
        field_names = set(parts[0].fields).intersection(*(p.fields for p in parts[1:]))
        offsets = [parts[0].offsets]
        shift = parts[0].n_objects
        for p in parts[1:]:
            offsets.append(p.offsets[1:] + shift)
            shift += p.n_objects
        collections[name] = Collection(
            np.concatenate(offsets),
            {
                f: np.concatenate([p.fields[f] for p in parts])
                for f in parts[0].fields
                if f in field_names
            },
        )
    met_names = set(batches[0].met).intersection(*(b.met for b in batches[1:]))
    met = {k: np.concatenate([b.met[k] for b in batches]) for k in batches[0].met if k in met_names}
    return EventBatch(
        n_events=sum(b.n_events for b in batches),
        collections=collections,
        met=met,
        source=batches[0].source if len({b.source for b in batches}) == 1 else "",
        entry_start=batches[0].entry_start,
        layout=batches[0].layout,
    )


# --------------------------------------------------------------------------------------
# awkward records of events (coffea NanoEvents, uproot arrays, dask-awkward partitions)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RecordColumn:
    """One canonical field found in a record of events: the awkward ``values`` (jagged for
    objects, one per event for MET), the ``convert`` to apply with its ``extra`` arrays,
    or, when the record has no such field, the supplied ``constant``."""

    values: Any = None
    convert: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    constant: float | None = None


def _fields_of(array: Any) -> list[str]:
    return list(getattr(array, "fields", None) or [])


def _lookup(events: Any, path: tuple[str, ...]) -> Any | None:
    node = events
    for name in path:
        if name not in _fields_of(node):
            return None
        node = node[name]
    return node


def _requested(
    collections: Sequence[str] | str | None, fields: Mapping[str, Sequence[str]] | None
) -> tuple[tuple[str, ...] | None, dict[str, tuple[str, ...]]]:
    if isinstance(collections, str):
        collections = (collections,)
    if collections is not None:
        collections = tuple(dict.fromkeys(collections))
        bad = [c for c in collections if c not in schema.COLLECTIONS]
        if bad:
            raise ValueError(
                f"unknown collection{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                f"valid: {', '.join(schema.COLLECTIONS)}"
            )
    return collections, check_fields(fields)


def record_layout(events: Any, layout: str = "auto") -> str:
    """``layout`` checked, or (``auto``) the one of :data:`poetml.schema.RECORD_LAYOUTS`
    whose names the record's top-level fields use (ValueError listing them if none)."""
    if layout == "auto":
        names = _fields_of(events)
        found = schema.detect_record_layout(names)
        if found is None:
            raise ValueError(
                "cannot tell how the events name their collections: no NanoAOD (Muon, "
                "Jet, MET or Muon_pt ...), POET (muon_pt, jet_corrpt, met_pt ...) or canonical "
                f"(muon, jet, met) fields; the record has: {', '.join(names) or 'no fields'}"
            )
        return found
    if layout not in schema.RECORD_LAYOUTS:
        raise ValueError(
            f"unknown record layout {layout!r}; valid: auto, {', '.join(schema.RECORD_LAYOUTS)}"
        )
    return layout


def record_columns(
    events: Any,
    *,
    layout: str = "auto",
    collections: Sequence[str] | str | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
    if_present: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, RecordColumn]]:
    """The canonical columns of a record of events, not yet converted:
    ``{collection: {field: RecordColumn}}`` (MET under ``met``).

    Works on any awkward record array (eager, virtual or a typetracer, so that a
    dask-awkward partition function can mark exactly these columns as needed).  Options
    as in :func:`from_awkward`.
    """
    names = _fields_of(events)
    layout = record_layout(events, layout)
    wanted, explicit = _requested(collections, fields)

    def place(coll: str, fld: str) -> schema.RecordField | None:
        for candidate in schema.record_fields(layout, coll, fld):
            if _lookup(events, candidate.path) is not None and all(
                _lookup(events, e) is not None for e in candidate.extra
            ):
                return candidate
        return None

    def missing(coll: str, fld: str) -> ValueError:
        shown = [".".join(c.path) for c in schema.record_fields(layout, coll, fld)]
        where = f" (looked for {' or '.join(shown)})" if shown else f" in the {layout} layout"
        top = schema.record_fields(layout, coll, fld)
        prefix = top[0].path[:-1] if top else ()
        parent = _lookup(events, prefix) if prefix else None
        if parent is None:
            parent, prefix = events, ()
        has = _fields_of(parent)
        return ValueError(
            f"the events have no {coll}.{fld}{where}; "
            f"{'.'.join(prefix) or 'the record'} has: "
            f"{', '.join(has[:40]) or 'no fields'}{' ...' if len(has) > 40 else ''}"
        )

    if wanted is None:
        wanted = tuple(c for c in schema.COLLECTIONS if place(c, "pt") is not None)
        if not wanted:
            raise ValueError(
                f"no canonical collection ({', '.join(schema.COLLECTIONS)}) in the events "
                f"({layout} layout); the record has: {', '.join(names) or 'no fields'}"
            )
    out: dict[str, dict[str, RecordColumn]] = {}
    for coll in wanted:
        if place(coll, "pt") is None:
            raise missing(coll, "pt")
        chosen = explicit.get(coll, (if_present or {}).get(coll, schema.DEFAULT_READ_FIELDS[coll]))
        columns: dict[str, RecordColumn] = {}
        for fld in dict.fromkeys((*schema.REQUIRED_FIELDS[coll], *chosen)):
            where = place(coll, fld)
            if where is not None:
                columns[fld] = RecordColumn(
                    _lookup(events, where.path),
                    where.convert,
                    {
                        n: _lookup(events, e)
                        for n, e in zip(where.extra_names, where.extra, strict=True)
                    },
                )
            elif coll != "met" and (coll, fld) in schema.SUPPLIED_FIELDS:
                columns[fld] = RecordColumn(constant=schema.SUPPLIED_FIELDS[(coll, fld)])
            elif coll in explicit or fld in schema.REQUIRED_FIELDS[coll]:
                raise missing(coll, fld)
        out[coll] = columns
    return out


def _materialized(array: Any) -> Any:
    """Eager buffers of ``array`` (coffea's virtual arrays load here, once)."""
    import awkward as ak

    materialize = getattr(ak, "materialize", None)
    return materialize(array) if materialize is not None else array


def from_awkward(
    events: Any,
    *,
    layout: str = "auto",
    collections: Sequence[str] | str | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
    if_present: Mapping[str, Sequence[str]] | None = None,
    source: str = "",
    entry_start: int = 0,
) -> EventBatch:
    """An awkward record array of events -> :class:`EventBatch`.

    ``events`` is one record per event whose fields hold the collections, named as in
    one of :data:`poetml.schema.RECORD_LAYOUTS`: coffea NanoEvents (``events.Muon.pt``,
    ``events.MET.pt``) or flat NanoAOD branches (``events.Muon_pt``), flat POET branches
    (``events.muon_pt``, ``events.jet_corrpt``, ``events.met_pt``), or poetml's canonical
    names (``events.muon.pt``).  ``layout="auto"`` tells them apart by the top-level field
    names.  Conversions are those of the file readers (NanoAOD ``Electron.cutBased >= 4``
    is ``tight_id``; muon, electron and photon masses and jet charge are supplied when
    absent).

    ``collections`` and ``fields`` choose what is taken, as in
    :func:`poetml.reading.iterate` (default: every canonical collection the record has,
    with :data:`~poetml.schema.DEFAULT_READ_FIELDS` where present).  A requested
    collection or field the record lacks is a ValueError listing what it has.
    ``if_present`` replaces the default fields of the collections it names: taken where
    the record has them, left out (or supplied) otherwise, as the defaults are.  ``source``
    and ``entry_start`` label the batch (``event_index``).
    """
    import awkward as ak

    if type(events).__module__.split(".")[0] == "dask_awkward":
        raise TypeError(
            "from_awkward needs an eager awkward array, got a dask-awkward collection; use "
            "poetml.columnar.rasterize / build_features on it (partition by partition), or "
            "from_awkward(events.compute())"
        )
    layout = record_layout(events, layout)
    columns = record_columns(
        events, layout=layout, collections=collections, fields=fields, if_present=if_present
    )
    n_events = len(events)
    collections_out: dict[str, Collection] = {}
    met: dict[str, np.ndarray] = {}
    for coll, cols in columns.items():
        if coll == "met":
            for fld, col in cols.items():
                values = ak.to_numpy(_materialized(col.values))
                if col.convert is not None:
                    extra = {k: ak.to_numpy(_materialized(v)) for k, v in col.extra.items()}
                    values = np.asarray(col.convert(values, **extra))
                if values.ndim != 1:
                    raise ValueError(
                        f"MET field {fld!r} must hold one value per event, it has shape "
                        f"{values.shape}"
                    )
                met[fld] = values
            continue
        offsets: np.ndarray | None = None
        first = ""
        contents: dict[str, np.ndarray] = {}
        for fld, col in cols.items():
            if col.constant is not None:
                continue
            content, off = flatten(_materialized(col.values))
            if offsets is None:
                offsets, first = off, fld
            elif not np.array_equal(off, offsets):
                raise ValueError(
                    f"{coll}.{fld} and {coll}.{first} have different numbers of objects per event"
                )
            if col.convert is not None:
                extra = {k: flatten(_materialized(v))[0] for k, v in col.extra.items()}
                content = np.asarray(col.convert(content, **extra))
            contents[fld] = content
        assert offsets is not None  # pt is always there
        if len(offsets) != n_events + 1:
            raise ValueError(
                f"{coll} has objects for {len(offsets) - 1} events, the record {n_events}"
            )
        for fld, col in cols.items():
            if col.constant is not None:
                contents[fld] = np.full(int(offsets[-1]), col.constant, dtype=COLUMN_DTYPE)
        collections_out[coll] = Collection(offsets, {k: contents[k] for k in cols})
    return EventBatch(
        n_events=n_events,
        collections=collections_out,
        met=met,
        source=source,
        entry_start=entry_start,
        layout=layout,
    )


# --------------------------------------------------------------------------------------
# dask-awkward partitions: typetracers and per-event rows
# --------------------------------------------------------------------------------------


def is_typetracer(events: Any) -> bool:
    """True when ``events`` is an awkward typetracer (no data: dask-awkward is tracing
    which columns a partition function needs)."""
    import awkward as ak

    return bool(ak.backend(events) == "typetracer")


def touch_columns(
    events: Any,
    *,
    layout: str = "auto",
    collections: Sequence[str] | str | None = None,
    if_present: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Mark the columns :func:`from_awkward` would read from a typetracer as needed, so
    dask-awkward's column projection reads those branches and no others."""
    import awkward as ak

    columns = record_columns(events, layout=layout, collections=collections, if_present=if_present)
    for fields in columns.values():
        for col in fields.values():
            for array in (col.values, *col.extra.values()):
                if array is not None:
                    ak.typetracer.touch_data(array)


def rows(values: np.ndarray) -> Any:
    """A NumPy array ``(N, ...)`` as an awkward array of N fixed-shape rows (no copy)."""
    import awkward as ak

    return ak.from_numpy(values)


def rows_typetracer(shape: Sequence[int], dtype: Any = COLUMN_DTYPE) -> Any:
    """A length-less typetracer of what :func:`rows` gives for rows of ``shape``: the
    form a dask-awkward partition function returns while it is traced."""
    import awkward as ak

    example = ak.from_numpy(np.zeros((1, *shape), dtype=dtype))
    return ak.Array(example.layout.to_typetracer(forget_length=True))


def check_fields(fields: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """``fields`` (collection -> canonical field names) checked against the schema, as a
    dict of tuples; an unknown collection or field is a ValueError listing the valid ones."""
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise TypeError(
            "fields must map a collection name to the canonical fields to read, "
            f"e.g. {{'muon': ('pt', 'eta', 'phi')}}; got {fields!r}"
        )
    out = {}
    for coll, names in fields.items():
        if coll not in schema.CANONICAL_FIELDS:
            raise ValueError(
                f"unknown collection {coll!r} in fields; valid: {', '.join(schema.COLLECTIONS)}"
            )
        names = (names,) if isinstance(names, str) else tuple(names)
        bad = [n for n in names if n not in schema.CANONICAL_FIELDS[coll]]
        if bad:
            raise ValueError(
                f"unknown {coll} field{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                f"valid: {', '.join(schema.CANONICAL_FIELDS[coll])}"
            )
        out[coll] = names
    return out
