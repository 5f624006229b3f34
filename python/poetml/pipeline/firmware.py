"""The ``firmware`` stage of ``poetml run`` (``run.stages: [data, train, evaluate, firmware]``)
and ``poetml firmware`` on a model directory of a run: the glue between a run and
:mod:`poetml.firmware` (which knows nothing of runs).

Deploys the quantized (+pruned) model trained by the run: the test split of the run's dataset
gives the background events (and, for autoencoders, the signal processes) on which the C
simulation is validated and the trigger threshold set.  Output: ``<run output>/firmware/``
(``hls/`` project, ``firmware.json``, ``firmware.md``) and a section of the run report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .. import config as run_config
from ..datasets import labelled
from ..exceptions import FirmwareError
from ..firmware.config import FirmwareConfig
from .checks import _check_config, default_dataset_events
from .data import build_dataset, cached_dataset, dataset_key, prepare, prepare_data
from .training import load_run_model_dir

__all__ = [
    "build_from_model_dir",
    "events_from_prepared",
    "firmware_stage",
    "prepared_for_model_dir",
    "report_section",
]


def events_from_prepared(prep: Any, cfg: FirmwareConfig) -> tuple[Any, dict[str, Any]]:
    """Background and signal inputs from a run's prepared test split.

    Autoencoders: the background test events and every signal process.  Classifiers: test
    events not of the trigger class (background) and those of it (signal).  The firmware
    takes dense arrays: sparse image splits are densified and preprocessed here
    (:meth:`Prepared.inputs <poetml.pipeline.data.Prepared.inputs>`).
    """
    import numpy as np

    from ..datasets.labelled import take

    if prep.autoencoder:
        return prep.inputs(prep.x_test, "test inputs"), {
            str(k): prep.inputs(v, f"signal {k}") for k, v in prep.signals.items()
        }
    names = prep.class_names
    idx = cfg.trigger_class % len(names)
    y = np.asarray(prep.y_test)
    x = prep.x_test
    return prep.inputs(take(x, np.flatnonzero(y != idx)), "test inputs"), {
        str(names[idx]): prep.inputs(take(x, np.flatnonzero(y == idx)), "test inputs")
    }


def background_weights_from_prepared(prep: Any, cfg: FirmwareConfig) -> Any:
    """The weights [pb] of :func:`events_from_prepared`'s background events when the run's
    dataset is weighted (the test split rescaled per process), else None."""
    import numpy as np

    if not getattr(prep, "weighted", False) or prep.w_test is None:
        return None
    if prep.autoencoder:
        return prep.w_test
    idx = cfg.trigger_class % len(prep.class_names)
    return prep.w_test[np.asarray(prep.y_test) != idx]


def _recorded_beam(saved: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The evaluation options of the beam a run's ``config.json`` records (``beam``); a
    directory written before poetml recorded it gets the default beam, with a warning."""
    import warnings

    from .training import BEAM_KEYS

    beam = saved.get("beam")
    if beam is None:
        from ..evaluation.config import EvaluationConfig

        default = EvaluationConfig()
        warnings.warn(
            f"{model_dir}/config.json records no beam (written by an older poetml); rates "
            f"are at the default luminosity {default.luminosity:g} cm^-2 s^-1",
            stacklevel=3,
        )
        return {}
    if not isinstance(beam, dict) or set(beam) - set(BEAM_KEYS):
        raise FirmwareError(
            f"{model_dir}/config.json: 'beam' must map {', '.join(BEAM_KEYS)} to numbers, "
            f"got {beam!r}"
        )
    return dict(beam)


def prepared_for_model_dir(
    model_dir: Any, out_dir: Any, *, generate: bool = False, progress: bool = False
) -> Any:
    """The prepared data of the ``poetml run`` that trained ``RUN/models/<variant>``.

    The run configuration is rebuilt from the model directory's ``config.json``.  The run's
    dataset ``RUN/data/dataset.h5`` is read when it was made from the same inputs; otherwise
    the dataset is built into ``OUT/data/dataset.h5``: nothing is written outside ``out_dir``.
    Processes that come from the default dataset read it from ``dataset.default_dir`` (or
    ``OUT/default-data``); when it is missing, ``generate=True`` generates it into
    ``OUT/default-data``, printing what it generates, and otherwise a FirmwareError says how
    to ask for that.
    """
    d = Path(model_dir)
    run_dir = d.parent.parent
    out = Path(out_dir)
    try:
        saved = json.loads((d / "config.json").read_text())
        section = {"FeatureSpec": "features", "ImageSpec": "images"}[saved["spec_type"]]
        data = {
            "dataset": saved["dataset"],
            section: saved["spec"],
            "model": saved["model"],
            "training": saved["training"],
            "run": {"output": str(out), "progress": progress, "generate_missing": False},
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FirmwareError(
            f"{d}/config.json does not describe a poetml run ({exc}); pass --events-file"
        ) from exc
    # the run's beam: a zero-bias stream's weights and every rate depend on it
    data["evaluation"] = _recorded_beam(saved, d)
    where = str(d / "config.json")
    cfg = run_config.parse(data, where=where)
    _check_config(cfg)
    ds = cfg.dataset
    defaults = [p for p in ds.processes if not p.files]
    gen_dir = out / "default-data"

    def read_manifest(directory: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads((directory / "manifest.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    manifest = None
    if defaults:
        manifest = read_manifest(Path(ds.default_dir))
        if manifest is None and read_manifest(gen_dir) is not None:  # an earlier --generate
            data["dataset"] = {**saved["dataset"], "default_dir": str(gen_dir)}
            cfg = run_config.parse(data, where=where)
            ds = cfg.dataset
            manifest = read_manifest(gen_dir)
    if not defaults or manifest is not None:
        files = labelled.resolve_files(ds, None, manifest)
    else:
        # no default dataset: the run's cached dataset may still be there, and its key names
        # the files generate_default writes (<default_dir>/<process>.root)
        explicit = tuple(dataclasses.replace(p, role="train") for p in ds.processes if p.files)
        files = (
            labelled.resolve_files(dataclasses.replace(ds, processes=explicit), None, None)
            if explicit
            else {}
        )
        planned = Path(ds.default_dir)
        files = {
            p.name: files[p.name] if p.files else [str(planned / f"{p.name}.root")]
            for p in ds.processes
        }
    key = dataset_key(cfg, files)
    own = out / "data" / "dataset.h5"
    for path in (run_dir / "data" / "dataset.h5", own):
        cached = cached_dataset(path, key)
        if cached is not None:
            return prepare(cfg, cached)
    if defaults and manifest is None:
        events = default_dataset_events(cfg, needed=True)
        what = (
            f"{sum(events.values())} events of {len(events)} processes "
            f"({', '.join(f'{k} {v}' for k, v in events.items())})"
        )
        if not generate:
            raise FirmwareError(
                f"the run's dataset {run_dir / 'data' / 'dataset.h5'} is missing (or was made "
                f"from other inputs) and so is the default dataset it needs "
                f"({Path(ds.default_dir) / 'manifest.json'}); pass --generate to generate "
                f"{what} with Pythia into {gen_dir}, or pass --events-file"
            )
        print(f"poetml firmware: generating the default dataset into {gen_dir}: {what}")
        from ..generate import generate_default

        data["dataset"] = {**saved["dataset"], "default_dir": str(gen_dir)}
        cfg = run_config.parse(data, where=where)
        manifest = generate_default(
            gen_dir,
            events=events,
            progress=progress,
            pileup=cfg.dataset.default_pileup,
            bias=cfg.dataset.default_bias,
        )
        files = labelled.resolve_files(cfg.dataset, None, manifest)
        cached = cached_dataset(own, dataset_key(cfg, files))
        if cached is not None:
            return prepare(cfg, cached)
    return prepare(cfg, build_dataset(cfg, files, own, progress))


def _variant(ctx: Any, cfg: FirmwareConfig) -> str:
    trained = tuple(ctx.config.run.variants)
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
    """The ``firmware`` stage of :data:`poetml.pipeline.STAGES`: deploy the run's quantized
    model (``firmware.variant``), validate it on the run's test split, add a report section."""
    from ..exceptions import FirmwareValidationError
    from ..firmware.build import build_firmware

    cfg = ctx.config.firmware
    if ctx.prepared is None:
        ctx.prepared = prepare_data(ctx.config, ctx.outdir)
    prep = ctx.prepared
    variant = _variant(ctx, cfg)
    model_dir = ctx.model_dirs.get(variant, ctx.outdir / "models" / variant)
    # refused when trained with another configuration, or when its file holds code
    md = load_run_model_dir(
        ctx.config, prep, model_dir, variant, trust_model=getattr(ctx, "trust_model", False)
    )
    background, signals = events_from_prepared(prep, cfg)
    progress = getattr(ctx.config.run, "progress", True)
    ecfg = ctx.config.evaluation
    result = build_firmware(
        md.model,
        ctx.outdir / "firmware",
        cfg,
        background=background,
        signals=signals,
        feature_names=md.preprocessing.feature_names,
        progress=progress,
        raise_on_mismatch=False,
        # the report's weighted working points and the firmware threshold: one stream
        background_weights=background_weights_from_prepared(prep, cfg) if ecfg.weighted else None,
        beam=ecfg.beam(),
        model_dir=model_dir,
        preprocessing=md.preprocessing,
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


def build_from_model_dir(
    model_dir: str | Path,
    out_dir: str | Path,
    config: FirmwareConfig | None = None,
    events_file: str | Path | None = None,
    progress: bool = True,
    generate: bool = False,
    *,
    trust_model: bool = False,
) -> Any:
    """:func:`poetml.firmware.build.build_from_model_dir`, and for a model directory written by
    ``poetml run`` (``RUN/models/<variant>`` with ``config.json`` and no events of its own)
    its run's test split: the run's dataset in ``RUN/data`` is read, or the dataset is built
    into ``out_dir/data`` (and, only with ``generate``, the default dataset it needs is
    generated into ``out_dir/default-data``; see :func:`prepared_for_model_dir`).  Nothing is
    written outside ``out_dir``; a model that is not quantized, or whose file holds code
    (unless ``trust_model``), is refused before any data is read."""
    from ..firmware import build as fwbuild

    config = config or FirmwareConfig()
    if events_file is not None or not fwbuild.is_run_model_dir(model_dir):
        return fwbuild.build_from_model_dir(
            model_dir,
            out_dir,
            config,
            events_file,
            progress=progress,
            trust_model=trust_model,
        )
    model, d = fwbuild.load_quantized_model_dir(model_dir, trust_model=trust_model)
    prep = prepared_for_model_dir(d, out_dir, generate=generate, progress=progress)
    bkg, sigs = events_from_prepared(prep, config)
    return fwbuild.build_firmware(
        model,
        out_dir,
        config,
        background=bkg,
        signals=sigs,
        feature_names=prep.preprocessing.feature_names,
        progress=progress,
        background_weights=background_weights_from_prepared(prep, config),
        beam=prep.beam,
        model_dir=d,
        preprocessing=prep.preprocessing,
    )
