"""ROOT ntuples -> :class:`~poetml.jagged.EventBatch`: the input end of poetml (I/O only).

Three file layouts are read, and detected when ``layout="auto"`` (see :mod:`poetml.schema`):

``poet``
    one TFileService directory per POET analyzer (``mymuons/Events``, ``myjets/Events``,
    ``mymets/Events`` ...); the trees are joined entry by entry, and trees with different
    entry counts are an error.
``poet-merged``
    the same branches in one tree called ``events``.
``nanoaod``
    NanoAOD (``nMuon``, ``Muon_pt`` ...), as a TTree or an RNTuple.  The tree ``Events`` is
    used when it exists, otherwise the one top-level tree with NanoAOD-named branches.

Files are streamed with ``uproot`` in chunks of ``step_size`` entries, so memory is bounded
by the chunk size, not the file size.  Each yielded batch comes from one file.  Every
problem is a :class:`~poetml.exceptions.ReadError` naming the file, tree or branch at fault
and listing what is there.
"""

from __future__ import annotations

import dataclasses
import difflib
import glob as _glob
import os
import queue
import sys
import threading
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import schema
from .exceptions import BadValueError, ConfigError, ReadError
from .jagged import Collection, EventBatch, check_fields, flatten

__all__ = [
    "ConstantIDWarning",
    "ReadingConfig",
    "available_collections",
    "detect_layout",
    "expand_files",
    "inspect",
    "iterate",
    "num_entries",
    "prefetch",
    "read",
    "read_pileup_pthat",
    "read_pthat",
    "read_pthats",
    "read_weights",
]

_GLOB_CHARS = "*?["
_MISSING = ("error", "skip", "empty")
_POET_MARKERS = frozenset(
    b for name, pc in schema.POET_COLLECTIONS.items() for b in pc.branch_names
)
#: fields synthesized when a layout stores no branch for them: (collection, field) -> value
_CONSTANTS = schema.SUPPLIED_FIELDS


@dataclass(frozen=True)
class ReadingConfig:
    """How ntuples are read: events per chunk, layout (``auto`` detects it)."""

    step_size: int = 100_000
    layout: str = "auto"

    def __post_init__(self) -> None:
        if (
            isinstance(self.step_size, bool)
            or not isinstance(self.step_size, int)
            or (self.step_size < 1)
        ):
            raise ConfigError(
                f"must be a positive number of events, got {self.step_size!r}", key="step_size"
            )
        if self.layout not in ("auto", *schema.LAYOUTS):
            raise ConfigError(
                f"unknown layout {self.layout!r}; valid: auto, {', '.join(schema.LAYOUTS)}",
                key="layout",
            )


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------


def expand_files(files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Paths and glob patterns -> a list of paths (each glob's matches sorted).

    A glob that matches nothing is an error naming the pattern.  Remote URLs
    (``root://...``) are passed through untouched.  Missing plain paths are reported when
    they are opened.
    """
    if isinstance(files, str | os.PathLike):
        files = [files]
    out: list[str] = []
    for f in files:
        s = os.fspath(f)
        if "://" in s:
            out.append(s)
        elif any(c in s for c in _GLOB_CHARS):
            matches = sorted(_glob.glob(os.path.expanduser(s), recursive=True))
            if not matches:
                raise ReadError(f"no file matches the pattern {s!r}")
            out.extend(matches)
        else:
            out.append(os.path.expanduser(s))
    if not out:
        raise ReadError("no input files given")
    seen: dict[str, str] = {}  # the same file (through links too) is read once
    twice: list[str] = []
    for f in out:
        key = f if "://" in f else os.path.realpath(f)
        if key in seen:
            twice.append(f if f == seen[key] else f"{f} (= {seen[key]})")
        else:
            seen[key] = f
    if twice:
        warnings.warn(
            f"input given more than once: {', '.join(dict.fromkeys(twice))}; each file is "
            "read once",
            stacklevel=2,
        )
    return list(seen.values())


def _open(path: str) -> Any:
    import uproot

    if "://" not in path:
        if not os.path.exists(path):
            raise ReadError(f"no such file: {path}")
        if os.path.isdir(path):
            raise ReadError(f"{path} is a directory, not a ROOT file")
    try:
        f = uproot.open(path)
    except Exception as exc:
        raise ReadError(
            f"{path}: not a readable ROOT file (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    if "://" not in path:
        end = getattr(f.file, "fEND", None)
        size = os.path.getsize(path)
        if isinstance(end, int | np.integer) and size < end:
            f.close()
            raise ReadError(
                f"{path}: truncated file: its header says {int(end)} bytes, it has {size}"
            )
    return f


def _trees(f: Any, path: str) -> dict[str, str]:
    """Tree path (no cycle) -> class name, for every TTree and RNTuple in the file."""
    try:
        names = f.classnames(recursive=True)
    except Exception as exc:
        raise ReadError(
            f"{path}: cannot read the file's directory (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    out: dict[str, str] = {}
    for key, cls in names.items():
        if cls in ("TTree", "ROOT::RNTuple") or cls.startswith("TNtuple"):
            out[key.rsplit(";", 1)[0]] = cls
    return out


def _get(f: Any, path: str, tree: str, trees: Mapping[str, str] | None = None) -> Any:
    """Tree ``tree`` of open file ``f``, deserialized once per open file (uproot does not
    cache it, and reading a TTree's branch metadata is a good part of opening a file)."""
    if trees is not None and tree not in trees:
        raise ReadError(
            f"{path}: no tree {tree!r}; trees in the file: {', '.join(trees) or 'none'}"
        )
    cache = f.__dict__.setdefault("_poetml_trees", {})
    if tree in cache:
        return cache[tree]
    try:
        cache[tree] = f[tree]
        return cache[tree]
    except Exception as exc:
        raise ReadError(
            f"{path}: cannot read tree {tree!r} (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _keys(obj: Any, path: str, tree: str) -> list[str]:
    try:
        return list(obj.keys())
    except Exception as exc:
        raise ReadError(
            f"{path}: cannot list the branches of tree {tree!r} (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _entries(obj: Any, path: str, tree: str) -> int:
    try:
        return int(obj.num_entries)
    except Exception as exc:
        raise ReadError(
            f"{path}: cannot read the entry count of tree {tree!r}: {type(exc).__name__}: {exc}"
        ) from exc


# --------------------------------------------------------------------------------------
# layout detection
# --------------------------------------------------------------------------------------


def _nano_markers() -> set[str]:
    out = set()
    for nc in schema.NANOAOD.values():
        if nc.counter:
            out.add(nc.counter)
        out.add(nc.fields["pt"].branch)
    return out


def _nano_tree(f: Any, path: str, trees: Mapping[str, str]) -> str | None:
    """The tree holding NanoAOD branches: ``Events`` first, then any top-level tree."""
    markers = _nano_markers()
    candidates = [schema.NANOAOD_TREE] + [
        t for t in trees if "/" not in t and t != schema.NANOAOD_TREE
    ]
    for name in candidates:
        if name in trees and markers.intersection(_keys(_get(f, path, name, trees), path, name)):
            return name
    return None


def _detect(f: Any, path: str, trees: Mapping[str, str]) -> tuple[str, str | None]:
    """(layout, NanoAOD tree name or None)."""
    if any(
        f"{pc.directory}/{schema.POET_TREE}" in trees for pc in schema.POET_COLLECTIONS.values()
    ):
        return "poet", None
    if schema.POET_MERGED_TREE in trees:
        keys = _keys(_get(f, path, schema.POET_MERGED_TREE, trees), path, schema.POET_MERGED_TREE)
        if _POET_MARKERS.intersection(keys):
            return "poet-merged", None
    nano = _nano_tree(f, path, trees)
    if nano is not None:
        return "nanoaod", nano
    raise ReadError(
        f"{path}: cannot tell the layout: no POET analyzer trees "
        f"({', '.join(pc.directory + '/' + schema.POET_TREE for pc in schema.POET_COLLECTIONS.values())}), "
        f"no {schema.POET_MERGED_TREE!r} tree with POET branches, and no tree with NanoAOD "
        f"branches (nMuon, Muon_pt ...); trees in the file: {', '.join(trees) or 'none'}"
    )


def _resolve_layout(
    f: Any, path: str, trees: Mapping[str, str], layout: str
) -> tuple[str, str | None]:
    if layout == "auto":
        return _detect(f, path, trees)
    if layout not in schema.LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: auto, {', '.join(schema.LAYOUTS)}")
    if layout == "poet":
        dirs = [f"{pc.directory}/{schema.POET_TREE}" for pc in schema.POET_COLLECTIONS.values()]
        if not any(d in trees for d in dirs):
            raise ReadError(
                f"{path}: layout 'poet' needs at least one of the trees {', '.join(dirs)}; "
                f"trees in the file: {', '.join(trees) or 'none'}"
            )
        return layout, None
    if layout == "poet-merged":
        _get(f, path, schema.POET_MERGED_TREE, trees)
        return layout, None
    nano = _nano_tree(f, path, trees)
    if nano is None:
        if schema.NANOAOD_TREE in trees:
            return layout, schema.NANOAOD_TREE
        raise ReadError(
            f"{path}: layout 'nanoaod' needs a tree {schema.NANOAOD_TREE!r} (or one with NanoAOD "
            f"branches); trees in the file: {', '.join(trees) or 'none'}"
        )
    return layout, nano


def detect_layout(path: str | os.PathLike[str]) -> str:
    """The layout of ``path``: ``poet``, ``poet-merged`` or ``nanoaod`` (ReadError if none)."""
    path = os.fspath(path)
    with _open(path) as f:
        return _detect(f, path, _trees(f, path))[0]


# --------------------------------------------------------------------------------------
# read plan: which branch of which tree feeds which canonical field
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    tree: str
    branch: str
    convert: Callable[..., Any] | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Const:
    value: float


@dataclass
class _Plan:
    path: str
    layout: str
    n_entries: int
    trees: dict[str, list[str]]
    objects: dict[str, dict[str, _Column | _Const]]
    met: dict[str, _Column]
    #: requested collections the file lacks, given as empty (missing_collections="empty")
    empty: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _locate(layout: str, coll: str, fld: str, nano_tree: str | None) -> _Column | None:
    if layout in ("poet", "poet-merged"):
        pc = schema.POET_COLLECTIONS.get(coll)
        branch = pc.branch_for(fld) if pc is not None else None
        if pc is None or branch is None:
            return None
        tree = f"{pc.directory}/{schema.POET_TREE}" if layout == "poet" else schema.POET_MERGED_TREE
        return _Column(tree, branch)
    nc = schema.NANOAOD.get(coll)
    nf = nc.fields.get(fld) if nc is not None else None
    if nf is None:
        return None
    return _Column(nano_tree or schema.NANOAOD_TREE, nf.branch, nf.convert, nf.extra)


def _list_branches(keys: Sequence[str], wanted: str) -> str:
    prefix = wanted.split("_", 1)[0] + "_" if "_" in wanted else wanted
    similar = [k for k in keys if k.startswith(prefix) and "." not in k]
    similar = similar or difflib.get_close_matches(wanted, keys, n=10, cutoff=0.5)
    if similar:
        shown = similar[:40]
        more = f" ... ({len(similar) - 40} more)" if len(similar) > 40 else ""
        return f"branches like it: {', '.join(shown)}{more} ({len(keys)} branches in all)"
    shown = [k for k in keys if "." not in k][:40]
    more = f" ... ({len(keys) - 40} more)" if len(keys) > 40 else ""
    return f"it has: {', '.join(shown) or 'no branches'}{more}"


def _plan(
    f: Any,
    path: str,
    layout: str,
    collections: Sequence[str] | None,
    fields: Mapping[str, Sequence[str]] | None,
    missing_collections: str = "error",
) -> _Plan:
    if missing_collections not in _MISSING:
        raise ValueError(
            f"missing_collections must be one of {', '.join(_MISSING)}, got {missing_collections!r}"
        )
    trees = _trees(f, path)
    layout, nano_tree = _resolve_layout(f, path, trees, layout)
    explicit_fields = check_fields(fields)
    if collections is not None:
        collections = (collections,) if isinstance(collections, str) else tuple(collections)
        bad = [c for c in collections if c not in schema.COLLECTIONS]
        if bad:
            raise ValueError(
                f"unknown collection{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                f"valid: {', '.join(schema.COLLECTIONS)}"
            )

    key_cache: dict[str, set[str]] = {}
    list_cache: dict[str, list[str]] = {}

    def keys(tree: str) -> set[str]:
        if tree not in key_cache:
            list_cache[tree] = _keys(_get(f, path, tree, trees), path, tree)
            key_cache[tree] = set(list_cache[tree])
        return key_cache[tree]

    def has_collection(coll: str) -> bool:
        col = _locate(layout, coll, "pt", nano_tree)
        if col is None:
            return False
        if layout == "poet":
            return col.tree in trees
        return col.tree in trees and col.branch in keys(col.tree)

    def missing(col: _Column, coll: str, fld: str, branch: str | None = None) -> ReadError:
        branch = branch or col.branch
        return ReadError(
            f"{path}: missing branch {branch!r} ({coll}.{fld}) in tree {col.tree!r}; "
            + _list_branches(list_cache.get(col.tree, []), branch)
        )

    def absent(coll: str) -> ReadError:
        col = _locate(layout, coll, "pt", nano_tree)
        if col is None:
            return ReadError(f"{path}: the {layout} layout has no {coll} collection")
        if col.tree not in trees:
            return ReadError(
                f"{path}: no {coll} collection: no tree {col.tree!r}; "
                f"trees in the file: {', '.join(trees) or 'none'}"
            )
        err = missing(col, coll, "pt")
        return ReadError(str(err).replace(f"{path}: ", f"{path}: no {coll} collection: ", 1))

    if collections is None:
        wanted = [c for c in schema.COLLECTIONS if has_collection(c)]
        if not wanted:
            raise ReadError(
                f"{path}: no canonical collection ({', '.join(schema.COLLECTIONS)}) found in "
                f"the {layout} layout; trees in the file: {', '.join(trees) or 'none'}"
            )
    empty: dict[str, tuple[str, ...]] = {}
    if collections is not None:
        wanted = []
        for c in dict.fromkeys(collections):
            if has_collection(c):
                wanted.append(c)
            elif missing_collections == "error":
                raise absent(c)
            elif missing_collections == "empty":
                empty[c] = explicit_fields.get(c, schema.DEFAULT_READ_FIELDS[c])

    objects: dict[str, dict[str, _Column | _Const]] = {}
    met: dict[str, _Column] = {}
    for coll in wanted:
        explicit = coll in explicit_fields
        names = explicit_fields.get(coll, schema.DEFAULT_READ_FIELDS[coll])
        names = tuple(dict.fromkeys((*schema.REQUIRED_FIELDS[coll], *names)))
        plan: dict[str, _Column | _Const] = {}
        for fld in names:
            col = _locate(layout, coll, fld, nano_tree)
            if col is not None and layout != "nanoaod" and col.branch not in keys(col.tree):
                for alt in schema.POET_FIELD_FALLBACKS.get((coll, fld), ()):
                    if alt in keys(col.tree):
                        col = _Column(col.tree, alt)
                        break
            if col is not None and col.branch in keys(col.tree):
                gone = [e for e in col.extra if e not in keys(col.tree)]
                if gone:
                    raise missing(col, coll, fld, gone[0])
                plan[fld] = col
            elif coll != "met" and (coll, fld) in _CONSTANTS:
                plan[fld] = _Const(_CONSTANTS[(coll, fld)])
            elif explicit or fld in schema.REQUIRED_FIELDS[coll]:
                if col is None:
                    raise ReadError(f"{path}: the {layout} layout has no branch for {coll}.{fld}")
                raise missing(col, coll, fld)
        if coll == "met":
            met = {k: v for k, v in plan.items() if isinstance(v, _Column)}
        else:
            objects[coll] = plan

    tree_branches: dict[str, list[str]] = {}
    columns: list[_Column | _Const] = [
        *(c for p in objects.values() for c in p.values()),
        *met.values(),
    ]
    for column in columns:
        if isinstance(column, _Column):
            lst = tree_branches.setdefault(column.tree, [])
            for b in (column.branch, *column.extra):
                if b not in lst:
                    lst.append(b)

    counts = {t: _entries(_get(f, path, t, trees), path, t) for t in tree_branches}
    if layout == "poet":
        # the trees read are joined entry by entry: they must have the same entries
        # (num_entries checks every analyzer tree; here unread ones are not even opened)
        items = list(counts.items())
        for t, n in items[1:]:
            if n != items[0][1]:
                raise ReadError(
                    f"{path}: POET trees are joined entry by entry but {items[0][0]!r} has "
                    f"{items[0][1]} entries and {t!r} has {n}"
                )
    if not counts:  # every requested collection is missing: count the events anyway
        if layout == "poet":
            for pc in schema.POET_COLLECTIONS.values():
                t = f"{pc.directory}/{schema.POET_TREE}"
                if t in trees:
                    counts[t] = _entries(_get(f, path, t, trees), path, t)
                    break
        else:
            t = (nano_tree if layout == "nanoaod" else schema.POET_MERGED_TREE) or (
                schema.NANOAOD_TREE
            )
            counts[t] = _entries(_get(f, path, t, trees), path, t)
    n_entries = next(iter(counts.values())) if counts else 0
    return _Plan(path, layout, n_entries, tree_branches, objects, met, empty)


# --------------------------------------------------------------------------------------
# arrays -> EventBatch
# --------------------------------------------------------------------------------------


#: fields the C++ core requires finite (True: also >= 0); checked as they are read, so a
#: bad value is reported with its file, tree, branch and entry
_CHECKED_FIELDS = {"pt": True, "eta": False, "phi": False, "mass": False}


def _check_values(
    path: str,
    col: _Column,
    fld: str,
    values: np.ndarray,
    offsets: np.ndarray | None,
    entry_start: int,
) -> None:
    non_negative = _CHECKED_FIELDS.get(fld)
    if non_negative is None or values.dtype.kind != "f":
        return
    ok = (values >= 0) if non_negative else np.isfinite(values)
    if non_negative:
        ok &= values != np.inf
    if ok.all():
        return
    k = int(np.argmin(ok))
    event = k if offsets is None else int(np.searchsorted(offsets, k, side="right")) - 1
    v = values[k]
    what = "not finite" if not np.isfinite(v) else "negative"
    where = "" if offsets is None else f", object {k - int(offsets[event])} of the entry"
    raise BadValueError(
        f"{path}: tree {col.tree!r}, branch {col.branch!r}: value {v} at entry "
        f"{entry_start + event}{where} is {what} ({fld} must be finite"
        f"{' and >= 0' if non_negative else ''})"
    )


def _build(
    plan: _Plan, chunk: Mapping[str, Mapping[str, Any]], entry_start: int, n: int = 0
) -> EventBatch:
    import awkward as ak

    lengths = {t: len(next(iter(arrays.values()))) for t, arrays in chunk.items()}
    n = next(iter(lengths.values())) if lengths else n
    for m in lengths.values():
        if m != n:
            raise ReadError(
                f"{plan.path}: trees read different numbers of entries from entry {entry_start}: "
                + ", ".join(f"{k!r} {v}" for k, v in lengths.items())
            )
    flat: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def get(tree: str, branch: str) -> tuple[np.ndarray, np.ndarray]:
        key = (tree, branch)
        if key not in flat:
            flat[key] = flatten(chunk[tree][branch])
        return flat[key]

    collections: dict[str, Collection] = {}
    for coll, cols in plan.objects.items():
        offsets: np.ndarray | None = None
        first = ""
        fields: dict[str, np.ndarray] = {}
        for fld, col in cols.items():
            if isinstance(col, _Const):
                continue
            content, off = get(col.tree, col.branch)
            if offsets is None:
                offsets, first = off, col.branch
            elif off is not offsets and not np.array_equal(off, offsets):
                bad = (
                    int(np.flatnonzero(np.diff(off) != np.diff(offsets))[0])
                    if len(off) == len(offsets)
                    else 0
                )
                raise ReadError(
                    f"{plan.path}: branches {first!r} and {col.branch!r} of tree {col.tree!r} "
                    f"have different object counts at entry {entry_start + bad}"
                )
            if col.convert is not None:
                extra = {e: get(col.tree, e)[0] for e in col.extra}
                content = np.asarray(col.convert(content, **extra))
            _check_values(plan.path, col, fld, content, off, entry_start)
            fields[fld] = content
        assert offsets is not None  # pt is always read from a branch
        n_obj = int(offsets[-1])
        for fld, col in cols.items():
            if isinstance(col, _Const):
                fields[fld] = np.full(n_obj, col.value, dtype=schema.COLUMN_DTYPE)
        collections[coll] = Collection(offsets, {k: fields[k] for k in cols})
    met: dict[str, np.ndarray] = {}
    for fld, col in plan.met.items():
        values = chunk[col.tree][col.branch]
        values = values if isinstance(values, np.ndarray) else ak.to_numpy(values)
        if values.ndim != 1:
            raise ReadError(
                f"{plan.path}: MET branch {col.branch!r} of tree {col.tree!r} must hold one "
                f"value per event, it has shape {values.shape}"
            )
        if col.convert is not None:
            extra = {e: ak.to_numpy(chunk[col.tree][e]) for e in col.extra}
            values = np.asarray(col.convert(values, **extra))
        _check_values(plan.path, col, fld, values, None, entry_start)
        met[fld] = values
    for coll, names in plan.empty.items():
        if coll == "met":
            met.update({k: np.zeros(n, dtype=schema.COLUMN_DTYPE) for k in names})
        else:
            collections[coll] = Collection.empty(n, names)
    return EventBatch(
        n_events=n,
        collections=collections,
        met=met,
        source=plan.path,
        entry_start=entry_start,
        layout=plan.layout,
    )


def _range(n: int, entry_start: int | None, entry_stop: int | None) -> tuple[int, int]:
    start, stop, _ = slice(entry_start, entry_stop).indices(n)
    return start, max(start, stop)


def _corrupt(path: str, tree: str, at: int, exc: Exception) -> ReadError:
    return ReadError(
        f"{path}: cannot read tree {tree!r} from entry {at} (truncated or corrupt file?): "
        f"{type(exc).__name__}: {exc}"
    )


class ConstantIDWarning(UserWarning):
    """An identification branch has one value for every object of a chunk (e.g. the 2015
    NanoAOD file's ``Muon_tightId`` is False for all muons): a selection on it keeps all or
    nothing."""


#: identification fields checked for constant values, and the fewest objects to judge by
_ID_FIELDS = ("tight_id", "medium_id", "loose_id")
_ID_MIN_OBJECTS = 10


def _warn_constant_ids(plan: _Plan, batch: EventBatch, pos: int, warned: set[str]) -> None:
    import warnings

    for coll, cols in plan.objects.items():
        for fld in _ID_FIELDS:
            col = cols.get(fld)
            if (
                not isinstance(col, _Column)
                or col.branch in warned
                or coll not in batch.collections
            ):
                continue
            c = batch[coll]
            if fld not in c or c.n_objects < _ID_MIN_OBJECTS:
                continue
            v = c[fld]
            if np.all(v == v[0]):
                warned.add(col.branch)
                warnings.warn(
                    f"{plan.path}: branch {col.branch!r} ({coll}.{fld}) is {v[0]:g} for all "
                    f"{c.n_objects} {coll}s of entries {pos}-{pos + batch.n_events - 1}: a "
                    f"selection on {fld} keeps {'all' if v[0] else 'none'} of them.  IDs differ "
                    "per era and production (reading guide, 'Identification per era'); "
                    f"without a usable ID set selection.{coll}.tight_id: false",
                    ConstantIDWarning,
                    stacklevel=4,
                )


def _iter_file(
    f: Any, plan: _Plan, step_size: int, start: int, stop: int, inflate: Any = None
) -> Iterator[EventBatch]:
    """Batches of one open file; ``inflate``: uproot's ``decompression_executor`` (None:
    baskets are decompressed in the calling thread)."""
    warned: set[str] = set()
    iters = {}
    for tree, branches in plan.trees.items():
        try:
            iters[tree] = _get(f, plan.path, tree).iterate(
                branches,
                step_size=step_size,
                entry_start=start,
                entry_stop=stop,
                library="ak",
                how=dict,
                decompression_executor=inflate,
            )
        except Exception as exc:
            raise _corrupt(plan.path, tree, start, exc) from exc
    if not iters:  # only collections the file lacks were asked for (missing="empty")
        for lo in range(start, stop, step_size):
            yield _build(plan, {}, lo, min(step_size, stop - lo))
        return
    pos = start
    while True:
        chunk: dict[str, Any] = {}
        done = []
        for tree, it in iters.items():
            try:
                chunk[tree] = next(it)
            except StopIteration:
                done.append(tree)
            except ReadError:
                raise
            except Exception as exc:
                raise _corrupt(plan.path, tree, pos, exc) from exc
        if done:
            if len(done) != len(iters):
                raise ReadError(
                    f"{plan.path}: tree{'s' if len(done) > 1 else ''} {', '.join(map(repr, done))} "
                    f"ended at entry {pos} before {', '.join(map(repr, chunk))}"
                )
            return
        try:
            batch = _build(plan, chunk, pos)
        except (ReadError, BadValueError):
            raise
        except Exception as exc:
            raise ReadError(
                f"{plan.path}: cannot convert entries {pos}.. of the {plan.layout} layout: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _warn_constant_ids(plan, batch, pos, warned)
        yield batch
        pos += batch.n_events


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def _check_step(step_size: int) -> int:
    if isinstance(step_size, bool) or not isinstance(step_size, int | np.integer) or step_size < 1:
        raise ValueError(f"step_size must be a positive number of events, got {step_size!r}")
    return int(step_size)


def iterate(
    files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    step_size: int = 100_000,
    *,
    layout: str = "auto",
    collections: Sequence[str] | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    progress: bool = False,
    missing_collections: str = "error",
    threads: int | None = None,
) -> Iterator[EventBatch]:
    """Stream events from ntuples as :class:`~poetml.jagged.EventBatch` es of at most
    ``step_size`` events, one file after the other (each batch from one file).

    files
        a path, a glob pattern, or a list of them.
    layout
        ``auto`` (detected per file), ``poet``, ``poet-merged`` or ``nanoaod``.
    collections
        canonical collections to read (``muon``, ``electron``, ``jet``, ``photon``, ``tau``,
        ``met``); each must exist in every file.  Default: all of them the file has.
    fields
        ``{collection: (field, ...)}``; each field must exist (or be one the reader supplies:
        muon/electron/photon ``mass`` from :data:`poetml.schema.MASSES`, jet/photon
        ``charge`` = 0).  Collections not named read
        :data:`~poetml.schema.DEFAULT_READ_FIELDS` restricted to what the file has; a missing
        required field (pt, eta, phi) is an error.
    entry_start, entry_stop
        the entry range read from *each* file (Python slice semantics, negative counts from
        the end).
    progress
        show a tqdm bar (events) on stderr.
    missing_collections
        what to do when a file lacks a collection named in ``collections``: ``error``
        (default: a ReadError naming the tree or branch), ``skip`` (leave it out of the
        batch) or ``empty`` (give it with no objects; MET fields as zeros).
    threads
        threads decompressing the ROOT baskets (uproot's ``decompression_executor``;
        zlib, LZ4 and ZSTD release the GIL, and decompression is most of reading).
        Default: one per core; 1: in the thread that iterates.
    """
    step_size = _check_step(step_size)
    paths = expand_files(files)
    n_inflate = (os.cpu_count() or 1) if threads is None else threads
    if isinstance(n_inflate, bool) or not isinstance(n_inflate, int) or n_inflate < 1:
        raise ValueError(f"threads must be a positive number or None, got {threads!r}")
    bar = None
    inflate = None
    if progress:
        from tqdm.auto import tqdm

        total = 0
        for p in paths:
            lo, hi = _range(num_entries(p, layout=layout), entry_start, entry_stop)
            total += hi - lo
        bar = tqdm(total=total, unit="event", unit_scale=True, file=sys.stderr, desc="reading")
    try:
        if n_inflate > 1:
            from concurrent.futures import ThreadPoolExecutor

            inflate = ThreadPoolExecutor(n_inflate, thread_name_prefix="poetml-inflate")
        for path in paths:
            with _open(path) as f:
                plan = _plan(f, path, layout, collections, fields, missing_collections)
                start, stop = _range(plan.n_entries, entry_start, entry_stop)
                for batch in _iter_file(f, plan, step_size, start, stop, inflate):
                    if bar is not None:
                        bar.update(batch.n_events)
                    yield batch
    finally:
        if inflate is not None:
            inflate.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


def read(
    path: str | os.PathLike[str],
    entry_start: int | None = None,
    entry_stop: int | None = None,
    *,
    layout: str = "auto",
    collections: Sequence[str] | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
    missing_collections: str = "error",
) -> EventBatch:
    """Entries ``entry_start:entry_stop`` of one file as one :class:`EventBatch`.

    Options as in :func:`iterate`.  An empty range gives an empty batch.
    """
    path = os.fspath(path)
    with _open(path) as f:
        plan = _plan(f, path, layout, collections, fields, missing_collections)
        start, stop = _range(plan.n_entries, entry_start, entry_stop)
        chunk = {}
        for tree, branches in plan.trees.items():
            try:
                chunk[tree] = _get(f, path, tree).arrays(
                    branches, entry_start=start, entry_stop=stop, library="ak", how=dict
                )
            except Exception as exc:
                raise _corrupt(path, tree, start, exc) from exc
        try:
            return _build(plan, chunk, start, stop - start)
        except (ReadError, BadValueError):
            raise
        except Exception as exc:
            raise ReadError(
                f"{path}: cannot convert entries {start}:{stop} of the {plan.layout} layout: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def num_entries(path: str | os.PathLike[str], layout: str = "auto") -> int:
    """Number of events in ``path`` (for POET, after checking the analyzer trees agree)."""
    path = os.fspath(path)
    with _open(path) as f:
        trees = _trees(f, path)
        layout, nano_tree = _resolve_layout(f, path, trees, layout)
        if layout == "nanoaod":
            name = nano_tree or schema.NANOAOD_TREE
            return _entries(_get(f, path, name, trees), path, name)
        if layout == "poet-merged":
            name = schema.POET_MERGED_TREE
            return _entries(_get(f, path, name, trees), path, name)
        counts = {}
        for pc in schema.POET_COLLECTIONS.values():
            t = f"{pc.directory}/{schema.POET_TREE}"
            if t in trees:
                counts[t] = _entries(_get(f, path, t, trees), path, t)
        items = list(counts.items())
        for t, n in items[1:]:
            if n != items[0][1]:
                raise ReadError(
                    f"{path}: POET trees are joined entry by entry but {items[0][0]!r} has "
                    f"{items[0][1]} entries and {t!r} has {n}"
                )
        return items[0][1]


def available_collections(path: str | os.PathLike[str], layout: str = "auto") -> list[str]:
    """Canonical collections (``muon`` ... ``met``) that ``path`` has, in canonical order."""
    path = os.fspath(path)
    with _open(path) as f:
        try:
            plan = _plan(f, path, layout, None, None)
        except ReadError as exc:
            if "no canonical collection" in str(exc):
                return []
            raise
        return [*plan.objects, *(["met"] if plan.met else [])]


def read_weights(
    path: str | os.PathLike[str],
    layout: str = "auto",
    entry_stop: int | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """The per-event weights of ``path`` (entries ``0:entry_stop``) and their kind.

    ``("pb", w)``: the ``weight`` branch ``poetml generate`` writes (pb per event, summing to
    the sample's cross section) in the generator-truth tree (``mygenparticles/Events``, or
    ``events`` merged); ``("genWeight", w)``: NanoAOD's unnormalised generator weight (to be
    scaled by sigma / sum over the whole sample); ``(None, None)``: no weights (real data, or
    simulation written without them).  Returned as ``(weights, kind)``; float64."""
    w, nano = _read_generator_branch(
        path, layout, entry_stop, schema.WEIGHT_BRANCH_NAME, schema.NANOAOD_WEIGHT_BRANCH
    )
    if w is None:
        return None, None
    return w, "genWeight" if nano else "pb"


def read_pthat(
    path: str | os.PathLike[str],
    layout: str = "auto",
    entry_stop: int | None = None,
) -> np.ndarray | None:
    """Each event's pT-hat [GeV] (entries ``0:entry_stop``): the ``pthat`` branch
    ``poetml generate`` writes beside ``weight``, or NanoAOD's ``Generator_binvar``; None
    when the file has neither (real data, older files).  float64."""
    return _read_generator_branch(
        path, layout, entry_stop, schema.PTHAT_BRANCH_NAME, schema.NANOAOD_PTHAT_BRANCH
    )[0]


def read_pileup_pthat(
    path: str | os.PathLike[str],
    layout: str = "auto",
    entry_stop: int | None = None,
) -> np.ndarray | None:
    """Each event's largest pile-up pT-hat [GeV] (entries ``0:entry_stop``): the
    ``pileup_pthat_max`` branch ``poetml generate`` writes beside ``pthat``; None when the
    file has none (NanoAOD, real data, older files).  float64."""
    return read_pthats(path, layout, entry_stop)[1]


def read_pthats(
    path: str | os.PathLike[str],
    layout: str = "auto",
    entry_stop: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`read_pthat` and :func:`read_pileup_pthat` of ``path`` from one opening of
    the file."""
    (pt, pu), _ = _read_generator_branches(
        path,
        layout,
        entry_stop,
        [
            (schema.PTHAT_BRANCH_NAME, schema.NANOAOD_PTHAT_BRANCH),
            (schema.PILEUP_PTHAT_BRANCH_NAME, None),
        ],
    )
    return pt, pu


def _read_generator_branch(
    path: str | os.PathLike[str],
    layout: str,
    entry_stop: int | None,
    poet_branch: str,
    nano_branch: str | None,
) -> tuple[np.ndarray | None, bool]:
    """A per-event generator-level branch (float64, finite) and whether it came from
    NanoAOD; ``(None, False)`` when the file does not have it."""
    (w,), nano = _read_generator_branches(path, layout, entry_stop, [(poet_branch, nano_branch)])
    return w, nano and w is not None


def _read_generator_branches(
    path: str | os.PathLike[str],
    layout: str,
    entry_stop: int | None,
    branches: Sequence[tuple[str, str | None]],
) -> tuple[list[np.ndarray | None], bool]:
    """Per-event generator-level branches (float64, finite; ``(poet name, NanoAOD name or
    None)`` each, None for one the file does not have) from one opening of ``path``, and
    whether the file is NanoAOD."""
    path = os.fspath(path)
    out: list[np.ndarray | None] = []
    with _open(path) as f:
        trees = _trees(f, path)
        layout_found, nano_tree = _resolve_layout(f, path, trees, layout)
        nano = layout_found == "nanoaod"
        if nano:
            tree = nano_tree
        elif layout_found == "poet-merged":
            tree = schema.POET_MERGED_TREE
        else:
            tree = f"{schema.POET_COLLECTIONS['genparticle'].directory}/{schema.POET_TREE}"
        obj = _get(f, path, tree, trees) if tree is not None and tree in trees else None
        keys = _keys(obj, path, str(tree)) if obj is not None else ()
        for poet_branch, nano_branch in branches:
            branch = nano_branch if nano else poet_branch
            if obj is None or branch is None or branch not in keys:
                out.append(None)
                continue
            try:
                w = np.asarray(obj[branch].array(library="np", entry_stop=entry_stop), np.float64)
            except Exception as exc:
                raise _corrupt(path, f"{tree}:{branch}", 0, exc) from exc
            bad = ~np.isfinite(w)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ReadError(f"{path}: {tree}:{branch} entry {i} is not finite ({w[i]})")
            out.append(w)
    return out, nano


def _generation_metadata(f: Any, path: str) -> dict[str, Any] | None:
    """The JSON string ``poetml generate`` writes at the top of a file, parsed."""
    import json

    key = schema.GENERATION_METADATA_KEY
    try:
        if key not in f:
            return None
        return dict(json.loads(str(f[key])))
    except Exception as exc:  # noqa: BLE001 - shown, never fatal: the events are still readable
        return {"error": f"{path}: unreadable {key}: {exc}"}


def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What is in a file: a plain dict, JSON-ready.

    ``path``, ``size_bytes``, ``layout`` (None when it cannot be told, with the reason in
    ``layout_error``), ``trees`` (``{name: {"kind", "entries", "branches": {name: type}}}``),
    ``collections`` (for a known layout: ``{collection: {field: "tree:branch"}}`` for the
    canonical fields found; ``"(constant)"`` for supplied ones), ``entries`` (events in
    the layout, None when unknown or inconsistent) and ``generation`` (the metadata
    ``poetml generate`` stores: cross section and error, events tried and accepted, filter
    efficiency, seed, settings; None for other files).
    """
    path = os.fspath(path)
    with _open(path) as f:
        trees = _trees(f, path)
        info: dict[str, Any] = {
            "path": path,
            "size_bytes": os.path.getsize(path) if os.path.exists(path) else None,
            "layout": None,
            "layout_error": None,
            "entries": None,
            "trees": {},
            "collections": {},
            "generation": _generation_metadata(f, path),
        }
        for name, cls in trees.items():
            obj = _get(f, path, name, trees)
            branches: dict[str, str] = {}
            for key in _keys(obj, path, name):
                if "." in key and cls == "ROOT::RNTuple":
                    continue
                try:
                    branches[key] = str(obj[key].typename)
                except Exception:  # noqa: BLE001 - an unreadable type is shown as "?"
                    branches[key] = "?"
            info["trees"][name] = {
                "kind": "RNTuple" if cls == "ROOT::RNTuple" else cls,
                "entries": _entries(obj, path, name),
                "branches": branches,
            }
        try:
            layout, nano_tree = _detect(f, path, trees)
        except ReadError as exc:
            info["layout_error"] = str(exc)
            return info
        info["layout"] = layout
        for coll in schema.COLLECTIONS:
            found: dict[str, str] = {}
            for fld in schema.CANONICAL_FIELDS[coll]:
                col = _locate(layout, coll, fld, nano_tree)
                if col is not None and col.branch in info["trees"].get(col.tree, {}).get(
                    "branches", {}
                ):
                    found[fld] = f"{col.tree}:{col.branch}"
                    if col.convert is not None:
                        how = (col.convert.__doc__ or "").strip() or (
                            f"{col.convert.__name__.strip('_')}({', '.join((col.branch, *col.extra))})"
                        )
                        found[fld] += f" ({how})"
                elif coll != "met" and (coll, fld) in _CONSTANTS and "pt" in found:
                    found[fld] = f"(constant {_CONSTANTS[(coll, fld)]:g})"
            if "pt" in found:
                info["collections"][coll] = found
        try:
            info["entries"] = num_entries(path, layout)
        except ReadError as exc:
            info["layout_error"] = str(exc)
        return info


# --------------------------------------------------------------------------------------
# overlap reading with computing
# --------------------------------------------------------------------------------------

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(iterable: Iterable[Any], depth: int = 1) -> Generator[Any, None, None]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead of the consumer.

    Reading the next chunk (uproot decompression releases the GIL) then overlaps with the
    work done on the current one (the C++ core releases the GIL).  Exceptions raised by the
    producer are re-raised in the consumer; closing the returned generator stops the
    producer.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterable:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(_Raised(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="poetml-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(iterable, "close", None)
        if close is not None and not thread.is_alive():
            close()
