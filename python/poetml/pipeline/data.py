"""The data stage: generate the default dataset when needed, build or reuse the labelled
dataset (cached in ``<output>/data/dataset.h5`` under a fingerprint of its inputs), split and
preprocess it into :class:`Prepared`.

Image datasets stay sparse from end to end: the cache holds the sparse layout of
:mod:`poetml.datasets.sparse`, the splits are :class:`~poetml.images.SparseImages`, the
scaler is fitted on their stored pixels, and the network inputs are made one batch at a
time (:meth:`Prepared.sequence`), so no dense tensor of a whole split is ever held."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._mapping import to_mapping
from ..config import RunConfig
from ..datasets import labelled
from ..datasets.labelled import DatasetConfig, LabelledData, take
from ..datasets.scalers import (
    DatasetError,
    Preprocessing,
    check_finite,
    check_sparse_finite,
    fit_scaler,
)
from ..datasets.splits import Split, split_weights, stratified_split
from ..exceptions import ConfigError
from ..images import SparseImages
from ..models import ModelConfig
from ..reading import ReadingConfig
from .checks import _check_config, _spec, check_config, default_dataset_events, output_dir

__all__ = [
    "Prepared",
    "apply_background",
    "build_dataset",
    "cached_dataset",
    "dataset_key",
    "load_or_build_dataset",
    "prepare",
    "prepare_data",
    "zero_bias_unbiased_khz",
    "zero_bias_weights",
]


@dataclass(frozen=True, eq=False)
class Prepared:
    """The dataset split and preprocessed for training.

    ``x_*`` are scaled and input-quantized arrays, or for a sparse image dataset (the
    cached dataset of ``poetml run``) the raw :class:`~poetml.images.SparseImages` of the
    split, which :meth:`sequence` densifies and preprocesses one batch at a time (see
    :attr:`sparse`); ``y_*`` class indices (classifiers) or the process index (autoencoder
    background); ``signals`` maps each signal process to its events (autoencoder
    evaluation; preprocessed, or sparse likewise); ``test`` the raw test subset.
    """

    data: LabelledData
    split: Split
    preprocessing: Preprocessing
    spec: Any
    autoencoder: bool
    x_train: np.ndarray | SparseImages
    y_train: np.ndarray
    x_val: np.ndarray | SparseImages
    y_val: np.ndarray
    x_test: np.ndarray | SparseImages
    y_test: np.ndarray
    test: LabelledData
    signals: Mapping[str, np.ndarray | SparseImages] = field(default_factory=dict)
    #: per-event weights [pb] of the test split, rescaled per process so each process's
    #: test events sum to its whole cross section (see :func:`split_weights`)
    w_test: np.ndarray | None = None
    #: whether the dataset's events carry weights from their files (not all 1)
    weighted: bool = False
    #: the same for the training and validation splits
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None
    #: what ``dataset.background`` did (see :func:`apply_background`; empty for
    #: ``as_generated``)
    stream: Mapping[str, Any] = field(default_factory=dict)
    #: the :class:`poetml.rates.Beam` the weights and rates are at (the run's
    #: ``evaluation`` options; None: the default beam)
    beam: Any = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.preprocessing.class_names

    @property
    def sparse(self) -> bool:
        """Whether the splits hold raw sparse images (preprocessed per batch)."""
        return isinstance(self.x_train, SparseImages)

    def sequence(
        self,
        x: np.ndarray | SparseImages,
        y: np.ndarray | None = None,
        *,
        batch_size: int,
        shuffle_seed: int | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> Any:
        """:func:`poetml.training.batches` of ``x`` (a split or signal of this object) for
        Keras' ``fit``/``predict``: sparse images are densified and preprocessed one batch
        at a time, preprocessed arrays are sliced.  ``y`` None: each batch's target is its
        input (autoencoders; ``predict`` ignores it)."""
        from ..training import batches

        transform = self.preprocessing.apply if isinstance(x, SparseImages) else None
        return batches(x, y, batch_size=batch_size, shuffle_seed=shuffle_seed,
                       transform=transform, sample_weight=sample_weight)  # fmt: skip

    def inputs(self, x: np.ndarray | SparseImages, what: str = "inputs") -> np.ndarray:
        """The network inputs of ``x`` (a split or signal of this object, or a selection of
        one) as one dense array: preprocessed arrays as they are, sparse images densified
        and preprocessed whole (meant for a bounded subset, e.g. the firmware's events)."""
        if isinstance(x, SparseImages):
            return self.preprocessing.apply(x.dense(), what)
        return x


def _resolve_files(cfg: RunConfig, progress: bool) -> dict[str, list[str]]:
    ds: DatasetConfig = cfg.dataset
    manifest = None
    if any(not p.files for p in ds.processes):
        default_dir = Path(ds.default_dir)
        mpath = default_dir / "manifest.json"
        if cfg.run.generate_missing:
            from ..generate import generate_default

            manifest = generate_default(
                default_dir,
                events=default_dataset_events(cfg, needed=True),
                progress=progress,
                pileup=ds.default_pileup,
                bias=ds.default_bias,
            )
        elif mpath.exists():
            manifest = json.loads(mpath.read_text())
        else:
            raise ConfigError(
                f"the default dataset is missing ({mpath}); run 'poetml generate' or set "
                "run.generate_missing: true"
            )
    return labelled.resolve_files(ds, None, manifest)


def _dimuon_mass(batch: Any) -> np.ndarray:
    from ..evaluation import dimuon_mass

    if "muon" not in batch.collections:
        return np.full(batch.n_events, np.nan, dtype=np.float32)
    return dimuon_mass(batch)


def _leading_pt(batch: Any, collections: Sequence[str]) -> np.ndarray:
    """The highest pT among the objects of ``collections`` in each event (0 without one)."""
    out = np.zeros(batch.n_events, np.float32)
    for coll in collections:
        if coll in batch.collections and batch[coll].n_objects:
            c = batch[coll]
            idx = np.repeat(np.arange(batch.n_events), c.counts)
            pt = np.asarray(c["pt"], np.float32)[int(c.offsets[0]) : int(c.offsets[-1])]
            np.maximum.at(out, idx, pt)
    return out


def _leading_lepton_pt(batch: Any) -> np.ndarray:
    """The highest electron or muon pT of each event (0 without one): what an L1-like
    single-lepton filter looks at."""
    return _leading_pt(batch, ("muon", "electron"))


def _leading_muon_pt(batch: Any) -> np.ndarray:
    """The highest muon pT of each event (0 without one): what a single-muon L1 seed looks
    at (:func:`poetml.evaluation.menu_fires`)."""
    return _leading_pt(batch, ("muon",))


def _leading_electron_pt(batch: Any) -> np.ndarray:
    """The highest electron pT of each event (0 without one): the single-electron seed."""
    return _leading_pt(batch, ("electron",))


#: per-event quantities stored with the dataset (``aux_<name>`` in its HDF5 file)
AUX = {
    "m_mumu": _dimuon_mass,
    "lead_lepton_pt": _leading_lepton_pt,
    "lead_muon_pt": _leading_muon_pt,
    "lead_electron_pt": _leading_electron_pt,
}


def apply_background(
    ds: DatasetConfig, data: LabelledData, beam: Any = None
) -> tuple[LabelledData, dict[str, Any]]:
    """The dataset as the stream ``ds.background`` asks for, and what that did.
    See :class:`poetml.datasets.labelled.DatasetConfig`.

    ``single_lepton``: per process ``{"sigma_pb", "kept_sigma_pb", "efficiency", "events",
    "kept_events"}``.  ``zero_bias``: a stream of bunch crossings at ``beam``
    (:class:`poetml.rates.Beam`, default ``Beam()``), see :func:`zero_bias_weights`."""
    w = data.weights
    info: dict[str, Any] = {}
    if ds.background == "single_lepton":
        lead = data.aux.get("lead_lepton_pt")
        if lead is None:
            raise DatasetError("the dataset has no lead_lepton_pt: rebuild it (delete data/)")
        keep = np.asarray(lead) > ds.lepton_filter_pt
        for pi, p in enumerate(data.processes):
            sel = data.process == pi
            tot, kept = float(w[sel].sum()), float(w[sel & keep].sum())
            info[p.name] = {
                "sigma_pb": tot,
                "kept_sigma_pb": kept,
                "efficiency": kept / tot if tot else float("nan"),
                "events": int(sel.sum()),
                "kept_events": int((sel & keep).sum()),
            }
        empty = [p.name for p in data.processes if info[p.name]["kept_events"] == 0]
        if empty:
            raise DatasetError(
                f"the single-lepton filter (e or mu pT > {ds.lepton_filter_pt:g} GeV) keeps no "
                f"event of {', '.join(empty)}; drop them or lower dataset.lepton_filter_pt"
            )
        return data.select(np.flatnonzero(keep)), info
    if ds.background == "zero_bias":
        w2, info = zero_bias_weights(data, beam)
        return dataclasses.replace(data, weight=w2), info
    return data, info


def zero_bias_weights(data: LabelledData, beam: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Weights [pb] that make the ``minbias`` process and the hard ``train`` processes one
    stream of bunch crossings at ``beam`` (default :class:`poetml.rates.Beam`), and what
    was done.  ``rate = luminosity x sum of weights`` then counts crossings: the stream
    totals the filled-crossing rate (about 28.6 MHz), as a zero-bias trigger sees it.

    * Every event is one crossing: its primary interaction with the beam's pile-up overlaid
      (soft: :mod:`poetml.generate.pileup`).  A hard event is a crossing holding that hard
      interaction, which happens at ``luminosity x sigma`` whichever of the crossing's
      interactions it is, so hard events keep their weight.
    * **Stitching** to a hard process generated above a pT-hat threshold without a filter
      (the catalog's qcd): a minimum-bias event whose primary interaction has ``pT-hat >=
      threshold`` is that process's crossing: vetoed (weight 0).  The pile-up must be soft
      (below the threshold; ``poetml generate`` overlays only such pool events); files
      whose pile-up holds a harder interaction are refused.
    * The minimum-bias crossings left are the soft crossings: they share the crossing rate
      less all hard processes' (stitched or not: W, Z, top are not in minimum bias, but
      their crossings are part of the total).

    The files' pile-up should be the beam's (``Beam.pileup``, about 56 at 2e34;
    ``info["pileup_beam"]``).  ``info["stitching"]`` holds an independent check: minimum
    bias's own cross section above the threshold (from its vetoed events) beside the
    stitched processes'."""
    from ..rates import Beam

    beam = beam or Beam()
    w = data.weights
    is_mb, hard, stitched, threshold, pthat = _zero_bias_parts(data)
    sigma_mb = float(w[is_mb].sum())
    w2 = w.copy()
    veto = np.zeros(len(w), bool)
    if stitched:
        nan = np.full(len(w), np.nan)
        pu = np.asarray(data.aux.get(labelled.GEN_PILEUP_PTHAT, nan), np.float64)
        loud = (is_mb | np.isin(data.process, stitched)) & (pu >= threshold)
        if loud.any():
            i = int(np.flatnonzero(loud)[0])
            raise DatasetError(
                f"zero_bias: {data.inputs[int(data.source[i])]} entry "
                f"{int(data.event_index[i])}: its pile-up holds an interaction of pT-hat "
                f"{pu[i]:.4g} GeV >= the stitch threshold {threshold:g} GeV; the stream needs "
                "soft pile-up (regenerate the files with this poetml)"
            )
        veto = is_mb & (pthat >= threshold)
        w2[veto] = 0.0
    crossings_pb = beam.crossing_rate_khz / beam.khz_per_pb
    sigma_hard = float(w[hard].sum())
    target = crossings_pb - sigma_hard
    left = float(w2[is_mb].sum())
    if target <= 0 or left <= 0:
        raise DatasetError(
            f"zero_bias: the hard processes ({sigma_hard:.4g} pb) exceed the crossings "
            f"({crossings_pb:.4g} pb at {beam.luminosity:.3g} cm^-2 s^-1); check their weights"
        )
    w2[is_mb] *= target / left
    info = {
        "unit": "bunch crossings",
        "crossing_rate_khz": beam.crossing_rate_khz,
        "crossings_pb": crossings_pb,
        "pileup_beam": beam.pileup,
        "minbias": {"sigma_pb": sigma_mb, "scaled_to_pb": float(w2[is_mb].sum())},
        "hard_sigma_pb": sigma_hard,
        "stitching": {
            "processes": [data.processes[i].name for i in stitched],
            "pthat_threshold_gev": threshold if stitched else None,
            "minbias_events_vetoed": int(veto.sum()),
            # an independent check of the stitch: minimum bias's own cross section
            # above the threshold against the pT-hat-generated processes'
            "minbias_sigma_above_pb": float(w[veto].sum()),
            "stitched_sigma_pb": float(w[np.isin(data.process, stitched)].sum()),
        },
    }
    return w2, info


def zero_bias_unbiased_khz(data: LabelledData, beam: Any = None) -> np.ndarray:
    """The brute-force weights of the zero-bias stream: the rate [kHz] each minimum-bias
    event of ``data`` stands for when the minimum-bias sample alone, unbiased and unweighted,
    estimates the crossings' rate (0 for the other events).

    A crossing of ``mu`` interactions holds, to first order in ``mu p`` (``p`` the fraction
    of interactions with pT-hat above the stitch threshold, ``p_hat`` its estimate from the
    sample's ``n`` events), no hard interaction (probability ``1 - mu p``: the soft events
    stand for those crossings, each ``f (1 - mu p_hat) / ((1 - p_hat) n)``) or one, which
    may be any of the ``mu`` (the events with a hard primary stand for those, each
    ``f mu / n``); ``f`` the filled-crossing rate, ``mu`` the beam's pile-up.  Without a
    stitch every minimum-bias event is a crossing (``f / n``)."""
    from ..rates import Beam

    beam = beam or Beam()
    out = np.zeros(len(data.weights), np.float64)
    if "minbias" not in [p.name for p in data.processes]:
        return out
    is_mb, _, stitched, threshold, pthat = _zero_bias_parts(data)
    n = int(is_mb.sum())
    if n == 0:
        return out
    f, mu = beam.crossing_rate_khz, beam.pileup
    if not stitched:
        out[is_mb] = f / n
        return out
    hard = is_mb & (pthat >= threshold)
    p_hat = float(hard.sum()) / n
    out[is_mb & ~hard] = f * (1.0 - mu * p_hat) / ((1.0 - p_hat) * n)
    out[hard] = f * mu / n
    return out


def _zero_bias_parts(
    data: LabelledData,
) -> tuple[np.ndarray, np.ndarray, list[int], float, np.ndarray]:
    """What both zero-bias functions start from: the minimum-bias events, the hard train
    events, the processes stitched to minimum bias (none when its events carry no pT-hat),
    the stitch threshold [GeV] and each event's pT-hat (NaN where unknown)."""
    role = np.array([p.role for p in data.processes])[data.process]
    mb = next(i for i, p in enumerate(data.processes) if p.name == "minbias")
    is_mb = data.process == mb
    hard = (role == "train") & ~is_mb
    stitched, threshold = _pthat_stitched(data, hard)
    nan = np.full(len(data.weights), np.nan)
    pthat = np.asarray(data.aux.get(labelled.GEN_PTHAT, nan), np.float64)
    if not np.isfinite(pthat[is_mb]).all():
        stitched = []  # no pT-hat in the minimum-bias file: no veto
    return is_mb, hard, stitched, threshold, pthat


def _pthat_stitched(data: LabelledData, hard: np.ndarray) -> tuple[list[int], float]:
    """The hard processes generated from a pT-hat threshold without a generator filter (the
    catalog's qcd), whose events all carry a pT-hat, and the lowest such threshold [GeV]."""
    from ..generate import get_process

    out: list[int] = []
    threshold = float("inf")
    pthat = data.aux.get(labelled.GEN_PTHAT)
    if pthat is None:
        return out, threshold
    for i, p in enumerate(data.processes):
        mine = data.process == i
        if not hard[mine].any() or not np.isfinite(np.asarray(pthat)[mine]).all():
            continue
        try:
            proc = get_process(p.name)
        except ValueError:  # not a catalog process: its pT-hat range is unknown
            continue
        if proc.pthat_min is not None and proc.filter is None:
            out.append(i)
            threshold = min(threshold, float(proc.pthat_min))
    return out, threshold


def _fingerprint(*parts: Any) -> str:
    text = json.dumps([to_mapping(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: bump when what a cached dataset holds changes (2: per-event weights [pb]; 3: the
#: leading-lepton pT for the single-lepton stream; 4: the leading muon and electron pT for
#: the L1-like trigger menu; 5: each event's generator pT-hat, for the zero-bias stitch;
#: 6: each event's largest pile-up pT-hat, for the stitch of crossings; 7: images in the
#: sparse layout, so dense image caches are rebuilt)
DATASET_FORMAT = 7


def dataset_key(cfg: RunConfig, files: Mapping[str, Sequence[str]]) -> str:
    """The fingerprint a cached dataset of ``cfg`` made from ``files`` carries."""
    return _fingerprint(_spec(cfg), cfg.dataset, files, {"format": DATASET_FORMAT})


def cached_dataset(path: Path, key: str) -> LabelledData | None:
    """The dataset in ``path`` when it exists and carries fingerprint ``key`` (read only)."""
    if not path.exists():
        return None
    try:
        from ..datasets.hdf5 import load as hload

        if hload(path, start=0, stop=0).attrs.get("fingerprint") == key:
            return labelled.load(path)
    except Exception:  # a stale or foreign file is rebuilt  # noqa: BLE001
        return None
    return None


def build_dataset(
    cfg: RunConfig, files: Mapping[str, Sequence[str]], path: Path, progress: bool = True
) -> LabelledData:
    """Build the labelled dataset of ``cfg`` from ``files`` and save it to ``path``."""
    ds: DatasetConfig = cfg.dataset
    spec = _spec(cfg)
    reading: ReadingConfig = cfg.reading
    data = labelled.build(
        ds,
        spec,
        files,
        layout=reading.layout,
        aux=AUX,
        progress=progress,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled.save(
        path, data, attrs={"fingerprint": dataset_key(cfg, files), "spec": to_mapping(spec)}
    )
    return data


def load_or_build_dataset(cfg: RunConfig, outdir: Path, progress: bool = True) -> LabelledData:
    """The labelled dataset of ``cfg``, built once and cached in ``outdir/data/dataset.h5``."""
    files = _resolve_files(cfg, progress)
    path = outdir / "data" / "dataset.h5"
    data = cached_dataset(path, dataset_key(cfg, files))
    return data if data is not None else build_dataset(cfg, files, path, progress)


def prepare(cfg: RunConfig, data: LabelledData) -> Prepared:
    """Split, fit the scaler on the training split, scale and quantize (no I/O)."""
    _check_config(cfg)
    ds: DatasetConfig = cfg.dataset
    model: ModelConfig = cfg.model
    if data.kind != ds.kind:
        raise DatasetError(f"dataset holds {data.kind}, the configuration asks for {ds.kind}")
    autoencoder = model.is_autoencoder
    beam = cfg.evaluation.beam()
    data, stream = apply_background(ds, data, beam)
    if stream and cfg.run.progress:
        print(f"poetml: background {ds.background}: {json.dumps(stream)}")
    role = np.array([p.role for p in data.processes])[data.process]
    train_idx = np.flatnonzero(role == "train")
    if autoencoder:
        strat = data.process[train_idx]
    else:
        strat = data.class_labels()[train_idx]
        present = np.unique(strat)
        if len(present) < 2:
            raise DatasetError(
                f"the dataset holds a single class ({data.class_names[int(present[0])]}); "
                "a classifier needs at least two"
            )
    sp = stratified_split(strat, ds.split, ds.seed)
    split = Split(train_idx[sp.train], train_idx[sp.val], train_idx[sp.test])
    sparse = isinstance(data.x, SparseImages)
    if isinstance(data.x, SparseImages):
        check_sparse_finite(data.x, f"dataset ({data.kind})")
        item_shape = tuple(data.x.shape)
    else:
        check_finite(data.x, f"dataset ({data.kind})")
        item_shape = tuple(data.x.shape[1:])
    scaler = fit_scaler(
        take(data.x, split.train),
        data.kind,
        data.names,
        quantile=ds.quantile,
        log1p_energy=ds.log1p_energy,
    )
    q = model.quantization
    classes = tuple(data.class_names) if not autoencoder else ("background",)
    prep = Preprocessing(
        scaler,
        q.input_bits,
        q.input_integer,
        classes,
        item_shape,
        data.kind,
        feature_names=data.names if data.kind == "features" else None,
        channels=data.names if data.kind == "images" else None,
    )
    labels = data.process if autoencoder else data.class_labels()

    def inputs(idx: np.ndarray, what: str) -> np.ndarray | SparseImages:
        # sparse images stay raw and sparse: Prepared.sequence preprocesses them per batch
        part = take(data.x, idx)
        return part if sparse else prep.apply(np.asarray(part), what)

    signals = {}
    if autoencoder:
        for pi, p in enumerate(data.processes):
            if p.role == "signal":
                signals[p.name] = inputs(np.flatnonzero(data.process == pi), f"signal {p.name}")
    return Prepared(
        data,
        split,
        prep,
        _spec(cfg),
        autoencoder,
        inputs(split.train, "training inputs"),
        labels[split.train],
        inputs(split.val, "validation inputs"),
        labels[split.val],
        inputs(split.test, "test inputs"),
        labels[split.test],
        data.select(split.test),
        signals,
        split_weights(data.weights, data.process, split.test),
        bool(np.any(data.weights != 1.0)),
        split_weights(data.weights, data.process, split.train),
        split_weights(data.weights, data.process, split.val),
        stream,
        beam,
    )


def prepare_data(cfg: RunConfig, outdir: str | os.PathLike[str] | None = None) -> Prepared:
    """Generate (if needed), build or reuse the dataset, split and preprocess it."""
    check_config(cfg)
    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    data = load_or_build_dataset(cfg, out, progress=cfg.run.progress)
    return prepare(cfg, data)
