"""poetml.datasets.hdf5: layout, round trip, atomic writes, errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import poetml
from poetml.config import to_mapping
from poetml.datasets import hdf5
from poetml.exceptions import ReadError
from poetml.images import ImageSpec


def _images(n, shape=(8, 8, 3), seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, *shape), np.float32)
    idx = rng.integers(0, [shape[0], shape[1], shape[2]], size=(3 * n, 3))
    x[np.repeat(np.arange(n), 3), idx[:, 0], idx[:, 1], idx[:, 2]] = rng.exponential(20, 3 * n)
    return x


def test_images_round_trip_with_layout_and_attributes(tmp_path):
    spec = ImageSpec(n_eta=8, n_phi=8, channels=("muon", "jet", "met"))
    data = _images(50)
    labels = np.arange(50) % 2
    out = hdf5.write(
        tmp_path / "im.h5",
        "images",
        data,
        event_index=np.arange(100, 150),
        source=np.repeat([0, 1], 25),
        attrs={"spec": to_mapping(spec), "note": "hello", "n": 3},
        channels=spec.channels,
        inputs=["a.root", "b.root"],
        labels=labels,
    )
    assert out == tmp_path / "im.h5"
    assert not (tmp_path / "im.h5.tmp").exists()
    ds = hdf5.load(out)
    assert ds.kind == "images"
    assert len(ds) == 50
    assert ds.data.dtype == np.float32
    np.testing.assert_array_equal(ds.data, data)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.labels.dtype == np.int32
    np.testing.assert_array_equal(ds.event_index, np.arange(100, 150))
    assert ds.event_index.dtype == np.int64
    np.testing.assert_array_equal(ds.source, np.repeat([0, 1], 25))
    assert ds.channels == ("muon", "jet", "met")
    assert ds.inputs == ("a.root", "b.root")
    assert ds.feature_names is None
    assert ds.attrs["spec"] == to_mapping(spec)
    assert ds.attrs["note"] == "hello"
    assert ds.attrs["n"] == 3
    assert ds.attrs["poetml_version"] == poetml.__version__
    assert ds.attrs["n_events"] == 50
    # raw layout: what other tools see
    with h5py.File(out) as f:
        assert set(f) == {"images", "labels", "event_index", "source"}
        assert f["images"].compression == "gzip"
        assert not f["images"].shuffle  # sparse images: run-length deflate, no shuffle
        assert f["images"].chunks[1:] == (8, 8, 3)
        assert json.loads(f.attrs["spec"])["n_eta"] == 8
        assert json.loads(f.attrs["channels"]) == ["muon", "jet", "met"]
    part = hdf5.load(out, start=10, stop=20)
    np.testing.assert_array_equal(part.data, data[10:20])
    np.testing.assert_array_equal(part.event_index, np.arange(110, 120))


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none", None])
def test_features_appends_and_compressions(tmp_path, compression):
    names = [f"f{i}" for i in range(5)]
    path = tmp_path / "feat.h5"
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(n, 5)).astype(np.float32) for n in (7, 0, 13, 1)]
    with hdf5.ShardWriter(
        path, "features", item_shape=(5,), attrs={}, feature_names=names, inputs=["x.root"],
        compression=compression,
    ) as w:  # fmt: skip
        start = 0
        for p in parts:
            w.append(p, np.arange(start, start + len(p)), 0)
            start += len(p)
        assert not path.exists()  # only the temporary file while writing
        assert w.tmp_path.exists()
    ds = hdf5.load(path)
    np.testing.assert_array_equal(ds.data, np.concatenate(parts))
    assert ds.feature_names == tuple(names)
    assert ds.labels is None
    np.testing.assert_array_equal(ds.source, np.zeros(21))
    with h5py.File(path) as f:
        assert f["features"].compression == (None if compression in ("none", None) else compression)


@pytest.mark.parametrize("threads", [1, 3])
def test_images_chunked_appends_read_back_by_plain_h5py(tmp_path, threads):
    """Direct chunk writes: whole chunks, a buffered remainder and a padded last chunk."""
    data = _images(40, (4, 5, 2), seed=3)
    path = tmp_path / "im.h5"
    with hdf5.ShardWriter(
        path, "images", item_shape=(4, 5, 2), chunk_events=7, threads=threads
    ) as w:
        lo = 0
        for n in (3, 10, 0, 8, 1, 18):
            w.append(data[lo : lo + n], np.arange(lo, lo + n), 0)
            lo += n
    with h5py.File(path) as f:
        ds = f["images"]
        assert ds.chunks == (7, 4, 5, 2)
        assert ds.compression == "gzip"
        np.testing.assert_array_equal(ds[()], data)
        np.testing.assert_array_equal(ds[33:40], data[33:40])
        np.testing.assert_array_equal(f["event_index"][()], np.arange(40))
    assert path.stat().st_size < data.nbytes + 20_000


def test_features_keep_shuffle(tmp_path):
    path = hdf5.write(
        tmp_path / "f.h5", "features", np.ones((4, 3)), event_index=np.arange(4), source=0
    )
    with h5py.File(path) as f:
        assert f["features"].compression == "gzip"
        assert f["features"].shuffle


def test_exception_leaves_no_file(tmp_path):
    path = tmp_path / "out.h5"
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with (  # noqa: PT012 - the writer must see the exception
            pytest.raises(type(exc)),
            hdf5.ShardWriter(path, "images", item_shape=(4, 4, 1), attrs={}) as w,
        ):
            w.append(np.ones((3, 4, 4, 1)), np.arange(3), 0)
            raise exc
        assert not path.exists()
        assert list(tmp_path.iterdir()) == []


def test_previous_output_is_kept_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "out.h5"
    hdf5.write(path, "features", np.ones((2, 3)), event_index=[0, 1], source=0, attrs={})
    with pytest.raises(RuntimeError), hdf5.ShardWriter(path, "features", item_shape=(3,)) as w:  # noqa: PT012
        w.append(np.zeros((5, 3)), np.arange(5), 0)
        raise RuntimeError("interrupted")
    np.testing.assert_array_equal(hdf5.load(path).data, np.ones((2, 3)))


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'pictures'"):
        hdf5.ShardWriter(tmp_path / "a.h5", "pictures", item_shape=(3,))
    with pytest.raises(ValueError, match=r"images need item_shape \(n_eta, n_phi, C\)"):
        hdf5.ShardWriter(tmp_path / "a.h5", "images", item_shape=(3,))
    with pytest.raises(ValueError, match="2 feature names for 3 features"):
        hdf5.ShardWriter(tmp_path / "a.h5", "features", item_shape=(3,), feature_names=["a", "b"])
    with pytest.raises(ValueError, match="unknown compression 'zstd'"):
        hdf5.ShardWriter(tmp_path / "a.h5", "features", item_shape=(3,), compression="zstd")
    with pytest.raises(OSError, match="does not exist"):
        hdf5.ShardWriter(tmp_path / "no" / "a.h5", "features", item_shape=(3,))
    assert list(tmp_path.iterdir()) == []
    with hdf5.ShardWriter(tmp_path / "a.h5", "features", item_shape=(3,)) as w:
        with pytest.raises(
            ValueError, match=r"features of shape \(4,\) per event, the file holds \(3,\)"
        ):
            w.append(np.zeros((2, 4)), [0, 1], 0)
        with pytest.raises(ValueError, match="3 event indices for 2 events"):
            w.append(np.zeros((2, 3)), [0, 1, 2], 0)
        w.append(np.zeros((2, 3)), [0, 1], 0, labels=[1, 0])
        with pytest.raises(ValueError, match="labels must be given for every append or for none"):
            w.append(np.zeros((2, 3)), [2, 3], 0)
    assert hdf5.load(tmp_path / "a.h5").labels.tolist() == [1, 0]


def test_load_errors(tmp_path):
    with pytest.raises(ReadError, match=f"no such file: {tmp_path / 'x.h5'}"):
        hdf5.load(tmp_path / "x.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n" + b"\0" * 100)
    with pytest.raises(ReadError, match=f"{bad}: not a readable HDF5 file"):
        hdf5.load(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["weights"] = np.zeros(3)
    with pytest.raises(
        ReadError,
        match=f"{other}: no dataset 'images' or 'features'; datasets in the file: weights",
    ):
        hdf5.load(other)
    with h5py.File(other, "a") as f:
        f["images"] = np.zeros((3, 2, 2, 1), np.float32)
    with pytest.raises(
        ReadError, match=f"{other}: missing dataset 'event_index'; datasets in the file"
    ):
        hdf5.load(other)
    with pytest.raises(ReadError, match="missing dataset 'labels'"):
        hdf5.open_dataset(other, "labels")
    truncated = tmp_path / "trunc.h5"
    hdf5.write(tmp_path / "full.h5", "images", _images(200), event_index=np.arange(200), source=0)
    truncated.write_bytes((tmp_path / "full.h5").read_bytes()[:5000])
    with pytest.raises(ReadError, match=str(truncated)):
        hdf5.load(truncated)


def test_open_dataset_is_lazy(tmp_path):
    data = _images(30)
    path = hdf5.write(tmp_path / "im.h5", "images", data, event_index=np.arange(30), source=0)
    ds = hdf5.open_dataset(path)
    try:
        assert isinstance(ds, h5py.Dataset)
        assert ds.shape == (30, 8, 8, 3)
        np.testing.assert_array_equal(ds[5:7], data[5:7])
        np.testing.assert_array_equal(hdf5.open_dataset(path, "event_index")[:3], [0, 1, 2])
    finally:
        ds.file.close()


def test_sparse_images_are_stored_small(tmp_path):
    """Sparse 32x32x4 images (a dozen non-zero pixels) must compress far below 16 KiB."""
    data = _images(500, (32, 32, 4))
    path = hdf5.write(tmp_path / "im.h5", "images", data, event_index=np.arange(500), source=0)
    assert path.stat().st_size / 500 < 0.05 * data[0].nbytes
