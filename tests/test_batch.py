"""poetml.batch on a real dask.distributed LocalCluster (2 worker processes), small files."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from poetml import batch
from poetml.exceptions import ConfigError, MissingDependencyError, ReadError
from poetml.images import ImageSpec

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def truncate(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def reference(kind: str, spec, path: Path):
    """Single-process result: the kernel over poetml.iterate of the whole file."""
    import poetml

    parts, index = [], []
    for b in poetml.iterate(str(path), step_size=37):
        if kind == "images":
            parts.append(poetml.rasterize(b, spec))
        else:
            parts.append(poetml.build_features(b, spec)[0])
        index.append(b.event_index)
    return np.concatenate(parts), np.concatenate(index)


def read_shard(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


def final_shards(out: Path) -> dict[str, int]:
    """name -> mtime_ns of every file in the shard folder."""
    return {p.name: p.stat().st_mtime_ns for p in (out / batch.SHARD_DIR).iterdir()}


SMALL = ImageSpec(n_eta=8, n_phi=8)

# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=40,
    ) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, write_poet_file) -> list[Path]:
    d = tmp_path_factory.mktemp("poet")
    return [
        write_poet_file(d / "a.root", 230, seed=1),
        write_poet_file(d / "b.root", 100, seed=2),
        write_poet_file(d / "c.root", 57, seed=3),
    ]


# --------------------------------------------------------------------------------------
# pure parts (no cluster)
# --------------------------------------------------------------------------------------


def test_plan_ranges_cover_exactly():
    assert batch.plan_ranges(230, 100) == [(0, 100), (100, 200), (200, 230)]
    assert batch.plan_ranges(100, 100) == [(0, 100)]
    assert batch.plan_ranges(0, 100) == []
    with pytest.raises(ConfigError, match="step_size"):
        batch.plan_ranges(10, 0)


def test_expand_inputs(inputs, tmp_path):
    d = inputs[0].parent
    got = batch.expand_inputs([str(d / "*.root"), str(inputs[0])])
    assert got == sorted(str(p) for p in inputs)
    with pytest.raises(ReadError, match="matches no file"):
        batch.expand_inputs([str(tmp_path / "*.root")])
    with pytest.raises(ReadError, match="does not exist"):
        batch.expand_inputs([str(tmp_path / "nope.root")])
    with pytest.raises(ReadError, match="is a directory"):
        batch.expand_inputs([str(tmp_path)])


@pytest.mark.skipif(
    importlib.util.find_spec("fsspec_xrootd") is not None, reason="fsspec-xrootd is installed"
)
def test_root_url_without_xrootd_extra_names_the_extra(tmp_path):
    url = "root://eospublic.cern.ch//eos/opendata/cms/some.root"
    with pytest.raises(MissingDependencyError, match=r"poetml\[xrootd\]") as info:
        batch.expand_inputs([url])
    assert "fsspec_xrootd" in str(info.value)
    # the worker side says the same if it is handed such a path directly
    with pytest.raises(MissingDependencyError, match=r"poetml\[xrootd\]"):
        batch.count_entries(url)


def test_fingerprint_changes_with_spec_and_inputs():
    a = batch.spec_fingerprint("images", SMALL, ["/x.root"], step_size=10)
    assert a == batch.spec_fingerprint("images", ImageSpec(n_eta=8, n_phi=8), ["/x.root"],
                                       step_size=10)
    b = batch.spec_fingerprint("images", ImageSpec(n_eta=9, n_phi=8), ["/x.root"], step_size=10)
    c = batch.spec_fingerprint("images", SMALL, ["/x.root", "/y.root"], step_size=10)
    d = batch.spec_fingerprint("images", SMALL, ["/x.root"], step_size=11)
    assert len({a["hash"], b["hash"], c["hash"], d["hash"]}) == 4
    diff = batch._fingerprint_diff(a, b)
    assert diff == ["spec n_eta: 8 -> 9"]
    assert "1 added (first: /y.root)" in batch._fingerprint_diff(a, c)[0]
    with pytest.raises(ConfigError, match="kind"):
        batch.spec_fingerprint("movies", SMALL, [], step_size=1)


# --------------------------------------------------------------------------------------
# on the cluster
# --------------------------------------------------------------------------------------


def test_shards_equal_single_process_and_dataset_has_every_event_once(client, inputs, tmp_path):
    from poetml.datasets import hdf5

    out = tmp_path / "out"
    res = batch.run(inputs, out, "images", SMALL, step_size=100, client=client, progress=False,
                    label=3)
    assert res.ok, res.summary()
    assert (res.n_tasks, res.n_done, res.n_failed, res.n_skipped) == (5, 5, 0, 0)
    assert res.n_events == 230 + 100 + 57

    st = batch.status(out)
    ids = {s["path"]: s["id"] for s in st.sources}
    for path in inputs:
        want, want_index = reference("images", SMALL, path)
        tasks = [t for t in st.tasks if t.path == str(path)]
        got = [read_shard(out / t.shard) for t in tasks]
        np.testing.assert_array_equal(np.concatenate([g["images"] for g in got]), want)
        np.testing.assert_array_equal(np.concatenate([g["event_index"] for g in got]),
                                      want_index)
        for g, t in zip(got, tasks):
            assert set(np.unique(g["source"])) == {0}  # a shard numbers its one input 0
            assert set(np.unique(g["labels"])) == {3}
            ds = hdf5.load(out / t.shard)
            assert ds.inputs == (str(path),)
            assert ds.attrs["batch_source_id"] == ids[str(path)]
            assert (ds.attrs["entry_start"], ds.attrs["entry_stop"]) == (t.entry_start,
                                                                         t.entry_stop)
        for t in tasks:
            assert batch._sha256(out / t.shard) == t.sha256

    ds = hdf5.load(out / "dataset.h5")
    assert ds.data.shape == (387, 8, 8, 4)
    assert ds.kind == "images" and ds.channels == SMALL.channels
    assert ds.attrs["complete"] and ds.attrs["spec"]["n_eta"] == 8
    assert ds.inputs == tuple(str(p) for p in inputs)
    assert set(np.unique(ds.labels)) == {3}
    for p in inputs:  # source indexes inputs
        sel = np.asarray(ds.source) == ds.inputs.index(str(p))
        want, want_index = reference("images", SMALL, p)
        np.testing.assert_array_equal(ds.data[sel], want)
        np.testing.assert_array_equal(ds.event_index[sel], want_index)
    pairs = list(zip(np.asarray(ds.source).tolist(), np.asarray(ds.event_index).tolist()))
    assert len(pairs) == len(set(pairs)) == 387
    expected = {(ids[str(p)], i) for p, n in zip(inputs, (230, 100, 57)) for i in range(n)}
    assert set(pairs) == expected
    # the virtual dataset holds no copy of the data, and follows the folder when moved
    assert (out / "dataset.h5").stat().st_size < 100_000
    moved = tmp_path / "moved"
    shutil.move(str(out), moved)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path.parent)
        again = hdf5.load(moved / "dataset.h5")
    finally:
        os.chdir(cwd)
    np.testing.assert_array_equal(again.data, ds.data)
