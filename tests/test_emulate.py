"""Bit-exact firmware emulator (cpp/include/poetml/emulate.hpp, poetml.firmware.emulate).

* the cast (every quantization and overflow mode) against its Python twin on hypothesis-chosen
  formats, and against hls4ml's own compiled ap_fixed library;
* whole networks of every layer kind against the Python twin on hypothesis-chosen formats;
* seeded tiny QKeras models converted by hls4ml and compiled: emulator == C simulation, bit
  for bit, on every event (dense autoencoder score model, CNN, and a network whose precisions
  and modes are drawn at random, so rounding, saturation and wrapping really happen).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poetml import _core
from poetml.exceptions import FirmwareError, UnsupportedLayerError
from poetml.firmware import _emulate_reference as ref

QUANT = ("trn", "rnd", "rnd_conv", "trn_zero", "rnd_zero", "rnd_min_inf", "rnd_inf")
OVER = ("wrap", "sat", "sat_zero", "sat_sym")
AP_Q = dict(zip(QUANT, ("AP_TRN", "AP_RND", "AP_RND_CONV", "AP_TRN_ZERO", "AP_RND_ZERO",
                        "AP_RND_MIN_INF", "AP_RND_INF"), strict=True))  # fmt: skip
AP_O = dict(zip(OVER, ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM"), strict=True))


@st.composite
def formats(draw, max_width: int = 40):
    w = draw(st.integers(1, max_width))
    return (
        w,
        draw(st.integers(-8, w + 8)),
        draw(st.booleans()),
        draw(st.sampled_from(QUANT)),
        draw(st.sampled_from(OVER)),
    )


def _raw_in(fmt, draw_ints):
    w, _, signed, *_ = fmt
    lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
    return [min(max(v, lo), hi) for v in draw_ints]


# ---------------------------------------------------------------- the cast


@settings(max_examples=300, deadline=None)
@given(
    src=formats(),
    dst=formats(),
    values=st.lists(st.integers(-(2**45), 2**45), min_size=1, max_size=20),
)
def test_cast_equals_reference(src, dst, values):
    raw = np.array(_raw_in(src, values), np.int64)
    frac = src[0] - src[1]
    got = _core.emu_cast(raw, frac, dst)
    np.testing.assert_array_equal(got, ref.cast_array(raw, frac, dst))


@settings(max_examples=200, deadline=None)
@given(
    dst=formats(),
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20
    ),
)
def test_from_double_equals_reference(dst, values):
    x = np.array(values, np.float64)
    got = _core.emu_from_double(x, dst)
    np.testing.assert_array_equal(got, [ref.from_double(float(v), dst) for v in x])


@settings(max_examples=100, deadline=None)
@given(v=st.integers(-(2**62), 2**62 - 1), frac=st.integers(-100, 100), dst=formats(62))
def test_cast_extreme_shifts(v, frac, dst):
    got = _core.emu_cast(np.array([v], np.int64), frac, dst)
    assert int(got[0]) == ref.cast(v, frac, dst)


def _ap_types_dir() -> Path:
    hls4ml = pytest.importorskip("hls4ml")
    return Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_cast_equals_compiled_ap_fixed(tmp_path):
    """Casts and conversions from double of hls4ml's ap_fixed library, compiled, against the
    emulator on seeded random format pairs covering every mode."""
    rng = random.Random(15)
    pairs, raws = [], []
    for k in range(14):
        w1 = rng.randint(1, 40)
        src = (w1, rng.randint(-6, w1 + 6), rng.random() < 0.7, "trn", "wrap")
        w2 = rng.randint(1, 40)
        dst = (w2, rng.randint(-6, w2 + 6), rng.random() < 0.7, QUANT[k % 7], OVER[k % 4])
        lo, hi = (-(1 << (w1 - 1)), (1 << (w1 - 1)) - 1) if src[2] else (0, (1 << w1) - 1)
        raws.append([lo, hi, 0, min(1, hi)] + [rng.randint(lo, hi) for _ in range(40)])
        pairs.append((src, dst))
    doubles = [0.5, -0.5, 3.75, -3.75, 1e30, -1e30, 1e-30] + [
        rng.choice((1, -1)) * rng.random() * 2.0 ** rng.randint(-30, 30) for _ in range(30)
    ]

    def ap(f):
        kind = "ap_fixed" if f[2] else "ap_ufixed"
        return f"{kind}<{f[0]},{f[1]},{AP_Q[f[3]]},{AP_O[f[4]]}>"

    lines = ["#include <cstdio>", '#include "ap_fixed.h"', "int main() {"]
    dlist = ",".join(float(d).hex() for d in doubles)
    for (src, dst), vals in zip(pairs, raws, strict=True):
        lines += [
            "{",
            f"  const long long v[] = {{{','.join(f'{v}LL' for v in vals)}}};",
            f'  for (long long r : v) {{ {ap(src)} s; s.V = r; {ap(dst)} t = s; std::printf("%a\\n", t.to_double()); }}',
            f"  const double d[] = {{{dlist}}};",
            f'  for (double x : d) {{ {ap(dst)} t = x; std::printf("%a\\n", t.to_double()); }}',
            "}",
        ]
    lines.append("return 0; }")
    src_file = tmp_path / "cast.cpp"
    src_file.write_text("\n".join(lines))
    exe = tmp_path / "cast"
    subprocess.run(["g++", "-O1", "-DNDEBUG", "-std=c++17", "-I", str(_ap_types_dir()),
                    str(src_file), "-o", str(exe)], check=True)  # fmt: skip
    out = [float.fromhex(t) for t in subprocess.run([str(exe)], capture_output=True, text=True,
                                                    check=True).stdout.split()]  # fmt: skip
    expected = []
    for (src, dst), vals in zip(pairs, raws, strict=True):
        f = dst[0] - dst[1]
        got = _core.emu_cast(np.array(vals, np.int64), src[0] - src[1], dst)
        expected += [math.ldexp(int(g), -f) for g in got]
        got_d = _core.emu_from_double(np.array(doubles), dst)
        expected += [math.ldexp(int(g), -f) for g in got_d]
    assert len(out) == len(expected)
    bad = [i for i, (a, b) in enumerate(zip(out, expected, strict=True)) if a != b]
    assert not bad, f"{len(bad)} of {len(out)} casts differ from ap_fixed, first at {bad[0]}"


def test_cast_rejects_bad_formats():
    with pytest.raises(ValueError, match="width 63 is outside"):
        _core.emu_cast(np.zeros(1, np.int64), 0, (63, 1, True, "trn", "wrap"))
    with pytest.raises(ValueError, match="quantization mode 'round'"):
        _core.emu_cast(np.zeros(1, np.int64), 0, (8, 1, True, "round", "wrap"))
    with pytest.raises(ValueError, match="overflow mode 'clip'"):
        _core.emu_cast(np.zeros(1, np.int64), 0, (8, 1, True, "trn", "clip"))
    with pytest.raises(TypeError):
        _core.emu_cast(np.zeros(1, np.int32), 0, (8, 1, True, "trn", "wrap"))


# ---------------------------------------------------------------- networks vs the twin


def _rand_raw(rng, fmt, shape):
    w, _, signed, *_ = fmt
    lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
    return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)


@st.composite
def small_formats(draw):
    w = draw(st.integers(2, 16))
    return (w, draw(st.integers(-2, w + 2)), draw(st.booleans()), draw(st.sampled_from(QUANT)),
            draw(st.sampled_from(OVER)))  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmts=st.lists(small_formats(), min_size=12, max_size=12),
    accum_wrap=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_network_equals_reference(fmts, accum_wrap, seed):
    """Every layer kind on hypothesis-chosen formats and modes (saturating accumulators take
    the step-by-step path, wrapping ones the ring path), C++ against the Python twin."""
    rng = np.random.default_rng(seed)
    acc = (24, 10, True, fmts[11][3], "wrap" if accum_wrap else fmts[11][4])
    in_fmt = (fmts[0][0], fmts[0][1], True, fmts[0][3], fmts[0][4])
    tensors = [
        ("in", (4, 4, 2), in_fmt),  # 0
        ("pad", (6, 6, 2), fmts[1]),  # 1
        ("conv", (4, 4, 3), fmts[2]),  # 2
        ("relu", (4, 4, 3), fmts[3]),  # 3
        ("pool", (2, 2, 3), fmts[4]),  # 4
        ("up", (4, 4, 3), fmts[5]),  # 5
        ("bn", (4, 4, 3), fmts[6]),  # 6
        ("flat", (48,), fmts[7]),  # 7
        ("dense", (5,), fmts[8]),  # 8
        ("mul", (5,), fmts[9]),  # 9
        ("sub", (5,), fmts[10]),  # 10
        ("cat", (10,), fmts[1]),  # 11
        ("add", (10,), fmts[2]),  # 12
    ]
    w8 = (8, 1, True, "trn", "wrap")
    layers = [
        {"name": "pad", "op": "zero_pad2d", "inputs": [0], "output": 1, "pad": [1, 1]},
        {"name": "conv", "op": "conv2d", "inputs": [1], "output": 2, "kernel": [3, 3],
         "stride": [1, 1], "weights": _rand_raw(rng, w8, 3 * 3 * 2 * 3), "weight_frac": 7,
         "weight_width": 8, "bias": _rand_raw(rng, w8, 3), "bias_frac": 5, "accum": acc},
        {"name": "relu", "op": "relu", "inputs": [2], "output": 3},
        {"name": "pool", "op": "max_pool2d", "inputs": [3], "output": 4, "kernel": [2, 2],
         "stride": [2, 2]},
        {"name": "up", "op": "upsampling2d", "inputs": [4], "output": 5},
        {"name": "bn", "op": "batchnorm", "inputs": [5], "output": 6,
         "weights": _rand_raw(rng, w8, 3), "weight_frac": 6, "weight_width": 8,
         "bias": _rand_raw(rng, w8, 3), "bias_frac": 3},
        {"name": "flat", "op": "linear", "inputs": [6], "output": 7},
        {"name": "dense", "op": "dense", "inputs": [7], "output": 8,
         "weights": _rand_raw(rng, w8, 48 * 5), "weight_frac": 7, "weight_width": 8,
         "bias": _rand_raw(rng, w8, 5), "bias_frac": 9, "accum": acc},
        {"name": "mul", "op": "multiply", "inputs": [8, 8], "output": 9},
        {"name": "sub", "op": "subtract", "inputs": [9, 8], "output": 10},
        {"name": "cat", "op": "concatenate", "inputs": [10, 8], "output": 11},
        {"name": "add", "op": "add", "inputs": [11, 11], "output": 12},
    ]  # fmt: skip
    net = _core.EmuNetwork([(n, list(s), f) for n, s, f in tensors], layers, 0, 12)
    x = rng.normal(0, 4, (6, 32))
    y, raw = _core.emulate(net, x, n_threads=2, raw=True)
    expected = ref.run_network(tensors, layers, 0, 12, x)
    np.testing.assert_array_equal(raw, expected)
    np.testing.assert_array_equal(
        y, np.ldexp(expected.astype(np.float64), -(fmts[2][0] - fmts[2][1]))
    )


def _chain(n_in=6, n_out=3, accum=(20, 8, True, "trn", "wrap")):
    tensors = [
        ("x", [n_in], (12, 4, True, "rnd_conv", "sat")),
        ("y", [n_out], (20, 8, True, "trn", "wrap")),
    ]
    layer = {"name": "fc", "op": "dense", "inputs": [0], "output": 1,
             "weights": np.arange(n_in * n_out, dtype=np.int64) - 5, "weight_frac": 7,
             "weight_width": 8, "bias": np.ones(n_out, np.int64), "bias_frac": 3, "accum": accum}  # fmt: skip
    return tensors, [layer]


def test_network_errors_name_the_layer_and_value():
    tensors, layers = _chain()
    with pytest.raises(ValueError, match="operation 'softmax' is not supported"):
        _core.EmuNetwork(tensors, [{**layers[0], "op": "softmax"}], 0, 1)
    with pytest.raises(ValueError, match="layer 'fc': 17 weights for 6 x 3"):
        _core.EmuNetwork(tensors, [{**layers[0], "weights": np.zeros(17, np.int64)}], 0, 1)
    with pytest.raises(ValueError, match="layer 'fc': unknown key 'kernal'"):
        _core.EmuNetwork(tensors, [{**layers[0], "kernal": [3, 3]}], 0, 1)
    with pytest.raises(TypeError, match="'weights' must be a numpy int64 array"):
        _core.EmuNetwork(tensors, [{**layers[0], "weights": [1.0] * 18}], 0, 1)
    with pytest.raises(ValueError, match=r"products of .* need 63 bits"):
        _core.EmuNetwork([("x", [6], (55, 4, True, "trn", "wrap")), tensors[1]], layers, 0, 1)
    net = _core.EmuNetwork(tensors, layers, 0, 1)
    x = np.zeros((3, 6))
    x[2, 4] = np.nan
    with pytest.raises(ValueError, match="event 2, element 4 is not finite"):
        _core.emulate(net, x)
    with pytest.raises(TypeError):
        _core.emulate(net, np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"shape \(n_events, 6\)"):
        _core.emulate(net, np.zeros((3, 5)))


def test_threads_and_empty_batches_agree():
    tensors, layers = _chain(accum=(14, 6, True, "rnd", "sat"))  # step-by-step path
    net = _core.EmuNetwork(tensors, layers, 0, 1)
    x = np.random.default_rng(1).normal(0, 8, (1001, 6))
    y1 = _core.emulate(net, x, n_threads=1)
    assert np.array_equal(y1, _core.emulate(net, x, n_threads=3))
    assert np.array_equal(y1[:400], _core.emulate(net, np.ascontiguousarray(x[:400])))
    assert _core.emulate(net, np.zeros((0, 6))).shape == (0, 3)
    raw = ref.run_network([(n, tuple(s), f) for n, s, f in tensors], layers, 0, 1, x[:50])
    assert np.array_equal(_core.emulate(net, x[:50], raw=True)[1], raw)


# ---------------------------------------------------------------- against hls4ml C simulation

hls4ml_needed = pytest.mark.skipif(
    shutil.which("g++") is None, reason="hls4ml C simulation needs g++"
)


def _require_hls4ml():
    pytest.importorskip("hls4ml")
    pytest.importorskip("qkeras")


def _random_biases(model, seed, scale=0.4):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if len(ws) == 2 and ws[1].ndim == 1:
            layer.set_weights([ws[0], rng.normal(0, scale, ws[1].shape).astype(np.float32)])


@pytest.fixture(scope="module")
def dense_score(tmp_path_factory):
    """The deployed score of a tiny dense autoencoder (masked reconstruction error: mask,
    subtract, multiply, squares, sum and count) through poetml's conversion (bit_exact)."""
    _require_hls4ml()
    from test_firmware import FEATURES, _qkeras_dense_ae, _slots

    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.score_model import make_score_model

    model = _qkeras_dense_ae(seed=21)
    _random_biases(model, 21)
    rng = np.random.default_rng(3)
    x = _slots(rng.normal(0, 2, (4000, 19)), rng).astype(np.float32)
    cfg = FirmwareConfig()
    score = make_score_model(model, cfg, calibration=x[:2000], feature_names=FEATURES)
    hls_model = convert(score.model, tmp_path_factory.mktemp("emu_dense") / "hls", cfg)
    return hls_model, x


@hls4ml_needed
def test_dense_score_model_emulation_equals_csim(dense_score):
    from poetml.firmware.emulate import emulate, export_network

    hls_model, x = dense_score
    export = export_network(hls_model)
    ops = [layer["op"] for layer in export.layers]
    assert {"dense", "relu", "subtract", "multiply", "concatenate"} <= set(ops)
    y_c = np.asarray(hls_model.predict(x), np.float64).reshape(len(x), -1)
    y_e = emulate(export, x, n_threads=2)
    assert y_e.shape == y_c.shape == (len(x), 2)
    assert np.array_equal(y_e, y_c)  # 100 % of events and outputs, bit for bit
    assert len(np.unique(y_c[:, 0])) > 100  # not a degenerate output
    y_hls = emulate(hls_model, x[:100])  # straight from the ModelGraph too
    assert np.array_equal(y_hls, y_c[:100])


@hls4ml_needed
def test_saved_export_scores_as_the_network(dense_score, cnn_project, tmp_path):
    """emulator.npz (what `poetml score --firmware` reads) holds the whole network: read back,
    it scores bit for bit as the ModelGraph's export, with its meta; loading runs no code."""
    from poetml.exceptions import FirmwareError
    from poetml.firmware.emulate import emulate, export_network, load_export, save_export

    rng = np.random.default_rng(9)
    images = (rng.exponential(3.0, (200, 8, 8, 2)) * (rng.random((200, 8, 8, 2)) < 0.4)).astype(
        np.float32
    )
    for hls_model, x in ((dense_score[0], dense_score[1]), (cnn_project, images)):
        export = export_network(hls_model)
        path = save_export(export, tmp_path / "emulator.npz", {"threshold": 0.25, "k": [1, 2]})
        back, meta = load_export(path)
        assert meta == {"threshold": 0.25, "k": [1, 2]}
        assert np.array_equal(emulate(back, x), emulate(export, x))
        assert not list(tmp_path.glob(".*tmp*"))  # the temporary name is gone
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(FirmwareError, match=r"other\.npz: not a poetml emulator export"):
        load_export(tmp_path / "other.npz")
    (tmp_path / "obj.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(FirmwareError, match=r"obj\.npz"):
        load_export(tmp_path / "obj.npz")


@pytest.fixture(scope="module")
def cnn_project(tmp_path_factory):
    """A tiny quantized CNN (Conv2D 'same', ReLU, MaxPool, Flatten, Dense; io_stream)."""
    _require_hls4ml()
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.score_model import make_score_model

    tf.keras.utils.set_random_seed(31)
    q = quantized_bits(6, 0, alpha=1)
    inp = tf.keras.Input((8, 8, 2), name="image")
    x = QActivation(quantized_bits(10, 4, alpha=1), name="input_q")(inp)
    x = QConv2D(3, (3, 3), padding="same", kernel_quantizer=q, bias_quantizer=q, name="conv")(x)
    x = QActivation(quantized_relu(6, 2), name="conv_relu")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), name="pool")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(x)
    model = tf.keras.Model(inp, tf.keras.layers.Activation("softmax", name="softmax")(x))
    _random_biases(model, 31)
    cfg = FirmwareConfig()
    score = make_score_model(model, cfg)
    hls_model = convert(score.model, tmp_path_factory.mktemp("emu_cnn") / "hls", cfg)
    return hls_model


@hls4ml_needed
def test_cnn_emulation_equals_csim(cnn_project):
    from poetml.firmware.emulate import emulate, export_network

    rng = np.random.default_rng(5)
    x = (rng.exponential(3.0, (400, 8, 8, 2)) * (rng.random((400, 8, 8, 2)) < 0.4)).astype(
        np.float32
    )
    export = export_network(cnn_project)
    ops = [layer["op"] for layer in export.layers]
    assert {"zero_pad2d", "conv2d", "relu", "max_pool2d", "dense"} <= set(ops)
    y_c = np.asarray(cnn_project.predict(x), np.float64).reshape(len(x), -1)
    y_e = emulate(export, x)
    assert np.array_equal(y_e, y_c)
    assert len(np.unique(y_c[:, 2])) > 20


@pytest.fixture(scope="module")
def modes_project(tmp_path_factory):
    """A float Keras network converted with seeded random precisions and modes on every
    layer (not bit-exact: results round, saturate and wrap), including a BatchNormalization
    hls4ml keeps as a layer, an Add and a Concatenate."""
    _require_hls4ml()
    import hls4ml
    import tensorflow as tf

    tf.keras.utils.set_random_seed(41)
    L = tf.keras.layers
    inp = tf.keras.Input((10,), name="x")
    a = L.Dense(8, name="d1")(inp)
    a = L.Activation("relu", name="r1")(a)
    a = L.BatchNormalization(name="bn")(a)
    b = L.Dense(8, name="d2")(inp)
    s = L.Add(name="add")([a, b])
    c = L.Concatenate(name="cat")([s, a])
    out = L.Dense(4, name="d3")(c)
    model = tf.keras.Model(inp, out, name="modes")
    bn = model.get_layer("bn")
    rng = np.random.default_rng(41)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 1, 8), rng.normal(0, 0.5, 8),
                    rng.uniform(0.5, 2, 8)])  # fmt: skip
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
    pick = random.Random(41)
    for name, layer_cfg in cfg["LayerName"].items():
        prec = layer_cfg.get("Precision")
        if not isinstance(prec, dict):
            continue
        for key in prec:
            w = pick.randint(8, 18)
            q = pick.choice(list(AP_Q.values()))
            o = pick.choice(list(AP_O.values()))
            if key in ("weight", "bias", "scale"):
                prec[key] = f"ap_fixed<{w},{pick.randint(2, 5)}>"
            elif key == "accum":
                prec[key] = f"ap_fixed<{w + 6},{pick.randint(5, 9)},{q},{o}>"
            else:
                prec[key] = f"ap_fixed<{w},{pick.randint(3, 7)},{q},{o}>"
        cfg["LayerName"][name] = layer_cfg
    cfg["LayerName"]["x"]["Precision"] = {"result": "ap_fixed<14,5,AP_RND,AP_SAT>"}
    hls_model = hls4ml.converters.convert_from_keras_model(
        model,
        output_dir=str(tmp_path_factory.mktemp("emu_modes") / "hls"),
        backend="Vitis",
        hls_config=cfg,
        io_type="io_parallel",
    )
    hls_model.compile()
    return hls_model


@hls4ml_needed
def test_random_modes_emulation_equals_csim(modes_project):
    from poetml.firmware.emulate import emulate, export_network

    export = export_network(modes_project)
    fmts = {f for _, _, f in export.tensors} | {
        layer["accum"] for layer in export.layers if "accum" in layer
    }
    assert len({f[3] for f in fmts}) >= 3
    assert len({f[4] for f in fmts}) >= 2
    x = np.random.default_rng(6).normal(0, 3, (3000, 10)).astype(np.float32)
    y_c = np.asarray(modes_project.predict(x), np.float64).reshape(len(x), -1)
    y_e = emulate(export, x)
    assert np.array_equal(y_e, y_c)
    # the twin agrees too (on fewer events: it is slow)
    raw = ref.run_network(export.tensors, export.layers, export.input, export.output, x[:30])
    f = export.output_format[0] - export.output_format[1]
    assert np.array_equal(np.ldexp(raw.astype(np.float64), -f), y_c[:30])


@hls4ml_needed
def test_unsupported_layer_is_an_error_naming_it(cnn_project, tmp_path):
    """A network with an activation hls4ml computes by lookup table is refused, by name."""
    _require_hls4ml()
    import hls4ml
    import tensorflow as tf

    from poetml.firmware.emulate import export_network

    inp = tf.keras.Input((4,), name="x")
    out = tf.keras.layers.Dense(3, activation="sigmoid", name="fc")(inp)
    model = tf.keras.Model(inp, out)
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
    hls_model = hls4ml.converters.convert_from_keras_model(
        model, output_dir=str(tmp_path / "hls"), backend="Vitis", hls_config=cfg
    )
    with pytest.raises(UnsupportedLayerError, match=r"'fc_sigmoid'.*'sigmoid'"):
        export_network(hls_model)


def test_emulate_checks_the_input_width():
    from poetml.firmware.emulate import EmulatorExport, emulate

    tensors, layers = _chain()
    export = EmulatorExport(tuple((n, tuple(s), f) for n, s, f in tensors), tuple(layers), 0, 1)
    with pytest.raises(FirmwareError, match="takes 6 input values per event, got 5"):
        emulate(export, np.zeros((2, 5)))
    assert emulate(export, np.ones((2, 6), np.float32)).shape == (2, 3)


def test_import_stays_light():
    code = "import sys, poetml.firmware.emulate; assert 'tensorflow' not in sys.modules; assert 'hls4ml' not in sys.modules"
    subprocess.run([os.sys.executable, "-c", code], check=True)


@hls4ml_needed
def test_cpp_header_program_equals_python(modes_project, tmp_path):
    """The exported network as a C++ header: a small program compiled against the C++ core
    scores events exactly as the Python path (and so as the C simulation)."""
    from poetml.firmware.emulate import cpp_header, emulate, export_network

    export = export_network(modes_project)
    (tmp_path / "network.hpp").write_text(cpp_header(export, "modes_net"))
    (tmp_path / "main.cpp").write_text(
        '#include "network.hpp"\n#include <cstdio>\n#include <vector>\n'
        "int main() {\n  auto net = modes_net::network();\n"
        "  std::vector<double> x; double v;\n"
        '  while (std::scanf("%la", &v) == 1) x.push_back(v);\n'
        "  const long n = static_cast<long>(x.size()) / modes_net::kInputs;\n"
        "  std::vector<double> y(n * modes_net::kOutputs);\n"
        "  poetml::emu::emulate(net, x.data(), n, y.data(), nullptr, 2);\n"
        '  for (double o : y) std::printf("%a\\n", o);\n}\n'
    )
    include = Path(__file__).parents[1] / "cpp" / "include"
    exe = tmp_path / "score"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{include}",
                    str(tmp_path / "main.cpp"), "-o", str(exe), "-pthread"], check=True)  # fmt: skip
    x = np.random.default_rng(8).normal(0, 3, (500, 10))
    out = subprocess.run([str(exe)], input="\n".join(float(v).hex() for v in x.ravel()),
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    y = np.array([float.fromhex(t) for t in out]).reshape(len(x), -1)
    assert np.array_equal(y, emulate(export, x))


@hls4ml_needed
@pytest.mark.slow
def test_firmware_report_shows_emulator_agreement(tmp_path, monkeypatch):
    """``build_firmware`` scores every event with the emulator, C-simulates a referee sample
    (made smaller than the events here), and reports and prints their agreement."""
    _require_hls4ml()
    from test_firmware import FEATURES, _qkeras_dense_ae, _slots

    from poetml.firmware import FirmwareConfig, build
    from poetml.firmware.summary import result_summary

    model = _qkeras_dense_ae(seed=22)
    _random_biases(model, 22)
    rng = np.random.default_rng(4)
    bkg = _slots(rng.normal(0, 2, (3000, 19)), rng).astype(np.float32)
    sig = _slots(rng.normal(0.5, 3, (600, 19)), rng).astype(np.float32)
    res = build.build_firmware(model, tmp_path / "fw",
                               FirmwareConfig(rate_khz=400.0, referee_events=1000),
                               background=bkg, signals={"BSM": sig}, feature_names=FEATURES,
                               progress=False)  # fmt: skip
    emu = res.report["emulator"]
    assert emu["available"]
    assert emu["agrees"]
    assert emu["n_events"] == 3600
    assert 500 <= emu["n_referee_events"] <= 1000
    assert emu["exact_fraction"] == 1.0
    assert res.report["trigger_csim"]["fire_matches"]
    assert res.report["trigger_csim"]["score_matches"]
    assert res.passed
    assert "Bit-exact C++ emulator: scored all 3600 events" in res.markdown
    header = Path(emu["header"])
    assert header == tmp_path / "fw" / "emulator" / "emulator.hpp"
    assert "inline poetml::emu::Network network()" in header.read_text()
    # the standalone program written beside it fires on the events as the report counts
    # (threshold and efficiency computed by the Python path from the same emulator outputs)
    import poetml

    exe = tmp_path / "score_features"
    subprocess.run(["g++", "-std=c++17", "-O2", "-pthread", f"-I{poetml.get_include()}",
                    emu["program"], "-o", str(exe)], check=True)  # fmt: skip
    np.save(tmp_path / "x.npy", np.concatenate([bkg, sig]))
    out = subprocess.run([str(exe), str(tmp_path / "x.npy")], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]  # fmt: skip
    fire = np.array([t.split()[2] == "1" for t in out])
    assert fire[: len(bkg)].sum() == res.report["threshold"]["n_pass"] > 0
    assert fire[len(bkg) :].mean() == res.report["validation"]["signals"]["BSM"]["eff_csim"]
    lines = [text for text, _ in result_summary(res).lines]
    assert any(t.startswith("emulator vs C simulation on ") and "PASS" in t for t in lines)


@hls4ml_needed
def test_latent_score_io_stream_with_clone_equals_csim(tmp_path):
    """The encoder-only latent score (||q(z)||^2) in io_stream, where hls4ml fans the latent
    stream out with a Clone layer for the square."""
    _require_hls4ml()
    from test_firmware import _qkeras_dense_ae

    from poetml.firmware import FirmwareConfig
    from poetml.firmware.convert import convert
    from poetml.firmware.emulate import emulate
    from poetml.firmware.score_model import make_score_model

    model = _qkeras_dense_ae(seed=23)
    _random_biases(model, 23)
    x = np.random.default_rng(9).normal(0, 2, (1500, 19)).astype(np.float32)
    cfg = FirmwareConfig(score="latent", io_type="io_stream")
    score = make_score_model(model, cfg, calibration=x)
    hls_model = convert(score.model, tmp_path / "hls", cfg)
    assert any(type(layer).__name__.endswith("Clone") for layer in hls_model.get_layers())
    y_c = np.asarray(hls_model.predict(x), np.float64).reshape(len(x), -1)
    assert np.array_equal(emulate(hls_model, x), y_c)
    assert len(np.unique(y_c)) > 100
