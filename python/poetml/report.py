"""A run report a physicist can read without Python: ``report.md`` (and ``report.html``).

A report is a title and a list of generic sections.  A section has a title, free text,
tables (lists of rows, the first row being the header), images (PNG paths, linked relative
to the report) and warnings; any stage (evaluation, firmware ...) can add its own.
Sections may be :class:`Section` values or plain dicts with the same keys, so they can come
from JSON::

    write_report(outdir, "DY vs W+jets vs ttbar", [
        Section("Classification", text="Test split, 12 000 events.",
                tables=[Table(compare_models(results), caption="float vs quantized")],
                images=[Image("plots/roc.png", "One-vs-rest ROC")]),
        {"title": "Firmware", "tables": [[["metric", "value"], ["latency", "12 cycles"]]]},
    ])

:func:`classification_section` and :func:`anomaly_section` build sections from the dicts of
:mod:`poetml.evaluation`, with the models side by side.  Files are written atomically
(temporary name, then renamed).  The HTML is rendered directly from the same sections (no
Markdown converter needed).
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_text

__all__ = [
    "Image",
    "Section",
    "Table",
    "anomaly_section",
    "classification_section",
    "evaluate_anomaly",
    "evaluate_classifier",
    "format_value",
    "write_report",
]


@dataclass(frozen=True)
class Table:
    """Rows of cells; ``rows[0]`` is the header.  Cells are numbers, strings or ``None``."""

    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG (path absolute or relative to the report directory) and its caption."""

    path: str | os.PathLike[str]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """One part of a report.  ``subsections`` nest one heading level deeper."""

    title: str
    text: str = ""
    tables: Sequence[Table | Sequence[Sequence[Any]] | Mapping[str, Any]] = field(
        default_factory=tuple
    )
    images: Sequence[Image | str | os.PathLike[str] | Mapping[str, Any]] = field(
        default_factory=tuple
    )
    warnings: Sequence[str] = field(default_factory=tuple)
    subsections: Sequence[Any] = field(default_factory=tuple)


_SECTION_KEYS = ("title", "text", "tables", "images", "warnings", "subsections")


def _section(obj: Any) -> Section:
    if isinstance(obj, Section):
        return obj
    if isinstance(obj, Mapping):
        unknown = set(obj) - set(_SECTION_KEYS)
        if unknown:
            raise ValueError(
                f"report section has unknown key(s) {sorted(unknown)}; valid: {list(_SECTION_KEYS)}"
            )
        if "title" not in obj:
            raise ValueError(f"report section needs a 'title' (got keys {sorted(obj)})")
        return Section(**obj)
    raise TypeError(f"a report section must be a Section or a dict, got {type(obj).__name__}")


def _table(obj: Any) -> Table:
    if isinstance(obj, Table):
        t = obj
    elif isinstance(obj, Mapping):
        if "rows" not in obj:
            raise ValueError(f"a table dict needs 'rows' (got keys {sorted(obj)})")
        t = Table(obj["rows"], obj.get("caption", ""))
    else:
        t = Table(obj)
    rows = [list(r) for r in t.rows]
    if not rows:
        raise ValueError(f"table {t.caption!r} has no rows (a header row is required)")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(
                f"table {t.caption!r}: row {i} has {len(r)} cells, the header has {width}"
            )
    return Table(rows, t.caption)


def _image(obj: Any) -> Image:
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, Mapping):
        return Image(obj["path"], obj.get("caption", ""))
    return Image(obj)


def format_value(v: Any, digits: int = 4) -> str:
    """A table cell as text: floats to ``digits`` significant digits, ``None``/NaN as "–"."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) or hasattr(v, "dtype"):
        f = float(v)
        if math.isnan(f):
            return "–"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if f == 0:
            return "0"
        if 1e-3 <= abs(f) < 1e5:
            return f"{f:.{digits}g}" if abs(f) >= 1 else f"{f:.{digits}f}".rstrip("0").rstrip(".")
        return f"{f:.{digits}g}"
    return str(v)


def _rel_link(path: str | os.PathLike[str], outdir: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return Path(os.path.relpath(p, outdir)).as_posix()
    except ValueError:  # another drive on Windows
        return p.as_posix()


def _md_cell(v: Any) -> str:
    return format_value(v).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def _markdown(title: str, intro: str, sections: list[Section], outdir: Path, stamp: str) -> str:
    out = [f"# {title}", ""]
    if stamp:
        out += [f"*{stamp}*", ""]
    if intro:
        out += [intro.strip(), ""]
    all_warnings = [w for s in sections for w in _all_warnings(s)]
    if all_warnings:
        out += ["> **Warnings**", ">"]
        out += [f"> - {w}" for w in all_warnings]
        out += [""]

    def emit(sec: Section, level: int) -> None:
        out.extend([f"{'#' * level} {sec.title}", ""])
        if sec.text:
            out.extend([sec.text.strip(), ""])
        for w in sec.warnings:
            out.extend([f"> **Warning:** {w}", ""])
        for t in (_table(t) for t in sec.tables):
            if t.caption:
                out.extend([f"**{t.caption}**", ""])
            header, *body = t.rows
            out.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
            out.append(
                "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"
            )
            for r in body:
                out.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            out.append("")
        for im in (_image(i) for i in sec.images):
            link = _rel_link(im.path, outdir)
            alt = im.caption or Path(link).stem
            out.extend([f"![{alt}]({link})", ""])
            if im.caption:
                out.extend([f"*{im.caption}*", ""])
        for sub in sec.subsections:
            emit(_section(sub), min(level + 1, 6))

    for sec in sections:
        emit(sec, 2)
    return "\n".join(out).rstrip() + "\n"


def _all_warnings(sec: Section) -> list[str]:
    return [*sec.warnings, *(w for s in sec.subsections for w in _all_warnings(_section(s)))]


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:0.25em 0.6em}
th{background:#eee}
td.num{text-align:right;font-family:monospace}
img{max-width:100%;border:1px solid #ddd}
figure{margin:1em 0}
figcaption{font-style:italic;color:#555}
.warning{background:#fff3cd;border-left:4px solid #e0a800;padding:0.5em 1em;margin:0.5em 0}
caption{font-weight:bold;text-align:left;padding-bottom:0.3em}
"""


def _html_doc(title: str, intro: str, sections: list[Section], outdir: Path, stamp: str) -> str:
    e = _html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if stamp:
        out.append(f"<p><em>{e(stamp)}</em></p>")
    if intro:
        out += [f"<p>{e(p.strip())}</p>" for p in intro.strip().split("\n\n")]
    all_warnings = [w for s in sections for w in _all_warnings(s)]
    if all_warnings:
        out.append('<div class="warning"><strong>Warnings</strong><ul>')
        out += [f"<li>{e(w)}</li>" for w in all_warnings]
        out.append("</ul></div>")

    def emit(sec: Section, level: int) -> None:
        out.append(f"<h{level}>{e(sec.title)}</h{level}>")
        if sec.text:
            out.extend(f"<p>{e(p.strip())}</p>" for p in sec.text.strip().split("\n\n"))
        for w in sec.warnings:
            out.append(f'<div class="warning"><strong>Warning:</strong> {e(w)}</div>')
        for t in (_table(t) for t in sec.tables):
            header, *body = t.rows
            out.append("<table>")
            if t.caption:
                out.append(f"<caption>{e(t.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{e(format_value(c))}</th>" for c in header) + "</tr>")
            for r in body:
                cells = [
                    f'<td class="num">{e(format_value(c))}</td>'
                    if i
                    else f"<td>{e(format_value(c))}</td>"
                    for i, c in enumerate(r)
                ]
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
        for im in (_image(i) for i in sec.images):
            link = _rel_link(im.path, outdir)
            out.append(f'<figure><img src="{e(link)}" alt="{e(im.caption or Path(link).stem)}">')
            if im.caption:
                out.append(f"<figcaption>{e(im.caption)}</figcaption>")
            out.append("</figure>")
        for sub in sec.subsections:
            emit(_section(sub), min(level + 1, 6))

    for sec in sections:
        emit(sec, 2)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _by_model(warnings: Sequence[tuple[str, str]]) -> list[str]:
    """One line per distinct message, naming every model it applies to, in first-seen order
    (models evaluated on the same background share its small-sample warnings)."""
    models: dict[str, list[str]] = {}
    for m, w in warnings:
        models.setdefault(w, [])
        if m not in models[w]:
            models[w].append(m)
    return [f"{', '.join(ms)}: {w}" for w, ms in models.items()]


def write_report(
    outdir: str | os.PathLike[str],
    title: str,
    sections: Sequence[Section | Mapping[str, Any]],
    *,
    intro: str = "",
    html: bool = True,
    timestamp: bool = True,
) -> Path:
    """Write ``outdir/report.md`` (and ``outdir/report.html`` with ``html=True``) and
    return the Markdown path.

    All warnings of all sections are also collected in a box at the top.  Image links are
    relative to ``outdir``; a missing image is an error (naming the file), so a report never
    points at a plot that was not made.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    secs = [_section(s) for s in sections]

    def check(sec: Section) -> None:
        for t in sec.tables:
            _table(t)
        for im in (_image(i) for i in sec.images):
            p = Path(im.path)
            full = p if p.is_absolute() else outdir / p
            if not full.is_file():
                raise FileNotFoundError(
                    f"report section {sec.title!r}: image {full} does not exist"
                )
        for sub in sec.subsections:
            check(_section(sub))

    for s in secs:
        check(s)
    stamp = ""
    if timestamp:
        from . import __version__

        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        stamp = f"Written {now} by poetml {__version__}"
    md_path = outdir / "report.md"
    write_text(md_path, _markdown(title, intro, secs, outdir, stamp))
    if html:
        write_text(outdir / "report.html", _html_doc(title, intro, secs, outdir, stamp))
    return md_path


# --------------------------------------------------------------------------------------
# sections from evaluation results
# --------------------------------------------------------------------------------------


def _signed_percent(rows: list[list[Any]]) -> list[list[Any]]:
    """Cells of the ``... [%]`` columns as signed text with two decimals (``+0.86``)."""
    cols = [i for i, h in enumerate(rows[0]) if str(h).endswith("[%]")]
    out = [list(rows[0])]
    for r in rows[1:]:
        r = list(r)
        for i in cols:
            if isinstance(r[i], (int, float)):
                r[i] = f"{r[i]:+.2f}"
        out.append(r)
    return out


def classification_section(
    results_by_model: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "Classification",
    text: str = "",
    images: Sequence[Any] = (),
    relative_to: str | None = None,
) -> Section:
    """A section with the models side by side (accuracy, macro and per-class precision,
    recall, F1, AUC), then per model its confusion matrix (counts and row fractions)."""
    from .evaluation import compare_models

    tables: list[Table] = [
        Table(
            _signed_percent(compare_models(results_by_model, relative_to=relative_to)),
            caption="Test-set metrics, models side by side",
        )
    ]
    warnings: list[tuple[str, str]] = []
    for m, r in results_by_model.items():
        names = r["class_names"]
        counts = r["confusion_matrix"]["counts"]
        norm = r["confusion_matrix"]["normalized"]
        rows: list[list[Any]] = [["true \\ predicted", *names]]
        for i, n in enumerate(names):
            rows.append([n, *[f"{counts[i][j]} ({norm[i][j]:.3f})" for j in range(len(names))]])
        tables.append(
            Table(rows, caption=f"Confusion matrix, {m}: events (fraction of the true class)")
        )
        warnings += [(m, w) for w in r.get("warnings", [])]
    first = next(iter(results_by_model.values()))
    n = first["n_events"]
    intro = text or f"{n} test events; classes: {', '.join(first['class_names'])}."
    return Section(title, intro, tables, list(images), _by_model(warnings))


def anomaly_section(
    results_by_model: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "Anomaly detection",
    text: str = "",
    images: Sequence[Any] = (),
    relative_to: str | None = None,
) -> Section:
    """A section with per-signal AUC and efficiencies (with their uncertainties) at every
    working point, models side by side, and the working points (threshold, achieved FPR
    and rate) of each model."""
    from .evaluation import compare_models

    tables: list[Table] = [
        Table(
            _signed_percent(compare_models(results_by_model, relative_to=relative_to)),
            caption="Per-signal AUC and efficiency (68% CL Clopper-Pearson), models side by side",
        )
    ]
    rows: list[list[Any]] = [
        [
            "model",
            "working point",
            "target FPR",
            "rate [kHz]",
            "threshold",
            "background above",
            "achieved FPR",
        ]
    ]
    warnings: list[tuple[str, str]] = []
    for m, r in results_by_model.items():
        for wp in r["working_points"]:
            rows.append(
                [
                    m,
                    wp["name"],
                    wp["fpr"],
                    wp["rate_khz"],
                    wp["threshold"],
                    wp["n_background_selected"],
                    wp["achieved_fpr"],
                ]
            )
        warnings += [(m, w) for w in r.get("warnings", [])]
    tables.append(Table(rows, caption="Working points (thresholds set on the background sample)"))
    detail: list[list[Any]] = [
        [
            "model",
            "signal",
            "working point",
            "efficiency",
            "68% CL interval (signal statistics)",
            "range from background statistics",
            "selected / total",
        ]
    ]
    for m, r in results_by_model.items():
        for s, sig in r["signals"].items():
            for wp, e in sig["efficiency"].items():
                lo, hi = e["efficiency_interval"]
                blo, bhi = e.get("efficiency_fpr_band", [None, None])
                detail.append(
                    [
                        m,
                        s,
                        wp,
                        e["efficiency"],
                        f"[{format_value(lo)}, {format_value(hi)}]",
                        f"[{format_value(blo)}, {format_value(bhi)}]",
                        f"{e['n_signal_selected']} / {e['n_signal']}",
                    ]
                )
    tables.append(Table(detail, caption="Signal efficiencies and their uncertainties"))
    first = next(iter(results_by_model.values()))
    intro = text or (
        f"{first['n_background']} background events; signals: {', '.join(first['signals'])}; "
        f"rate = FPR x {first['collision_rate_mhz']:g} MHz."
    )
    return Section(title, intro, tables, list(images), _by_model(warnings))


# --------------------------------------------------------------------------------------
# one call per task: metrics + plots + JSON + report section
# --------------------------------------------------------------------------------------


def _models_dict(x: Any, what: str) -> dict[str, Any]:
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{what}: empty dict of models")
        return {str(k): v for k, v in x.items()}
    return {"model": x}


def _kmeans_fit_predict(x: np.ndarray, k: int, max_fit_points: int = 20_000) -> Any:
    """k-means fitted on at most ``max_fit_points`` random points (seed 0), labels for all."""
    from dataclasses import replace

    from . import evaluation as ev

    if len(x) <= max_fit_points:
        return ev.kmeans(x, k, seed=0)
    rng = np.random.default_rng(0)
    fit = ev.kmeans(x[rng.choice(len(x), max_fit_points, replace=False)], k, seed=0)
    return replace(fit, labels=fit.predict(x))


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
    from . import evaluation as ev
    from . import plots

    outdir = Path(outdir)
    pdir = outdir / plots_dir
    names = [str(c) for c in class_names]
    probs = _models_dict(probabilities, "probabilities")
    y = ev._int_labels(y_true, "y_true", len(names))
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
        kw = {"channel_names": channel_names, "eta_range": eta_range, "label": label, "com": com}
        add(
            plots.plot_mean_images(images, y, names, pdir / "mean_images.png", **kw),
            "Mean event image per class (test set)",
        )
        add(
            plots.plot_example_images(images, y, names, pdir / "example_images.png", **kw),
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
        km = _kmeans_fit_predict(fit.scores if x.shape[1] > 50 else x, len(names))
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
) -> tuple[dict[str, Any], Section]:
    """Evaluate anomaly detectors: per-signal ROC/AUC, efficiencies at each FPR in
    ``fpr_targets`` and each trigger rate in ``rate_khz``, plots, JSON and a report section.

    ``bkg_scores``: array or ``{model: array}``; ``signal_scores``: ``{signal: array}`` or
    ``{model: {signal: array}}`` (same models).  ``latent`` ``(N, D)`` with integer
    ``latent_labels`` and their ``latent_class_names`` (e.g. background and each signal)
    adds the PCA/k-means plot (``n_clusters`` defaults to the number of classes).
    Small-background warnings of :func:`poetml.evaluation.anomaly_metrics` are kept in the
    section.  Returns ``(metrics {model: dict}, section)``.
    """
    from . import evaluation as ev
    from . import plots

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
    metrics = {
        m: ev.anomaly_metrics(bkg[m], sigs[m], fpr_targets, rate_khz, collision_rate_mhz)
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
        lab = ev._int_labels(latent_labels, "latent_labels", len(latent_class_names))
        k = n_clusters or len(latent_class_names)
        fit = ev.pca(x, 2)
        km = _kmeans_fit_predict(x, k)
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
    if metrics_file:
        ev.write_json(outdir / metrics_file, metrics)
    sec = anomaly_section(metrics, title=title, images=imgs, relative_to=relative_to)
    return metrics, Section(sec.title, sec.text, [*sec.tables, *tables], sec.images, sec.warnings)
