"""Firmware stage: tiny seeded QKeras models -> hls4ml projects, checked bit for bit.

Compiled projects are module-scoped fixtures (each g++ build of an hls4ml project takes
seconds): a dense autoencoder goes through the whole ``poetml firmware`` command, a small
quantized CNN classifier through conversion, hls4ml's ``predict`` and the batched C simulation.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hls4ml", reason="hls4ml is not installed (the firmware extra)")
pytest.importorskip("qkeras", reason="QKeras is not installed (the learn extra)")

from poetml.config import from_mapping, parse
from poetml.exceptions import ConfigError
from poetml.firmware import FirmwareConfig
from poetml.firmware.trigger import Threshold, threshold_for_rate

FIXTURES = Path(__file__).parent / "fixtures"


def _qkeras_dense_ae(seed: int = 3):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    w, b = quantized_bits(8, 0, alpha=1), quantized_bits(8, 3, alpha=1)
    inp = tf.keras.Input((19,), name="features")
    x = QActivation(quantized_bits(14, 5, alpha=1), name="input_q")(inp)
    x = QDense(12, kernel_quantizer=w, bias_quantizer=b, name="enc1")(x)
    x = QActivation(quantized_relu(8, 3), name="enc1_relu")(x)
    z = QDense(4, kernel_quantizer=w, bias_quantizer=b, name="latent")(x)
    x = QDense(12, kernel_quantizer=w, bias_quantizer=b, name="dec1")(z)
    x = QActivation(quantized_relu(8, 3), name="dec1_relu")(x)
    out = QDense(19, kernel_quantizer=w, bias_quantizer=b, name="reco")(x)
    return tf.keras.Model(inp, out, name="tiny_ae")


def _qkeras_cnn(seed: int = 4):
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((8, 8, 2), name="image")
    x = QActivation(quantized_bits(10, 4, alpha=1), name="input_q")(inp)
    x = QConv2D(3, (3, 3), kernel_quantizer=quantized_bits(6, 0, alpha=1),
                bias_quantizer=quantized_bits(6, 0, alpha=1), name="conv")(x)  # fmt: skip
    x = QActivation(quantized_relu(6, 2), name="conv_relu")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), name="pool")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=quantized_bits(6, 0, alpha=1),
               bias_quantizer=quantized_bits(6, 0, alpha=1), name="logits")(x)  # fmt: skip
    out = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inp, out, name="tiny_cnn")


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.exponential(3.0, (n, 8, 8, 2)) * (rng.random((n, 8, 8, 2)) < 0.3)
    return x.astype(np.float32)


# ---------------------------------------------------------------- dense autoencoder, CLI

FEATURES = [f"{obj}_{f}" for obj in ("met", "muon_0", "muon_1", "jet_0", "jet_1", "jet_2")
            for f in ("pt", "eta", "phi")] + ["ht"]  # fmt: skip


def _slots(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Feature-slot-like inputs: pT >= 0, and about a third of the object slots empty (zeros)."""
    x = x.copy()
    for k in range(6):
        x[:, 3 * k] = np.abs(x[:, 3 * k])
        if k:
            x[rng.random(len(x)) < 0.35, 3 * k : 3 * k + 3] = 0.0
    x[:, 18] = np.abs(x[:, 18])
    return x


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    """``poetml firmware MODEL_DIR --rate-khz 100 -o OUT --synth`` on a saved tiny autoencoder."""
    from poetml.cli import main

    d = tmp_path_factory.mktemp("fw_dense")
    model_dir = d / "model"
    model_dir.mkdir()
    model = _qkeras_dense_ae()
    model.save(model_dir / "model.h5", include_optimizer=False, save_format="h5")
    (model_dir / "metadata.json").write_text(json.dumps({"variant": "quantized"}))
    rng = np.random.default_rng(0)
    bkg = _slots(rng.normal(0, 2, (6000, 19)), rng)
    sig = _slots(rng.normal(0.5, 3, (800, 19)), rng)
    np.savez(
        model_dir / "test_events.npz",
        x=np.concatenate([bkg, sig]).astype(np.float32),
        labels=np.r_[np.zeros(6000, int), np.ones(800, int)],
        label_names=np.array(["SM", "BSM"]),
        feature_names=np.array(FEATURES),
    )
    out = d / "fw"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as so:
        rc = main(["firmware", str(model_dir), "--rate-khz", "100", "-o", str(out), "--synth",
                   "--no-progress"])  # fmt: skip
    report = json.loads((out / "firmware.json").read_text())
    return {"rc": rc, "stderr": err.getvalue(), "stdout": so.getvalue(), "out": out,
            "report": report, "model": model, "bkg": bkg.astype(np.float32)}  # fmt: skip


def test_dense_ae_csim_equals_qkeras_score_model(dense_run):
    r = dense_run["report"]
    a = r["validation"]["agreement"]
    assert a["n_events"] == 6800
    assert a["exact_fraction"] == 1.0
    assert a["max_diff_lsb"] == 0.0
    assert r["validation"]["passed"] is True
    assert r["score_kind"] == "reconstruction"
    assert r["io_type"] == "io_parallel"
    assert r["validation"]["trace"] is None
    assert set(r["validation"]["signals"]) == {"BSM"}
    s = r["validation"]["signals"]["BSM"]
    assert s["auc_shift"] == 0.0
    assert s["eff_shift"] == 0.0
    assert 0.0 < s["auc_csim"] < 1.0
    md = (dense_run["out"] / "firmware.md").read_text()
    assert "| 6800 | 1.000000 | 1.000000 | 0 | PASS |" in md


def _quantizers(note: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split(")")[0].split(","))
            for part in note.split("quantized_bits(")[1:]]  # fmt: skip


def test_dense_ae_score_is_masked_reconstruction_error(dense_run):
    """The firmware outputs the squared reconstruction errors of the present objects, summed;
    recomputed here with NumPy from the model's reconstruction."""
    from poetml.firmware.build import load_firmware_inputs
    from poetml.firmware.score_model import make_score_model
    from poetml.models.autoencoder import slot_pt_index
    from poetml.models.quantized import quantize_fixed

    inputs = load_firmware_inputs(dense_run["out"].parent / "model")
    assert inputs.model_path.name == "model.h5"
    assert inputs.feature_names == tuple(FEATURES)
    note = dense_run["report"]["notes"][-1]
    assert "absent objects" in note
    (e_bits, e_int), (s_bits, s_int) = _quantizers(note)
    x = dense_run["bkg"][:300]
    xq = quantize_fixed(x, 14, 5).astype(np.float64)  # the model's input quantizer
    reco = dense_run["model"].predict(x, verbose=0).astype(np.float64)
    present = xq[:, slot_pt_index(FEATURES)] != 0
    assert 0.3 < present.mean() < 0.9
    err = quantize_fixed((xq - reco) * 1.5 * present, e_bits, e_int).astype(np.float64)
    expected = quantize_fixed(err**2, s_bits, s_int).astype(np.float64).sum(axis=1)
    sm = make_score_model(inputs.model, FirmwareConfig(), dense_run["bkg"], inputs.feature_names)
    assert sm.kind == "reconstruction"
    assert sm.denominator_index == 1
    got = sm.model.predict(x, verbose=0)
    np.testing.assert_array_equal(got[:, 0], expected)
    np.testing.assert_array_equal(got[:, 1], 1.5 * present.sum(axis=1))
    # the anomaly score is their ratio: 1.5 x the offline masked mean squared error
    offline = ((err / 1.5) ** 2).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    np.testing.assert_allclose(sm.scores(got), 1.5 * offline, rtol=0.05, atol=1e-3)
    # the C simulation separates the signal as the model does: AUC of the deployed score
    assert dense_run["report"]["validation"]["signals"]["BSM"]["auc_csim"] > 0.7


def test_dense_ae_latent_score_is_encoder_latent_norm(dense_run):
    """With score: latent the firmware outputs ||q(z)||^2 of the trained encoder."""
    import tensorflow as tf
    from qkeras import quantized_bits

    from poetml.firmware.score_model import make_score_model

    model = dense_run["model"]
    sm = make_score_model(model, FirmwareConfig(score="latent"), calibration=dense_run["bkg"])
    assert sm.kind == "latent"
    ((bits, ibits),) = _quantizers(sm.notes[-1])
    enc = tf.keras.Model(model.inputs, model.get_layer("latent").output)
    z = enc.predict(dense_run["bkg"][:200], verbose=0)
    zq = quantized_bits(bits, ibits, alpha=1)(z).numpy().astype(np.float64)
    got = sm.model.predict(dense_run["bkg"][:200], verbose=0)[:, 0]
    np.testing.assert_array_equal(got, (zq**2).sum(axis=1))


def test_trigger_threshold_constant_and_csim(dense_run):
    r = dense_run["report"]
    t = r["threshold"]
    assert t["target_fpr"] == pytest.approx(100e3 / 40e6)
    assert t["n_background"] == 6000
    assert t["n_pass"] <= int(t["target_fpr"] * 6000)
    assert t["rate_khz"] <= 100.0
    trig = r["trigger_csim"]
    assert trig == {**trig, "n_events": 6800, "fire_matches": True, "score_matches": True}
    assert trig["background_fire_fraction"] == t["fpr"]
    # the score is the ratio sum / count: the constant lies on its own 2^-24 grid and the
    # firmware compares without dividing
    header = (Path(r["project_dir"]) / "firmware" / "trigger.h").read_text()
    assert f"kTriggerThreshold = {float(t['value'])!r};" in header
    grid = 2.0**24
    assert float(t["value"]) * grid == round(float(t["value"]) * grid)
    assert "typedef ap_fixed<" in header
    assert re.search(r"static const ap_ufixed<\d+,\d+> kTriggerThreshold", header)
    cpp = (Path(r["project_dir"]) / "firmware" / "trigger.cpp").read_text()
    assert "fire = score > kTriggerThreshold * result[1];" in cpp
    assert r["trigger_rule"].startswith("output 0 > threshold x output 1")


def test_synth_flag_without_tool_fails_clearly(dense_run):
    from poetml.firmware.synth import find_tool

    if find_tool("Vitis"):
        pytest.skip("a Vitis HLS tool is on PATH: synthesis ran (see test_synthesis_with_tool)")
    assert dense_run["rc"] == 1
    assert "no Vitis HLS tool" in dense_run["stderr"]
    assert "build_prj.tcl" in dense_run["stderr"]
    assert (Path(dense_run["report"]["project_dir"]) / "build_prj.tcl").exists()
    assert dense_run["report"]["synthesis"]["status"].startswith("not run")
    assert "exact 1.000000" in dense_run["stdout"]


@pytest.mark.synth
def test_synthesis_with_tool(dense_run):
    from poetml.firmware.synth import find_tool

    if not find_tool("Vitis"):
        pytest.skip("no vitis-run/vitis_hls on PATH")
    syn = dense_run["report"]["synthesis"]
    assert syn["status"] == "done"
    assert syn["latency_worst_cycles"] >= 1
    assert syn["lut"] > 0


def test_cost_estimate_counts_nonzero_products(dense_run):
    cost = dense_run["report"]["cost_estimate"]
    assert cost["estimate"] is True
    assert "ESTIMATE" in cost["note"]
    model = dense_run["model"]
    from qkeras import quantized_bits

    by_layer = {row["layer"]: row for row in cost["layers"]}
    for name in ("enc1", "latent", "dec1", "reco"):
        kernel = model.get_layer(name).get_weights()[0]
        nnz = int(np.count_nonzero(quantized_bits(8, 0, alpha=1)(kernel).numpy()))
        assert by_layer[name]["multiplications"] == nnz
    assert by_layer["reco_sq"]["multiplications"] == 19
    assert cost["multiplications"] == sum(row["multiplications"] for row in cost["layers"])
    assert cost["bops"] > cost["multiplications"]


# ---------------------------------------------------------------- quantized CNN


@pytest.fixture(scope="module")
def cnn_project(tmp_path_factory):
    from poetml.firmware.convert import convert
    from poetml.firmware.score_model import make_score_model

    cfg = FirmwareConfig()
    model = _qkeras_cnn()
    score = make_score_model(model, cfg)
    d = tmp_path_factory.mktemp("fw_cnn")
    hls_model = convert(score.model, d / "hls", cfg, compile=True)
    return {"model": model, "score": score, "hls": hls_model, "dir": d / "hls", "cfg": cfg}


def test_cnn_softmax_removed_outputs_logits(cnn_project):
    import tensorflow as tf

    score = cnn_project["score"]
    assert score.kind == "logits"
    assert score.score_index == 2
    model = cnn_project["model"]
    logits = tf.keras.Model(model.inputs, model.get_layer("logits").output)
    x = _images(50, 1)
    np.testing.assert_array_equal(score.model.predict(x, verbose=0), logits.predict(x, verbose=0))


def test_cnn_csim_exact_and_batched_equals_predict(cnn_project):
    from poetml.firmware.csim import CSim, build_csim_library, top_signature

    hls_model = cnn_project["hls"]
    assert hls_model.config.get_config_value("IOType") == "io_stream"
    x = _images(600, 2)
    y_q = cnn_project["score"].model.predict(x, verbose=0).astype(np.float64)
    y_p = np.asarray(hls_model.predict(x), np.float64).reshape(y_q.shape)
    sig = top_signature(cnn_project["dir"], "poetml_nn", 128, 3)
    assert sig.io_stream
    lib = build_csim_library(cnn_project["dir"], sig)
    with CSim(lib, workers=2, chunk=64) as sim:
        y_c = sim.predict(x, progress=False)
    np.testing.assert_array_equal(y_c, y_p)  # batched C++ loop == hls4ml predict
    np.testing.assert_array_equal(y_c, y_q)  # == QKeras, bit for bit
    assert len(np.unique(y_c[:, 2])) > 10  # not a degenerate constant output


def test_trace_pinpoints_first_diverging_layer(cnn_project):
    """A QKeras twin whose last layer has other weights diverges exactly at that layer."""
    import tensorflow as tf
    from qkeras.utils import _add_supported_quantized_objects

    from poetml.firmware.validate import first_divergence, layer_trace, trace_text

    score = cnn_project["score"].model
    objs: dict = {}
    _add_supported_quantized_objects(objs)
    with tf.keras.utils.custom_object_scope(objs):
        twin = tf.keras.models.clone_model(score)
    twin.set_weights(score.get_weights())
    kernel, bias = twin.get_layer("logits").get_weights()
    twin.get_layer("logits").set_weights([-kernel, bias])
    x = _images(1, 3)
    _, hls_trace = cnn_project["hls"].trace(x)
    rows = layer_trace(twin, cnn_project["hls"], x, hls_trace)
    same = layer_trace(score, cnn_project["hls"], x, hls_trace)
    assert first_divergence(same) is None
    first = first_divergence(rows)
    assert first is not None
    assert first["layer"] == "logits"
    assert {r["layer"]: r["agree"] for r in rows}["conv_relu"] is True
    assert "<-- first divergence" in trace_text(rows, 0).splitlines()[-1]


def test_unsupported_layer_names_layer_and_alternative(tmp_path):
    import tensorflow as tf

    from poetml.firmware.convert import UnsupportedLayerError, convert

    inp = tf.keras.Input((6,))
    x = tf.keras.layers.Dense(4, name="dense")(inp)
    x = tf.keras.layers.Lambda(lambda t: t * t, name="square_lambda")(x)
    model = tf.keras.Model(inp, x, name="with_lambda")
    with pytest.raises(UnsupportedLayerError) as info:
        convert(model, tmp_path / "hls", FirmwareConfig())
    msg = str(info.value)
    assert "'square_lambda' (Lambda)" in msg
    assert "AXOL1TL" in msg
    assert "CICADA" in msg
    assert not (tmp_path / "hls").exists()


def test_autoencoder_must_deploy_a_score():
    from poetml.exceptions import FirmwareError
    from poetml.firmware.score_model import make_score_model

    with pytest.raises(FirmwareError, match="must output the anomaly score"):
        make_score_model(_qkeras_dense_ae(), FirmwareConfig(score="output"), np.zeros((5, 19)))
    with pytest.raises(FirmwareError, match="calibration events"):
        make_score_model(_qkeras_dense_ae(), FirmwareConfig(), None)
    with pytest.raises(FirmwareError, match="'reconstruction' is for autoencoders"):
        make_score_model(_qkeras_cnn(), FirmwareConfig(score="reconstruction"))


def test_conv_autoencoder_without_bit_exact_decoder_falls_back_to_latent():
    """hls4ml 1.3 has no bit-exact rule for UpSampling2D: auto deploys the encoder-only score
    and says why; asking for the reconstruction names the layer and the alternative."""
    from poetml.exceptions import UnsupportedLayerError
    from poetml.firmware.score_model import make_score_model
    from poetml.models import ModelConfig, build

    model = build(ModelConfig(type="conv_ae", filters=(2,), latent_dim=3), (4, 4, 2),
                  quantized=True)  # fmt: skip
    calib = _images(20, 5)[:, :4, :4, :]
    sm = make_score_model(model, FirmwareConfig(), calib)
    assert sm.kind == "latent"
    assert any("UpSampling2D" in n and "encoder-only" in n for n in sm.notes)
    with pytest.raises(UnsupportedLayerError, match=r"'dec_up_0' \(UpSampling2D\).*score: latent"):
        make_score_model(model, FirmwareConfig(score="reconstruction"), calib)


# ---------------------------------------------------------------- pure functions


def test_threshold_for_rate_counts_and_ties():
    scores = np.r_[np.arange(1000.0), [998.0, 998.0]]  # n = 1002
    t = threshold_for_rate(scores, rate_khz=40e3 * 4 / 1002, collision_rate_mhz=40.0)
    # k = 4 events allowed: sorted desc 999, 998, 998, 998, 997 -> threshold 997, 4 pass
    assert t.value == 997.0
    assert t.n_pass == 4
    assert t.fpr == 4 / 1002
    assert t.warning is not None  # fewer than 10 events above the threshold
    ties = threshold_for_rate(np.r_[np.zeros(90), np.ones(10)], rate_khz=40e3 * 0.05)
    assert ties.value == 1.0
    assert ties.n_pass == 0
    few = threshold_for_rate(np.arange(10.0), rate_khz=1.0)
    assert few.value == 9.0
    assert few.n_pass == 0
    assert "cannot resolve" in few.warning
    assert isinstance(t, Threshold)
    from poetml.exceptions import FirmwareError

    with pytest.raises(FirmwareError, match="non-finite"):
        threshold_for_rate(np.array([1.0, np.nan]), 1.0)


def test_rank_auc_matches_pairwise_definition():
    from poetml.firmware.validate import rank_auc

    rng = np.random.default_rng(5)
    b = rng.integers(0, 20, 300).astype(float)
    s = rng.integers(5, 25, 200).astype(float)
    pairwise = ((s[:, None] > b[None, :]) + 0.5 * (s[:, None] == b[None, :])).mean()
    assert rank_auc(b, s) == pytest.approx(pairwise, abs=1e-12)
    assert rank_auc(b, b + 100) == 1.0


def test_agreement_and_tolerance():
    from poetml.firmware.validate import agreement, within_tolerance

    ref = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    out = ref.copy()
    out[1, 1] += 0.5
    a = agreement(ref, out, lsb=0.25)
    assert a["exact_fraction"] == 5 / 6
    assert a["exact_event_fraction"] == 2 / 3
    assert a["max_diff_lsb"] == 2.0
    assert a["first_disagreeing_event"] == 1
    assert not within_tolerance(a, 1.0, 0.0)
    assert not within_tolerance(a, 0.8, 1.0)
    assert within_tolerance(a, 0.8, 2.0)


def test_parse_csynth_fixture():
    from poetml.firmware.synth import parse_csynth_xml

    r = parse_csynth_xml(FIXTURES / "firmware_csynth.xml")
    assert r["top"] == "poetml_nn"
    assert r["part"] == "xcvu13p-flga2577-2-e"
    assert (r["latency_best_cycles"], r["latency_worst_cycles"]) == (9, 11)
    assert r["latency_worst_ns"] == pytest.approx(55.0)
    assert (r["interval_min_cycles"], r["interval_max_cycles"]) == (1, 1)
    assert (r["lut"], r["ff"], r["dsp"], r["bram_18k"], r["uram"]) == (23455, 6021, 37, 0, 0)
    assert r["available_dsp"] == 12288
    assert r["estimated_clock_ns"] == pytest.approx(3.412)


def test_parse_csynth_rejects_other_xml(tmp_path):
    from poetml.exceptions import FirmwareError
    from poetml.firmware.synth import parse_csynth_xml

    bad = tmp_path / "x.xml"
    bad.write_text("<profile><Other/></profile>")
    with pytest.raises(FirmwareError, match="not a csynth report"):
        parse_csynth_xml(bad)


def test_synthesis_without_tool_raises(tmp_path):
    from poetml.firmware.synth import SynthesisUnavailable, find_tool, run_synthesis

    if find_tool("Vivado"):
        pytest.skip("vivado_hls is on PATH")
    with pytest.raises(SynthesisUnavailable, match=re.escape("vivado_hls -f build_prj.tcl")):
        run_synthesis(tmp_path, "poetml_nn", "Vivado")


def test_firmware_config_section():
    cfg = parse({"firmware": {"backend": "Vivado", "rate_khz": 2, "reuse_factor": 4}}).firmware
    assert cfg == FirmwareConfig(backend="Vivado", rate_khz=2.0, reuse_factor=4)
    assert cfg.target_fpr == pytest.approx(5e-5)
    with pytest.raises(ConfigError, match="valid keys: backend"):
        from_mapping(FirmwareConfig, {"bakend": "Vitis"})
    with pytest.raises(ConfigError, match="not one of"):
        from_mapping(FirmwareConfig, {"backend": "Quartus"})
    with pytest.raises(ConfigError, match="not below the collision rate"):
        from_mapping(FirmwareConfig, {"rate_khz": 50000})


def test_ratio_threshold_on_a_weighted_stream():
    """The sum / count score on weighted background: the threshold keeps the weighted rate
    of ``num > t x den`` at or below the target, on the 2^-24 grid, and reports it."""
    from poetml import rates
    from poetml.firmware.trigger import ratio_threshold

    rng = np.random.default_rng(4)
    den = rng.integers(1, 20, 5000).astype(np.float64)
    num = np.round(rng.exponential(2.0, 5000) * den * 256) / 256
    w = np.where(rng.random(5000) < 0.1, 50.0, 0.5)  # a rare heavy process
    beam = rates.Beam()
    target = 0.02 * w.sum() * beam.khz_per_pb
    t = ratio_threshold(num, den, target, weights_pb=w, beam=beam)
    fires = num > t.value * den
    assert t.value * 2.0**24 == round(t.value * 2.0**24)
    assert t.rate_khz == pytest.approx(w[fires].sum() * beam.khz_per_pb)
    assert t.rate_khz <= target * (1 + 1e-9)
    assert t.n_pass == int(fires.sum())
    assert t.rate_khz_err == pytest.approx(np.sqrt((w[fires] ** 2).sum()) * beam.khz_per_pb)
    # the unrounded threshold is the evaluation's (one threshold function)
    ratio = num / den
    assert t.value >= rates.threshold_for_rate_weighted(ratio, w, target, beam)


def test_build_firmware_sets_the_threshold_on_the_weighted_stream(tmp_path):
    """``poetml firmware`` on weighted background: the threshold in trigger.h is the one the
    weighted working point gives, its rate (from the weights) at or below the target."""
    from poetml import rates
    from poetml.firmware import FirmwareConfig
    from poetml.firmware.build import build_firmware

    rng = np.random.default_rng(0)
    bkg = _slots(rng.normal(0, 2, (3000, 19)), rng).astype(np.float32)
    w = np.where(rng.random(3000) < 0.2, 40.0, 1.0)
    beam = rates.Beam(luminosity=1e33)
    target = 0.01 * w.sum() * beam.khz_per_pb
    res = build_firmware(
        _qkeras_dense_ae(),
        tmp_path / "fw",
        FirmwareConfig(rate_khz=target),
        background=bkg,
        feature_names=FEATURES,
        progress=False,
        background_weights=w,
        beam=beam,
    )
    t = res.report["threshold"]
    assert t["rate_khz"] <= target * (1 + 1e-9)
    assert t["rate_khz"] > 0.5 * target  # the stream resolves it: a tight working point
    assert t["n_pass"] > 10
    header = (tmp_path / "fw" / "hls" / "firmware" / "trigger.h").read_text()
    assert f"kTriggerThreshold = {float(t['value'])!r};" in header
    # the C simulation's trigger_decision on the whole background gives that rate
    trig = res.report["trigger_csim"]
    assert trig["rate_sample"] == "all"
    assert trig["weighted"]
    assert trig["rate_khz"] == pytest.approx(t["rate_khz"], rel=1e-12)
    assert trig["rate_khz_err"] == pytest.approx(t["rate_khz_err"], rel=1e-12)
    assert "Rate of the C simulation's trigger decision on the whole background" in res.markdown
