"""Bit-exactness of the emulator on the firmware of a shipped config's trained model.

    python bench/exact_shipped.py MODEL_DIR FWDIR NTUPLE [NTUPLE ...] [--events N]
                                  [--workers W] [--json OUT]

``MODEL_DIR`` is a quantized model directory trained by ``poetml run CONFIG`` (for example
``out/dtw_cnn/models/quantized``) and ``FWDIR`` the output of ``poetml firmware MODEL_DIR -o
FWDIR``.  The events are read from the ntuples (any POET or NanoAOD files, e.g. made with
``poetml generate``) and turned into the model's inputs exactly as ``poetml score --firmware``
does (the spec of the model directory's ``config.json`` through the C++ core, then its
preprocessing).  Every event is scored twice: by the bit-exact emulator in the C++ core from
``FWDIR/emulator/emulator.npz``, and by hls4ml's C simulation of the project in ``FWDIR/hls``
(poetml's batched loop over the compiled project, the referee).  Prints

    EXACT emulate/<project>: F   (N events, M outputs)

(F: the fraction of outputs identical, bit for bit) with both speeds, and exits 1 when any
output differs.  The numbers of the closing notes and ``docs/benchmarks.md`` come from::

    poetml run configs/dtw_cnn.yaml && poetml firmware out/dtw_cnn/models/quantized -o out/dtw_fw
    poetml generate dy 4000 -o gen/dy.root && ...   # ntuples the model did not train on
    python bench/exact_shipped.py out/dtw_cnn/models/quantized out/dtw_fw gen/*.root --events 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model_dir")
    ap.add_argument("firmware_dir")
    ap.add_argument("ntuples", nargs="+")
    ap.add_argument("--events", type=int, default=0, help="at most N events (0: all)")
    ap.add_argument("--workers", type=int, default=0, help="threads (0: all cores)")
    ap.add_argument("--step-size", type=int, default=20_000)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    from poetml.firmware import csim as cs
    from poetml.firmware.emulate import emulate
    from poetml.firmware.scoring import load_scorer, model_inputs
    from poetml.reading import expand_files, iterate

    scorer = load_scorer(args.firmware_dir, args.model_dir)
    parts, n = [], 0
    for path in expand_files(args.ntuples):
        for batch in iterate(path, args.step_size, progress=False, missing_collections="empty"):
            x = model_inputs(batch, scorer.spec, scorer.preprocessing, what=str(path))
            parts.append(np.asarray(x, np.float32))
            n += len(x)
            if args.events and n >= args.events:
                break
        if args.events and n >= args.events:
            break
    x = np.concatenate(parts)[: args.events or None]
    export = scorer.export
    report = json.loads((Path(args.firmware_dir) / "firmware.json").read_text())
    project = report["config"]["project_name"]
    project_dir = Path(args.firmware_dir) / "hls"
    sig = cs.top_signature(project_dir, project, export.n_inputs, export.n_outputs)
    lib = cs.build_csim_library(project_dir, sig)
    workers = args.workers or cs.default_workers()

    t0 = time.perf_counter()
    y_e = np.asarray(emulate(export, x, n_threads=workers))
    t_e = time.perf_counter() - t0
    with cs.CSim(lib, workers=workers) as sim:
        t0 = time.perf_counter()
        y_c = sim.predict(x, progress=True)
        t_c = time.perf_counter() - t0
    y_c = np.asarray(y_c, np.float64).reshape(y_e.shape)
    same = y_e == y_c
    frac = float(same.mean())
    events_exact = float(same.all(axis=1).mean())
    print(f"{len(x)} events of {len(args.ntuples)} file(s), input shape {x.shape[1:]}, "
          f"{y_e.shape[1]} outputs per event; {workers} threads")  # fmt: skip
    print(f"emulator {len(x) / t_e:12.0f} events/s; C simulation {len(x) / t_c:10.0f} events/s "
          f"({t_c / t_e:.0f}x)")  # fmt: skip
    print(f"distinct outputs: {len(np.unique(y_c[:, 0]))} (not a degenerate network)")
    print(f"EXACT emulate/{project}: {frac}   ({len(x)} events, {y_e.size} outputs; "
          f"events with every output identical: {events_exact})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model_dir": args.model_dir, "firmware_dir": args.firmware_dir,
            "n_events": len(x), "exact_fraction": frac, "exact_event_fraction": events_exact,
            "emulator_events_per_s": len(x) / t_e, "csim_events_per_s": len(x) / t_c,
        }, indent=2))  # fmt: skip
    return 0 if frac == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
