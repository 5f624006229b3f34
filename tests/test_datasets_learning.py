"""Labelled datasets, stratified splits, class balance and scalers (no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_poet_random

from poetml.datasets import labelled
from poetml.datasets.labelled import DatasetConfig, ProcessConfig
from poetml.datasets.scalers import DatasetError, Preprocessing, Scaler, check_finite, fit_scaler
from poetml.datasets.splits import class_weights, resample_balanced, stratified_split
from poetml.features import FeatureSpec
from poetml.images import ImageSpec
from poetml.models.quantized import quantize_fixed


def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    a = stratified_split(labels, (0.6, 0.2, 0.2), seed=5)
    b = stratified_split(labels, (0.6, 0.2, 0.2), seed=5)
    c = stratified_split(labels, (0.6, 0.2, 0.2), seed=6)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)
    allidx = np.concatenate([a.train, a.val, a.test])
    assert sorted(allidx.tolist()) == list(range(1000))
    for part, frac in ((a.train, 0.6), (a.val, 0.2), (a.test, 0.2)):
        counts = np.bincount(labels[part], minlength=3)
        np.testing.assert_allclose(counts, frac * np.array([500, 300, 200]), atol=1)
    with pytest.raises(ValueError, match="class 1 has 2 event"):
        stratified_split(np.array([0, 0, 0, 1, 1]), (0.6, 0.2, 0.2))
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split(labels, (0.5, 0.2, 0.2))


def test_class_weights_and_resampling():
    y = np.repeat([0, 1], [90, 10])
    w = class_weights(y, 2)
    assert w[0] == pytest.approx(100 / 180)
    assert w[1] == pytest.approx(5.0)
    assert np.mean([w[i] for i in y]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"classes \[2\] have no training events"):
        class_weights(y, 3)
    idx = resample_balanced(np.arange(100), y, seed=1)
    assert np.bincount(y[idx]).tolist() == [90, 90]


def test_feature_scaler_keeps_zeros_and_angles_and_fits_train_only():
    names = [
        "met_pt",
        "met_eta",
        "met_phi",
        "jet_0_pt",
        "jet_0_eta",
        "jet_0_phi",
        "jet_1_pt",
        "jet_1_eta",
        "jet_1_phi",
    ]
    rng = np.random.default_rng(0)
    x = np.zeros((200, 9), np.float32)
    x[:, 0] = rng.exponential(40, 200)
    x[:, 2] = rng.uniform(-np.pi, np.pi, 200)
    x[:100, 3] = rng.exponential(80, 100)
    x[:100, 4] = rng.normal(0, 1.5, 100)
    x[:100, 5] = rng.uniform(-np.pi, np.pi, 100)
    x[:30, 6] = rng.exponential(50, 30)
    x[:30, 7] = rng.normal(0, 1.5, 30)
    x[:30, 8] = rng.uniform(-np.pi, np.pi, 30)
    s = fit_scaler(x, "features", names)
    y = s.transform(x)
    np.testing.assert_array_equal(y[x == 0], 0)  # padded slots stay 0
    np.testing.assert_array_equal(y[:, [1, 2, 4, 5, 7, 8]], x[:, [1, 2, 4, 5, 7, 8]])  # angles
    assert s.scale[3] == s.scale[6]  # one scale for all jet pT slots
    nz = np.concatenate([x[:100, 3], x[:30, 6]])
    assert s.scale[3] == pytest.approx(np.quantile(nz, 0.99), rel=1e-5)
    # fitted only on what it is given: test rows do not move it
    x2 = x.copy()
    x2[150:, 0] *= 100
    assert (
        fit_scaler(x2[:150], "features", names).scale
        == fit_scaler(x[:150], "features", names).scale
    )
    # immutable, JSON round trip
    s2 = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2 == s
    with pytest.raises(AttributeError):
        s.scale = (1.0,)  # type: ignore[misc]
    log = fit_scaler(x, "features", names, log1p_energy=True)
    np.testing.assert_array_equal(log.transform(x)[x == 0], 0)
    with pytest.raises(ValueError, match="fitted on 9 columns"):
        s.transform(x[:, :5])


def test_image_scaler_and_preprocessing_round_trip():
    rng = np.random.default_rng(1)
    img = np.zeros((50, 4, 4, 2), np.float32)
    img[:, 1, 2, 0] = rng.exponential(30, 50)
    img[:, 3, 0, 1] = rng.exponential(5, 50)
    s = fit_scaler(img, "images", ["muon", "jet"])
    assert s.scale[0] == pytest.approx(np.quantile(img[:, 1, 2, 0], 0.99), rel=1e-5)
    p = Preprocessing(s, 10, 3, ("a", "b"), (4, 4, 2), "images", channels=("muon", "jet"))
    out = p.apply(img)
    np.testing.assert_array_equal(out, quantize_fixed(s.transform(img), 10, 3))
    assert out[img == 0].max() == 0
    assert p.hls_input_type == "ap_fixed<10,4>"
    assert Preprocessing.from_json(p.to_json()) == p
    bad = img.copy()
    bad[3, 0, 0, 1] = np.inf
    with pytest.raises(DatasetError, match=r"first at event 3, index \(0, 0, 1\)"):
        p.apply(bad)
    with pytest.raises(DatasetError, match="does not match the model input"):
        p.apply(img[:, :2])


def _sparse(img: np.ndarray):
    from poetml.images import SparseImages

    flat = img.reshape(len(img), -1)
    event, pixel = np.nonzero(flat)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=len(img)))])
    return SparseImages(offsets.astype(np.int64), pixel.astype(np.int32),
                        flat[event, pixel].astype(np.float32), img.shape[1:])  # fmt: skip


@pytest.mark.parametrize("quantile", [0.99, 0.5, 1.0])
def test_image_scaler_from_sparse_images_equals_the_dense_fit(quantile):
    """The sparse path of fit_scaler looks only at stored pixels: exactly the non-zero
    pixels the dense fit takes, so the very same scales (compared as floats, not approx)."""
    rng = np.random.default_rng(7)
    img = np.zeros((300, 6, 5, 4), np.float32)
    hit = rng.random(img.shape) < 0.05
    img[hit] = rng.exponential(20.0, int(hit.sum())).astype(np.float32)
    img[..., 1] *= np.where(rng.random(img.shape[:-1]) < 0.5, -1, 1)  # signed channel
    img[..., 3] = 0.0  # an empty channel: scale 1
    img[10:40] = 0.0  # empty events
    names = ["a", "b", "c", "d"]
    sp = _sparse(img)
    np.testing.assert_array_equal(sp.dense(), img)
    dense = fit_scaler(img, "images", names, quantile=quantile)
    assert fit_scaler(sp, "images", names, quantile=quantile) == dense
    assert dense.scale[3] == 1.0
    assert dense.scale[0] != 1.0
    # a selection (what a training split is), in any order
    idx = rng.permutation(300)[:170]
    assert fit_scaler(sp.take(idx), "images", names, quantile=quantile) == fit_scaler(
        img[idx], "images", names, quantile=quantile
    )
    # a slice whose entries do not start at 0 of the arrays it views
    part = sp.slice(57, 211)
    assert fit_scaler(part, "images", names, quantile=quantile) == fit_scaler(
        img[57:211], "images", names, quantile=quantile
    )
    with pytest.raises(ValueError, match="3 names for images of 4 channels"):
        fit_scaler(sp, "images", names[:3])
    with pytest.raises(ValueError, match="empty training set"):
        fit_scaler(sp.take([]), "images", names)


def test_sparse_non_finite_pixels_are_named_as_the_dense_check_names_them():
    from poetml.datasets.scalers import check_sparse_finite

    img = np.zeros((20, 3, 3, 2), np.float32)
    img[:, 1, 1, 0] = 5.0
    img[12, 2, 0, 1] = np.nan
    img[15, 0, 0, 0] = np.inf
    with pytest.raises(DatasetError) as dense:
        check_finite(img, "x")
    with pytest.raises(DatasetError) as sparse:
        check_sparse_finite(_sparse(img), "x")
    assert "2 event(s) hold NaN or inf; first at event 12, index (2, 0, 1)" in str(sparse.value)
    assert str(sparse.value) == str(dense.value)
    with pytest.raises(DatasetError, match="first at event 12"):
        fit_scaler(_sparse(img), "images", ["a", "b"])


def test_quantize_fixed_grid_and_saturation():
    x = np.array([0.0, 0.126, -0.126, 100.0, -100.0, 1.0 / 3.0])
    q = quantize_fixed(x, 8, 2)  # ap_fixed<8,3>: step 1/32, range [-4, 4 - 1/32]
    np.testing.assert_allclose(q, [0.0, 0.125, -0.125, 4 - 1 / 32, -4.0, 11 / 32])
    check_finite(q, "q")
    with pytest.raises(DatasetError, match="1 event"):
        check_finite(np.array([[1.0], [np.nan]]), "x")


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab")
    return (
        write_poet_random(d / "a.root", 40, seed=1, mean_muons=2.0),
        write_poet_random(d / "b.root", 30, seed=2, mean_jets=5.0),
    )


@pytest.mark.parametrize("kind", ["images", "features"])
def test_labelled_build_save_load(two_files, tmp_path, kind):
    a, b = two_files
    cfg = DatasetConfig(
        kind=kind,
        processes=(
            ProcessConfig("pa", (str(a),), label="A"),
            ProcessConfig("pb", (str(b),), label="B", max_events=25),
            ProcessConfig("sig", (str(a),), role="signal", max_events=10),
        ),
    )
    spec = ImageSpec(n_eta=8, n_phi=8) if kind == "images" else FeatureSpec()
    files = labelled.resolve_files(cfg)
    data = labelled.build(
        cfg, spec, files, aux={"n": lambda batch: np.full(batch.n_events, 7.0)}, progress=False
    )
    assert len(data) == 40 + 25 + 10
    assert data.class_names == ["A", "B"]
    lab = data.class_labels()
    assert lab.tolist() == [0] * 40 + [1] * 25 + [-1] * 10
    np.testing.assert_array_equal(data.event_index[:40], np.arange(40))
    if kind == "features":
        assert data.x.shape == (75, 57)
        assert data.names[0] == "met_pt"
    else:
        # images stay sparse: the core's sparse form, exactly its dense images
        from poetml import rasterize
        from poetml.images import SparseImages
        from poetml.reading import read

        assert isinstance(data.x, SparseImages)
        assert data.sparse
        assert (len(data.x), *data.x.shape) == (75, 8, 8, 4)
        assert data.names == tuple(spec.channels)
        ra, rb = rasterize(read(a), spec), rasterize(read(b), spec)
        want = np.concatenate([ra, rb[:25], ra[:10]])
        np.testing.assert_array_equal(data.x.dense(), want)
        sel = data.select(np.array([74, 0, 41]))
        np.testing.assert_array_equal(sel.x.dense(), want[[74, 0, 41]])
    path = labelled.save(tmp_path / "d.h5", data, attrs={"note": "x"})
    assert not (tmp_path / "d.h5.part").exists()
    back = labelled.load(path)
    if kind == "images":
        import h5py

        from poetml.datasets import sparse

        with h5py.File(path, "r") as f:  # the sparse layout, no dense images
            assert sparse.is_sparse(f)
            assert "images" not in f
            assert f.attrs["layout"] == "sparse"
        assert back.sparse
        for name in ("offsets", "index", "values"):
            np.testing.assert_array_equal(getattr(back.x, name), getattr(data.x, name))
        assert back.x.shape == data.x.shape
        # a dense image dataset is still written and read (dense)
        from dataclasses import replace

        dense = labelled.save(tmp_path / "dense.h5", replace(data, x=data.x.dense()))
        again = labelled.load(dense)
        assert not again.sparse
        np.testing.assert_array_equal(again.x, want)
    else:
        np.testing.assert_array_equal(back.x, data.x)
    np.testing.assert_array_equal(back.process, data.process)
    assert back.processes == data.processes
    assert back.names == data.names
    np.testing.assert_array_equal(back.aux["n"], 7.0)
    assert back.inputs == data.inputs
