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

Modules: :mod:`.render` (the Markdown and HTML renderer, :func:`write_report`),
:mod:`.sections` (:func:`classification_section`, :func:`anomaly_section`: sections from the
dicts of :mod:`poetml.evaluation`, models side by side), :mod:`.evaluate`
(:func:`evaluate_classifier`, :func:`evaluate_anomaly`: metrics from :mod:`poetml.evaluation`,
plots from :mod:`poetml.plots`, the metrics JSON and a section, in one call).  The report
renders; evaluation computes; plots draw.
"""

from __future__ import annotations

from .evaluate import evaluate_anomaly, evaluate_classifier
from .render import Image, Section, Table, format_value, write_report
from .sections import anomaly_section, classification_section

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
