"""One call per task: metrics (:mod:`poetml.evaluation`), plots (:mod:`poetml.plots`), the
metrics JSON and a report section (:mod:`.sections`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .render import Image, Section, Table, format_value
from .sections import (
    _by_model,
    adc2021_table,
    anomaly_section,
    auc_below_half_notes,
    classification_section,
    menu_tables,
)

__all__ = ["evaluate_anomaly", "evaluate_classifier"]


def _models_dict(x: Any, what: str) -> dict[str, Any]:
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{what}: empty dict of models")
        return {str(k): v for k, v in x.items()}
    return {"model": x}


def evaluate_classifier(
    outdir: str | os.PathLike[str],
    y_true: Any,
    probabilities: Any,
    class_names: Sequence[str],
    *,
    histories: Mapping[str, Any] | None = None,
    images: Any = None,
    channel_names: Sequence[str] | None = None,
    eta_range: tuple[float, float] | None = None,
    dimuon_mass: Any = None,
    selected_class: str | None = None,
    latent: Any = None,
    relative_to: str | None = None,
    plots_dir: str = "plots",
    metrics_file: str | None = "metrics_classification.json",
    title: str = "Classification",
    label: str = "poetml Simulation",
    com: float | None = None,
) -> tuple[dict[str, Any], Section]:
    """Evaluate classifiers on one test set: metrics, plots, JSON and a report section.

    ``probabilities``: ``(N, C)`` or ``{model: (N, C)}`` (float, quantized, pruned ...), all
    for the events ``y_true``.  Optional extras: Keras ``histories`` ``{model: history}``
    (learning curves); ``images`` ``(N, n_eta, n_phi, C)`` of the same events (mean and
    example images per class); ``dimuon_mass`` ``(N,)`` (NaN without a pair) to histogram
    for the events each model predicts as ``selected_class`` (default: the first class),
    over the true events of that class; ``latent`` ``(N, D)`` features or embeddings
    (PCA to 2-D and k-means with ``C`` clusters, fitted on at most 20 000 random events,
    coloured by class and by cluster).

    Writes the plots under ``outdir/plots_dir`` and the metrics ``{model: dict}`` as
    ``outdir/metrics_file`` (skipped when ``None``).  Returns ``(metrics, section)``; pass
    the section to :func:`write_report`.
    """
    from .. import evaluation as ev
    from .. import plots
    from ..evaluation.inputs import _int_labels

    outdir = Path(outdir)
    pdir = outdir / plots_dir
    names = [str(c) for c in class_names]
    probs = _models_dict(probabilities, "probabilities")
    y = _int_labels(y_true, "y_true", len(names))
    metrics = {m: ev.classification_metrics(y, p, names) for m, p in probs.items()}
    if relative_to is None and len(probs) > 1:
        relative_to = next(iter(probs))
    imgs: list[Image] = []

    def add(path: Path, caption: str) -> None:
        imgs.append(Image(path, caption))

    add(
        plots.plot_roc_curves(y, probs, names, pdir / "roc.png", label=label, com=com),
        "One-vs-rest ROC curves (line style = model)",
    )
    cms = {m: metrics[m]["confusion_matrix"]["counts"] for m in probs}
    add(
        plots.plot_confusion_matrix(
            cms, names, pdir / "confusion_normalized.png", normalize=True, label=label, com=com
        ),
        "Confusion matrices, rows normalised to the true class",
    )
    add(
        plots.plot_confusion_matrix(
            cms, names, pdir / "confusion_counts.png", label=label, com=com
        ),
        "Confusion matrices, event counts",
    )
    if histories:
        add(
            plots.plot_learning_curves(
                dict(histories), pdir / "learning_curves.png", label=label, com=com
            ),
            "Learning curves (solid: training, dashed: validation)",
        )
    if images is not None:
        add(
            plots.plot_mean_images(
                images,
                y,
                names,
                pdir / "mean_images.png",
                channel_names=channel_names,
                eta_range=eta_range,
                label=label,
                com=com,
            ),
            "Mean event image per class (test set)",
        )
        add(
            plots.plot_example_images(
                images,
                y,
                names,
                pdir / "example_images.png",
                channel_names=channel_names,
                eta_range=eta_range,
                label=label,
                com=com,
            ),
            "One example event image per class",
        )
    tables: list[Table] = []
    if dimuon_mass is not None:
        mass = np.asarray(dimuon_mass, dtype=np.float64)
        if mass.shape != y.shape:
            raise ValueError(f"dimuon_mass has shape {mass.shape}, y_true {y.shape}")
        target = selected_class if selected_class is not None else names[0]
        if target not in names:
            raise ValueError(f"selected_class {target!r} is not one of {names}")
        k = names.index(target)
        chosen = {m: mass[np.asarray(p).argmax(axis=1) == k] for m, p in probs.items()}
        add(
            plots.plot_dimuon_mass(
                chosen,
                pdir / "dimuon_mass.png",
                reference=mass[y == k],
                reference_name=f"true {target}",
                selection_name=f"selected as {target}",
                label=label,
                com=com,
            ),
            f"Leading opposite-sign dimuon mass of events selected as {target}",
        )
    if latent is not None:
        x = np.asarray(latent, dtype=np.float64).reshape(len(y), -1)
        fit = ev.pca(x, 2)
        km = ev.fit_clusters(fit.scores if x.shape[1] > 50 else x, len(names))
        add(
            plots.plot_latent_space(
                fit.scores,
                y,
                names,
                km.labels,
                pdir / "latent_space.png",
                explained_variance_ratio=fit.explained_variance_ratio,
                label=label,
                com=com,
            ),
            "Latent space: PCA projection coloured by true class and by k-means cluster",
        )
        tables.append(
            Table(
                ev.cluster_table(y, km.labels, names, len(names)),
                caption="k-means clusters against true classes",
            )
        )
    if metrics_file:
        ev.write_json(outdir / metrics_file, metrics)
    sec = classification_section(metrics, title=title, images=imgs, relative_to=relative_to)
    return metrics, Section(sec.title, sec.text, [*sec.tables, *tables], sec.images, sec.warnings)


def evaluate_anomaly(
    outdir: str | os.PathLike[str],
    bkg_scores: Any,
    signal_scores: Mapping[str, Any],
    *,
    fpr_targets: Sequence[float] = (1e-5,),
    rate_khz: float | Sequence[float] | None = None,
    collision_rate_mhz: float = 40.0,
    histories: Mapping[str, Any] | None = None,
    latent: Any = None,
    latent_labels: Any = None,
    latent_class_names: Sequence[str] | None = None,
    n_clusters: int | None = None,
    relative_to: str | None = None,
    score_label: str = "Anomaly score",
    log_scores: bool = True,
    plots_dir: str = "plots",
    metrics_file: str | None = "metrics_anomaly.json",
    title: str = "Anomaly detection",
    label: str = "poetml Simulation",
    com: float | None = None,
    bkg_weights: Any = None,
    beam: Any = None,
    bkg_process: Any = None,
    process_names: Sequence[str] | None = None,
    bkg_menu: Any = None,
    signal_menu: Mapping[str, Any] | None = None,
    unbiased: Any = None,
    check_rate_khz: Sequence[float] = (),
    stream: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Section]:
    """Evaluate anomaly detectors: per-signal ROC/AUC, efficiencies at each FPR in
    ``fpr_targets`` and each trigger rate in ``rate_khz``, plots, JSON and a report section.

    ``bkg_weights``: per-event weights [pb] of the background events (the same for every
    model): the trigger rates are then those of the weighted stream at ``beam``'s
    luminosity (:func:`poetml.evaluation.weighted_rate_metrics`, stored under
    ``"weighted"`` in each model's metrics), with a table and the rate-against-threshold
    plot; with ``bkg_process`` (the process index of each background event) and
    ``process_names`` also the score distribution stacked by process at its rate.  With
    ``unbiased`` (per background event the rate [kHz] it stands for in an unbiased sample
    of the stream, 0 outside it: the zero-bias stream's minimum-bias crossings, see
    :func:`poetml.pipeline.data.zero_bias_unbiased_khz`) the weighted rate at each of
    ``check_rate_khz`` is checked against the brute-force rate of those events alone
    (:func:`poetml.rates.unbiased_rate_check`; ``"unbiased_checks"`` in the metrics, a
    table, and a warning when they disagree by more than two standard deviations).
    ``stream``: what the dataset's ``background`` setting did
    (:func:`poetml.pipeline.data.apply_background`), shown as a table for a zero-bias stream.

    ``bkg_scores``: array or ``{model: array}``; ``signal_scores``: ``{signal: array}`` or
    ``{model: {signal: array}}`` (same models).  ``latent`` ``(N, D)`` with integer
    ``latent_labels`` and their ``latent_class_names`` (e.g. background and each signal)
    adds the PCA/k-means plot (``n_clusters`` defaults to the number of classes).
    Small-background warnings of :func:`poetml.evaluation.anomaly_metrics` are kept in the
    section.  Returns ``(metrics {model: dict}, section)``.
    """
    from .. import evaluation as ev
    from .. import plots
    from ..evaluation.inputs import _int_labels

    outdir = Path(outdir)
    pdir = outdir / plots_dir
    if isinstance(bkg_scores, Mapping):
        bkg = _models_dict(bkg_scores, "bkg_scores")
        sigs = (
            {str(m): signal_scores[m] for m in bkg_scores}
            if set(signal_scores) == set(bkg_scores)
            else None
        )
        if sigs is None:
            raise ValueError(
                "with {model: background scores}, signal_scores must be {model: {signal: scores}} "
                f"for the same models {sorted(bkg)}; got keys {sorted(signal_scores)}"
            )
    else:
        bkg, sigs = {"model": bkg_scores}, {"model": signal_scores}
    weighted_stream = bkg_weights is not None and rate_khz is not None
    # on a weighted stream the rates are the stream's (below), not FPR x collision rate
    metrics = {
        m: ev.anomaly_metrics(
            bkg[m], sigs[m], fpr_targets, None if weighted_stream else rate_khz, collision_rate_mhz
        )
        for m in bkg
    }
    if relative_to is None and len(bkg) > 1:
        relative_to = next(iter(bkg))
    wps = [w["fpr"] for w in next(iter(metrics.values()))["working_points"]]
    imgs: list[Image] = []

    def add(path: Path, caption: str) -> None:
        imgs.append(Image(path, caption))

    add(
        plots.plot_anomaly_roc(
            bkg,
            sigs,
            pdir / "anomaly_roc.png",
            working_fpr=wps,
            collision_rate_mhz=collision_rate_mhz,
            label=label,
            com=com,
        ),
        "ROC per signal (line style = model); vertical lines: working points",
    )
    rates = None if rate_khz is None else np.atleast_1d(rate_khz).tolist()
    if not weighted_stream:
        add(
            plots.plot_efficiency_vs_rate(
                bkg,
                sigs,
                pdir / "efficiency_vs_rate.png",
                collision_rate_mhz=collision_rate_mhz,
                rate_khz=rates,
                label=label,
                com=com,
            ),
            f"Signal efficiency against trigger rate (rate = FPR x {collision_rate_mhz:g} MHz)",
        )
    first_wp = next(iter(metrics.values()))["working_points"][0]["name"]
    thr = {m: r["working_points"][0]["threshold"] for m, r in metrics.items()}
    allpos = all(
        np.min(np.asarray(bkg[m])) > 0 and all(np.min(np.asarray(v)) > 0 for v in sigs[m].values())
        for m in bkg
    )
    add(
        plots.plot_score_distributions(
            bkg,
            sigs,
            pdir / "score_distributions.png",
            xlabel=score_label,
            thresholds=thr,
            log_x=log_scores and allpos,
            label=label,
            com=com,
        ),
        f"Score distributions; red line: threshold at {first_wp}",
    )
    if histories:
        add(
            plots.plot_learning_curves(
                dict(histories), pdir / "learning_curves.png", log_loss=True, label=label, com=com
            ),
            "Learning curves (solid: training, dashed: validation)",
        )
    tables: list[Table] = []
    if latent is not None:
        if latent_labels is None or latent_class_names is None:
            raise ValueError("latent needs latent_labels and latent_class_names")
        x = np.asarray(latent, dtype=np.float64)
        x = x.reshape(len(x), -1)
        lab = _int_labels(latent_labels, "latent_labels", len(latent_class_names))
        k = n_clusters or len(latent_class_names)
        fit = ev.pca(x, 2)
        km = ev.fit_clusters(x, k)
        add(
            plots.plot_latent_space(
                fit.scores,
                lab,
                latent_class_names,
                km.labels,
                pdir / "latent_space.png",
                explained_variance_ratio=fit.explained_variance_ratio,
                label=label,
                com=com,
            ),
            "Latent space: PCA projection coloured by sample and by k-means cluster",
        )
        tables.append(
            Table(
                ev.cluster_table(lab, km.labels, latent_class_names, k),
                caption="k-means clusters against samples",
            )
        )
    weighted_warnings: list[tuple[str, str]] = []
    if weighted_stream:
        weighted = {
            m: ev.weighted_rate_metrics(
                bkg[m],
                bkg_weights,
                sigs[m],
                rates or [],
                beam,
                bkg_menu=bkg_menu,
                signal_menu=signal_menu,
            )
            for m in bkg
        }
        for m, r in weighted.items():
            metrics[m] = {**metrics[m], "weighted": r}
            weighted_warnings += [(m, w) for w in r["warnings"]]
        add(
            plots.plot_rate_vs_threshold(
                weighted, pdir / "rate_vs_threshold.png", label=label, com=com
            ),
            "Rate of the weighted background stream against the threshold (band: statistical "
            "uncertainty from the weights); points: working points",
        )
        add(
            plots.plot_weighted_efficiency_vs_rate(
                weighted,
                pdir / "efficiency_vs_rate_weighted.png",
                rate_khz=rates,
                label=label,
                com=com,
            ),
            "Signal efficiency against the rate of the weighted background stream (colour = "
            "signal, line style = model; band: 68% CL interval of the efficiency); dashed lines: "
            "the configured rates"
            + ("; stars: the single-lepton menu" if bkg_menu is not None else ""),
        )
        if stream and stream.get("unit") == "bunch crossings":
            tables.append(_stream_table(stream))
        tables.append(_weighted_table(weighted))
        if unbiased is not None and len(check_rate_khz):
            from ..rates import Beam, unbiased_rate_check

            for m, r in weighted.items():
                checks = [
                    unbiased_rate_check(bkg[m], bkg_weights, unbiased, float(c), beam or Beam())
                    for c in check_rate_khz
                ]
                r["unbiased_checks"] = checks  # r is metrics[m]["weighted"]
                weighted_warnings += [
                    (
                        m,
                        (
                            f"at {c['target_rate_khz']:g} kHz the weighted stream's rate "
                            f"{c['weighted']['rate_khz']:.3g} kHz and the unbiased sample's "
                            f"{c['unbiased']['rate_khz']:.3g} kHz differ by "
                            f"{c['difference_khz']:.3g} +- {c['difference_err_khz']:.2g} kHz "
                            f"({c['pull']:.2g} standard deviations): check the weights and the "
                            "stitch"
                        ),
                    )
                    for c in checks
                    if abs(c["pull"]) > 2
                ]
            tables.append(_unbiased_check_table(weighted))
        tables += menu_tables(weighted)
        adc = adc2021_table(weighted)
        if adc is not None:
            tables.append(adc)
        if bkg_process is not None and process_names is not None:
            from ..rates import Beam

            m0 = next(iter(bkg))
            add(
                plots.plot_weighted_score_stack(
                    bkg[m0],
                    bkg_weights,
                    bkg_process,
                    process_names,
                    pdir / "score_by_process.png",
                    beam_khz_per_pb=(beam or Beam()).khz_per_pb,
                    threshold=weighted[m0]["working_points"][0]["threshold"],
                    xlabel=score_label,
                    label=label,
                    com=com,
                ),
                f"Background score distribution of {m0}, stacked by process at its rate "
                "(cross-section weights); red line: the first rate's threshold",
            )
    if metrics_file:
        ev.write_json(outdir / metrics_file, metrics)
    sec = anomaly_section(metrics, title=title, images=imgs, relative_to=relative_to)
    warns = (
        list(sec.warnings) + _by_model(weighted_warnings) + _by_model(auc_below_half_notes(metrics))
    )
    return metrics, Section(sec.title, sec.text, [*sec.tables, *tables], sec.images, warns)


def _stream_table(stream: Mapping[str, Any]) -> Table:
    st = stream.get("stitching", {})
    rows: list[list[Any]] = [
        ["quantity", "value"],
        ["filled crossings", f"{stream['crossing_rate_khz'] / 1e3:.4g} MHz"],
        ["pile-up of the beam (mean interactions per crossing)", f"{stream['pileup_beam']:.3g}"],
        ["hard processes' crossings", f"{stream['hard_sigma_pb'] / stream['crossings_pb']:.3g} of all"],
        ["stitched processes", ", ".join(st.get("processes", [])) or "none"],
        ["stitch threshold (pT-hat)", "-" if st.get("pthat_threshold_gev") is None else f"{st['pthat_threshold_gev']:g} GeV"],
        ["minimum-bias events vetoed", st.get("minbias_events_vetoed", 0)],
        ["sigma above the threshold: minimum bias's own / stitched", f"{st.get('minbias_sigma_above_pb', 0):.3g} / {st.get('stitched_sigma_pb', 0):.3g} pb"],
    ]  # fmt: skip
    return Table(
        rows,
        caption=(
            "The zero-bias stream: every event a bunch crossing; weights sum to the "
            "filled-crossing rate over the luminosity (poetml.pipeline.data.zero_bias_weights)"
        ),
    )


def _unbiased_check_table(weighted: Mapping[str, Mapping[str, Any]]) -> Table:
    rows: list[list[Any]] = [
        [
            "model",
            "target [kHz]",
            "threshold",
            "weighted stream [kHz]",
            "above (effective)",
            "unbiased events alone [kHz]",
            "selected / events",
            "hard part: sample / stream [kHz]",
            "difference [kHz]",
            "pull",
        ]
    ]
    for m, r in weighted.items():
        for c in r.get("unbiased_checks", []):
            w, u = c["weighted"], c["unbiased"]
            rows.append(
                [
                    m,
                    c["target_rate_khz"],
                    c["threshold"],
                    f"{w['rate_khz']:.3g} +- {w['rate_khz_err']:.2g}",
                    f"{w['n_events']} ({w['n_effective']:.3g})",
                    f"{u['rate_khz']:.3g} +- {u['rate_khz_err']:.2g}",
                    f"{u['k']} / {u['n']}",
                    (
                        f"{u['replaced_khz']:.3g} ({u['replaced_events']} ev.) / "
                        f"{u['replacement_khz']:.3g}"
                    ),
                    f"{c['difference_khz']:.3g} +- {c['difference_err_khz']:.2g}",
                    f"{c['pull']:.2f}",
                ]
            )
    return Table(
        rows,
        caption=(
            "The weighted stream against brute force: at a looser working point, the rate of "
            "the weighted (biased, stitched) stream and the rate the unbiased minimum-bias "
            "sample gives alone, unweighted (an event with a hard primary interaction stands "
            "for the mu interactions of a crossing that may hold it).  The hard part is what "
            "the stitch replaced: the sample's own hard events against the weighted hard "
            "processes.  The difference's uncertainty counts events in both once and expects "
            "the sample's few heavy hard events from the stream's rate "
            "(poetml.rates.unbiased_rate_check); they agree when |pull| <= 2"
        ),
    )


def _weighted_table(weighted: Mapping[str, Mapping[str, Any]]) -> Table:
    rows: list[list[Any]] = [
        [
            "model",
            "working point",
            "threshold",
            "rate [kHz]",
            "background above (effective)",
            "signal",
            "efficiency",
            "68% CL interval",
            "AUC (weighted)",
        ]
    ]
    for m, r in weighted.items():
        for wp in r["working_points"]:
            for s, sig in r["signals"].items():
                e = sig["efficiency"][wp["name"]]
                lo, hi = e["efficiency_interval"]
                rows.append(
                    [
                        m,
                        wp["name"],
                        wp["threshold"],
                        f"{wp['rate_khz']:.3g} +- {wp['rate_khz_err']:.2g}",
                        f"{wp['n_background_selected']} ({wp['n_effective_background_selected']:.3g})",
                        s,
                        e["efficiency"],
                        f"[{format_value(lo)}, {format_value(hi)}]",
                        sig["auc"],
                    ]
                )
    first = next(iter(weighted.values()))
    return Table(
        rows,
        caption=(
            f"Trigger rates of the weighted background stream ({first['sum_weights_pb']:.4g} pb, "
            f"{first['n_background']} events, {first['n_effective_background']:.4g} effective) at "
            f"L = {first['luminosity']:.3g} cm^-2 s^-1; uncertainty from the sum of squared weights"
        ),
    )
