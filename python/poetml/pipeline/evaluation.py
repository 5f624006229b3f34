"""The evaluate stage: the trained variants on the test split -> metrics, plots and a
report section (:func:`poetml.report.evaluate_classifier` / ``evaluate_anomaly``).

Sparse image splits are scored one batch at a time (densified and preprocessed per batch,
:func:`poetml.training.batches`): no dense tensor of a whole split is made."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ..datasets.scalers import DatasetError, Preprocessing
from ..evaluation.config import EvaluationConfig
from ..images import SparseImages
from .checks import output_dir
from .data import Prepared, prepare_data
from .training import check_outputs, load_run_model_dir

__all__ = ["anomaly_scores", "evaluate", "evaluate_and_report", "menu_decisions"]


def _predict(
    model: Any,
    x: np.ndarray | SparseImages,
    batch_size: int,
    prep: Preprocessing | None = None,
) -> np.ndarray:
    """The model's outputs for preprocessed inputs, or for raw sparse images with their
    preprocessing ``prep`` (densified and preprocessed one batch at a time)."""
    if isinstance(x, SparseImages):
        from ..training import batches

        if prep is None:
            raise ValueError("sparse images need their preprocessing to be scored")

        seq = batches(x, None, batch_size=batch_size, transform=prep.apply)
        return np.asarray(model.predict(seq, verbose=0))
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def anomaly_scores(
    model: Any, x: np.ndarray | SparseImages, prep: Preprocessing, batch_size: int = 1024
) -> np.ndarray:
    """Per-event reconstruction error (masked over padded slots for features).  ``x``:
    preprocessed inputs, or raw sparse images, scored one batch at a time (a batch's
    reconstruction is as large as its dense inputs, so neither is kept for the split)."""
    from ..models.autoencoder import reconstruction_error, slot_pt_index

    names = prep.feature_names
    pt_index = slot_pt_index(names) if names else None
    if isinstance(x, SparseImages):
        from ..training import batches

        seq = batches(x, None, batch_size=batch_size, transform=prep.apply)
        parts = [np.zeros(0, np.float64)]
        for i in range(len(seq)):
            xb = seq[i][0]
            parts.append(reconstruction_error(xb, np.asarray(model.predict_on_batch(xb)), pt_index))
        return np.concatenate(parts)
    return reconstruction_error(x, _predict(model, x, batch_size, prep), pt_index)


def menu_decisions(
    prep: Prepared, ecfg: EvaluationConfig
) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
    """The L1-like menu's decisions (:func:`poetml.evaluation.menu_fires` at
    ``ecfg.menu``'s thresholds) on the test background and on each signal, from the
    dataset's leading muon and electron pT; ``(None, None)`` when the menu is disabled or
    the dataset does not carry them."""
    from ..evaluation import menu_fires

    menu = ecfg.menu
    keys = ("lead_muon_pt", "lead_electron_pt")
    if not menu.enabled or any(k not in prep.data.aux for k in keys):
        return None, None

    def fires(aux: Mapping[str, np.ndarray], sel: Any = slice(None)) -> np.ndarray:
        return menu_fires(aux[keys[0]][sel], aux[keys[1]][sel], menu.muon_pt, menu.electron_pt)

    data = prep.data
    signals = {
        p.name: fires(data.aux, data.process == pi)
        for pi, p in enumerate(data.processes)
        if p.name in prep.signals
    }
    return fires(prep.test.aux), signals


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
        weighted = prep.weighted and ecfg.weighted
        bkg_menu, sig_menu = menu_decisions(prep, ecfg) if weighted else (None, None)
        unbiased = None
        if weighted and cfg.dataset.background == "zero_bias":
            from .data import zero_bias_unbiased_khz

            # the minimum-bias events of the test split, vetoed or not: an unbiased
            # sample of the stream, for the brute-force check of its weighted rate
            unbiased = zero_bias_unbiased_khz(prep.test, ecfg.beam())
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
            bkg_weights=prep.w_test if weighted else None,
            beam=ecfg.beam(),
            bkg_process=prep.test.process,
            process_names=[p.name for p in prep.data.processes],
            bkg_menu=bkg_menu,
            signal_menu=sig_menu,
            unbiased=unbiased,
            check_rate_khz=ecfg.check_rate_khz,
            stream=prep.stream if weighted else None,
        )
    probs = {
        v: _predict(md.model, prep.x_test, ecfg.batch_size, prep.preprocessing)
        for v, md in loaded.items()
    }
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


def evaluate_and_report(
    cfg: RunConfig,
    outdir: str | os.PathLike[str] | None = None,
    *,
    trust_model: bool = False,
) -> Path:
    """``poetml evaluate``: prepare the data, evaluate the trained variants of
    ``outdir/models`` (see :func:`evaluate`) and write a report of that one section, titled
    ``poetml evaluate: <config file name>``; returns the path of ``report.md``."""
    from .. import report

    out = Path(outdir) if outdir is not None else output_dir(cfg)
    prep = prepare_data(cfg, out)
    _metrics, section = evaluate(cfg, prep, None, out, trust_model=trust_model)
    title = f"poetml evaluate: {cfg.path.name if cfg.path else 'run'}"
    return report.write_report(out, title, [section])
