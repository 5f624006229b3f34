"""Labelled datasets: processes -> ntuple files -> class labels -> images or features.

A :class:`DatasetConfig` lists processes; each names its files (or, with none, takes its
file from the default dataset that :func:`poetml.generate.generate_default` writes), the
class it belongs to (``label``; processes with the same label form one class) and its
``role``: ``train`` processes make the classes a classifier learns (or the background an
autoencoder learns), ``signal`` processes are kept apart for evaluating anomaly detection.

:func:`build` streams the files through :func:`poetml.iterate` and the C++ core
(:func:`poetml.datasets.convert.write_batch`, the loop ``poetml images`` uses) and returns a
:class:`LabelledData`; :func:`save`/:func:`load` store it as one HDF5 file (the layout of
:mod:`poetml.datasets.hdf5`) whose ``labels`` are the *process* index of each event and whose attributes hold
the process table, so the same file serves classifiers and autoencoders.  Images stay
sparse from end to end: :func:`build` keeps the core's sparse form
(:func:`poetml.rasterize_sparse`), :class:`LabelledData` holds it
(:class:`~poetml.images.SparseImages`) and :func:`save` writes the sparse layout of
:mod:`poetml.datasets.sparse`, so no dense tensor of the whole dataset is ever made (a dense
image file is read too, and its images stay dense).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..exceptions import ConfigError, ReadError
from ..images import SparseImages, concatenate_sparse

__all__ = [
    "DatasetConfig",
    "LabelledData",
    "ProcessConfig",
    "build",
    "load",
    "resolve_files",
    "save",
]


@dataclass(frozen=True)
class ProcessConfig:
    """One physics process: ``files`` (paths or globs; empty = the default dataset's file of
    process ``name``), its class ``label`` (default: ``name``), ``role`` (``train`` or
    ``signal``), an optional cap ``max_events`` and ``cross_section_pb``.

    Event weights [pb] come from the files: the ``weight`` branch ``poetml generate``
    writes, or NanoAOD ``genWeight`` scaled so the process sums to ``cross_section_pb``
    (required then).  ``cross_section_pb`` also renormalises files with weights (e.g. to a
    measured or NNLO cross section) and weights files without any (sigma / events).  Files
    of one process are *parts* of one sample (pT-hat bins, a sample split across files):
    their weights add.  Without weights or a cross section every event weighs 1 (real
    data: each event is one recorded event)."""

    name: str
    files: tuple[str, ...] = ()
    label: str | None = None
    role: Literal["train", "signal"] = "train"
    max_events: int | None = None
    cross_section_pb: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        if not self.name:
            raise ConfigError("a process needs a non-empty name", key="name")
        if any(not f for f in self.files):
            raise ConfigError(f"an empty file name in {list(self.files)}", key="files")
        if self.label is not None and not self.label:
            raise ConfigError("must be a non-empty class name (or left out: the name)", key="label")
        if self.max_events is not None and self.max_events < 1:
            raise ConfigError(
                f"must be >= 1 (or left out: all), got {self.max_events}", key="max_events"
            )
        xs = self.cross_section_pb
        if xs is not None and not (math.isfinite(xs) and xs > 0):
            raise ConfigError(
                f"must be a cross section > 0 in pb (or left out), got {xs}", key="cross_section_pb"
            )

    @property
    def class_name(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class DatasetConfig:
    """How the labelled dataset is made.

    kind
        ``images`` (the ``images:`` section's ImageSpec) or ``features`` (``features:``).
    processes
        list of :class:`ProcessConfig`.
    default_dir, default_scale, default_events
        where the default dataset is generated (when a process has no files), the factor
        on its per-process event counts, and counts that replace the default ones for the
        processes named (``{qcd: 100000}``: a large background for trigger-rate working
        points; give such a dataset its own ``default_dir``, as any change of counts
        regenerates the whole default dataset in that directory).
    default_pileup, default_bias
        how the default dataset's processes are generated: the mean number of pile-up
        interactions overlaid from the premixed minimum-bias pool (0: none), and per process
        the power of Pythia's ``PhaseSpace:bias2Selection`` (``{qcd: 4.0}``: the pT-hat tail,
        where a trigger threshold sits, populated; each event's ``weight`` carries the bias,
        so rates stay those of the unbiased process).  Both are part of each process's cache
        key: changing them regenerates that process.
    split, seed
        train/validation/test fractions (stratified) and the seed of the shuffle.
    balance
        ``weights`` (class weights in the loss), ``resample`` (oversample the training
        split) or ``none``.
    quantile, log1p_energy
        scaler options (see :mod:`poetml.datasets.scalers`).
    background
        how the events stand for real collisions: ``as_generated`` (every process as its
        files hold it); ``single_lepton`` (the convention of the ADC2021 anomaly-detection
        dataset: only events with an electron or muon above ``lepton_filter_pt`` GeV, an
        L1-like single-lepton filter applied to every process, so the weights of what is
        left give the stream's absolute rate); ``zero_bias`` (a ``minbias`` process plus the
        hard processes, every event a bunch crossing with the beam's pile-up, stitched and
        weighted so the stream totals the filled-crossing rate: what a zero-bias trigger
        records; see :func:`poetml.pipeline.data.zero_bias_weights`).
    """

    kind: Literal["images", "features"] = "images"
    processes: tuple[ProcessConfig, ...] = ()
    default_dir: str = "default-data"
    default_scale: float = 1.0
    default_events: dict[str, int] | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 1
    balance: Literal["weights", "resample", "none"] = "weights"
    quantile: float = 0.99
    log1p_energy: bool = False
    step_size: int = 20_000
    background: Literal["as_generated", "single_lepton", "zero_bias"] = "as_generated"
    lepton_filter_pt: float = 23.0
    default_pileup: float = 0.0
    default_bias: dict[str, float] | None = None

    def __post_init__(self) -> None:
        names = [p.name for p in self.processes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(
                f"process names must be unique; repeated: {', '.join(dup)}", key="processes"
            )
        bad = {k: v for k, v in (self.default_events or {}).items() if v < 1}
        if bad:
            raise ConfigError(f"default_events must be >= 1; got {bad}", key="default_events")
        split = tuple(self.split)
        if len(split) != 3:
            raise ConfigError(
                f"needs 3 fractions (train, validation, test), got {list(split)}", key="split"
            )
        for part, f in zip(("train", "validation", "test"), split, strict=True):
            if not 0.0 < f < 1.0:
                raise ConfigError(f"the {part} fraction must be in (0, 1), got {f}", key="split")
        if abs(sum(split) - 1.0) > 1e-6:
            raise ConfigError(
                f"fractions must sum to 1, got {'+'.join(f'{f:g}' for f in split)}={sum(split):g}",
                key="split",
            )
        if isinstance(self.step_size, bool) or self.step_size < 1:
            raise ConfigError(
                f"must be a positive number of events, got {self.step_size!r}", key="step_size"
            )
        if not (math.isfinite(self.default_scale) and self.default_scale > 0):
            raise ConfigError(
                f"must be a finite factor > 0 on the default dataset's event counts, got "
                f"{self.default_scale}",
                key="default_scale",
            )
        if not self.default_dir:
            raise ConfigError("must name a directory", key="default_dir")
        if not (math.isfinite(self.default_pileup) and self.default_pileup >= 0):
            raise ConfigError(
                f"must be a finite mean number of pile-up interactions >= 0, got "
                f"{self.default_pileup}",
                key="default_pileup",
            )
        for name, power in (self.default_bias or {}).items():
            if isinstance(power, bool) or not (math.isfinite(power) and power > 0):
                raise ConfigError(
                    f"{name}: the pT-hat bias power must be a finite number > 0, got {power!r}",
                    key="default_bias",
                )
        if not 0.0 < self.quantile <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {self.quantile}", key="quantile")
        if self.background not in ("as_generated", "single_lepton", "zero_bias"):
            raise ConfigError(
                f"must be as_generated, single_lepton or zero_bias, got {self.background!r}",
                key="background",
            )
        if not (math.isfinite(self.lepton_filter_pt) and self.lepton_filter_pt >= 0):
            raise ConfigError(
                f"must be a pT >= 0 GeV, got {self.lepton_filter_pt}", key="lepton_filter_pt"
            )
        if self.background == "zero_bias" and not any(
            p.name == "minbias" and p.role == "train" for p in self.processes
        ):
            raise ConfigError(
                "background: zero_bias needs a process named minbias with role train (the "
                "minimum-bias events that make up most of the stream)",
                key="background",
            )

    def train_processes(self) -> list[ProcessConfig]:
        return [p for p in self.processes if p.role == "train"]

    def class_names(self) -> list[str]:
        out: list[str] = []
        for p in self.train_processes():
            if p.class_name not in out:
                out.append(p.class_name)
        return out


@dataclass(frozen=True, eq=False)
class LabelledData:
    """Arrays of a labelled dataset.

    ``x`` images or features (raw, unscaled; images as
    :class:`~poetml.images.SparseImages` when built or read from the sparse layout, else
    dense ``(N, n_eta, n_phi, C)``); ``process`` the index of each event's process
    in ``processes`` (the sample id); ``source``/``event_index`` the file (index into
    ``inputs``) and entry of each event; ``names`` feature names or channel names; ``aux``
    extra per-event arrays (e.g. ``m_mumu``); ``weight`` each event's weight in pb (float64;
    a process's weights sum to its cross section x efficiency; 1 per event for files
    without weights, see :class:`ProcessConfig`).
    """

    x: np.ndarray | SparseImages
    process: np.ndarray
    processes: tuple[ProcessConfig, ...]
    kind: str
    names: tuple[str, ...]
    source: np.ndarray
    event_index: np.ndarray
    inputs: tuple[str, ...]
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)
    weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.weight is None:
            object.__setattr__(self, "weight", np.ones(len(self.x), np.float64))

    @property
    def weights(self) -> np.ndarray:
        """``weight`` (never None)."""
        assert self.weight is not None
        return self.weight

    def __len__(self) -> int:
        return len(self.x)

    @property
    def class_names(self) -> list[str]:
        return DatasetConfig(processes=self.processes).class_names()

    def class_labels(self) -> np.ndarray:
        """Class index of each event (int32); -1 for ``signal`` processes."""
        classes = self.class_names
        table = np.array(
            [classes.index(p.class_name) if p.role == "train" else -1 for p in self.processes],
            dtype=np.int32,
        )
        return table[self.process] if len(self.process) else np.zeros(0, np.int32)

    @property
    def sparse(self) -> bool:
        """Whether ``x`` holds sparse images."""
        return isinstance(self.x, SparseImages)

    def select(self, idx: np.ndarray) -> LabelledData:
        """Events ``idx`` (integer indices)."""
        return LabelledData(
            take(self.x, idx),
            self.process[idx],
            self.processes,
            self.kind,
            self.names,
            self.source[idx],
            self.event_index[idx],
            self.inputs,
            {k: v[idx] for k, v in self.aux.items()},
            self.weights[idx],
        )


def take(x: np.ndarray | SparseImages, idx: np.ndarray) -> np.ndarray | SparseImages:
    """Events ``idx`` (integer indices, any order) of dense arrays or sparse images."""
    return x.take(idx) if isinstance(x, SparseImages) else x[idx]


def resolve_files(
    config: DatasetConfig,
    base_dir: str | os.PathLike[str] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Process name -> list of existing files.

    Explicit ``files`` are expanded (globs, relative to ``base_dir``); a process without
    files takes its file from ``manifest`` (the default dataset).  Errors name the process
    and the missing file or the known processes.
    """
    from ..reading import expand_files

    if not config.processes:
        raise ConfigError("dataset: no processes given; list them under dataset.processes")
    if not config.train_processes():
        raise ConfigError("dataset: no process has role 'train'")
    base = Path(base_dir) if base_dir is not None else Path(".")
    known = (manifest or {}).get("processes", {})
    unknown = [
        p.name
        for p in config.processes
        if not p.files and manifest is not None and p.name not in known
    ]
    if unknown:
        raise ConfigError(
            f"dataset process{'es' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} {'are' if len(unknown) > 1 else 'is'} not in the "
            f"default dataset; known processes: {', '.join(known)} (or give files: for it)"
        )
    out: dict[str, list[str]] = {}
    for p in config.processes:
        if p.files:
            paths = [str(base / f) if not os.path.isabs(f) else f for f in p.files]
            try:
                files = expand_files(paths)
            except (ReadError, OSError, ValueError) as exc:
                raise ConfigError(f"dataset process {p.name!r}: {exc}") from exc
            missing = [f for f in files if not os.path.exists(f)]
            if not files or missing:
                raise ConfigError(
                    f"dataset process {p.name!r}: no such file(s): {', '.join(missing or paths)}"
                )
            out[p.name] = files
            continue
        if manifest is None:
            raise ConfigError(
                f"dataset process {p.name!r} names no files and no default dataset is given"
            )
        known = manifest.get("processes", {})
        if p.name not in known:
            raise ConfigError(
                f"dataset process {p.name!r} is not in the default dataset; known processes: "
                f"{', '.join(known)} (or give files: for it)"
            )
        path = Path(config.default_dir if base_dir is None else base / config.default_dir)
        f = path / known[p.name]["file"]
        if not f.exists():
            raise ConfigError(f"dataset process {p.name!r}: default dataset file {f} is missing")
        out[p.name] = [str(f)]
    return out


class _Arrays:
    """Where :func:`poetml.datasets.convert.write_batch` puts a labelled dataset's events:
    lists of arrays in memory (the kernel's outputs are fresh arrays, kept as they are).
    With ``sparse`` (images) the kernel hands over :class:`~poetml.images.SparseImages`."""

    def __init__(self, sparse: bool = False) -> None:
        self.sparse = sparse
        self.x: list[Any] = []
        self.process: list[np.ndarray] = []
        self.source: list[np.ndarray] = []
        self.event_index: list[np.ndarray] = []

    def append(self, data: Any, event_index: Any, source_id: Any, labels: Any = None) -> None:
        n = len(data)
        self.x.append(data if isinstance(data, SparseImages) else np.asarray(data, np.float32))
        self.process.append(np.full(n, labels, dtype=np.int32))
        self.source.append(np.full(n, source_id, dtype=np.int32))
        self.event_index.append(np.asarray(event_index, dtype=np.int64))


def build(
    config: DatasetConfig,
    spec: Any,
    files: Mapping[str, Sequence[str]],
    *,
    layout: str = "auto",
    aux: Mapping[str, Callable[[Any], np.ndarray]] | None = None,
    progress: bool = True,
) -> LabelledData:
    """Read every process's files and build its images (``spec`` an ImageSpec) or features
    (a FeatureSpec).  ``aux`` maps a name to a function of an EventBatch returning one value
    per event, stored alongside (e.g. the dimuon mass).  Images are kept sparse."""
    from ..features import feature_names
    from ..reading import iterate
    from .convert import write_batch

    kept = _Arrays(sparse=config.kind == "images")
    inputs: list[str] = []
    weights: list[np.ndarray] = []
    aux_parts: dict[str, list[np.ndarray]] = {k: [] for k in (aux or {})}
    pthat_parts: list[np.ndarray] = []
    pu_pthat_parts: list[np.ndarray] = []
    names = tuple(spec.channels) if config.kind == "images" else tuple(feature_names(spec))
    for pi, p in enumerate(config.processes):
        if p.name not in files:
            raise ConfigError(f"no files resolved for dataset process {p.name!r}")
        n_done = 0
        n_start = sum(len(a) for a in kept.event_index)
        proc_w: list[tuple[np.ndarray | None, str | None, float, int]] = []
        for path in files[p.name]:
            if p.max_events is not None and n_done >= p.max_events:
                break
            file_id = len(inputs)
            inputs.append(str(path))
            stop = None if p.max_events is None else p.max_events - n_done
            proc_w.append(_file_weights(p, str(path), layout, stop))
            k0 = len(kept.event_index)
            for batch in iterate(
                path,
                config.step_size,
                layout=layout,
                entry_stop=stop,
                progress=progress,
                missing_collections="empty",
            ):
                n_done += write_batch(batch, kept, config.kind, spec, source_id=file_id, label=pi)
                for k, fn in (aux or {}).items():
                    aux_parts[k].append(np.asarray(fn(batch), dtype=np.float32))
            rows_f = kept.event_index[k0:]
            if rows_f:
                pt, pu = _file_pthats(str(path), layout, stop, np.concatenate(rows_f))
                pthat_parts.append(pt)
                pu_pthat_parts.append(pu)
        if n_done == 0:
            raise ConfigError(f"dataset process {p.name!r}: its files hold no events")
        rows = np.concatenate(kept.event_index)[n_start:] if kept.event_index else np.zeros(0)
        srcs_p = np.concatenate(kept.source)[n_start:]
        weights.append(_process_weights(p, proc_w, srcs_p, rows, len(inputs) - len(proc_w)))
    xs, procs, srcs, entries = kept.x, kept.process, kept.source, kept.event_index
    x_all = concatenate_sparse(xs) if kept.sparse else np.concatenate(xs)
    return LabelledData(
        x_all,
        np.concatenate(procs),
        tuple(config.processes),
        config.kind,
        names,
        np.concatenate(srcs),
        np.concatenate(entries),
        tuple(inputs),
        {
            **{k: np.concatenate(v) for k, v in aux_parts.items()},
            GEN_PTHAT: np.concatenate(pthat_parts).astype(np.float32),
            GEN_PILEUP_PTHAT: np.concatenate(pu_pthat_parts).astype(np.float32),
        },
        np.concatenate(weights),
    )


#: the aux column of each event's generator pT-hat [GeV] (NaN where a file has none):
#: what stitches minimum bias to pT-hat-generated QCD in the ``zero_bias`` stream
GEN_PTHAT = "gen_pthat"
#: the aux column of each event's largest pile-up pT-hat [GeV] (0 without pile-up, NaN
#: where a file does not record it): the zero-bias stitch checks that pile-up is soft
GEN_PILEUP_PTHAT = "gen_pileup_pthat_max"


def _file_pthats(
    path: str, layout: str, stop: int | None, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pT-hat and the largest pile-up pT-hat of the entries ``rows`` of ``path`` (NaN
    where it has no such branch), from one opening of the file."""
    from ..reading import read_pthats

    pt, pu = read_pthats(path, layout, stop)
    missing = np.full(len(rows), np.nan)
    return (missing if pt is None else pt[rows]), (missing if pu is None else pu[rows])


def _file_weights(
    p: ProcessConfig, path: str, layout: str, stop: int | None
) -> tuple[np.ndarray | None, str | None, float, int]:
    """(weights of entries ``0:stop`` or None, their kind, the sum over the whole file,
    the file's number of entries)."""
    from ..reading import num_entries, read_weights

    w_all, kind = read_weights(path, layout)
    n_file = num_entries(path, layout) if w_all is None else len(w_all)
    if kind == "genWeight" and p.cross_section_pb is None:
        raise ConfigError(
            f"dataset process {p.name!r}: {path} carries NanoAOD genWeight, which is not "
            "normalised; give the process's cross_section_pb so its events weigh sigma / "
            "sum(genWeight)",
            key="cross_section_pb",
        )
    total = float(w_all.sum()) if w_all is not None else float(n_file)
    w = None if w_all is None else w_all[:stop]
    return w, kind, total, n_file


def _process_weights(
    p: ProcessConfig,
    per_file: list[tuple[np.ndarray | None, str | None, float, int]],
    source: np.ndarray,
    rows: np.ndarray,
    first_file: int,
) -> np.ndarray:
    """Weights [pb] of the events kept for process ``p`` (``rows`` their entries,
    ``source`` their file ids).  A file read only in part (``max_events``) has its weights
    scaled so the part represents the whole file; ``cross_section_pb`` rescales the
    process to that total."""
    out = np.ones(len(rows), np.float64)
    has = [w is not None for w, _, _, _ in per_file]
    if any(has) and not all(has):
        raise ConfigError(
            f"dataset process {p.name!r}: some of its files carry event weights and some do "
            "not; give the files without weights as another process"
        )
    for i, (w, _, total, n_file) in enumerate(per_file):
        sel = source == first_file + i
        if w is None:
            continue
        part = w[rows[sel]]
        used = float(part.sum())
        if int(sel.sum()) < n_file and used != 0:
            part = part * (total / used)  # the part read stands for the whole file
        out[sel] = part
    if p.cross_section_pb is not None:
        if all(has):
            s = float(out.sum())
            if s != 0:
                out *= p.cross_section_pb / s
        else:
            out[:] = p.cross_section_pb / max(len(out), 1)
    return out


def save(
    path: str | os.PathLike[str], data: LabelledData, attrs: Mapping[str, Any] | None = None
) -> Path:
    """Write ``data`` as one HDF5 file (temporary name, renamed when complete): sparse images
    in the sparse layout (:class:`~poetml.datasets.sparse.SparseShardWriter`), dense images
    and features in the dense one (:func:`poetml.datasets.hdf5.write`)."""
    import h5py

    from .._atomic import atomic_path
    from .._mapping import to_mapping
    from . import hdf5
    from .sparse import SparseShardWriter

    path = Path(path)
    attrs = {**(attrs or {}), "processes": [to_mapping(p) for p in data.processes]}
    with atomic_path(path) as part:
        if isinstance(data.x, SparseImages):
            with SparseShardWriter(
                part, item_shape=data.x.shape, attrs=attrs, channels=data.names,
                inputs=data.inputs,
            ) as w:  # fmt: skip
                w.append(data.x, data.event_index, data.source, labels=data.process)
        else:
            hdf5.write(
                part,
                data.kind,
                data.x,
                event_index=data.event_index,
                source=data.source,
                labels=data.process,
                attrs=attrs,
                feature_names=data.names if data.kind == "features" else None,
                channels=data.names if data.kind == "images" else None,
                inputs=data.inputs,
            )
        with h5py.File(part, "a") as f:
            for k, v in data.aux.items():
                f.create_dataset(f"aux_{k}", data=v)
            wd = f.create_dataset("weight", data=np.asarray(data.weights, np.float64))
            wd.attrs["units"] = "pb"
    return path


def load(path: str | os.PathLike[str]) -> LabelledData:
    """Read a file written by :func:`save` (images of the sparse layout stay sparse)."""
    import h5py

    from .._mapping import from_mapping
    from . import hdf5

    ds = hdf5.load(path, keep_sparse=True)
    procs = ds.attrs.get("processes")
    if procs is None or ds.labels is None:
        raise ReadError(f"{path}: not a labelled dataset (no 'processes' attribute or labels)")
    processes = tuple(from_mapping(ProcessConfig, p) for p in procs)
    with h5py.File(path, "r") as f:
        aux = {k[4:]: np.asarray(f[k]) for k in f if k.startswith("aux_")}
        weight = np.asarray(f["weight"], np.float64) if "weight" in f else None
    names = ds.feature_names if ds.kind == "features" else ds.channels
    return LabelledData(
        ds.data,
        np.asarray(ds.labels, dtype=np.int32),
        processes,
        ds.kind,
        tuple(names or ()),
        np.asarray(ds.source),
        np.asarray(ds.event_index),
        tuple(ds.inputs),
        aux,
        weight,
    )
