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

from .schema import COLUMN_DTYPE, OFFSETS_DTYPE

__all__ = ["Collection", "EventBatch", "concatenate", "flatten", "unflatten"]


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
