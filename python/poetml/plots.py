"""Evaluation plots in the CMS style of mplhep: arrays in, one PNG out.

Every function takes arrays (never models), writes one PNG atomically (temporary name,
then renamed onto ``path``) and returns ``path`` as a :class:`~pathlib.Path`.

Where several models are compared (float, quantized, pruned ...), the score/probability
argument may be a dict ``{model name: arrays}``: curves of the models are overlaid in the
same axes (one line style per model, one colour per class or signal); panels (confusion
matrices, score distributions) are drawn side by side with the same binning.

Figures are made with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: nothing global is switched (no ``matplotlib.use``), the figure is never
registered with a GUI backend, and it is freed when the function returns, so these
functions are safe in notebooks, scripts and worker threads.  The CMS style is applied in a
``matplotlib.style.context``, leaving the caller's ``rcParams`` untouched.

``label`` is the experiment label above the axes, its first word in bold: ``"poetml
Simulation"`` by default (poetml's own Pythia + parametric-detector events are not CMS
simulation, so they do not carry the CMS name); ``"CMS Open Data"`` for plots of CMS Open
Data collision events.  ``com`` is the centre-of-mass energy in TeV (omitted when ``None``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._atomic import atomic_path
from ._optional import require
from .evaluation import MUON_MASS, fpr_to_rate, pca, roc_curve, thin_curve  # noqa: F401

if TYPE_CHECKING:
    from matplotlib.artist import Artist

__all__ = [
    "plot_anomaly_roc",
    "plot_confusion_matrix",
    "plot_dimuon_mass",
    "plot_efficiency_vs_rate",
    "plot_example_images",
    "plot_latent_space",
    "plot_learning_curves",
    "plot_mean_images",
    "plot_roc_curves",
    "plot_score_distributions",
    "plot_weighted_efficiency_vs_rate",
]

Z_MASS = 91.1876
WP_COLORS = ("red", "black", "darkviolet", "saddlebrown")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)))
_PLOT_POINTS = 1500  # points kept per ROC curve for drawing


# --------------------------------------------------------------------------------------
# figure plumbing
# --------------------------------------------------------------------------------------


@contextmanager
def _figure(
    path: str | os.PathLike[str],
    nrows: int = 1,
    ncols: int = 1,
    panel_size: tuple[float, float] = (10.0, 10.0),
    dpi: int = 100,
    top: float = 1.0,
    constrained: bool = False,
    **subplot_kw: Any,
) -> Iterator[tuple[Any, np.ndarray]]:
    """A CMS-style Figure with ``nrows x ncols`` axes, saved to ``path`` on exit."""
    mpl = require("matplotlib", "plots")
    hep = require("mplhep", "plots in the CMS style")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.style.context(hep.style.CMS):
        fig = Figure(
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
            dpi=dpi,
            layout=ConstrainedLayoutEngine(rect=(0.0, 0.0, 1.0, top)) if constrained else None,
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
        yield fig, axes
        if not constrained:
            fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
        try:
            with atomic_path(path, suffix=".png") as tmp:
                fig.savefig(tmp, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
        finally:
            fig.clear()


def _cms_label(ax: Any, label: str, com: float | None, fig: Any = None) -> None:
    """The first word of ``label`` in bold and the rest in italics above the top-left corner
    of ``ax`` (e.g. **CMS** *Open Data*), the
    centre-of-mass energy above the top-right corner (the layout of ``mplhep.cms.label``
    with ``loc=0``, laid out with offset boxes: mplhep's own version draws the whole figure
    to measure the text, seconds per call)."""
    mpl = require("matplotlib")
    from matplotlib.offsetbox import AnchoredOffsetbox, HPacker, TextArea

    size = mpl.rcParams["font.size"]
    head, _, rest = label.strip().partition(" ")
    parts: list[Artist] = []
    if head:
        parts.append(TextArea(head, textprops={"fontsize": size * 1.3, "fontweight": "bold"}))
    if rest:
        parts.append(TextArea(rest, textprops={"fontsize": size, "fontstyle": "italic"}))
    if com is not None:
        energy = com if isinstance(com, str) else f"{com:g} TeV"
        parts.append(TextArea(f"({energy})", textprops={"fontsize": size}))
    box = HPacker(children=parts, align="baseline", pad=0, sep=size * 0.4)
    # whole-figure label in the figure's top-left corner, else just above the axes
    loc, anchor, owner = (
        ("upper left", (0.01, 0.995), fig) if fig is not None else ("lower left", (0.0, 1.005), ax)
    )
    owner.add_artist(
        AnchoredOffsetbox(
            loc=loc,
            child=box,
            pad=0.0,
            frameon=False,
            bbox_to_anchor=anchor,
            bbox_transform=fig.transFigure if fig is not None else ax.transAxes,
            borderpad=0.0,
        )
    )


def _colors() -> list[str]:
    mpl = require("matplotlib")
    return list(mpl.rcParams["axes.prop_cycle"].by_key()["color"])


def _by_model(x: Any, leaf: Any) -> dict[str, Any]:
    """``{model: value}`` from a dict of models or a single value (model name "")."""
    if isinstance(x, Mapping) and not leaf(x):
        if not x:
            raise ValueError("an empty dict of models was given")
        return {str(k): v for k, v in x.items()}
    return {"": x}


def _is_array(x: Any) -> bool:
    return not isinstance(x, Mapping)


def _tag(model: str, text: str) -> str:
    return f"{text} ({model})" if model else text


def _anomaly_inputs(bkg_scores: Any, signal_scores: Any) -> dict[str, tuple[np.ndarray, dict]]:
    """{model: (bkg array, {signal: array})} from single-model or per-model inputs."""
    if isinstance(bkg_scores, Mapping):
        if not isinstance(signal_scores, Mapping) or set(signal_scores) != set(bkg_scores):
            raise ValueError(
                "with per-model background scores {model: array}, signal_scores must be "
                f"{{model: {{signal: array}}}} with the same models ({sorted(bkg_scores)})"
            )
        out = {}
        for m, b in bkg_scores.items():
            sig = signal_scores[m]
            if not isinstance(sig, Mapping):
                raise TypeError(f"signal_scores[{m!r}] must be a dict {{signal name: scores}}")
            out[str(m)] = (
                np.asarray(b, dtype=np.float64),
                {str(k): np.asarray(v, dtype=np.float64) for k, v in sig.items()},
            )
        return out
    if not isinstance(signal_scores, Mapping) or not signal_scores:
        raise ValueError("signal_scores must be a non-empty dict {signal name: scores}")
    return {
        "": (
            np.asarray(bkg_scores, dtype=np.float64),
            {str(k): np.asarray(v, dtype=np.float64) for k, v in signal_scores.items()},
        )
    }


def _roc_points(bkg: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from .evaluation import auc, roc_from_scores

    fpr, tpr, _ = roc_from_scores(bkg, sig)
    area = auc(fpr, tpr)
    f, t = thin_curve(fpr, tpr, max_points=_PLOT_POINTS, min_fpr=1e-8)
    return f, t, area


def _low_stat_band(ax: Any, lo: float, hi: float, min_bkg_events: float) -> None:
    if hi > lo:
        ax.axvspan(
            lo,
            hi,
            color="grey",
            alpha=0.15,
            lw=0,
            label=f"< {min_bkg_events:g} background events pass",
        )


# --------------------------------------------------------------------------------------
# ROC curves
# --------------------------------------------------------------------------------------


def plot_roc_curves(
    y_true: Any,
    probabilities: Any,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    log_fpr: bool = False,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """One-vs-rest ROC curve of every class; ``probabilities`` is ``(N, C)`` or
    ``{model: (N, C)}`` (all evaluated on the same events ``y_true``).  AUCs in the legend."""
    y = np.asarray(y_true)
    models = _by_model(probabilities, lambda d: False)
    names = [str(c) for c in class_names]
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        colors = _colors()
        for j, (m, p) in enumerate(models.items()):
            p = np.asarray(p, dtype=np.float64)
            if p.ndim != 2 or p.shape != (len(y), len(names)):
                raise ValueError(
                    f"probabilities{f'[{m!r}]' if m else ''} have shape {p.shape}, expected "
                    f"({len(y)}, {len(names)})"
                )
            for i, name in enumerate(names):
                is_i = y == i
                if is_i.all() or not is_i.any():
                    continue
                f, t, area = _roc_points(p[~is_i, i], p[is_i, i])
                ax.plot(
                    f,
                    t,
                    color=colors[i % len(colors)],
                    ls=LINESTYLES[j % len(LINESTYLES)],
                    label=_tag(m, f"{name} vs rest, AUC = {area:.3f}"),
                )
        if log_fpr:
            ax.set_xscale("log")
            ax.set_xlim(max(1.0 / max(len(y), 1), 1e-6), 1)
        else:
            ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="random")
            ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("False positive rate (other classes accepted)")
        ax.set_ylabel("True positive rate (class efficiency)")
        ax.legend(loc="lower right", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


def plot_anomaly_roc(
    bkg_scores: Any,
    signal_scores: Any,
    path: str | os.PathLike[str],
    *,
    working_fpr: float | Sequence[float] | None = 1e-5,
    collision_rate_mhz: float = 40.0,
    min_bkg_events: float = 10.0,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """ROC of an anomaly score per signal, FPR on a log axis, with a vertical line at each
    working point (labelled with its trigger rate).

    ``bkg_scores``: array, ``signal_scores``: ``{signal: array}``; or, to overlay models,
    ``{model: array}`` and ``{model: {signal: array}}``.  The grey band marks FPRs where
    fewer than ``min_bkg_events`` background events pass (statistically unreliable).
    """
    data = _anomaly_inputs(bkg_scores, signal_scores)
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        n_bkg = _signal_curves(ax, data, x_scale=1.0, with_auc=True)
        wps = [] if working_fpr is None else np.atleast_1d(working_fpr).tolist()
        for k, w in enumerate(wps):
            ax.axvline(
                w,
                color=WP_COLORS[k % len(WP_COLORS)],
                ls="--",
                lw=1.5,
                label=f"FPR = {w:.2g} ({fpr_to_rate(w, collision_rate_mhz):.3g} kHz)",
            )
        lo = min([1.0 / max(n_bkg, 1), *[w / 3 for w in wps]])
        _low_stat_band(ax, lo, min_bkg_events / max(n_bkg, 1), min_bkg_events)
        ax.set_xscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("Background false positive rate")
        ax.set_ylabel("Signal efficiency (true positive rate)")
        ax.legend(loc="upper left", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


def _signal_curves(ax: Any, data: dict[str, Any], *, x_scale: float, with_auc: bool) -> int:
    """Efficiency against background FPR x ``x_scale`` for every (model, signal) of
    :func:`_anomaly_inputs`: colour per signal, line style per model.  Returns the smallest
    background sample size (what sets the low-statistics band)."""
    colors = _colors()
    sig_names: list[str] = []
    for j, (m, (b, sigs)) in enumerate(data.items()):
        for s, arr in sigs.items():
            if s not in sig_names:
                sig_names.append(s)
            f, t, area = _roc_points(b, arr)
            pos = f > 0
            ax.plot(
                f[pos] * x_scale,
                t[pos],
                color=colors[sig_names.index(s) % len(colors)],
                ls=LINESTYLES[j % len(LINESTYLES)],
                label=_tag(m, f"{s}, AUC = {area:.3f}" if with_auc else s),
            )
    return min(len(b) for b, _ in data.values())


def plot_efficiency_vs_rate(
    bkg_scores: Any,
    signal_scores: Any,
    path: str | os.PathLike[str],
    *,
    collision_rate_mhz: float = 40.0,
    rate_khz: float | Sequence[float] | None = None,
    log_efficiency: bool = False,
    min_bkg_events: float = 10.0,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Signal efficiency against trigger rate (``rate = FPR x collision rate``, kHz, log
    axis), per signal, models overlaid as in :func:`plot_anomaly_roc`; vertical lines at the
    rates in ``rate_khz``; grey band: fewer than ``min_bkg_events`` background events pass."""
    data = _anomaly_inputs(bkg_scores, signal_scores)
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        n_bkg = _signal_curves(ax, data, x_scale=collision_rate_mhz * 1e3, with_auc=False)
        rates = [] if rate_khz is None else np.atleast_1d(rate_khz).tolist()
        for k, r in enumerate(rates):
            ax.axvline(r, color=WP_COLORS[k % len(WP_COLORS)], ls="--", lw=1.5, label=f"{r:g} kHz")
        ax.set_xscale("log")
        lo = min([collision_rate_mhz * 1e3 / max(n_bkg, 1), *[r / 3 for r in rates]])
        _low_stat_band(
            ax, lo, min_bkg_events * collision_rate_mhz * 1e3 / max(n_bkg, 1), min_bkg_events
        )
        ax.set_xlim(lo, collision_rate_mhz * 1e3)
        if log_efficiency:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"Trigger rate [kHz] (at {collision_rate_mhz:g} MHz)")
        ax.set_ylabel("Signal efficiency")
        ax.legend(loc="upper left", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


def plot_weighted_efficiency_vs_rate(
    weighted: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    rate_khz: float | Sequence[float] | None = None,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Signal efficiency against the rate [kHz, log axis] of the weighted background
    stream, one colour per signal and one line style per model, with the efficiency's
    interval from the signal's effective counts as a band; vertical lines at the rates in
    ``rate_khz``; with the menu comparison, a star per signal at the menu's rate and
    efficiency.  ``weighted``: ``{model: result of
    poetml.evaluation.weighted_rate_metrics}`` (its ``efficiency_curve`` and ``menu``)."""
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        colors = _colors()
        sig_names: list[str] = []
        lo_rate = math.inf
        for j, (m, r) in enumerate(weighted.items()):
            c = r["efficiency_curve"]
            x = np.asarray(c["rate_khz"], float)
            if x.size:
                lo_rate = min(lo_rate, float(x[0]))
            for s, e in c["signals"].items():
                if s not in sig_names:
                    sig_names.append(s)
                col = colors[sig_names.index(s) % len(colors)]
                ax.plot(
                    x,
                    np.asarray(e["efficiency"], float),
                    color=col,
                    ls=LINESTYLES[j % len(LINESTYLES)],
                    label=_tag(m if len(weighted) > 1 else "", s),
                )
                ax.fill_between(
                    x,
                    np.asarray(e["low"], float),
                    np.asarray(e["high"], float),
                    color=col,
                    alpha=0.2,
                    lw=0,
                )
        menu = next(iter(weighted.values())).get("menu")
        if menu:
            for s, e in menu["signals"].items():
                col = colors[sig_names.index(s) % len(colors)] if s in sig_names else "grey"
                ax.plot(
                    [menu["menu"]["rate_khz"]],
                    [e["menu"]["efficiency"]],
                    marker="*",
                    ms=14,
                    color=col,
                    ls="none",
                )
            ax.plot([], [], marker="*", ms=14, color="grey", ls="none", label="single-lepton menu")
        rates = [] if rate_khz is None else np.atleast_1d(rate_khz).tolist()
        for k, rk in enumerate(rates):
            ax.axvline(
                rk, color=WP_COLORS[k % len(WP_COLORS)], ls="--", lw=1.5, label=f"{rk:g} kHz"
            )
        ax.set_xscale("log")
        if math.isfinite(lo_rate):
            ax.set_xlim(left=min([lo_rate, *[rk / 3 for rk in rates]]))
        ax.set_ylim(0, 1.05)
        first = next(iter(weighted.values()))
        ax.set_xlabel(
            f"Background rate [kHz] at L = {first['luminosity']:.3g} cm$^{{-2}}$s$^{{-1}}$"
        )
        ax.set_ylabel("Signal efficiency")
        ax.legend(loc="upper left", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


def plot_weighted_score_stack(
    scores: Any,
    weights_pb: Any,
    process: Any,
    process_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    beam_khz_per_pb: float,
    threshold: float | None = None,
    bins: int = 50,
    xlabel: str = "Anomaly score",
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """The background's score distribution stacked by process, each weighted by its cross
    section and shown as a rate [kHz per bin] at the luminosity behind ``beam_khz_per_pb``
    (log y); ``threshold`` drawn as a vertical line."""
    s = np.asarray(scores, np.float64)
    w = np.asarray(weights_pb, np.float64) * beam_khz_per_pb
    proc = np.asarray(process)
    pos = s[s > 0]
    edges = (
        np.geomspace(float(pos.min()), float(pos.max()) * 1.0001, bins + 1)
        if pos.size and np.all(s > 0)
        else np.linspace(float(s.min()), float(s.max()) + 1e-9, bins + 1)
    )
    present = [k for k in np.unique(proc) if np.any(proc == k)]
    order = sorted(present, key=lambda k: float(w[proc == k].sum()))  # smallest on top
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        colors = _colors()
        ax.hist(
            [s[proc == k] for k in order],
            bins=edges,
            weights=[w[proc == k] for k in order],
            stacked=True,
            histtype="stepfilled",
            color=[colors[i % len(colors)] for i in range(len(order))],
            label=[f"{process_names[int(k)]} ({w[proc == k].sum():.3g} kHz)" for k in order],
        )
        if threshold is not None:
            ax.axvline(threshold, color="red", ls="--", lw=1.5, label="threshold")
        if np.all(s > 0):
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Rate per bin [kHz]")
        ax.legend(loc="upper right", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


def plot_rate_vs_threshold(
    weighted: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Trigger rate [kHz] of the weighted background stream against the score threshold,
    with its statistical uncertainty band (sqrt of the sum of squared weights), one curve
    per model; markers at each working point.  ``weighted``: ``{model: result of
    poetml.evaluation.weighted_rate_metrics}``."""
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        for k, (m, r) in enumerate(weighted.items()):
            c = _colors()[k % len(_colors())]
            t = np.asarray(r["curve"]["threshold"], float)
            y = np.asarray(r["curve"]["rate_khz"], float)
            e = np.asarray(r["curve"]["rate_khz_err"], float)
            ok = y > 0
            ax.plot(t[ok], y[ok], color=c, label=m)
            ax.fill_between(
                t[ok], np.maximum(y - e, y * 1e-3)[ok], (y + e)[ok], color=c, alpha=0.25
            )
            for wp in r["working_points"]:
                ax.errorbar(
                    [wp["threshold"]],
                    [wp["rate_khz"]],
                    yerr=[[wp["rate_khz_err"]]] * 2,
                    fmt="o",
                    color=c,
                    ms=4,
                )
        ax.set_yscale("log")
        first = next(iter(weighted.values()))
        ax.set_xlabel("Score threshold")
        ax.set_ylabel(f"Rate [kHz] at L = {first['luminosity']:.3g} cm$^{{-2}}$s$^{{-1}}$")
        ax.legend(loc="upper right", fontsize="x-small")
        _cms_label(ax, label, com)
    return Path(path)


# --------------------------------------------------------------------------------------
# confusion matrices, learning curves
# --------------------------------------------------------------------------------------


def plot_confusion_matrix(
    counts: Any,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    normalize: bool = False,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Confusion matrix (rows: true class, columns: predicted class) as counts, or with
    ``normalize=True`` each row divided by its number of true events.  ``counts`` is
    ``(C, C)`` or ``{model: (C, C)}`` (one panel per model)."""
    models = _by_model(counts, lambda d: False)
    names = [str(c) for c in class_names]
    c = len(names)
    with _figure(path, 1, len(models), panel_size=(max(8.0, 2.0 + 1.6 * c),) * 2) as (fig, axes):
        for k, (m, cm) in enumerate(models.items()):
            cm = np.asarray(cm, dtype=np.float64)
            if cm.shape != (c, c):
                raise ValueError(
                    f"confusion matrix{f' of {m!r}' if m else ''} has shape {cm.shape}, expected ({c}, {c})"
                )
            rows = cm.sum(axis=1, keepdims=True)
            values = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
            ax = axes[0, k]
            vmax = 1.0 if normalize else max(float(values.max()), 1.0)
            im = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax, origin="upper")
            for i in range(c):
                for j in range(c):
                    v = values[i, j]
                    txt = f"{v:.3f}" if normalize else f"{int(v)}"
                    ax.text(
                        j,
                        i,
                        txt,
                        ha="center",
                        va="center",
                        fontsize="small",
                        color="white" if v > 0.6 * vmax else "black",
                    )
            ax.set_xticks(range(c), names, rotation=45 if c > 4 else 0)
            ax.set_yticks(range(c), names)
            ax.minorticks_off()
            # the model's name goes under the axis: above it the experiment label needs the width
            ax.set_xlabel(f"Predicted class ({m})" if m else "Predicted class")
            ax.set_ylabel("True class")
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            cb.set_label("Fraction of true class" if normalize else "Events")
            _cms_label(ax, label, com)
    return Path(path)


def plot_learning_curves(
    histories: Any,
    path: str | os.PathLike[str],
    *,
    metrics: Sequence[str] | None = None,
    log_loss: bool = False,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Training (solid) and validation (dashed) curves per epoch from Keras
    ``History.history`` dicts: one dict, or ``{model: dict}`` overlaid (one colour per
    model).  ``metrics`` defaults to every non-``val_`` key except learning rates, loss first."""
    models = _by_model(histories, lambda d: all(not isinstance(v, Mapping) for v in d.values()))
    if metrics is None:
        keys: list[str] = []
        for h in models.values():
            for k in h:
                if not k.startswith("val_") and k not in ("lr", "learning_rate") and k not in keys:
                    keys.append(k)
        metrics = sorted(keys, key=lambda k: (k != "loss", k))
    if not metrics:
        raise ValueError("no metric to plot: the history dicts are empty")
    with _figure(path, 1, len(metrics)) as (_, axes):
        colors = _colors()
        for a, metric in enumerate(metrics):
            ax = axes[0, a]
            for j, (m, h) in enumerate(models.items()):
                col = colors[j % len(colors)]
                for key, ls, what in (
                    (metric, "-", "train"),
                    (f"val_{metric}", "--", "validation"),
                ):
                    if key in h:
                        v = np.asarray(h[key], dtype=np.float64)
                        ax.plot(
                            np.arange(1, len(v) + 1),
                            v,
                            color=col,
                            ls=ls,
                            marker="o",
                            ms=4,
                            label=_tag(m, what),
                        )
            ax.set_xlabel("Epoch")
            ax.xaxis.set_major_locator(require("matplotlib").ticker.MaxNLocator(integer=True))
            ax.set_ylabel(metric.replace("_", " "))
            if log_loss and "loss" in metric:
                ax.set_yscale("log")
            ax.legend(fontsize="x-small")
            _cms_label(ax, label, com)
    return Path(path)


# --------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------


def _image_grid(
    panels: list[tuple[str, np.ndarray]],
    channel_names: Sequence[str],
    path: str | os.PathLike[str],
    eta_range: tuple[float, float] | None,
    value_label: str,
    log: bool,
    label: str,
    com: float | None,
) -> Path:
    mpl = require("matplotlib")
    n_rows, n_ch = len(panels), len(channel_names)
    top = 1.0 - 0.5 / (5.2 * n_rows)  # half an inch for the CMS label
    with _figure(path, n_rows, n_ch, panel_size=(6.0, 5.2), top=top, constrained=True) as (
        fig,
        axes,
    ):
        for c in range(n_ch):
            # one colour scale per channel, shared by the rows, so classes compare directly
            vals = np.concatenate([img[:, :, c].ravel() for _, img in panels])
            pos = vals[vals > 0]
            if log and pos.size:
                norm = mpl.colors.LogNorm(vmin=float(pos.min()), vmax=float(pos.max()))
            else:
                hi = float(vals.max()) if vals.size else 1.0
                norm = mpl.colors.Normalize(vmin=0.0, vmax=hi if hi > 0 else 1.0)
            im = None
            for r, (row_title, img) in enumerate(panels):
                ax = axes[r, c]
                a = img[:, :, c].T  # (n_phi, n_eta): eta on x, phi on y
                if eta_range is not None:
                    extent = (eta_range[0], eta_range[1], -math.pi, math.pi)
                    xl, yl = r"$\eta$", r"$\phi$ [rad]"
                else:
                    extent = (0, a.shape[1], 0, a.shape[0])
                    xl, yl = r"$\eta$ pixel", r"$\phi$ pixel"
                shown = np.ma.masked_less_equal(a, 0) if log else a
                im = ax.imshow(
                    shown,
                    origin="lower",
                    extent=extent,
                    aspect="auto",
                    cmap="viridis",
                    norm=norm,
                    interpolation="nearest",
                )
                ax.set_facecolor("#f0f0f0")
                ax.set_xlabel(xl, fontsize="small")
                ax.set_ylabel(yl, fontsize="small")
                ax.set_title(f"{row_title}: {channel_names[c]}", fontsize="small", loc="left")
                ax.tick_params(labelsize="x-small")
                ax.minorticks_off()
            cb = fig.colorbar(im, ax=list(axes[:, c]), fraction=0.05, pad=0.02, aspect=25 * n_rows)
            cb.set_label(f"{value_label} ({channel_names[c]})", fontsize="small")
        _cms_label(axes[0, 0], label, com, fig=fig)
    return Path(path)


def _check_images(images: Any, labels: Any, channel_names: Sequence[str] | None):
    from .images import SparseImages

    x = images if isinstance(images, SparseImages) else np.asarray(images)
    if isinstance(x, np.ndarray) and x.ndim == 3:
        x = x[..., None]
    shape = (len(x), *x.shape) if isinstance(x, SparseImages) else x.shape
    if len(shape) != 4:
        raise ValueError(f"images must be (N, n_eta, n_phi, C), got shape {shape}")
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (len(x),):
        raise ValueError(f"labels have shape {y.shape}, images {len(x)} events")
    names = (
        list(channel_names)
        if channel_names is not None
        else [f"channel {i}" for i in range(shape[3])]
    )
    if len(names) != shape[3]:
        raise ValueError(f"{len(names)} channel names for {shape[3]} channels")
    return x, y, names


def _mean_image(x: Any, sel: np.ndarray) -> np.ndarray:
    """The mean (float64) of the images ``x[sel]``, dense or sparse (summed pixel by pixel
    from the stored ones, never densified)."""
    from .images import SparseImages

    if not isinstance(x, SparseImages):
        return np.asarray(x[sel], np.float64).mean(axis=0)
    part = x.take(np.flatnonzero(sel))
    size = int(np.prod(x.shape))
    total = np.bincount(part.index, weights=part.values.astype(np.float64), minlength=size)
    return (total / max(part.n_events, 1)).reshape(x.shape)


def _one_image(x: Any, k: int) -> np.ndarray:
    from .images import SparseImages

    if isinstance(x, SparseImages):
        return x.take([k]).dense()[0].astype(np.float64)
    return np.asarray(x[k], np.float64)


def plot_mean_images(
    images: Any,
    labels: Any,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    channel_names: Sequence[str] | None = None,
    eta_range: tuple[float, float] | None = None,
    value_label: str = r"mean $p_T$ per pixel [GeV]",
    log: bool = True,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Mean event image of each class (rows) with the channels side by side (columns).
    Images are ``(N, n_eta, n_phi, C)`` or :class:`~poetml.images.SparseImages`; with
    ``eta_range`` the axes are in eta/phi."""
    x, y, chans = _check_images(images, labels, channel_names)
    panels = []
    for i, name in enumerate(class_names):
        sel = y == i
        if sel.any():
            panels.append((f"{name} (mean of {int(sel.sum())})", _mean_image(x, sel)))
    if not panels:
        raise ValueError("no event of any class to average")
    return _image_grid(panels, chans, path, eta_range, value_label, log, label, com)


def plot_example_images(
    images: Any,
    labels: Any,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    channel_names: Sequence[str] | None = None,
    eta_range: tuple[float, float] | None = None,
    seed: int | None = None,
    value_label: str = r"$p_T$ [GeV]",
    log: bool = True,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """One example event image per class (rows), channels side by side: the first event of
    each class, or one chosen at random with ``seed`` (images dense or sparse)."""
    x, y, chans = _check_images(images, labels, channel_names)
    rng = np.random.default_rng(seed) if seed is not None else None
    panels = []
    for i, name in enumerate(class_names):
        idx = np.flatnonzero(y == i)
        if len(idx):
            k = int(idx[0] if rng is None else rng.choice(idx))
            panels.append((f"{name} (event {k})", _one_image(x, k)))
    if not panels:
        raise ValueError("no event of any class to show")
    return _image_grid(panels, chans, path, eta_range, value_label, log, label, com)


# --------------------------------------------------------------------------------------
# score distributions, latent space, dimuon mass
# --------------------------------------------------------------------------------------


def plot_score_distributions(
    bkg_scores: Any,
    signal_scores: Any,
    path: str | os.PathLike[str],
    *,
    bins: int | Sequence[float] = 60,
    xlabel: str = "Anomaly score",
    background_name: str = "Background (SM)",
    thresholds: float | Mapping[str, float] | None = None,
    log_x: bool = False,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Score distributions of background (filled) and signals (lines), each normalised to
    unit sum (fraction of its events per bin), log y,
    one panel per model with common bins; ``thresholds`` (one value or ``{model: value}``)
    drawn as vertical lines.  Inputs as in :func:`plot_anomaly_roc`."""
    data = _anomaly_inputs(bkg_scores, signal_scores)
    every = np.concatenate([np.concatenate([b, *s.values()]) for b, s in data.values()])
    every = every[np.isfinite(every)]
    if every.size == 0:
        raise ValueError("no finite score to histogram")
    bins_arr = np.asarray(bins)
    if bins_arr.ndim == 0:
        n_bins = int(bins_arr)
        lo, hi = float(every.min()), float(every.max())
        if log_x:
            pos = every[every > 0]
            if pos.size == 0:
                raise ValueError("log_x needs positive scores")
            edges = np.geomspace(float(pos.min()), float(pos.max()) * 1.0001, n_bins + 1)
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    with _figure(path, 1, len(data)) as (_, axes):
        colors = _colors()
        for k, (m, (b, sigs)) in enumerate(data.items()):
            ax = axes[0, k]
            peak = 0.0
            h, _, _ = ax.hist(
                b,
                bins=edges,
                weights=np.full(len(b), 1.0 / max(len(b), 1)),
                histtype="stepfilled",
                color="lightgrey",
                edgecolor="grey",
                label=f"{background_name} ({len(b)})",
            )
            peak = max(peak, float(np.max(h)))
            for i, (s, arr) in enumerate(sigs.items()):
                h, _, _ = ax.hist(
                    arr,
                    bins=edges,
                    weights=np.full(len(arr), 1.0 / max(len(arr), 1)),
                    histtype="step",
                    lw=2,
                    color=colors[i % len(colors)],
                    label=f"{s} ({len(arr)})",
                )
                peak = max(peak, float(np.max(h)))
            thr = thresholds.get(m) if isinstance(thresholds, Mapping) else thresholds
            if thr is not None and np.isfinite(thr):
                ax.axvline(thr, color="red", ls="--", lw=1.5, label=f"threshold {thr:.4g}")
            ax.set_yscale("log")
            if peak > 0:
                ax.set_ylim(top=peak * 100)  # headroom for the legend
            if log_x:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("Fraction of events per bin")
            ax.legend(fontsize="x-small", loc="upper right")
            _cms_label(ax, label, com)
            if m:
                ax.set_title(m, loc="right", fontsize="medium", fontweight="bold", pad=6)
    return Path(path)


def plot_latent_space(
    points: Any,
    labels: Any,
    class_names: Sequence[str],
    clusters: Any,
    path: str | os.PathLike[str],
    *,
    explained_variance_ratio: Sequence[float] | np.ndarray | None = None,
    max_points: int = 20000,
    seed: int = 0,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Latent space in two dimensions, coloured by true class (left) and by k-means cluster
    (right).  ``points`` is ``(N, 2)`` (e.g. :func:`poetml.evaluation.pca` scores) or
    ``(N, D)``, reduced here with PCA; at most ``max_points`` random points are drawn."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"points must be (N, D>=2), got shape {x.shape}")
    if x.shape[1] > 2:
        fit = pca(x, 2)
        x, explained_variance_ratio = fit.scores, fit.explained_variance_ratio
    y = np.asarray(labels).astype(np.int64)
    cl = np.asarray(clusters).astype(np.int64)
    if y.shape != (len(x),) or cl.shape != (len(x),):
        raise ValueError(
            f"labels {y.shape} and clusters {cl.shape} must both have {len(x)} entries"
        )
    idx = np.arange(len(x))
    if len(x) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    if explained_variance_ratio is not None:
        ev = list(explained_variance_ratio)
        xl, yl = f"PC 1 ({100 * ev[0]:.1f}% of variance)", f"PC 2 ({100 * ev[1]:.1f}% of variance)"
    else:
        xl, yl = "Latent dimension 1", "Latent dimension 2"
    with _figure(path, 1, 2) as (_, axes):
        colors = _colors()
        for ax, groups, title in (
            (axes[0, 0], [(i, str(n)) for i, n in enumerate(class_names)], "true class"),
            (axes[0, 1], [(j, f"cluster {j}") for j in np.unique(cl)], "k-means cluster"),
        ):
            key = y if title == "true class" else cl
            for n, (val, name) in enumerate(groups):
                sel = idx[key[idx] == val]
                ax.scatter(
                    x[sel, 0],
                    x[sel, 1],
                    s=4,
                    alpha=0.4,
                    color=colors[n % len(colors)],
                    label=f"{name} ({int((key == val).sum())})",
                    rasterized=True,
                )
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            leg = ax.legend(
                fontsize="x-small",
                markerscale=4,
                title=f"coloured by {title}",
                title_fontsize="x-small",
            )
            for h in leg.legend_handles:
                h.set_alpha(1)
            _cms_label(ax, label, com)
    return Path(path)


def plot_dimuon_mass(
    masses: Any,
    path: str | os.PathLike[str],
    *,
    bins: int | Sequence[float] | None = None,
    reference: Any = None,
    reference_name: str = "all events",
    selection_name: str = "selected as DY",
    density: bool = False,
    label: str = "poetml Simulation",
    com: float | None = None,
) -> Path:
    """Leading opposite-sign dimuon mass of the events a classifier selects (e.g. as DY),
    one line per model (``masses`` is an array or ``{model: array}``; ``NaN`` = no pair,
    not drawn), over an optional filled ``reference`` distribution; the Z mass is marked.
    Default bins: 2 GeV from 40 to 140 GeV."""
    models = _by_model(masses, lambda d: False)
    given = np.asarray(np.linspace(40.0, 140.0, 51) if bins is None else bins)
    if given.ndim == 0:
        given = np.linspace(40.0, 140.0, int(given) + 1)
    edges = np.asarray(given, dtype=np.float64)
    widths = np.diff(edges)
    unit = f"{widths[0]:g} GeV" if np.allclose(widths, widths[0]) else "bin"
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        colors = _colors()
        if reference is not None:
            ref = np.asarray(reference, dtype=np.float64)
            ref = ref[np.isfinite(ref)]
            ax.hist(
                ref,
                bins=edges,
                density=density,
                histtype="stepfilled",
                color="lightgrey",
                edgecolor="grey",
                label=f"{reference_name} ({len(ref)} with a pair)",
            )
        for j, (m, arr) in enumerate(models.items()):
            a = np.asarray(arr, dtype=np.float64)
            a = a[np.isfinite(a)]
            ax.hist(
                a,
                bins=edges,
                density=density,
                histtype="step",
                lw=2,
                color=colors[j % len(colors)],
                ls=LINESTYLES[j % len(LINESTYLES)],
                label=f"{m + ': ' if m else ''}{selection_name} ({len(a)} with a pair)",
            )
        ax.axvline(Z_MASS, color="red", ls=":", lw=1.5, label=r"$m_Z$ = 91.19 GeV")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
        ax.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
        ax.set_ylabel("Normalised to unit area [1/GeV]" if density else f"Events / {unit}")
        ax.legend(fontsize="x-small", loc="upper right")
        _cms_label(ax, label, com)
    return Path(path)
