"""The ``firmware`` stage of ``poetml run`` (``run.stages: [data, train, evaluate, firmware]``).

Deploys the quantized (+pruned) model trained by the run: the test split of the run's dataset
gives the background events (and, for autoencoders, the signal processes) on which the C
simulation is validated and the trigger threshold set.  Output: ``<run output>/firmware/``
(``hls/`` project, ``firmware.json``, ``firmware.md``) and a section of the run report.
"""

from __future__ import annotations

from typing import Any

from .config import FirmwareConfig
from .convert import FirmwareError

__all__ = ["events_from_prepared", "firmware_stage", "prepared_for_model_dir", "report_section"]


def events_from_prepared(prep: Any, cfg: FirmwareConfig) -> tuple[Any, dict[str, Any]]:
    """Background and signal inputs from a run's prepared test split.

    Autoencoders: the background test events and every signal process.  Classifiers: test
    events not of the trigger class (background) and those of it (signal).
    """
    import numpy as np

    if prep.autoencoder:
        return prep.x_test, {str(k): v for k, v in prep.signals.items()}
    names = prep.class_names
    idx = cfg.trigger_class % len(names)
    y = np.asarray(prep.y_test)
    return prep.x_test[y != idx], {str(names[idx]): prep.x_test[y == idx]}


def prepared_for_model_dir(model_dir: Any) -> Any:
    """The prepared data of the ``poetml run`` that trained ``RUN/models/<variant>``: the run
    configuration is rebuilt from the model directory's ``config.json`` and the run's
    dataset (``RUN/data``) is reused."""
    import json
    from pathlib import Path

    from .. import config as run_config
    from .. import pipeline

    d = Path(model_dir)
    try:
        saved = json.loads((d / "config.json").read_text())
        section = {"FeatureSpec": "features", "ImageSpec": "images"}[saved["spec_type"]]
        data = {
            "dataset": saved["dataset"],
            section: saved["spec"],
            "model": saved["model"],
            "training": saved["training"],
            "run": {"output": str(d.parent.parent), "progress": False},
        }
    except (OSError, ValueError, KeyError) as exc:
        raise FirmwareError(
            f"{d}/config.json does not describe a poetml run ({exc}); pass --events-file"
        ) from exc
    cfg = run_config.parse(data, where=str(d / "config.json"))
    return pipeline.prepare_data(cfg, d.parent.parent)


def _variant(ctx: Any, cfg: FirmwareConfig) -> str:
    trained = tuple(ctx.config["run"].variants)
    if cfg.variant != "auto":
        if cfg.variant not in trained:
            raise FirmwareError(
                f"firmware.variant {cfg.variant!r} was not trained; run.variants: {', '.join(trained)}"
            )
        return cfg.variant
    for v in ("quantized_pruned", "quantized"):
        if v in trained:
            return v
    raise FirmwareError(
        "the firmware stage needs a QKeras model: add 'quantized' or 'quantized_pruned' to "
        f"run.variants (now {', '.join(trained)})"
    )


def report_section(result: Any) -> dict[str, Any]:
    """A run-report section (poetml.report mapping form) from a FirmwareResult."""
    text = (
        result.markdown.split("\n", 1)[1] if result.markdown.startswith("## ") else result.markdown
    )
    warnings = []
    if not result.passed:
        warnings.append("C simulation does NOT agree with QKeras within tolerance")
    w = result.report["threshold"].get("warning")
    if w:
        warnings.append(w)
    return {"title": "Firmware", "text": text.strip(), "warnings": warnings}


def firmware_stage(ctx: Any) -> None:
    """Stage function for :func:`poetml.pipeline.register_stage`."""
    from .. import pipeline, training
    from .build import build_firmware
    from .validate import FirmwareValidationError

    cfg = ctx.config.get("firmware") or FirmwareConfig()
    if ctx.prepared is None:
        ctx.prepared = pipeline.prepare_data(ctx.config, ctx.outdir)
    prep = ctx.prepared
    variant = _variant(ctx, cfg)
    model_dir = ctx.model_dirs.get(variant, ctx.outdir / "models" / variant)
    md = training.load_model_dir(model_dir)
    background, signals = events_from_prepared(prep, cfg)
    progress = getattr(ctx.config["run"], "progress", True)
    result = build_firmware(
        md.model,
        ctx.outdir / "firmware",
        cfg,
        background=background,
        signals=signals,
        feature_names=md.preprocessing.feature_names,
        progress=progress,
        raise_on_mismatch=False,
    )
    ctx.sections.append(report_section(result))
    a = result.report["validation"]["agreement"]
    ctx.metrics["firmware"] = {
        "variant": variant,
        "project": str(result.project_dir),
        "exact_fraction": a["exact_fraction"],
        "max_diff_lsb": a["max_diff_lsb"],
        "n_events": a["n_events"],
        "threshold": result.report["threshold"]["value"],
        "rate_khz": result.report["threshold"]["rate_khz"],
        "csim_events_per_s": result.report["csim_speed"]["events_per_s"],
        "passed": result.passed,
    }
    print(
        f"poetml run: firmware {variant}: C simulation vs QKeras exact on "
        f"{a['exact_fraction']:.6f} of {a['n_events']} events (max diff {a['max_diff_lsb']:g} LSB); "
        f"threshold for {cfg.rate_khz:g} kHz written to {result.project_dir}/firmware/trigger.h"
    )
    if not result.passed:
        text = result.report["validation"].get("trace_text") or ""
        raise FirmwareValidationError(
            f"firmware validation failed (see {result.out_dir / 'firmware.md'})\n{text}"
        )
