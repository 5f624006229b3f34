"""Batched, parallel C simulation against hls4ml's ``ModelGraph.predict`` on the same events.

    python bench/bench_csim.py [--dense-events 20000] [--cnn-events 1000] [--repeat 2]
                               [--score auto|latent] [--json OUT]

Two networks (seeded QKeras weights, shapes of the toolkit's models):
* the deployed score of the dense anomaly autoencoder 57-32-16-8-16-32-57 on the 57 feature
  slots, io_parallel: by default (``--score auto``) the whole autoencoder and its masked
  reconstruction error (sum and count outputs), as ``poetml run`` deploys it; with
  ``--score latent`` the encoder and its squared latent norm;
* a quantized CNN classifier on 32 x 32 x 2 event images (io_stream).

For each: hls4ml ``predict`` (per-event calls from Python, the baseline), poetml's batched
C++ loop on 1 worker, and on all cores.  Times are the best of ``--repeat`` runs, measured
in the same process, with the process CPU time of each (CPU / wall = cores the run actually
got: on a shared machine with autogroup scheduling a busy session gets a fixed share of the
cores whatever its thread count, and then extra workers cannot help); outputs are checked
identical to ``predict``.  Prints ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def dense_ae():
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(11)
    w, b = quantized_bits(8, 0, alpha=1), quantized_bits(8, 3, alpha=1)
    inp = tf.keras.Input((57,), name="features")
    x = QActivation(quantized_bits(16, 7, alpha=1), name="input_q")(inp)
    for i, n in enumerate((32, 16)):
        x = QDense(n, kernel_quantizer=w, bias_quantizer=b, name=f"enc{i}")(x)
        x = QActivation(quantized_relu(8, 3), name=f"enc{i}_relu")(x)
    z = QDense(8, kernel_quantizer=w, bias_quantizer=b, name="latent")(x)
    x = z
    for i, n in enumerate((16, 32)):
        x = QDense(n, kernel_quantizer=w, bias_quantizer=b, name=f"dec{i}")(x)
        x = QActivation(quantized_relu(8, 3), name=f"dec{i}_relu")(x)
    out = QDense(57, kernel_quantizer=w, bias_quantizer=b, name="reco")(x)
    return tf.keras.Model(inp, out, name="dense_ae")


def cnn():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(12)
    q = quantized_bits(8, 0, alpha=1)
    inp = tf.keras.Input((32, 32, 2), name="image")
    x = QActivation(quantized_bits(12, 6, alpha=1), name="input_q")(inp)
    x = QConv2D(4, (3, 3), kernel_quantizer=q, bias_quantizer=q, name="conv0")(x)
    x = QActivation(quantized_relu(8, 3), name="conv0_relu")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), name="pool0")(x)
    x = QConv2D(8, (3, 3), kernel_quantizer=q, bias_quantizer=q, name="conv1")(x)
    x = QActivation(quantized_relu(8, 3), name="conv1_relu")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(x)
    out = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inp, out, name="cnn")


def best(fn, repeat):
    """Best wall time of ``repeat`` runs, the process CPU time of that run, the output."""
    runs, out = [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    wall, cpu = min(runs)
    return wall, cpu, out


def bench(name, model, x, calib, workdir, repeat, workers, score_kind="auto"):
    from poetml.features import FeatureSpec, feature_names
    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.csim import CSim, build_csim_library, top_signature
    from poetml.firmware.score_model import make_score_model

    cfg = FirmwareConfig(score=score_kind)
    names = feature_names(FeatureSpec()) if x.ndim == 2 else None
    score = make_score_model(model, cfg, calibration=calib, feature_names=names)
    proj = Path(workdir) / name
    hls_model = convert(score.model, proj, cfg, compile=True)
    n_in = int(hls_model.get_input_variables()[0].size())
    n_out = int(hls_model.get_output_variables()[0].size())
    lib = build_csim_library(proj, top_signature(proj, cfg.project_name, n_in, n_out))
    rows, cpu = {}, {}
    t_pred, c_pred, y_pred = best(lambda: np.asarray(hls_model.predict(x), np.float64), repeat)
    y_pred = y_pred.reshape(len(x), -1)
    rows["predict"], cpu["predict"] = t_pred, c_pred
    identical = True
    for w in sorted({1, workers}):
        with CSim(lib, workers=w) as sim:
            t, c, y = best(lambda sim=sim: sim.predict(x, progress=False), repeat)
        identical &= bool(np.array_equal(y, y_pred))
        rows[f"batched_{w}"], cpu[f"batched_{w}"] = t, c
    y_q = score.model.predict(x, batch_size=4096, verbose=0).reshape(len(x), -1)
    result = {
        "network": name,
        "events": len(x),
        "io_type": hls_model.config.get_config_value("IOType"),
        "seconds": rows,
        "cpu_seconds": cpu,
        # cores the run actually got (CPU time / wall time): on a shared machine the kernel's
        # autogroup scheduling gives a busy session a fixed share whatever its thread count
        "cores_obtained": {k: cpu[k] / rows[k] for k in rows},
        "cpu_speedup_per_event": cpu["predict"] / cpu["batched_1"],
        "events_per_s": {k: len(x) / v for k, v in rows.items()},
        "speedup_1_worker": rows["predict"] / rows["batched_1"],
        f"speedup_{workers}_workers": rows["predict"] / rows[f"batched_{workers}"],
        "identical_to_predict": identical,
        "exact_vs_qkeras": float(np.mean(y_q == y_pred)),
    }
    print(
        f"{name:>9}: {len(x)} events, predict {rows['predict']:.2f} s | batched 1 worker "
        f"{rows['batched_1']:.2f} s ({result['speedup_1_worker']:.2f}x) | {workers} workers "
        f"{rows[f'batched_{workers}']:.2f} s ({result[f'speedup_{workers}_workers']:.2f}x) | "
        f"identical to predict: {identical} | exact vs QKeras: {result['exact_vs_qkeras']:.6f}\n"
        f"{'':>11}CPU s: predict {cpu['predict']:.2f}, batched 1 worker {cpu['batched_1']:.2f} "
        f"({result['cpu_speedup_per_event']:.2f}x less CPU per event) | cores obtained: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["cores_obtained"].items()),
        flush=True,
    )
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense-events", type=int, default=20000)
    ap.add_argument("--cnn-events", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="default: all cores")
    ap.add_argument("--score", choices=("auto", "latent"), default="auto",
                    help="deployed score of the dense autoencoder (default: as poetml run)")  # fmt: skip
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    from poetml.firmware.csim import default_workers

    workers = args.workers or default_workers()
    rng = np.random.default_rng(0)
    xd = rng.normal(0, 2, (args.dense_events, 57))
    xd[:, 0::3] = np.abs(xd[:, 0::3])  # pT columns (met, electron_k, muon_k, jet_k: pt, eta, phi)
    for slot in range(1, 19):  # about 40 % of the object slots empty, as zero-padded slots are
        xd[rng.random(args.dense_events) < 0.4, 3 * slot : 3 * slot + 3] = 0.0
    xd = xd.astype(np.float32)
    xi = (rng.exponential(3, (args.cnn_events, 32, 32, 2))
          * (rng.random((args.cnn_events, 32, 32, 2)) < 0.1)).astype(np.float32)  # fmt: skip
    print(f"cores: {workers}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_csim_") as tmp:
        results.append(
            bench("dense_ae", dense_ae(), xd, xd[:5000], tmp, args.repeat, workers, args.score)
        )
        if args.cnn_events:
            results.append(bench("cnn", cnn(), xi, None, tmp, args.repeat, workers))
    if args.json:
        Path(args.json).write_text(json.dumps({"workers": workers, "results": results}, indent=2))
    return 0 if all(r["identical_to_predict"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
