"""The standalone emulator for C++ users (poetml.firmware.standalone): the header the firmware
export writes (network, preprocessing, trigger rule) and ``score_features.cpp``, compiled with
a plain C++17 compiler against ``poetml.get_include()``, score the features of a real CMS
file exactly as the Python path (poetml.firmware.emulate, itself equal to hls4ml's C
simulation) does: the same scores, trigger bits and network outputs, bit for bit."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REAL_FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"  # CMS NanoAOD simulation, 200 events

needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def test_get_include_holds_the_core_headers():
    import poetml

    inc = Path(poetml.get_include())
    for header in ("emulate.hpp", "features.hpp", "core.hpp", "poetml.hpp"):
        assert (inc / "poetml" / header).is_file()


def _tiny_ae(n: int, seed: int):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    w, b = quantized_bits(8, 0, alpha=1), quantized_bits(8, 3, alpha=1)
    inp = tf.keras.Input((n,), name="features")
    x = QActivation(quantized_bits(14, 5, alpha=1), name="input_q")(inp)
    x = QDense(8, kernel_quantizer=w, bias_quantizer=b, name="enc1")(x)
    x = QActivation(quantized_relu(8, 3), name="enc1_relu")(x)
    z = QDense(4, kernel_quantizer=w, bias_quantizer=b, name="latent")(x)
    x = QDense(8, kernel_quantizer=w, bias_quantizer=b, name="dec1")(z)
    x = QActivation(quantized_relu(8, 3), name="dec1_relu")(x)
    out = QDense(n, kernel_quantizer=w, bias_quantizer=b, name="reco")(x)
    model = tf.keras.Model(inp, out, name="tiny_ae")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if len(ws) == 2:
            layer.set_weights([ws[0], rng.normal(0, 0.4, ws[1].shape).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def real_features(shared_data, tmp_path_factory):
    """Feature vectors of a real CMS file made as the README of the export says: ``poetml
    features FILE -o feats.h5``, then the HDF5 dataset saved as ``.npy``."""
    h5py = pytest.importorskip("h5py")
    from poetml.cli import main

    d = tmp_path_factory.mktemp("standalone_features")
    h5 = d / "feats.h5"
    # this production's Muon_tightId is 0 for every muon: keep muons by the other cuts
    config = d / "selection.yaml"
    config.write_text("selection:\n  muon:\n    tight_id: false\n")
    args = ["features", str(shared_data / REAL_FILE), "-o", str(h5), "--config", str(config)]
    assert main([*args, "--no-progress"]) == 0
    with h5py.File(h5, "r") as f:
        raw = np.asarray(f["features"][:])
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][:])
    assert raw.dtype == np.float32
    assert raw.shape == (200, len(names))
    for obj in ("met", "electron_0", "muon_0", "jet_0"):  # every object kind occurs
        assert np.count_nonzero(raw[:, names.index(f"{obj}_pt")]) >= 10
    npy = d / "feats.npy"
    np.save(npy, raw)
    return raw, names, npy


@pytest.fixture(scope="module")
def exported(real_features, tmp_path_factory):
    """A tiny seeded quantized autoencoder deployed with its masked reconstruction score
    (sum and count: the ratio trigger rule), converted and compiled by hls4ml, exported with
    its preprocessing (scaler fitted on the file's features) and a threshold that a tenth
    of the events pass; the standalone folder written and its program compiled."""
    pytest.importorskip("hls4ml")
    pytest.importorskip("qkeras")
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    import poetml
    from poetml.datasets.scalers import Preprocessing, fit_scaler
    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.emulate import TriggerRule, emulate, export_network
    from poetml.firmware.score_model import make_score_model
    from poetml.firmware.standalone import write_standalone
    from poetml.firmware.trigger import ratio_threshold

    raw, names, _ = real_features
    pre = Preprocessing(
        scaler=fit_scaler(raw, "features", names),
        input_bits=14,
        input_integer=5,
        class_names=(),
        input_shape=(len(names),),
        kind="features",
        feature_names=names,
    )
    x = pre.apply(raw)
    model = _tiny_ae(len(names), seed=15)
    cfg = FirmwareConfig()
    score = make_score_model(model, cfg, calibration=x, feature_names=names)
    assert score.denominator_index is not None  # sum > t x count
    d = tmp_path_factory.mktemp("standalone")
    hls_model = convert(score.model, d / "hls", cfg)
    export = export_network(hls_model)
    y = np.asarray(emulate(export, x, n_threads=2))
    # the Python emulator is the firmware: hls4ml's C simulation gives the same outputs
    y_c = np.asarray(hls_model.predict(np.ascontiguousarray(x)), np.float64).reshape(len(x), -1)
    assert np.array_equal(y, y_c)
    thr = ratio_threshold(y[:, score.score_index], y[:, score.denominator_index], 4000.0)
    trigger = TriggerRule(thr.value, score.score_index, score.denominator_index)
    out = d / "emulator"
    paths = write_standalone(out, export, "tiny_net", trigger=trigger, preprocessing=pre)
    exe = out / "score_features"
    cmd = ["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread",
           f"-I{poetml.get_include()}", str(paths["program"]), "-o", str(exe)]  # fmt: skip
    build = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=out)
    assert build.returncode == 0, f"{' '.join(cmd)}:\n{build.stderr}"
    return {"export": export, "pre": pre, "trigger": trigger, "exe": exe, "dir": out, "y": y}


def _score(exe: Path, npy: Path, *args: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    run = subprocess.run([str(exe), str(npy), *args], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("# event score fire y0")
    rows = [line.split() for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    score = np.array([float(r[1]) for r in rows])
    fire = np.array([r[2] for r in rows])
    assert set(fire) <= {"0", "1"}
    y = np.array([[float(v) for v in r[3:]] for r in rows]).reshape(len(rows), -1)
    return score, fire == "1", y


@needs_cxx
def test_program_scores_real_file_as_python(exported, real_features):
    """Raw features of the real file in, scores and trigger bits out: identical to the Python
    path (preprocessing, emulator, trigger rule) on every event."""
    raw, _, npy = real_features
    trig = exported["trigger"]
    y = exported["y"]
    score, fire, y_cpp = _score(exported["exe"], npy, "--threads", "2")
    assert len(score) == len(raw) == 200
    assert np.array_equal(y_cpp, y)
    assert np.array_equal(score, trig.scores(y))
    assert np.array_equal(fire, trig.fires(y))
    assert 5 <= fire.sum() <= 40  # the threshold passes about a tenth: both bits occur
    assert len(np.unique(score)) > 50


@needs_cxx
def test_program_on_network_inputs(exported, real_features, tmp_path):
    """``--preprocessed``: rows that are network inputs already give the same results."""
    raw, _, _ = real_features
    npy = tmp_path / "inputs.npy"
    np.save(npy, exported["pre"].apply(raw))
    _, fire, y_cpp = _score(exported["exe"], npy, "--preprocessed")
    assert np.array_equal(y_cpp, exported["y"])
    assert np.array_equal(fire, exported["trigger"].fires(exported["y"]))


@needs_cxx
def test_header_preprocessing_rounds_and_saturates_as_python(exported, tmp_path):
    """The header's preprocess() equals Preprocessing.apply bit for bit on values that sit
    exactly on rounding midpoints (half to even), saturate, or are tiny, with scales that are
    and are not powers of two."""
    import dataclasses

    import poetml
    from poetml.firmware.emulate import emulate
    from poetml.firmware.standalone import write_standalone

    pre = exported["pre"]
    n = len(pre.scaler.scale)
    rng = np.random.default_rng(5)
    scales = tuple(float(s) for s in rng.choice([1.0, 0.5, 4.0, 3.7, 41.3, 0.0123], n))
    pre2 = dataclasses.replace(pre, scaler=dataclasses.replace(pre.scaler, scale=scales))
    step = 2.0 ** -(pre.input_bits - pre.input_integer - 1)
    k = rng.integers(-(2**13), 2**13, (400, n))
    raw = ((k + 0.5) * step * np.asarray(scales)).astype(np.float32)  # midpoints
    raw[:50] = rng.normal(0, 100, (50, n))  # saturating
    raw[50:100] = rng.normal(0, 1e-3, (50, n))
    raw[100:150] = rng.normal(0, 3, (50, n))
    out = tmp_path / "emu"
    paths = write_standalone(out, exported["export"], "net2", trigger=exported["trigger"],
                             preprocessing=pre2)  # fmt: skip
    exe = out / "score_features"
    subprocess.run(["g++", "-std=c++17", "-O2", "-pthread", f"-I{poetml.get_include()}",
                    str(paths["program"]), "-o", str(exe)], check=True)  # fmt: skip
    npy = tmp_path / "raw.npy"
    np.save(npy, raw)
    _, fire, y_cpp = _score(exe, npy)
    y = np.asarray(emulate(exported["export"], pre2.apply(raw)))
    assert np.array_equal(y_cpp, y)
    assert np.array_equal(fire, exported["trigger"].fires(y))


@needs_cxx
def test_header_log1p_columns_match_python(exported, real_features, tmp_path):
    """A scaler with log1p energy columns: the header takes ``log1pf`` of the C library
    where the Python path takes NumPy's float32 ``log1p``; the network outputs and trigger
    bits agree on the real file's events and on 4000 pT-like values spanning 0 to 5 TeV (a
    last-bit difference of the two logarithms could flip a fixed-point rounding only for a
    value on a rounding midpoint, so at most a handful of rows may differ)."""
    import dataclasses

    import poetml
    from poetml.datasets.scalers import fit_scaler
    from poetml.firmware.emulate import emulate
    from poetml.firmware.standalone import write_standalone

    raw, names, _ = real_features
    pre = exported["pre"]
    logs = dataclasses.replace(pre, scaler=fit_scaler(raw, "features", names, log1p_energy=True))
    assert any(logs.scaler.log1p)
    assert not all(logs.scaler.log1p)
    out = tmp_path / "emu-log"
    paths = write_standalone(out, exported["export"], "net_log", trigger=exported["trigger"],
                             preprocessing=logs)  # fmt: skip
    assert "log1pf" in paths["header"].read_text()
    exe = out / "score_features"
    subprocess.run(["g++", "-std=c++17", "-O2", "-pthread", f"-I{poetml.get_include()}",
                    str(paths["program"]), "-o", str(exe)], check=True)  # fmt: skip
    rng = np.random.default_rng(11)
    synthetic = rng.lognormal(3.0, 1.5, (4000, len(names))).clip(0, 5000).astype(np.float32)
    synthetic[rng.random(synthetic.shape) < 0.3] = 0.0  # empty slots
    angular = [i for i, r in enumerate(logs.scaler.log1p) if not r]
    synthetic[:, angular] = rng.uniform(-3, 3, (4000, len(angular))).astype(np.float32)
    for name, x in (("real", raw), ("synthetic", synthetic)):
        npy = tmp_path / f"{name}.npy"
        np.save(npy, x)
        _, fire, y_cpp = _score(exe, npy)
        y = np.asarray(emulate(exported["export"], logs.apply(x)))
        same = np.all(y_cpp == y, axis=1)
        assert same.sum() >= len(x) - 2, (name, np.flatnonzero(~same)[:10])
        assert np.array_equal(fire[same], exported["trigger"].fires(y)[same])


@needs_cxx
def test_program_refuses_other_inputs(exported, tmp_path):
    exe = exported["exe"]
    n = exported["export"].n_inputs

    def fails(path: Path, match: str) -> None:
        run = subprocess.run([str(exe), str(path)], capture_output=True, text=True, check=False)
        assert run.returncode == 1
        assert match in run.stderr, run.stderr
        assert run.stdout.count("\n") <= 1

    np.save(tmp_path / "f8.npy", np.zeros((3, n)))
    fails(tmp_path / "f8.npy", "reads little-endian float32 ('<f4') only")
    np.save(tmp_path / "cols.npy", np.zeros((3, n + 1), np.float32))
    fails(tmp_path / "cols.npy", f"{n + 1} values per event; the network reads {n}")
    np.save(tmp_path / "vec.npy", np.zeros(n, np.float32))
    fails(tmp_path / "vec.npy", "reads a matrix (N, F)")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((3, n), np.float32)))
    fails(tmp_path / "fortran.npy", "Fortran order")
    (tmp_path / "text.npy").write_text("1 2 3\n")
    fails(tmp_path / "text.npy", "is not a .npy file")
    bad = np.zeros((2, n), np.float32)
    bad[1, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    fails(tmp_path / "nan.npy", "event 1: input 3 is not finite")
    assert subprocess.run([str(exe)], capture_output=True, check=False).returncode == 2


def test_readme_and_program_say_how_to_build(exported):
    d = exported["dir"]
    readme = (d / "README.txt").read_text()
    program = (d / "score_features.cpp").read_text()
    from poetml.firmware.standalone import BUILD_COMMAND

    assert BUILD_COMMAND in readme
    assert BUILD_COMMAND in program
    assert "poetml features FILE.root -o feats.h5" in readme
    header = (d / "emulator.hpp").read_text()
    assert "constexpr bool kHasPreprocessing = true;" in header
    assert f"constexpr double kThreshold = {float(exported['trigger'].threshold).hex()};" in header
    assert os.path.basename(str(d)) == "emulator"
