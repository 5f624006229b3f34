"""Training from sparse image files: batches densified on the fly give the same model and
metrics as training from the dense array, for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from poetml import reading
from poetml.datasets import convert, hdf5, sparse
from poetml.datasets.scalers import Preprocessing, fit_scaler
from poetml.datasets.splits import stratified_split
from poetml.images import ImageSpec, SparseImages
from poetml.training import TrainingConfig, batches, fit

SPEC = ImageSpec(n_eta=8, n_phi=8, channels=("muon", "jet", "met"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, write_poet_file):
    tmp = tmp_path_factory.mktemp("train-sparse")
    root = write_poet_file(tmp / "poet.root", 240, seed=5)
    out = {}
    for layout in ("sparse", "dense"):
        out[layout] = tmp / f"{layout}.h5"
        convert.convert([str(root)], out[layout], "images", SPEC, progress=False,
                        image_layout=layout, reading=reading.ReadingConfig(step_size=100))  # fmt: skip
    return out


def _model(tf, seed: int = 3):
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=SPEC.shape),
            tf.keras.layers.Conv2D(2, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(2, activation="softmax"),
        ]
    )


def _prep(x_train: np.ndarray) -> Preprocessing:
    scaler = fit_scaler(x_train, "images", SPEC.channels)
    return Preprocessing(scaler, 12, 5, ("a", "b"), SPEC.shape, "images", channels=SPEC.channels)


def test_sparse_scaler_equals_dense_scaler(files):
    dense = hdf5.load(files["dense"]).data
    sp = sparse.read_sparse(files["sparse"])
    assert sparse.fit_image_scaler(sp, SPEC.channels) == fit_scaler(dense, "images", SPEC.channels)


def test_cnn_trains_from_sparse_with_the_dense_metrics(files):
    from poetml.models import _backend

    tf = _backend.tf()
    dense = hdf5.load(files["dense"])
    sp = sparse.read_sparse(files["sparse"])
    y = (dense.event_index % 2).astype(np.int32)  # any labels: the metrics must agree
    split = stratified_split(y, (0.6, 0.2, 0.2), seed=1)
    prep = _prep(dense.data[split.train])
    assert sparse.fit_image_scaler(sp.take(split.train), SPEC.channels) == prep.scaler
    cfg = TrainingConfig(epochs=3, batch_size=32, patience=5, verbose=0, seed=11)
    kw = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def run(x_tr, x_va):
        model = _model(tf)
        seq_tr = batches(x_tr, y[split.train], batch_size=32, shuffle_seed=7, transform=prep.apply)
        seq_va = batches(x_va, y[split.val], batch_size=32, transform=prep.apply)
        hist = fit(model, seq_tr, None, seq_va, None, cfg, **kw)
        return hist, model.predict(seq_va, verbose=0)

    train_sp, val_sp = sp.take(split.train), sp.take(split.val)
    assert isinstance(train_sp, SparseImages)
    h_sparse, p_sparse = run(train_sp, val_sp)
    h_dense, p_dense = run(dense.data[split.train], dense.data[split.val])
    assert set(h_sparse) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h_sparse["loss"]) == 3
    assert h_sparse == h_dense
    np.testing.assert_array_equal(p_sparse, p_dense)

    # and as Keras trains on the dense arrays themselves (no shuffling: the same batches)
    model = _model(tf)
    fit(model, batches(train_sp, y[split.train], batch_size=32, transform=prep.apply), None,
        batches(val_sp, y[split.val], batch_size=32, transform=prep.apply), None,
        TrainingConfig(epochs=1, batch_size=32, verbose=0, seed=11), **kw)  # fmt: skip
    ref = _model(tf)
    from poetml.training import set_seeds

    set_seeds(TrainingConfig(seed=11))
    ref.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=kw["loss"], metrics=kw["metrics"])
    ref.fit(prep.apply(dense.data[split.train]), y[split.train], batch_size=32, epochs=1,
            shuffle=False, verbose=0)  # fmt: skip
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_batches_hold_no_more_than_a_batch_dense(files):
    sp = sparse.read_sparse(files["sparse"])
    y = np.zeros(sp.n_events, np.int32)
    seq = batches(sp, y, batch_size=50, shuffle_seed=1)
    assert len(seq) == 5  # 240 events
    seen = []
    for i in range(len(seq)):
        xb, yb = seq[i]
        assert xb.shape[0] == len(yb) <= 50
        assert xb.dtype == np.float32
        seen.append(xb)
    # one epoch covers every event once, in the seeded order
    order = np.random.default_rng(1).permutation(sp.n_events)
    np.testing.assert_array_equal(np.concatenate(seen), sp.dense()[order])
    seq.on_epoch_end()
    assert not np.array_equal(seq.order, order)  # a fresh order each epoch
    with pytest.raises(IndexError, match="batch 5 out of range for 5 batches"):
        seq[5]
    with pytest.raises(ValueError, match="240 events but 3 targets"):
        batches(sp, y[:3], batch_size=8)


def test_an_epoch_holds_one_dense_batch_at_a_time(write_poet_file, tmp_path):
    """Memory of training from sparse: the sparse split plus about one dense batch, far
    below the dense split (tracemalloc sees numpy's buffers)."""
    import tracemalloc

    from poetml import rasterize_sparse

    spec = ImageSpec(n_eta=64, n_phi=64)  # 64 KiB a dense event
    batch = reading.read(write_poet_file(tmp_path / "p.root", 400, seed=2))
    sp = rasterize_sparse(batch, spec)
    dense_split = 400 * 64 * 64 * 4 * 4  # 26 MB
    dense_batch = 16 * 64 * 64 * 4 * 4  # 1 MB
    seq = batches(sp, np.zeros(400, np.int32), batch_size=16, shuffle_seed=3)
    tracemalloc.start()
    try:
        for i in range(len(seq)):
            xb, _ = seq[i]
            assert xb.shape == (16, *spec.shape)
            del xb
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * dense_batch < dense_split / 8
