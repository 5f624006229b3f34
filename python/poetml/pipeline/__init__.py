"""The end-to-end job as plain functions: prepare data, train, evaluate, score, run.

::

    from poetml import config, pipeline
    cfg = config.load("configs/dtw_cnn.yaml")
    result = pipeline.run(cfg)                 # everything, into cfg.run.output
    prep = pipeline.prepare_data(cfg)          # or step by step (notebooks)
    dirs = pipeline.train(cfg, prep)
    metrics, section = pipeline.evaluate(cfg, prep, dirs)
    pipeline.evaluate_and_report(cfg)          # 'poetml evaluate': data, evaluation, report

Output directory (``run.output``, default ``out/<config name>``)::

    data/dataset.h5           the labelled images (sparse layout) or features, raw; reused
                              when the spec matches
    models/<variant>/         one model directory per variant (see poetml.training)
    metrics_*.json, plots/    from poetml.report.evaluate_classifier / evaluate_anomaly
    report.md, report.html    the report
    run.json                  stages done, seconds taken, headline numbers

Stages are named in ``run.stages`` (default ``data, train, evaluate``) and run in order;
finished model directories whose configuration is unchanged are skipped, so an interrupted
run resumes where it stopped.  The stages are a fixed table, :data:`STAGES` (``data``,
``train``, ``evaluate``, ``firmware``); the heavy ones import what they need when they run.

Modules, one concern each: :mod:`.checks` (the configuration checked before any work, the
output directory), :mod:`.data` (dataset build/cache, split, preprocessing: :class:`Prepared`),
:mod:`.training` (the variants), :mod:`.evaluation` (metrics and report section),
:mod:`.scoring` (``poetml score``), :mod:`.firmware` (the firmware stage and ``poetml
firmware`` on a run's model directory), :mod:`.runner` (:data:`STAGES`, :func:`run`).
"""

from __future__ import annotations

from ..config import VARIANTS, OutputConfig
from ..evaluation.config import EvaluationConfig
from .checks import (
    check_config,
    config_problems,
    config_summary,
    default_dataset_events,
    output_dir,
)
from .data import (
    Prepared,
    build_dataset,
    cached_dataset,
    dataset_key,
    load_or_build_dataset,
    prepare,
    prepare_data,
)
from .evaluation import anomaly_scores, evaluate, evaluate_and_report
from .runner import STAGES, Context, run
from .scoring import score
from .training import check_outputs, load_run_model_dir, model_dir_config, train

__all__ = [
    "STAGES",
    "VARIANTS",
    "Context",
    "EvaluationConfig",
    "OutputConfig",
    "Prepared",
    "anomaly_scores",
    "build_dataset",
    "cached_dataset",
    "check_config",
    "check_outputs",
    "config_problems",
    "config_summary",
    "dataset_key",
    "default_dataset_events",
    "evaluate",
    "evaluate_and_report",
    "load_or_build_dataset",
    "load_run_model_dir",
    "model_dir_config",
    "output_dir",
    "prepare",
    "prepare_data",
    "run",
    "score",
    "train",
]
