"""Model builders: shapes, QKeras twins, masked loss, pruning, save/load round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest

from poetml.models import ModelConfig, PruningConfig, QuantizationConfig, build

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
pytest.importorskip("qkeras", reason="QKeras is not installed (the learn extra)")


def _cnn_cfg(**kw):
    return ModelConfig(type="cnn", filters=(2, 3), dense=(4,), **kw)


def test_cnn_and_quantized_twin():
    f = build(_cnn_cfg(), (8, 8, 4), 3)
    q = build(
        _cnn_cfg(quantization=QuantizationConfig(bits=6, integer=0)), (8, 8, 4), 3, quantized=True
    )
    assert f.output_shape == (None, 3)
    assert q.output_shape == (None, 3)
    assert type(q.layers[1]).__name__ == "QActivation"
    assert q.layers[1].name == "input_quant"
    weighted = lambda m: [
        (l.name, [w.shape for w in l.get_weights()]) for l in m.layers if l.get_weights()
    ]
    assert weighted(f) == weighted(q)  # same names and shapes: weights are comparable
    kinds = {type(l).__name__ for l in q.layers}
    assert {"QConv2D", "QDense", "QActivation"} <= kinds
    assert "BatchNormalization" not in kinds
    assert "quantized_bits(6,0" in str(q.get_layer("conv_0").kernel_quantizer).replace(" ", "")
    x = np.random.default_rng(0).random((5, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(q.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="needs images"):
        build(_cnn_cfg(), (57,), 3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        build(_cnn_cfg(), (8, 8, 4), 1)


def test_dense_autoencoder_baseline_and_masked_loss():
    from poetml.models.autoencoder import masked_mse_class, reconstruction_error, slot_pt_index

    ae = build(ModelConfig(type="dense_ae"), (57,))
    widths = [l.units for l in ae.layers if hasattr(l, "units")]
    assert widths == [32, 16, 3, 16, 32, 57]  # qcd_school_ml baseline
    assert ae.get_layer("latent").units == 3
    qae = build(ModelConfig(type="dense_ae", batchnorm=True), (57,), quantized=True)
    assert qae.output_shape == (None, 57)

    names = ["met_pt", "met_eta", "met_phi", "mu_0_pt", "mu_0_eta", "mu_0_phi", "ht"]
    idx = slot_pt_index(names)
    assert idx == [0, 0, 0, 3, 3, 3, 6]
    y = np.array([[10.0, 0.0, 1.0, 0.0, 0.0, 0.0, 5.0]], np.float32)  # muon slot padded
    p1 = np.array([[9.0, 0.0, 1.0, 0.0, 0.0, 0.0, 5.0]], np.float32)
    p2 = p1.copy()
    p2[0, 3:6] = [50.0, -3.0, 2.0]  # garbage in the padded slot only
    loss = masked_mse_class()(idx)
    l1, l2 = float(loss(y, p1)), float(loss(y, p2))
    assert l1 == pytest.approx(1.0 / 4.0)  # 4 present entries: met (3) + ht
    assert l2 == l1
    np.testing.assert_allclose(reconstruction_error(y, p2, idx), [l1], rtol=1e-6)
    assert reconstruction_error(y, p2)[0] > l1  # unmasked MSE sees the padded slot


def test_conv_autoencoder_shapes_and_errors():
    cae = build(ModelConfig(type="conv_ae", filters=(2, 2), latent_dim=4), (8, 8, 3))
    assert cae.output_shape == (None, 8, 8, 3)
    assert cae.get_layer("latent").units == 4
    qcae = build(ModelConfig(type="conv_ae", filters=(2,)), (4, 4, 1), quantized=True)
    assert qcae.output_shape == (None, 4, 4, 1)
    with pytest.raises(ValueError, match="divisible by 4"):
        build(ModelConfig(type="conv_ae", filters=(2, 2)), (6, 8, 3))


def test_pruning_reaches_sparsity_excludes_bottleneck_and_round_trips(tmp_path):
    from poetml import training
    from poetml.datasets.scalers import Preprocessing, Scaler
    from poetml.models import pruning
    from poetml.models.autoencoder import masked_mse_class

    cfg = ModelConfig(type="dense_ae", hidden=(8,), latent_dim=2)
    q = build(cfg, (6,), quantized=True)
    x = np.random.default_rng(1).random((64, 6)).astype(np.float32)
    before = q.get_layer("enc_0").get_weights()[0].copy()
    p = pruning.prune(q, 0.75, exclude=("latent",), frequency=1)
    np.testing.assert_array_equal(q.get_layer("enc_0").get_weights()[0], before)  # a copy
    tcfg = training.TrainingConfig(epochs=2, batch_size=16, verbose=0)
    hist = training.fit(
        p, x, x, x, x, tcfg, loss=masked_mse_class()(None), callbacks=pruning.callbacks()
    )
    assert len(hist["loss"]) == 2
    s = pruning.strip(p)
    sp = pruning.sparsity(s)
    assert sp["enc_0"] == pytest.approx(0.75, abs=0.02)
    assert sp["output"] == pytest.approx(0.75, abs=0.02)
    assert sp["latent"] < 0.5
    assert not any("prune" in l.name for l in s.layers)
    with pytest.raises(ValueError, match="cannot exclude"):
        pruning.prune(q, 0.5, exclude=("bottleneck",))

    prep = Preprocessing(
        Scaler("features", tuple("abcdef"), (1.0,) * 6, (False,) * 6),
        12,
        4,
        ("background",),
        (6,),
        "features",
    )
    d = training.save_model_dir(
        tmp_path / "m",
        s,
        prep,
        config={"variant": "quantized_pruned"},
        history=hist,
        metadata={"sparsity": sp},
    )
    assert training.is_complete(d)
    assert not list(tmp_path.glob(".m.tmp*"))
    back = training.load_model_dir(d)
    np.testing.assert_allclose(
        back.model.predict(x, verbose=0), s.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert type(back.model.get_layer("enc_0")).__name__ == "QDense"
    assert back.preprocessing == prep
    assert back.history["loss"] == hist["loss"]
    assert pruning.sparsity(back.model)["enc_0"] == sp["enc_0"]


def test_input_quantizer_matches_numpy_twin():
    from poetml.models.quantized import input_quantizer, quantize_fixed

    q = QuantizationConfig(input_bits=10, input_integer=3)
    x = np.random.default_rng(2).normal(0, 6, 1000).astype(np.float32)
    got = np.asarray(input_quantizer(q)(x))
    np.testing.assert_array_equal(got, quantize_fixed(x, 10, 3))


def test_config_validation():
    with pytest.raises(ValueError, match=re.escape("integer must be in 0..7")):
        QuantizationConfig(bits=8, integer=8)
    with pytest.raises(ValueError, match="sparsity"):
        PruningConfig(sparsity=1.0)
