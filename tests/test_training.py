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
