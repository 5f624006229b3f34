"""``poetml check | run | train | evaluate | score``: the learning stages from the command
line.  ``run``, ``train`` and ``evaluate`` first make the checks of ``check``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="validate CONFIG and the files it names, doing no work",
        description="Validate a YAML run configuration without reading, generating or "
        "training anything: every value (with its key path in the message), the sections "
        "against each other, the stages, and that the input files it names exist (or that "
        "the default dataset is there or may be generated).  Prints one line saying what the "
        "configuration would do and exits 0, or one line per error and exits 1.  run, train "
        "and evaluate make the same checks first.",
    )
    p.add_argument("config", help="YAML run configuration, e.g. configs/dtw_cnn.yaml")
    p.set_defaults(func=_check)

    p = subparsers.add_parser(
        "run",
        help="whole task end to end: data, training, evaluation, report",
        description="Generate the default dataset if missing, build images/features, train "
        "the float and quantized (and pruned) models, evaluate them and write models, "
        "metrics, plots and a report into one output directory. Finished stages are reused.",
    )
    _common(p)
    p.set_defaults(func=_run)

    p = subparsers.add_parser("train", help="prepare the data and train the models of CONFIG")
    _common(p)
    p.add_argument(
        "--variant",
        action="append",
        default=None,
        help="train only this variant (repeatable): float, quantized, pruned, quantized_pruned",
    )
    p.set_defaults(func=_train)

    p = subparsers.add_parser("evaluate", help="evaluate the trained models of CONFIG")
    _common(p)
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "score",
        help="per-event scores of a trained model as a ROOT friend tree",
        description="Score every entry of the INPUT ntuples with MODEL (a model directory "
        "written by poetml train/run) and write a TTree aligned entry by entry with the "
        "inputs (chained in the order given), so it can be added as a friend.",
    )
    p.add_argument("model", help="model directory, e.g. out/dtw_cnn/models/float")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="ROOT ntuples (POET or NanoAOD)")
    p.add_argument("-o", "--output", required=True, help="output ROOT file")
    p.add_argument("--tree", default="scores", help="tree name (default scores)")
    p.add_argument("--step-size", type=int, default=20_000, help="events per chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--firmware",
        metavar="FWDIR",
        help="output directory of 'poetml firmware' for MODEL: write the firmware's scores, bit "
        "for bit, from the bit-exact emulator (branches firmware_score and trigger, the "
        "trigger.h bit at the firmware's threshold) instead of the Keras model's",
    )
    add_trust_model(p)
    p.set_defaults(func=_score)


def add_trust_model(p: argparse.ArgumentParser) -> None:
    """The ``--trust-model`` flag of every command that loads a saved model."""
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="load the model file even when it holds code (a Lambda layer, an unknown custom "
        "object), which poetml otherwise refuses: this RUNS PYTHON CODE STORED IN THE MODEL "
        "FILE, with your permissions; use it only for files you trust",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run configuration, e.g. configs/dtw_cnn.yaml")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output directory (default: run.output or out/<config name>)",
    )
    add_trust_model(p)


def _load(args: argparse.Namespace) -> RunConfig:
    """The configuration, checked as ``poetml check`` does (ConfigError: one line an error)."""
    from .. import config, pipeline

    cfg = config.load(args.config)
    pipeline.check_config(cfg)
    return cfg


def _check(args: argparse.Namespace) -> int:
    from .. import config, pipeline
    from ..exceptions import ConfigError

    try:
        cfg = config.load(args.config)
        pipeline.check_config(cfg)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"poetml check: error: {line}", file=sys.stderr)
        return 1
    print(f"poetml check: {args.config} OK: {pipeline.config_summary(cfg)}")
    return 0


def _out(args: argparse.Namespace, cfg: RunConfig) -> Path:
    from ..pipeline import output_dir

    return Path(args.output) if args.output else output_dir(cfg)


def _run(args: argparse.Namespace) -> int:
    from .. import pipeline

    cfg = _load(args)
    ctx = pipeline.run(cfg, _out(args, cfg), trust_model=args.trust_model)
    print(f"poetml run: done in {ctx.timings.get('total', 0):.0f} s; outputs in {ctx.outdir}")
    if (ctx.outdir / "report.md").exists():
        print(f"poetml run: report {ctx.outdir / 'report.md'}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .. import pipeline

    cfg = _load(args)
    out = _out(args, cfg)
    prep = pipeline.prepare_data(cfg, out)
    dirs = pipeline.train(cfg, prep, out, variants=args.variant, trust_model=args.trust_model)
    for v, d in dirs.items():
        print(f"{v}: {d}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .. import pipeline

    cfg = _load(args)
    path = pipeline.evaluate_and_report(cfg, _out(args, cfg), trust_model=args.trust_model)
    print(json.dumps({"report": os.fspath(path)}))
    return 0


def _score(args: argparse.Namespace) -> int:
    from .. import pipeline

    path = pipeline.score(
        args.model,
        args.inputs,
        args.output,
        tree=args.tree,
        step_size=args.step_size,
        progress=not args.quiet,
        trust_model=args.trust_model,
        firmware=args.firmware,
    )
    print(f"poetml score: wrote tree {args.tree!r} to {path}")
    return 0
