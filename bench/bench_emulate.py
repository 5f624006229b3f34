"""Bit-exact C++ emulator against hls4ml's ``predict`` and poetml's batched C simulation.

    python bench/bench_emulate.py [--dense-events 100000] [--cnn-events 10000]
                                  [--predict-dense 5000] [--predict-cnn 300] [--repeat 2]
                                  [--json OUT]

The two networks of ``bench/bench_csim.py`` (seeded QKeras weights, shapes of the toolkit's
models): the deployed score of the dense anomaly autoencoder 57-32-16-8-16-32-57 with its masked
reconstruction error (io_parallel), and a quantized CNN classifier on 32 x 32 x 2 event images
(io_stream).  For each, in the same process: hls4ml ``predict`` (per-event calls from Python,
the baseline) on ``--predict-*`` events, poetml's batched C simulation on all events (1 worker
and all cores; it is the referee: the emulator's outputs are compared with it on every event),
and the emulator on 1 and 2 threads.  Times are the best of ``--repeat`` runs; each line also
gives the process CPU time, so on a shared machine the per-core speed can be read off.  Prints

    RATIO emulate/<model>/<threads>t vs hls4ml predict: N.NNx
    EXACT emulate/<model>: F

(F: the fraction of outputs identical to the C simulation) and events/s.  Exit status 1 when
any output differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_csim import best, cnn, dense_ae


def bench(name, model, x, calib, n_predict, workdir, repeat, workers):
    from poetml.features import FeatureSpec, feature_names
    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.csim import CSim, build_csim_library, top_signature
    from poetml.firmware.emulate import emulate, export_network
    from poetml.firmware.score_model import make_score_model

    cfg = FirmwareConfig()
    names = feature_names(FeatureSpec()) if x.ndim == 2 else None
    score = make_score_model(model, cfg, calibration=calib, feature_names=names)
    proj = Path(workdir) / name
    hls_model = convert(score.model, proj, cfg, compile=True)
    export = export_network(hls_model)
    net = export.network()
    n_in = int(hls_model.get_input_variables()[0].size())
    n_out = int(hls_model.get_output_variables()[0].size())
    lib = build_csim_library(proj, top_signature(proj, cfg.project_name, n_in, n_out))
    xp = x[:n_predict]
    t_pred, c_pred, y_pred = best(lambda: np.asarray(hls_model.predict(xp), np.float64), repeat)
    y_pred = y_pred.reshape(len(xp), -1)
    rate = {"predict": len(xp) / t_pred}
    cpu_rate = {"predict": len(xp) / c_pred}
    y_csim = None
    for w in sorted({1, workers}):
        with CSim(lib, workers=w) as sim:
            t, c, y = best(lambda sim=sim: sim.predict(x, progress=False), 1)
        rate[f"csim_{w}"], cpu_rate[f"csim_{w}"] = len(x) / t, len(x) / c
        y_csim = y
    flat = np.ascontiguousarray(x.reshape(len(x), -1), np.float64)
    y_emu = None
    for threads in (1, 2):
        t, c, y_emu = best(lambda th=threads: emulate(net, flat, n_threads=th), repeat)
        rate[f"emulate_{threads}t"], cpu_rate[f"emulate_{threads}t"] = len(x) / t, len(x) / c
    assert y_csim is not None
    assert y_emu is not None
    exact = float(np.mean(y_emu == y_csim))
    exact_predict = bool(np.array_equal(y_emu[:n_predict], y_pred))
    print(f"{name}: {len(x)} events ({len(xp)} through hls4ml predict)", flush=True)
    for key, value in rate.items():
        print(f"  {key:>12}: {value:12.0f} events/s  ({cpu_rate[key]:12.0f} per CPU second)")
    for threads in (1, 2):
        print(f"RATIO emulate/{name}/{threads}t vs hls4ml predict: "
              f"{rate[f'emulate_{threads}t'] / rate['predict']:.2f}x")  # fmt: skip
    print(f"  2 threads / 1 thread: {rate['emulate_2t'] / rate['emulate_1t']:.2f}x; per CPU "
          f"second, emulator / predict: {cpu_rate['emulate_1t'] / cpu_rate['predict']:.2f}x")  # fmt: skip
    print(f"EXACT emulate/{name}: {exact:.6f}")
    print(f"  identical to hls4ml predict on its {len(xp)} events: {exact_predict}", flush=True)
    return {
        "network": name,
        "events": len(x),
        "predict_events": len(xp),
        "events_per_s": rate,
        "events_per_cpu_s": cpu_rate,
        "ratio_1t": rate["emulate_1t"] / rate["predict"],
        "ratio_2t": rate["emulate_2t"] / rate["predict"],
        "threads_2_vs_1": rate["emulate_2t"] / rate["emulate_1t"],
        "exact": exact,
        "exact_vs_predict": exact_predict,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense-events", type=int, default=100_000)
    ap.add_argument("--cnn-events", type=int, default=10_000)
    ap.add_argument("--predict-dense", type=int, default=5000)
    ap.add_argument("--predict-cnn", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="C simulation workers (all cores)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    from poetml.firmware.csim import default_workers

    workers = args.workers or default_workers()
    rng = np.random.default_rng(0)
    n = args.dense_events
    xd = rng.normal(0, 2, (n, 57))
    xd[:, 0::3] = np.abs(xd[:, 0::3])  # pT columns
    for slot in range(1, 19):  # about 40 % of the object slots empty
        xd[rng.random(n) < 0.4, 3 * slot : 3 * slot + 3] = 0.0
    xd = xd.astype(np.float32)
    m = args.cnn_events
    xi = (rng.exponential(3, (m, 32, 32, 2)) * (rng.random((m, 32, 32, 2)) < 0.1)).astype(
        np.float32
    )
    print(f"cores: {workers}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_emulate_") as tmp:
        results.append(
            bench(
                "dense_ae", dense_ae(), xd, xd[:5000], args.predict_dense, tmp, args.repeat, workers
            )
        )
        if m:
            results.append(
                bench("cnn", cnn(), xi, None, args.predict_cnn, tmp, args.repeat, workers)
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"workers": workers, "results": results}, indent=2))
    return 0 if all(r["exact"] == 1.0 and r["exact_vs_predict"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
