"""Checks of a run configuration made before any work: the sections agree with each other,
the stages exist, the input files exist, the default dataset is there or may be generated.
Also where a run writes (:func:`output_dir`) and what it would do (:func:`config_summary`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..config import STAGE_NAMES, RunConfig
from ..datasets.labelled import DatasetConfig
from ..exceptions import ConfigError
from ..models import ModelConfig

__all__ = [
    "check_config",
    "config_problems",
    "config_summary",
    "default_dataset_events",
    "output_dir",
]


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
        unknown = [k for k in ds.default_events if k not in _default_processes()]
        if unknown:
            raise ConfigError(
                f"dataset.default_events: {', '.join(map(repr, unknown))} not in the default "
                f"dataset; its processes: {', '.join(_default_processes())}"
            )
    if ds.default_bias:
        from ..generate import get_process

        for name in ds.default_bias:
            if name not in _default_processes():
                raise ConfigError(
                    f"dataset.default_bias: {name!r} is not in the default dataset; its "
                    f"processes: {', '.join(_default_processes())}"
                )
            proc = get_process(name)
            if proc.pthat_min is None or proc.filter is not None:
                why = "has no pT-hat" if proc.pthat_min is None else "has a generator filter"
                raise ConfigError(
                    f"dataset.default_bias: process {name!r} {why}; a pT-hat bias applies to "
                    "unfiltered hard QCD-like processes (e.g. qcd)"
                )
    mb = next((p for p in ds.processes if p.name == "minbias"), None)
    if ds.background == "zero_bias" and mb is not None and not mb.files:
        # the stream counts crossings: each generated minimum-bias event stands for one,
        # so its pile-up must be the beam's
        mu = cfg.evaluation.beam().pileup
        if abs(ds.default_pileup - mu) > 0.1 * mu:
            raise ConfigError(
                f"dataset.default_pileup: background zero_bias counts bunch crossings, each "
                f"generated minimum-bias event standing for one; its pile-up "
                f"{ds.default_pileup:g} must be the beam's mean of {mu:.3g} interactions per "
                f"crossing (evaluation.luminosity {cfg.evaluation.luminosity:.3g} cm^-2 s^-1 x "
                "79.5 mb / the filled-crossing rate), within 10 %"
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


def _default_processes() -> dict[str, int]:
    """The processes a run's default dataset can hold and their default event counts: the
    default dataset's and those generated on request (minimum bias)."""
    from ..generate import DEFAULT_DATASET, ON_REQUEST

    return {**DEFAULT_DATASET, **ON_REQUEST}


def default_dataset_events(cfg: RunConfig, needed: bool = False) -> dict[str, int]:
    """Events per process of the default dataset of ``cfg`` (``dataset.default_events`` and
    ``default_scale`` applied): all of its processes (those generated on request when
    ``dataset.processes`` names them), or with ``needed`` only those that
    ``dataset.processes`` names without files (what generating for ``cfg`` writes)."""
    from ..generate import DEFAULT_DATASET

    ds: DatasetConfig = cfg.dataset
    named = {p.name for p in ds.processes}
    extra = {k: v for k, v in _default_processes().items() if k in named}
    events = {**DEFAULT_DATASET, **extra, **(ds.default_events or {})}
    if needed:
        names = {p.name for p in ds.processes if not p.files}
        events = {k: v for k, v in events.items() if k in names}
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
    known_names = _default_processes()
    for i, p in defaults:
        if p.name not in known_names:
            out.append(
                f"dataset.processes[{i}]: process {p.name!r} names no files and is not in the "
                f"default dataset; its processes: {', '.join(known_names)} (or give files:)"
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
            fpath = default_dir / str(known.get(p.name, {}).get("file", f"{p.name}.root"))
            if p.name in known_names and p.name not in known:
                out.append(
                    f"dataset.processes[{i}] (process {p.name!r}): not in the default dataset "
                    f"({mpath}) and run.generate_missing is false; run 'poetml generate' or "
                    "set run.generate_missing: true"
                )
            elif p.name in known and not fpath.is_file():
                out.append(
                    f"dataset.processes[{i}] (process {p.name!r}): default dataset file "
                    f"{fpath} is missing"
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
        if name not in STAGE_NAMES:
            problems.append(
                f"run.stages: unknown stage {name!r}; known stages: {', '.join(STAGE_NAMES)}"
            )
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
