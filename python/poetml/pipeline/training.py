"""The train stage: every model variant into ``<output>/models/<variant>``; finished
directories with the same configuration are kept (resume).

Image datasets train from :func:`poetml.training.batches` (:meth:`Prepared.sequence
<poetml.pipeline.data.Prepared.sequence>`), shuffled by ``training.seed``: sparse splits
are densified and preprocessed one batch at a time, so dense memory is bounded by the
batch size, and a dense split gives the very same batches (the same model for the same
seed).  Feature datasets train from their arrays, shuffled by Keras."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._mapping import to_mapping
from ..config import VARIANTS, RunConfig
from ..datasets.labelled import DatasetConfig, take
from ..datasets.scalers import DatasetError
from ..datasets.splits import class_weights, resample_balanced
from ..exceptions import ConfigError
from ..images import SparseImages
from ..models import ModelConfig
from ..training import TrainingConfig
from .checks import _spec, output_dir
from .data import Prepared, _fingerprint

__all__ = ["check_outputs", "load_run_model_dir", "model_dir_config", "train"]


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


def _fit_data(
    prep: Prepared, ds: DatasetConfig
) -> tuple[np.ndarray | SparseImages, np.ndarray | None, dict | None]:
    """Training inputs, targets (None: the inputs, for autoencoders) and class weights."""
    if prep.autoencoder:
        return prep.x_train, None, None
    n = len(prep.class_names)
    if ds.balance == "weights":
        return prep.x_train, prep.y_train, class_weights(prep.y_train, n)
    if ds.balance == "resample":
        idx = resample_balanced(np.arange(len(prep.y_train)), prep.y_train, ds.seed)
        return take(prep.x_train, idx), prep.y_train[idx], None
    return prep.x_train, prep.y_train, None


def _event_weights(
    prep: Prepared, tcfg: TrainingConfig, ds: DatasetConfig
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-event loss weights of the training and validation splits (mean 1 each), or None
    (``training.event_weights: none``)."""
    if tcfg.event_weights == "none":
        return None, None
    if not prep.autoencoder and ds.balance == "resample":
        raise ConfigError(
            "training.event_weights: cross_section cannot be combined with dataset.balance: "
            "resample (choose one way to weigh the classes)",
            key="training.event_weights",
        )
    if not prep.weighted or prep.w_train is None or prep.w_val is None:
        raise ConfigError(
            "training.event_weights: cross_section needs events with weights (generated "
            "files, or processes with cross_section_pb); this dataset has none",
            key="training.event_weights",
        )
    return prep.w_train / prep.w_train.mean(), prep.w_val / prep.w_val.mean()


#: the evaluation options that make the run's beam (:meth:`EvaluationConfig.beam
#: <poetml.evaluation.config.EvaluationConfig.beam>`), recorded as ``beam`` in config.json
BEAM_KEYS = ("luminosity", "collision_rate_mhz", "filled_fraction")


def model_dir_config(cfg: RunConfig, prep: Prepared, variant: str) -> dict[str, Any]:
    """What a model directory of ``variant`` trained by ``cfg`` records in ``config.json``:
    what makes the model (compared when a directory is reused) and the beam the run's
    weights and rates are at (``beam``, not compared: ``poetml firmware`` reads it)."""
    return {
        "variant": variant,
        "kind": prep.data.kind,
        "spec": to_mapping(prep.spec),
        "spec_type": type(prep.spec).__name__,
        "model": to_mapping(cfg.model),
        "training": to_mapping(cfg.training),
        "dataset": to_mapping(cfg.dataset),
        "beam": {k: getattr(cfg.evaluation, k) for k in BEAM_KEYS},
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
    sw, vw = _event_weights(prep, tcfg, ds)
    if sw is not None:
        cw = None  # the cross-section weights set the balance
    yv = None if prep.autoencoder else prep.y_val
    # images: batches (sparse splits densified per batch); features: arrays, Keras batches
    in_batches = prep.data.kind == "images"
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
            saved = json.loads((d / "metadata.json").read_text())
            if saved.get("fingerprint") == key:
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
        fit_x: Any
        fit_y: Any
        fit_xv: Any
        fit_yv: Any
        if in_batches:  # fresh Sequences per variant: each sees the same seeded batches
            fit_x = prep.sequence(x, y, batch_size=tcfg.batch_size, shuffle_seed=tcfg.seed,
                                  sample_weight=sw)  # fmt: skip
            fit_xv = prep.sequence(prep.x_val, yv, batch_size=tcfg.batch_size,
                                   sample_weight=vw)  # fmt: skip
            fit_y = fit_yv = fit_sw = fit_vw = None
        else:  # the targets of an autoencoder are its inputs
            fit_x, fit_y, fit_sw = x, x if y is None else y, sw
            fit_xv, fit_yv, fit_vw = prep.x_val, prep.x_val if yv is None else yv, vw
        history = training.fit(
            model,
            fit_x,
            fit_y,
            fit_xv,
            fit_yv,
            tcfg,
            loss=_loss(prep),
            metrics=metrics,
            class_weight=cw,
            sample_weight=fit_sw,
            val_sample_weight=fit_vw,
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
