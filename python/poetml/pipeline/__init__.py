"""The end-to-end job as plain functions: prepare data, train, evaluate, score, run.

::

    from poetml import config, pipeline
    cfg = config.load("configs/dtw_cnn.yaml")
    result = pipeline.run(cfg)                 # everything, into cfg.run.output
    prep = pipeline.prepare_data(cfg)          # or step by step (notebooks)
    dirs = pipeline.train(cfg, prep)
    metrics = pipeline.evaluate(cfg, prep, dirs)

Output directory (``run.output``, default ``out/<config name>``)::

    data/dataset.h5           the labelled images/features (raw), reused when the spec matches
    models/<variant>/         one model directory per variant (see poetml.training)
    metrics_*.json, plots/    from poetml.report.evaluate_classifier / evaluate_anomaly
    report.md, report.html    the report
    run.json                  stages done, seconds taken, headline numbers

Stages are named in ``run.stages`` (default ``data, train, evaluate``) and run in order;
finished model directories whose configuration is unchanged are skipped, so an interrupted
run resumes where it stopped.  The stages are a fixed table, :data:`STAGES` (``data``,
``train``, ``evaluate``, ``firmware``); the heavy ones import what they need when they run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path, check_output
from .._mapping import to_mapping
from ..config import VARIANTS, OutputConfig, RunConfig
from ..datasets import labelled
from ..datasets.labelled import DatasetConfig, LabelledData
from ..datasets.scalers import DatasetError, Preprocessing, fit_scaler
from ..datasets.splits import Split, class_weights, resample_balanced, stratified_split
from ..evaluation.config import EvaluationConfig
from ..exceptions import ConfigError
from ..models import ModelConfig
from ..reading import ReadingConfig
from ..training import TrainingConfig

__all__ = [
    "VARIANTS",
    "Context",
    "EvaluationConfig",
    "OutputConfig",
    "Prepared",
    "evaluate",
    "prepare_data",
    "run",
    "score",
    "train",
]

# ----------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class Prepared:
    """The dataset split and preprocessed for training.

    ``x_*`` are scaled and input-quantized; ``y_*`` class indices (classifiers) or the
    process index (autoencoder background); ``signals`` maps each signal process to its
    preprocessed events (autoencoder evaluation); ``test`` the raw test subset.
    """

    data: LabelledData
    split: Split
    preprocessing: Preprocessing
    spec: Any
    autoencoder: bool
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test: LabelledData
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.preprocessing.class_names


def output_dir(cfg: RunConfig) -> Path:
    out = cfg.run.output
    if out:
        return Path(out)
    stem = cfg.path.stem if cfg.path is not None else "run"
    return Path("out") / stem


def _spec(cfg: RunConfig) -> Any:
    ds: DatasetConfig = cfg.dataset
    return cfg.images if ds.kind == "images" else cfg.features


def _check_config(cfg: RunConfig) -> None:
    ds: DatasetConfig = cfg.dataset
    model: ModelConfig = cfg.model
    if not ds.processes:
        raise ConfigError("dataset.processes: empty; list the processes and their labels")
    if ds.default_events:
        from ..generate import DEFAULT_DATASET

        unknown = [k for k in ds.default_events if k not in DEFAULT_DATASET]
        if unknown:
            raise ConfigError(
                f"dataset.default_events: {', '.join(map(repr, unknown))} not in the default "
                f"dataset; its processes: {', '.join(DEFAULT_DATASET)}"
            )
    if model.type == "cnn":
        if ds.kind != "images":
            raise ConfigError("model.type: model type 'cnn' needs dataset.kind: images")
        if any(p.role == "signal" for p in ds.processes):
            raise ConfigError(
                "dataset: role 'signal' is for anomaly detection (model type dense_ae or "
                "conv_ae); a classifier learns every process as a class"
            )
        classes = ds.class_names()
        if len(classes) < 2:
            raise ConfigError(
                f"dataset: a classifier needs at least 2 classes, got {len(classes)} "
                f"({', '.join(classes)}); give processes different labels"
            )
        selected = cfg.evaluation.selected_class
        if selected is not None and selected not in classes:
            raise ConfigError(
                f"evaluation.selected_class: {selected!r} is not a class; classes: "
                f"{', '.join(classes)}"
            )
    elif model.type == "dense_ae" and ds.kind != "features":
        raise ConfigError("model.type: model type 'dense_ae' needs dataset.kind: features")
    elif model.type == "conv_ae" and ds.kind != "images":
        raise ConfigError("model.type: model type 'conv_ae' needs dataset.kind: images")


def default_dataset_events(cfg: RunConfig) -> dict[str, int]:
    """Events per process that generating the default dataset of ``cfg`` writes (all of its
    processes, ``dataset.default_events`` and ``default_scale`` applied)."""
    from ..generate import DEFAULT_DATASET

    ds: DatasetConfig = cfg.dataset
    events = {**DEFAULT_DATASET, **(ds.default_events or {})}
    return {k: max(1, round(v * ds.default_scale)) for k, v in events.items()}


def _file_problems(cfg: RunConfig) -> list[str]:
    """The input files ``cfg`` names that do not exist, and a default dataset that is
    missing when ``run.generate_missing`` is false."""
    from ..reading import expand_files

    ds: DatasetConfig = cfg.dataset
    out: list[str] = []
    for i, p in enumerate(ds.processes):
        for j, f in enumerate(p.files):
            where = f"dataset.processes[{i}].files[{j}] (process {p.name!r})"
            try:
                matches = expand_files([f])
            except (OSError, ValueError) as exc:
                out.append(f"{where}: {exc}")
                continue
            missing = [m for m in matches if "://" not in m and not os.path.isfile(m)]
            if missing:
                out.append(f"{where}: no such file {missing[0]}")
    defaults = [(i, p) for i, p in enumerate(ds.processes) if not p.files]
    if not defaults:
        return out
    from ..generate import DEFAULT_DATASET

    for i, p in defaults:
        if p.name not in DEFAULT_DATASET:
            out.append(
                f"dataset.processes[{i}]: process {p.name!r} names no files and is not in the "
                f"default dataset; its processes: {', '.join(DEFAULT_DATASET)} (or give files:)"
            )
    default_dir = Path(ds.default_dir)
    if default_dir.exists() and not default_dir.is_dir():
        out.append(f"dataset.default_dir: {default_dir} is not a directory")
    elif not cfg.run.generate_missing:
        mpath = default_dir / "manifest.json"
        try:
            manifest = json.loads(mpath.read_text())
            known = manifest["processes"]
        except (OSError, ValueError, KeyError, TypeError):
            out.append(
                f"dataset.default_dir: the default dataset ({mpath}) is missing or unreadable "
                "and run.generate_missing is false; run 'poetml generate' or set "
                "run.generate_missing: true"
            )
            return out
        for i, p in defaults:
            f = default_dir / str(known.get(p.name, {}).get("file", f"{p.name}.root"))
            if p.name in known and not f.is_file():
                out.append(
                    f"dataset.processes[{i}] (process {p.name!r}): default dataset file "
                    f"{f} is missing"
                )
    return out


def config_problems(cfg: RunConfig) -> list[str]:
    """Every problem of ``cfg`` found without doing any work, one message per problem naming
    its key path: the sections agree with each other, the stages exist, the input files exist
    (each glob matches) and the default dataset is there or may be generated.  (The values
    of each section were checked when it was built.)"""
    problems: list[str] = []
    try:
        _check_config(cfg)
    except ConfigError as exc:
        problems.append(str(exc))
    for name in cfg.run.stages:
        try:
            _stage(name)
        except ConfigError as exc:
            problems.append(str(exc))
    problems.extend(_file_problems(cfg))
    prefix = f"{cfg.path}: " if cfg.path is not None else ""
    return [prefix + p for p in problems]


def check_config(cfg: RunConfig) -> None:
    """Raise ConfigError listing every problem :func:`config_problems` finds (one a line)."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))


def config_summary(cfg: RunConfig) -> str:
    """One line saying what ``cfg`` would do (for ``poetml check``)."""
    ds: DatasetConfig = cfg.dataset
    n_default = sum(1 for p in ds.processes if not p.files)
    n_files = sum(len(p.files) for p in ds.processes)
    parts = [f"{ds.kind} dataset of {len(ds.processes)} processes"]
    if n_files:
        parts.append(f"{n_files} file pattern{'s' if n_files > 1 else ''}")
    if n_default:
        how = "generated when missing" if cfg.run.generate_missing else "must exist"
        parts.append(f"{n_default} from the default dataset in {ds.default_dir} ({how})")
    model: ModelConfig = cfg.model
    parts.append(f"model {model.type}, variants {', '.join(cfg.run.variants)}")
    parts.append(f"stages {', '.join(cfg.run.stages)}")
    parts.append(f"output {output_dir(cfg)}")
    return "; ".join(parts)


def _resolve_files(cfg: RunConfig, progress: bool) -> dict[str, list[str]]:
    ds: DatasetConfig = cfg.dataset
    manifest = None
    if any(not p.files for p in ds.processes):
        default_dir = Path(ds.default_dir)
        mpath = default_dir / "manifest.json"
        if cfg.run.generate_missing:
            from ..generate import generate_default

            manifest = generate_default(
                default_dir, events=default_dataset_events(cfg), progress=progress
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


def _fingerprint(*parts: Any) -> str:
    text = json.dumps([to_mapping(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_key(cfg: RunConfig, files: Mapping[str, Sequence[str]]) -> str:
    """The fingerprint a cached dataset of ``cfg`` made from ``files`` carries."""
    return _fingerprint(_spec(cfg), cfg.dataset, files)


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
        ds, spec, files, layout=reading.layout, aux={"m_mumu": _dimuon_mass}, progress=progress
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
    from ..datasets.scalers import check_finite

    check_finite(data.x, f"dataset ({data.kind})")
    scaler = fit_scaler(
        data.x[split.train],
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
        tuple(data.x.shape[1:]),
        data.kind,
        feature_names=data.names if data.kind == "features" else None,
        channels=data.names if data.kind == "images" else None,
    )
    labels = data.process if autoencoder else data.class_labels()
    signals = {}
    if autoencoder:
        for pi, p in enumerate(data.processes):
            if p.role == "signal":
                signals[p.name] = prep.apply(data.x[data.process == pi], f"signal {p.name}")
    return Prepared(
        data,
        split,
        prep,
        _spec(cfg),
        autoencoder,
        prep.apply(data.x[split.train], "training inputs"),
        labels[split.train],
        prep.apply(data.x[split.val], "validation inputs"),
        labels[split.val],
        prep.apply(data.x[split.test], "test inputs"),
        labels[split.test],
        data.select(split.test),
        signals,
    )


def prepare_data(cfg: RunConfig, outdir: str | os.PathLike[str] | None = None) -> Prepared:
    """Generate (if needed), build or reuse the dataset, split and preprocess it."""
    check_config(cfg)
    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    data = load_or_build_dataset(cfg, out, progress=cfg.run.progress)
    return prepare(cfg, data)


# ---------------------------------------------------------------------------- train


def _loss(prep: Prepared) -> Any:
    from ..models.autoencoder import masked_mse_class, slot_pt_index

    if not prep.autoencoder:
        return "sparse_categorical_crossentropy"
    names = prep.preprocessing.feature_names
    return masked_mse_class()(slot_pt_index(names) if names else None)


def check_outputs(model: Any, prep: Prepared) -> None:
    """The model's output matches the data: one unit per class, or the input shape."""
    out = tuple(int(s) for s in model.output_shape[1:])
    want = prep.preprocessing.input_shape if prep.autoencoder else (len(prep.class_names),)
    if out != tuple(want):
        raise DatasetError(
            f"model {model.name!r} outputs shape {out} but the data needs {tuple(want)} "
            f"({'reconstruction of the input' if prep.autoencoder else 'classes ' + ', '.join(prep.class_names)})"
        )


def _fit_data(prep: Prepared, ds: DatasetConfig) -> tuple[np.ndarray, np.ndarray, dict | None]:
    if prep.autoencoder:
        return prep.x_train, prep.x_train, None
    n = len(prep.class_names)
    if ds.balance == "weights":
        return prep.x_train, prep.y_train, class_weights(prep.y_train, n)
    if ds.balance == "resample":
        idx = resample_balanced(np.arange(len(prep.y_train)), prep.y_train, ds.seed)
        return prep.x_train[idx], prep.y_train[idx], None
    return prep.x_train, prep.y_train, None


def model_dir_config(cfg: RunConfig, prep: Prepared, variant: str) -> dict[str, Any]:
    """What a model directory of ``variant`` trained by ``cfg`` records in ``config.json``."""
    return {
        "variant": variant,
        "kind": prep.data.kind,
        "spec": to_mapping(prep.spec),
        "spec_type": type(prep.spec).__name__,
        "model": to_mapping(cfg.model),
        "training": to_mapping(cfg.training),
        "dataset": to_mapping(cfg.dataset),
    }


def load_run_model_dir(
    cfg: RunConfig,
    prep: Prepared,
    path: str | os.PathLike[str],
    variant: str,
    *,
    trust_model: bool = False,
) -> Any:
    """:func:`poetml.training.load_model_dir` for a model directory the run ``cfg`` uses;
    one trained with another configuration (task, inputs, architecture) is a ConfigError
    naming the directory and the configuration."""
    from .. import training

    md = training.load_model_dir(path, trust_model=trust_model)
    source = f"the run configuration {cfg.path}" if cfg.path else "the run configuration"
    training.check_model_dir_config(path, md.config, model_dir_config(cfg, prep, variant), source)
    return md


def train(
    cfg: RunConfig,
    prep: Prepared,
    outdir: str | os.PathLike[str] | None = None,
    variants: Sequence[str] | None = None,
    *,
    trust_model: bool = False,
) -> dict[str, Path]:
    """Train every variant into ``outdir/models/<variant>``; complete directories with the
    same configuration are kept (resume).  ``trust_model``: see
    :func:`poetml.training.load_model_dir` (a pruned variant starts from a saved model)."""
    from .. import training
    from ..models import build, pruning

    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    ds: DatasetConfig = cfg.dataset
    mcfg: ModelConfig = cfg.model
    tcfg: TrainingConfig = cfg.training
    variants = tuple(variants or cfg.run.variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ConfigError(f"unknown variants {bad}; valid variants: {', '.join(VARIANTS)}")
    x, y, cw = _fit_data(prep, ds)
    xv = prep.x_val
    yv = prep.x_val if prep.autoencoder else prep.y_val
    n_classes = None if prep.autoencoder else len(prep.class_names)
    metrics = [] if prep.autoencoder else ["accuracy"]
    key = _fingerprint(ds, mcfg, tcfg, _spec(cfg))
    dirs: dict[str, Path] = {}
    trained: dict[str, Any] = {}
    # pruned variants start from the trained float / quantized model
    order = [v for v in ("float", "quantized", "pruned", "quantized_pruned") if v in variants]
    for v in order:
        d = out / "models" / v
        dirs[v] = d
        if training.is_complete(d):
            meta = json.loads((d / "metadata.json").read_text())
            if meta.get("fingerprint") == key:
                print(f"poetml: {v} model up to date in {d}; skipped")
                continue
        t0 = time.time()
        extra_cbs: list[Any] = []
        epochs = None
        # seeded before the model is built: its initial weights come from the same seed
        # whichever variants ran before it in this process (resume gives the same model)
        training.set_seeds(tcfg)
        if v in ("pruned", "quantized_pruned"):
            base_v = "float" if v == "pruned" else "quantized"
            base = trained.get(base_v)
            if base is None:
                base_dir = out / "models" / base_v
                if training.is_complete(base_dir):
                    base = load_run_model_dir(
                        cfg, prep, base_dir, base_v, trust_model=trust_model
                    ).model
                else:
                    base = build(
                        mcfg,
                        prep.preprocessing.input_shape,
                        n_classes,
                        quantized=base_v == "quantized",
                    )
            model = pruning.prune(
                base,
                mcfg.pruning.sparsity,
                exclude=mcfg.pruning.exclude,
                frequency=mcfg.pruning.frequency,
            )
            extra_cbs = pruning.callbacks()
            epochs = mcfg.pruning.epochs
        else:
            model = build(
                mcfg, prep.preprocessing.input_shape, n_classes, quantized=v == "quantized"
            )
        check_outputs(model, prep)
        print(f"poetml: training {v} model ({model.count_params()} parameters) on {len(x)} events")
        history = training.fit(
            model,
            x,
            y,
            xv,
            yv,
            tcfg,
            loss=_loss(prep),
            metrics=metrics,
            class_weight=cw,
            callbacks=extra_cbs,
            epochs=epochs,
            restore_best=epochs is None,
        )
        meta: dict[str, Any] = {
            "fingerprint": key,
            "variant": v,
            "train_seconds": round(time.time() - t0, 1),
            "n_train": len(x),
            "parameters": int(model.count_params()),
        }
        if v in ("pruned", "quantized_pruned"):
            model = pruning.strip(model)
            meta["sparsity"] = pruning.sparsity(model)
            meta["parameters"] = int(model.count_params())  # without the pruning masks
        trained[v] = model
        training.save_model_dir(
            d,
            model,
            prep.preprocessing,
            config=model_dir_config(cfg, prep, v),
            history=history,
            metadata=meta,
        )
    return dirs


# ------------------------------------------------------------------------- evaluate


def _predict(model: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def anomaly_scores(
    model: Any, x: np.ndarray, prep: Preprocessing, batch_size: int = 1024
) -> np.ndarray:
    """Per-event reconstruction error (masked over padded slots for features)."""
    from ..models.autoencoder import reconstruction_error, slot_pt_index

    names = prep.feature_names
    return reconstruction_error(
        x, _predict(model, x, batch_size), slot_pt_index(names) if names else None
    )


def evaluate(
    cfg: RunConfig,
    prep: Prepared,
    dirs: Mapping[str, Path] | None = None,
    outdir: str | os.PathLike[str] | None = None,
    *,
    trust_model: bool = False,
) -> tuple[dict[str, Any], Any]:
    """Evaluate the trained variants on the test split; returns (metrics, report section).
    A model directory trained with another configuration is refused (ConfigError);
    ``trust_model``: see :func:`poetml.training.load_model_dir`."""
    from .. import report

    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    ecfg: EvaluationConfig = cfg.evaluation
    if dirs is None:
        dirs = {v: out / "models" / v for v in cfg.run.variants}
    loaded = {}
    for v, d in dirs.items():
        md = load_run_model_dir(cfg, prep, d, v, trust_model=trust_model)
        if tuple(md.preprocessing.class_names) != tuple(prep.class_names):
            raise DatasetError(
                f"model {d} was trained for classes {md.preprocessing.class_names}, the "
                f"dataset has {prep.class_names}"
            )
        check_outputs(md.model, prep)
        loaded[v] = md
    histories = {v: md.history for v, md in loaded.items()}
    if prep.autoencoder:
        bkg = {
            v: anomaly_scores(md.model, prep.x_test, prep.preprocessing, ecfg.batch_size)
            for v, md in loaded.items()
        }
        sig = {
            v: {
                s: anomaly_scores(md.model, xs, prep.preprocessing, ecfg.batch_size)
                for s, xs in prep.signals.items()
            }
            for v, md in loaded.items()
        }
        return report.evaluate_anomaly(
            out,
            bkg,
            sig,
            fpr_targets=ecfg.fpr_targets,
            rate_khz=list(ecfg.rate_khz),
            collision_rate_mhz=ecfg.collision_rate_mhz,
            histories=histories,
            relative_to="float",
            label=ecfg.label,
            com=ecfg.com,
        )
    probs = {v: _predict(md.model, prep.x_test, ecfg.batch_size) for v, md in loaded.items()}
    images = prep.test.x if prep.data.kind == "images" else None
    spec = prep.spec
    eta = (spec.eta_min, spec.eta_max) if prep.data.kind == "images" else None
    return report.evaluate_classifier(
        out,
        prep.y_test,
        probs,
        list(prep.class_names),
        histories=histories,
        images=images,
        channel_names=list(prep.data.names) if images is not None else None,
        eta_range=eta,
        dimuon_mass=prep.test.aux.get("m_mumu"),
        selected_class=ecfg.selected_class,
        relative_to="float",
        label=ecfg.label,
        com=ecfg.com,
    )


# ---------------------------------------------------------------------------- score


def score(
    model_dir: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    tree: str = "scores",
    step_size: int = 20_000,
    layout: str = "auto",
    progress: bool = True,
    trust_model: bool = False,
) -> Path:
    """Write per-event scores of ``model_dir`` for ``inputs`` as TTree ``tree`` in
    ``output``: one entry per input entry, in order (all inputs one after the other, as a
    TChain of them), so it can be a friend tree.  Branches: ``score_<class>`` (classifier
    probabilities) and ``predicted`` (class index), or ``anomaly_score``; ``entry`` (entry
    in its own file) and ``file_index``.  The model file is refused when it holds code (a
    ``Lambda`` layer, an unknown custom object) unless ``trust_model`` (which runs it)."""
    import uproot

    from .._mapping import from_mapping
    from ..features import FeatureSpec
    from ..images import ImageSpec
    from ..reading import expand_files, iterate
    from ..training import load_model_dir

    files = expand_files([os.fspath(i) for i in inputs])
    check_output(output, files)  # before the model or any input is read
    md = load_model_dir(model_dir, trust_model=trust_model)
    conf = md.config
    spec_cls = ImageSpec if conf.get("spec_type") == "ImageSpec" else FeatureSpec
    spec = from_mapping(spec_cls, conf["spec"])
    autoencoder = conf["model"]["type"] != "cnn"
    output = Path(output)
    from .. import features as feat
    from .. import images as img

    with atomic_path(output) as tmp, uproot.recreate(tmp) as fout:
        created = False
        for fi, path in enumerate(files):
            for batch in iterate(
                path, step_size, layout=layout, progress=progress, missing_collections="empty"
            ):
                if spec_cls is ImageSpec:
                    x = img.rasterize(batch, spec)
                else:
                    x, _ = feat.build_features(batch, spec)
                xs = md.preprocessing.apply(x, f"{path} entries {batch.entry_start}+")
                n = len(xs)
                branches: dict[str, np.ndarray] = {
                    "entry": batch.entry_start + np.arange(n, dtype=np.int64),
                    "file_index": np.full(n, fi, dtype=np.int32),
                }
                if autoencoder:
                    branches["anomaly_score"] = anomaly_scores(
                        md.model, xs, md.preprocessing
                    ).astype(np.float32)
                else:
                    p = (
                        _predict(md.model, xs, 1024)
                        if n
                        else np.zeros((0, len(md.preprocessing.class_names)), np.float32)
                    )
                    for ci, c in enumerate(md.preprocessing.class_names):
                        branches[f"score_{c}"] = p[:, ci].astype(np.float32)
                    branches["predicted"] = (
                        np.argmax(p, axis=1).astype(np.int32) if n else np.zeros(0, np.int32)
                    )
                if not created:
                    fout.mktree(tree, {k: v.dtype for k, v in branches.items()})
                    created = True
                if n:
                    fout[tree].extend(branches)
    return output


# ------------------------------------------------------------------------------ run


@dataclass
class Context:
    """What the stages share: the configuration, the output directory and results."""

    config: RunConfig
    outdir: Path
    prepared: Prepared | None = None
    model_dirs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    sections: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trust_model: bool = False  # load model files that hold code (see training.load_model_dir)


def _stage_data(ctx: Context) -> None:
    ctx.prepared = prepare_data(ctx.config, ctx.outdir)


def _stage_train(ctx: Context) -> None:
    if ctx.prepared is None:
        _stage_data(ctx)
    assert ctx.prepared is not None
    ctx.model_dirs = train(ctx.config, ctx.prepared, ctx.outdir, trust_model=ctx.trust_model)


def _stage_evaluate(ctx: Context) -> None:
    if ctx.prepared is None:
        _stage_data(ctx)
    assert ctx.prepared is not None
    dirs = ctx.model_dirs or {v: ctx.outdir / "models" / v for v in ctx.config.run.variants}
    metrics, section = evaluate(
        ctx.config, ctx.prepared, dirs, ctx.outdir, trust_model=ctx.trust_model
    )
    ctx.metrics = metrics
    ctx.sections.append(section)


def _stage_firmware(ctx: Context) -> None:
    from ..firmware.stage import firmware_stage

    firmware_stage(ctx)


#: The stages ``run.stages`` may name, in the order a run usually has them.
STAGES: dict[str, Callable[[Context], Any]] = {
    "data": _stage_data,
    "train": _stage_train,
    "evaluate": _stage_evaluate,
    "firmware": _stage_firmware,
}


def _stage(name: str) -> Callable[[Context], Any]:
    if name not in STAGES:
        raise ConfigError(f"run.stages: unknown stage {name!r}; known stages: {', '.join(STAGES)}")
    return STAGES[name]


def run(
    cfg: RunConfig, outdir: str | os.PathLike[str] | None = None, *, trust_model: bool = False
) -> Context:
    """Run every stage of ``cfg.run.stages`` and write the report and ``run.json``.
    ``trust_model``: load saved model files that hold code (see
    :func:`poetml.training.load_model_dir`)."""
    from .. import report
    from ..evaluation import write_json

    check_config(cfg)
    stages = [(s, _stage(s)) for s in cfg.run.stages]
    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, out, trust_model=trust_model)
    t_all = time.time()
    for name, fn in stages:
        t0 = time.time()
        print(f"poetml run: stage {name}")
        fn(ctx)
        ctx.timings[name] = round(time.time() - t0, 1)
    ctx.timings["total"] = round(time.time() - t_all, 1)
    if ctx.sections:
        title = f"poetml run: {cfg.path.name if cfg.path else 'run'}"
        report.write_report(out, title, ctx.sections)
    write_json(
        out / "run.json",
        {
            "stages": [s for s, _ in stages],
            "seconds": ctx.timings,
            "models": {k: str(v) for k, v in ctx.model_dirs.items()},
            "metrics": ctx.metrics,
        },
    )
    return ctx
