"""``poetml firmware``: trained QKeras model -> validated hls4ml trigger project.

::

    poetml firmware MODEL_DIR --rate-khz 1 -o fw/ [--synth] [--backend Vitis|Vivado]
                    [--score auto|reconstruction|latent|output] [--events N] [--config FILE]
                    [--events-file FILE.npz] [--workers N] [--referee-events N] [--generate]

Converts the model (an autoencoder is deployed with its anomaly score: by default its
reconstruction error, computed in the firmware; a classifier outputs logits), writes and checks
the hls4ml project in ``OUT/hls``, sets the trigger threshold for the rate on C-simulated
background events, writes ``OUT/firmware.json`` and ``OUT/firmware.md``.  It writes only under
``OUT``: for a model directory of ``poetml run`` the run's dataset is read, or rebuilt into
``OUT/data``; the default dataset is generated (into ``OUT/default-data``) only with
``--generate``.  A float (non-QKeras) model is refused before any data is read.  Exit status 1 when
C simulation and QKeras disagree beyond the tolerance (the first disagreeing event's layer
trace is printed) or when ``--synth`` is asked and no vendor HLS tool is on PATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from .learn import add_trust_model


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "firmware",
        help="trained QKeras model -> hls4ml trigger project, bit-exact C simulation, threshold",
        description="Convert a trained QKeras model to an hls4ml project (Vitis by default), "
        "compile a batched C simulation, check it agrees bit for bit with QKeras on the test "
        "events, set the trigger threshold for a rate on C-simulated background events and "
        "write it into the project as a fixed-point constant with a trigger_decision() top "
        "function.  --synth also runs vitis_hls/vivado_hls when it is on PATH.  Everything "
        "is written under OUT: a model directory of 'poetml run' reads its run's dataset, or "
        "rebuilds it into OUT/data, and generates nothing unless --generate is given.  A float "
        "model is refused before any data is read.",
    )
    p.add_argument("model_dir", help="trained model directory (or a .keras/.h5 file)")
    p.add_argument("-o", "--output", required=True, help="output folder (the project is OUT/hls)")
    p.add_argument("--rate-khz", type=float, help="trigger rate in kHz (default: config, 1)")
    p.add_argument("--backend", choices=("Vitis", "Vivado"), help="hls4ml backend (default Vitis)")
    p.add_argument("--score", choices=("auto", "reconstruction", "latent", "output"),
                   help="what the firmware outputs: auto (default: an autoencoder's "
                   "reconstruction error, a classifier's logits), reconstruction, latent "
                   "(encoder-only ||z||^2) or output")  # fmt: skip
    p.add_argument("--events", type=int, help="use at most N events per sample (default: all)")
    p.add_argument("--events-file", help=".npz with arrays x, labels[, label_names, "
                   "feature_names] (default: firmware_events.npz or test_events.npz in "
                   "MODEL_DIR)")  # fmt: skip
    p.add_argument("--config", help="YAML run configuration whose 'firmware' section is used")
    p.add_argument("--workers", type=int, help="C-simulation workers (default: all cores)")
    p.add_argument("--referee-events", type=int, metavar="N",
                   help="events the C simulation scores to referee the bit-exact emulator, "
                   "which scores them all (default 50000; 0: every event)")  # fmt: skip
    p.add_argument("--synth", action="store_true", help="run vendor HLS synthesis (needs the tool)")
    p.add_argument("--generate", action="store_true",
                   help="for a model directory of 'poetml run' whose dataset and default "
                   "dataset are both gone: generate the default dataset with Pythia into "
                   "OUT/default-data (it says what it generates); without it, nothing is "
                   "generated")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_trust_model(p)
    p.set_defaults(func=_firmware)


def _firmware(args: argparse.Namespace) -> int:
    from ..firmware import FirmwareConfig
    from ..firmware.summary import result_summary
    from ..firmware.validate import FirmwareValidationError
    from ..pipeline.firmware import build_from_model_dir

    config = FirmwareConfig()
    if args.config:
        from ..config import load

        config = load(args.config).firmware
    overrides = {
        "rate_khz": args.rate_khz,
        "backend": args.backend,
        "score": args.score,
        "events": args.events,
        "workers": args.workers,
        "referee_events": args.referee_events,
        "synth": True if args.synth else None,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    try:
        result = build_from_model_dir(
            args.model_dir,
            args.output,
            config,
            args.events_file,
            progress=not args.no_progress,
            generate=args.generate,
            trust_model=args.trust_model,
        )
    except FirmwareValidationError as exc:
        print(f"poetml firmware: validation FAILED: {exc}", file=sys.stderr)
        return 1
    summary = result_summary(result)
    for text, to_stderr in summary.lines:
        print(text, file=sys.stderr if to_stderr else sys.stdout)
    return 0 if summary.ok else 1
