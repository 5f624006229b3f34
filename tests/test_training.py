"""Training loop: fixed seeds reproduce, early stopping restores the best weights, histories."""

from __future__ import annotations

import numpy as np
import pytest

from poetml import training
from poetml.models import ModelConfig, build

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((96, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > x[:, 4:].sum(axis=(1, 2, 3))).astype(np.int32)
    return x, y


def test_same_seed_same_weights_and_history():
    x, y = _data()
    cfg = training.TrainingConfig(epochs=2, batch_size=32, verbose=0, seed=7)
    mcfg = ModelConfig(filters=(2,), dense=(4,))
    runs = []
    for _ in range(2):
        training.set_seeds(cfg)
        m = build(mcfg, (8, 8, 1), 2)
        h = training.fit(
            m,
            x[:64],
            y[:64],
            x[64:],
            y[64:],
            cfg,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            class_weight={0: 1.0, 1: 1.0},
        )
        runs.append((h, m.get_weights()))
    assert set(runs[0][0]) >= {"loss", "val_loss", "accuracy", "val_accuracy", "lr"}
    assert runs[0][0]["loss"] == runs[1][0]["loss"]
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_best_weights():
    import tensorflow as tf

    x, y = _data()
    snapshots = []

    class Snap(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    cfg = training.TrainingConfig(
        epochs=6, batch_size=32, verbose=0, patience=2, learning_rate=0.5
    )  # large steps: val loss jumps around
    m = build(ModelConfig(filters=(2,), dense=(4,)), (8, 8, 1), 2)
    h = training.fit(
        m,
        x[:64],
        y[:64],
        x[64:],
        y[64:],
        cfg,
        loss="sparse_categorical_crossentropy",
        callbacks=[Snap()],
    )
    best = int(np.argmin(h["val_loss"]))
    assert len(snapshots) == len(h["val_loss"])
    for got, want in zip(m.get_weights(), snapshots[best], strict=True):
        np.testing.assert_array_equal(got, want)
    # without restore_best: the last epoch's weights, all epochs run
    snapshots.clear()
    h2 = training.fit(
        m,
        x[:64],
        y[:64],
        x[64:],
        y[64:],
        cfg,
        epochs=3,
        restore_best=False,
        loss="sparse_categorical_crossentropy",
        callbacks=[Snap()],
    )
    assert len(h2["loss"]) == 3
    for got, want in zip(m.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_training_output_is_one_progress_bar_per_model_and_no_noise(tmp_path):
    """A fresh process (TensorFlow's C++ logging is set at its import): training shows one
    progress bar, no per-epoch Keras lines, no cuDNN/cuFFT/cuBLAS registration errors and no
    Keras warning about the deliberate HDF5 / QKeras-constraint storage."""
    import subprocess
    import sys

    code = f"""
import numpy as np
from poetml import training
from poetml.models import _backend
from poetml.datasets.scalers import Preprocessing, Scaler
tf = _backend.tf()
qk = _backend.qkeras()
inp = tf.keras.Input((6,))
out = qk.QDense(6, kernel_quantizer=qk.quantized_bits(8, 0, alpha=1), name="q")(inp)
model = tf.keras.Model(inp, out, name="tiny")
x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
cfg = training.TrainingConfig(epochs=3, batch_size=16)
hist = training.fit(model, x, x, x, x, cfg, loss="mse")
prep = Preprocessing(Scaler("features", tuple("abcdef"), (1.0,) * 6, (False,) * 6), 12, 4,
                     ("background",), (6,), "features")
training.save_model_dir({str(tmp_path / "m")!r}, model, prep, config={{}}, history=hist)
"""
    res = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "training tiny" in res.stderr
    assert "Epoch 1/3" not in out
    assert "Unable to register" not in out
    assert "HDF5 file" not in out
    assert "constraints.serialize" not in out
    assert (tmp_path / "m" / "model.h5").is_file()
