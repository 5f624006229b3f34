"""The sparse HDF5 layout of event images (poetml.datasets.sparse): written by ``poetml
images`` by default, read by h5py alone (the documented snippet), by every poetml reader,
and equal to the dense layout event for event."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

import poetml
from poetml import reading
from poetml.cli import main
from poetml.datasets import convert, hdf5, sparse
from poetml.exceptions import ReadError
from poetml.images import ImageSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "guide" / "sparse-images.md"
SPEC = ImageSpec(n_eta=8, n_phi=8, mode="gaussian", log1p=True)


def _snippet() -> str:
    text = DOC.read_text()
    section = text.split("## Reading it with h5py alone", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def both(poet_file, poet_merged_file, tmp_path_factory):
    """The same two inputs written sparse and dense (with labels)."""
    tmp = tmp_path_factory.mktemp("sparse")
    files = [str(poet_file), str(poet_merged_file)]
    out = {}
    for layout in ("sparse", "dense"):
        out[layout] = tmp / f"{layout}.h5"
        convert.convert(files, out[layout], "images", SPEC, label=2, progress=False,
                        image_layout=layout, reading=reading.ReadingConfig(step_size=4))  # fmt: skip
    return out


def test_documented_snippet_densifies_one_event(poet_file, tmp_path, monkeypatch):
    snippet = _snippet()
    assert len(snippet.strip().splitlines()) <= 11  # "a ten-line NumPy snippet"
    assert main(["images", str(poet_file), "-o", str(tmp_path / "OUT.h5"), "--no-progress"]) == 0
    expected = poetml.rasterize(reading.read(poet_file), ImageSpec())
    assert expected.any()
    monkeypatch.chdir(tmp_path)
    for i in range(len(expected)):
        scope: dict = {}
        # the documented snippet itself, run as a user would paste it
        exec(snippet.replace("i = 0  # the event", f"i = {i}  # the event"), scope)  # noqa: S102
        assert scope["image"].shape == expected.shape[1:]
        assert scope["image"].tobytes() == expected[i].tobytes()


def test_sparse_and_dense_files_hold_the_same_events(both):
    a, b = hdf5.load(both["sparse"]), hdf5.load(both["dense"])
    assert a.kind == b.kind == "images"
    assert a.data.dtype == np.float32
    assert a.data.shape == b.data.shape == (12, *SPEC.shape)
    assert a.data.tobytes() == b.data.tobytes()
    for name in ("event_index", "source", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.channels == b.channels == SPEC.channels
    assert a.inputs == b.inputs
    assert a.attrs["layout"] == "sparse"
    assert a.attrs["spec"] == b.attrs["spec"]
    assert list(a.attrs["image_shape"]) == list(SPEC.shape)
    # partial loads
    np.testing.assert_array_equal(hdf5.load(both["sparse"], start=3, stop=9).data, b.data[3:9])
    assert hdf5.load(both["sparse"], start=0, stop=0).data.shape == (0, *SPEC.shape)
    # the layout on disk: what the docs say
    with h5py.File(both["sparse"]) as f:
        assert "images" not in f
        assert f["image_offsets"].dtype == np.int64
        assert f["pixel_index"].dtype == np.int32
        assert f["pixel_value"].dtype == np.float32
        assert f["image_offsets"][0] == 0
        assert f["image_offsets"][-1] == len(f["pixel_index"]) == np.count_nonzero(b.data)
        # indices deflated; the float values, which deflate shrinks by 17 % only, as they are
        assert f["pixel_index"].compression == "gzip"
        assert f["pixel_value"].compression is None
        assert f.attrs["n_events"] == 12


def test_open_dataset_and_read_sparse(both):
    dense = hdf5.load(both["dense"]).data
    ds = hdf5.open_dataset(both["sparse"])
    try:
        assert isinstance(ds, sparse.SparseImageDataset)
        assert ds.shape == dense.shape
        assert len(ds) == 12
        np.testing.assert_array_equal(ds[2:7], dense[2:7])
        np.testing.assert_array_equal(ds[-1], dense[-1])
        np.testing.assert_array_equal(ds[::3], dense[::3])
        idx = np.array([9, 1, 1, 5])
        np.testing.assert_array_equal(ds[idx], dense[idx])
        np.testing.assert_array_equal(ds[np.arange(12) % 2 == 0], dense[::2])
        with pytest.raises(IndexError, match="event 12 out of range for 12 events"):
            ds[12]
    finally:
        ds.file.close()
    sp = sparse.read_sparse(both["sparse"], start=4, stop=10)
    assert sp.n_events == 6
    assert sp.dense().tobytes() == dense[4:10].tobytes()
    np.testing.assert_array_equal(sp.take([5, 0]).dense(), dense[[9, 4]])


def test_writer_is_atomic_and_checks_its_input(tmp_path):
    path = tmp_path / "w.h5"

    def interrupted() -> None:
        with sparse.SparseShardWriter(path, item_shape=(2, 2, 1), channels=["jet"]) as w:
            w.append(np.ones((3, 2, 2, 1), np.float32), np.arange(3), 0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted()
    assert list(tmp_path.iterdir()) == []
    with sparse.SparseShardWriter(path, item_shape=(2, 2, 1), channels=["jet"]) as w:
        with pytest.raises(
            ValueError, match=r"images of shape \(3, 2, 1\) per event, the file holds \(2, 2, 1\)"
        ):
            w.append(np.ones((1, 3, 2, 1), np.float32), [0], 0)
        with pytest.raises(ValueError, match="2 event indices for 1 events"):
            w.append(np.ones((1, 2, 2, 1), np.float32), [0, 1], 0)
        dense = np.zeros((4, 2, 2, 1), np.float32)
        dense[1, 0, 1, 0] = 5.0
        dense[3] = 1.5
        w.append(dense[:2], [0, 1], 0)
        w.append(poetml.SparseImages(np.array([0, 0, 4]), np.arange(4, dtype=np.int32),
                                     np.full(4, 1.5, np.float32), (2, 2, 1)), [2, 3], 0)  # fmt: skip
    got = hdf5.load(path)
    np.testing.assert_array_equal(got.data, dense)
    assert got.channels == ("jet",)
    with pytest.raises(ValueError, match="the sparse layout holds images, not 'features'"):
        sparse.SparseShardWriter(tmp_path / "f.h5", "features", item_shape=(3,))


def test_empty_input_gives_a_valid_sparse_file(shared_data, tmp_path, poet_file):
    out = tmp_path / "empty.h5"
    res = convert.convert(
        [str(poet_file)], out, "images", SPEC, progress=False,
        reading=reading.ReadingConfig(step_size=4), label=1,
    )  # fmt: skip
    assert res.n_events == 6
    # zero events: still a valid file with labels
    with sparse.SparseShardWriter(tmp_path / "zero.h5", item_shape=SPEC.shape) as w:
        w.append(np.zeros((0, *SPEC.shape), np.float32), np.zeros(0, np.int64), 0, labels=1)
    ds = hdf5.load(tmp_path / "zero.h5")
    assert ds.data.shape == (0, *SPEC.shape)
    assert ds.labels is not None
    assert len(ds.labels) == 0


def test_corrupt_sparse_file_names_file_dataset_and_value(both, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(both["sparse"].read_bytes())
    with h5py.File(bad, "a") as f:
        f["pixel_index"][0] = 10_000
    with pytest.raises(
        ReadError,
        match=r"bad.h5: dataset 'pixel_index' entry 0 holds pixel index 10000, outside an image",
    ):
        hdf5.load(bad)
    with h5py.File(bad, "a") as f:
        f["pixel_index"][0] = 0
        f["image_offsets"][3] = 10**9
    with pytest.raises(ReadError, match=r"bad.h5: dataset 'image_offsets' is corrupt near event"):
        hdf5.load(bad)
    with h5py.File(bad, "a") as f:
        del f.attrs["image_shape"]
    with pytest.raises(ReadError, match="attribute 'image_shape' must be"):
        hdf5.load(bad)


def test_cli_image_layout_dense_and_help(poet_file, tmp_path, capsys):
    for layout in ("sparse", "dense"):
        out = tmp_path / f"{layout}.h5"
        argv = ["images", str(poet_file), "-o", str(out), "--no-progress"]
        assert main([*argv, "--image-layout", layout] if layout == "dense" else argv) == 0
        with h5py.File(out) as f:
            assert ("images" in f) == (layout == "dense")
            assert ("pixel_index" in f) == (layout == "sparse")
    np.testing.assert_array_equal(
        hdf5.load(tmp_path / "sparse.h5").data, hdf5.load(tmp_path / "dense.h5").data
    )
    with pytest.raises(SystemExit):
        main(["images", "--help"])
    assert "--image-layout {sparse,dense}" in capsys.readouterr().out


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_many_chunks_read_back_through_hdf5_filters(tmp_path, monkeypatch, compression):
    """Whole chunks written directly (shuffled + deflated on the pool) read back through
    HDF5's own filters, across chunk boundaries and a padded last chunk."""
    monkeypatch.setattr(sparse, "_CHUNK_ENTRIES", 16)
    rng = np.random.default_rng(3)
    dense = np.zeros((40, 4, 4, 2), np.float32)
    mask = rng.random(dense.shape) < 0.2
    dense[mask] = rng.uniform(0.5, 100.0, int(mask.sum())).astype(np.float32)
    path = tmp_path / f"{compression}.h5"
    with sparse.SparseShardWriter(path, item_shape=(4, 4, 2), compression=compression,
                                  threads=2) as w:  # fmt: skip
        for lo, hi in ((0, 7), (7, 8), (8, 30), (30, 40)):
            w.append(dense[lo:hi], np.arange(lo, hi), 0)
    with h5py.File(path) as f:
        assert f["pixel_index"].chunks == (16,)
        assert len(f["pixel_index"]) == int(mask.sum()) > 3 * 16
        flat = dense.reshape(40, -1)
        ev, px = np.nonzero(flat)
        np.testing.assert_array_equal(f["pixel_index"][()], px)
        np.testing.assert_array_equal(f["pixel_value"][()], flat[ev, px])
        if compression == "gzip":  # the indices by whole chunks on the pool, values plain
            assert f["pixel_index"].shuffle
            assert f["pixel_value"].compression is None
    assert hdf5.load(path).data.tobytes() == dense.tobytes()


def test_inspect_reads_both_layouts(both, tmp_path, capsys):
    import json

    assert main(["inspect", str(both["sparse"])]) == 0
    out = capsys.readouterr().out
    assert "poetml HDF5 (images, sparse layout, 12 events of (8, 8, 4))" in out
    assert "pixel_index" in out
    assert "channels: muon, electron, jet, met" in out
    assert main(["inspect", "--json", str(both["dense"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["layout"], info["n_events"]) == ("images", "dense", 12)
    assert info["shape"] == [8, 8, 4]
    with h5py.File(both["sparse"]) as f:
        n_pixels = len(f["pixel_index"])
    assert main(["inspect", "--json", str(both["sparse"])]) == 0
    assert json.loads(capsys.readouterr().out)["n_pixels"] == n_pixels
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert main(["inspect", str(other)]) == 1
    assert "an HDF5 file, but not a poetml dataset" in capsys.readouterr().err


def test_batch_cli_offers_the_image_layout(capsys):
    with pytest.raises(SystemExit):
        main(["batch", "images", "--help"])
    out = capsys.readouterr().out
    assert "--image-layout {sparse,dense}" in out
    with pytest.raises(SystemExit):
        main(["batch", "features", "--help"])
    assert "--image-layout" not in capsys.readouterr().out
