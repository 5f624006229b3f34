"""Models side by side: one table of the metrics of several models (float, quantized,
pruned ...), with their relative differences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._atomic import to_jsonable

__all__ = ["compare_models"]


def _fmt_eff(e: Mapping[str, Any]) -> str:
    return f"{e['efficiency']:.4f} +{e['efficiency_err_high']:.4f}/-{e['efficiency_err_low']:.4f}"


def compare_models(
    results_by_model: Mapping[str, Mapping[str, Any]], relative_to: str | None = None
) -> list[list[Any]]:
    """A table comparing models (float, quantized, pruned ...) side by side.

    ``results_by_model`` maps model names to dicts from :func:`classification_metrics` or
    all from :func:`anomaly_metrics`.  Returns rows, the first being the header
    ``["metric", model1, model2, ...]``; cells are floats, strings (efficiencies as
    ``"eff +err/-err"``) or ``None`` when undefined.  With ``relative_to`` (a model name),
    one column per other model gives its relative difference to that model in percent
    (``100 (x / x_ref - 1)``), the quantity the trigger targets are stated in.
    """
    if not results_by_model:
        raise ValueError("compare_models needs at least one model")
    models = list(results_by_model)
    kinds = {m: _kind(r, m) for m, r in results_by_model.items()}
    if len(set(kinds.values())) != 1:
        raise ValueError(f"cannot compare classification and anomaly results together: {kinds}")
    if relative_to is not None and relative_to not in results_by_model:
        raise ValueError(f"relative_to={relative_to!r} is not one of the models {models}")
    kind = kinds[models[0]]
    rows: list[tuple[str, list[Any], list[float | None]]] = []  # label, cells, numeric

    if kind == "classification":
        names = results_by_model[models[0]]["class_names"]
        for m in models[1:]:
            if results_by_model[m]["class_names"] != names:
                raise ValueError(
                    f"model {m!r} has classes {results_by_model[m]['class_names']}, "
                    f"model {models[0]!r} has {names}"
                )

        def add(label: str, getter: Any) -> None:
            vals = [getter(results_by_model[m]) for m in models]
            rows.append((label, vals, vals))

        add("accuracy", lambda r: r["accuracy"])
        for key in ("precision", "recall", "f1", "auc"):
            add(f"macro {key}", lambda r, k=key: r["macro"][k])
        for name in names:
            for key in ("precision", "recall", "f1", "auc"):
                add(f"{name} {key}", lambda r, n=name, k=key: r["per_class"][n][k])
    else:
        sigs = list(results_by_model[models[0]]["signals"])
        wps = [w["name"] for w in results_by_model[models[0]]["working_points"]]
        for m in models[1:]:
            if list(results_by_model[m]["signals"]) != sigs:
                raise ValueError(
                    f"model {m!r} has signals {list(results_by_model[m]['signals'])}, "
                    f"model {models[0]!r} has {sigs}"
                )
        for s in sigs:
            vals = [results_by_model[m]["signals"][s]["auc"] for m in models]
            rows.append((f"{s} AUC", vals, vals))
            for wp in wps:
                effs = [results_by_model[m]["signals"][s]["efficiency"].get(wp) for m in models]
                rows.append(
                    (
                        f"{s} efficiency at {wp}",
                        [_fmt_eff(e) if e else None for e in effs],
                        [e["efficiency"] if e else None for e in effs],
                    )
                )
    header: list[Any] = ["metric", *models]
    others = [m for m in models if m != relative_to] if relative_to else []
    header += [f"{m} vs {relative_to} [%]" for m in others]
    table: list[list[Any]] = [header]
    for label, cells, nums in rows:
        row = [label, *cells]
        if relative_to is not None:
            ref = nums[models.index(relative_to)]
            for m in others:
                x = nums[models.index(m)]
                row.append(100.0 * (x / ref - 1.0) if x is not None and ref else None)
        table.append(row)
    return to_jsonable(table)


def _kind(result: Mapping[str, Any], model: str) -> str:
    if "accuracy" in result and "per_class" in result:
        return "classification"
    if "signals" in result and "working_points" in result:
        return "anomaly"
    raise ValueError(
        f"results of model {model!r} are neither classification_metrics() nor "
        f"anomaly_metrics() output (keys: {sorted(result)})"
    )
