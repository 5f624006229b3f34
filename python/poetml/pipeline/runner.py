"""``poetml run``: the fixed table of stages (:data:`STAGES`) run in order, the report and
``run.json``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..exceptions import ConfigError
from . import evaluation, training
from .checks import check_config, output_dir
from .data import Prepared, prepare_data

__all__ = ["STAGES", "Context", "run"]


@dataclass
class Context:
    """What the stages share: the configuration, the output directory and results."""

    config: RunConfig
    outdir: Path
    prepared: Prepared | None = None
    model_dirs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    sections: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trust_model: bool = False  # load model files that hold code (see training.load_model_dir)


def _stage_data(ctx: Context) -> None:
    ctx.prepared = prepare_data(ctx.config, ctx.outdir)


def _stage_train(ctx: Context) -> None:
    if ctx.prepared is None:
        _stage_data(ctx)
    assert ctx.prepared is not None
    ctx.model_dirs = training.train(
        ctx.config, ctx.prepared, ctx.outdir, trust_model=ctx.trust_model
    )


def _stage_evaluate(ctx: Context) -> None:
    if ctx.prepared is None:
        _stage_data(ctx)
    assert ctx.prepared is not None
    dirs = ctx.model_dirs or {v: ctx.outdir / "models" / v for v in ctx.config.run.variants}
    metrics, section = evaluation.evaluate(
        ctx.config, ctx.prepared, dirs, ctx.outdir, trust_model=ctx.trust_model
    )
    ctx.metrics = metrics
    ctx.sections.append(section)


def _stage_firmware(ctx: Context) -> None:
    from .firmware import firmware_stage

    firmware_stage(ctx)


#: The stages ``run.stages`` may name, in the order a run usually has them (the same names
#: as :data:`poetml.config.STAGE_NAMES`, which the configuration checks use).
STAGES: dict[str, Callable[[Context], Any]] = {
    "data": _stage_data,
    "train": _stage_train,
    "evaluate": _stage_evaluate,
    "firmware": _stage_firmware,
}


def _stage(name: str) -> Callable[[Context], Any]:
    if name not in STAGES:
        raise ConfigError(f"run.stages: unknown stage {name!r}; known stages: {', '.join(STAGES)}")
    return STAGES[name]


def run(
    cfg: RunConfig, outdir: str | os.PathLike[str] | None = None, *, trust_model: bool = False
) -> Context:
    """Run every stage of ``cfg.run.stages`` and write the report and ``run.json``.
    ``trust_model``: load saved model files that hold code (see
    :func:`poetml.training.load_model_dir`)."""
    from .. import report
    from ..evaluation import write_json

    check_config(cfg)
    stages = [(s, _stage(s)) for s in cfg.run.stages]
    out = (Path(outdir) if outdir is not None else output_dir(cfg)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, out, trust_model=trust_model)
    t_all = time.time()
    for name, fn in stages:
        t0 = time.time()
        print(f"poetml run: stage {name}")
        fn(ctx)
        ctx.timings[name] = round(time.time() - t0, 1)
    ctx.timings["total"] = round(time.time() - t_all, 1)
    if ctx.sections:
        title = f"poetml run: {cfg.path.name if cfg.path else 'run'}"
        report.write_report(out, title, ctx.sections)
    write_json(
        out / "run.json",
        {
            "stages": [s for s, _ in stages],
            "seconds": ctx.timings,
            "models": {k: str(v) for k, v in ctx.model_dirs.items()},
            "metrics": ctx.metrics,
        },
    )
    return ctx
