"""poetml.batch on a real dask.distributed LocalCluster (2 worker processes), small files."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from poetml import batch
from poetml.batch.inputs import fingerprint_diff
from poetml.batch.manifest import SHARD_RE
from poetml.batch.tasks import sha256
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

    from poetml.datasets import hdf5

    with h5py.File(path, "r") as f:
        got = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
    if "pixel_index" in got:  # a sparse shard: its images densified too
        got["images"] = hdf5.load(path).data
    return got


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
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
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
    assert a == batch.spec_fingerprint(
        "images", ImageSpec(n_eta=8, n_phi=8), ["/x.root"], step_size=10
    )
    b = batch.spec_fingerprint("images", ImageSpec(n_eta=9, n_phi=8), ["/x.root"], step_size=10)
    c = batch.spec_fingerprint("images", SMALL, ["/x.root", "/y.root"], step_size=10)
    d = batch.spec_fingerprint("images", SMALL, ["/x.root"], step_size=11)
    assert len({a["hash"], b["hash"], c["hash"], d["hash"]}) == 4
    diff = fingerprint_diff(a, b)
    assert diff == ["spec n_eta: 8 -> 9"]
    assert "1 added (first: /y.root)" in fingerprint_diff(a, c)[0]
    with pytest.raises(ConfigError, match="kind"):
        batch.spec_fingerprint("movies", SMALL, [], step_size=1)
    dense = batch.spec_fingerprint("images", SMALL, ["/x.root"], step_size=10, image_layout="dense")
    assert "image_layout" not in dense  # dense batches keep their earlier fingerprint
    assert dense["hash"] != a["hash"]
    assert fingerprint_diff(dense, a) == ["image_layout 'dense' -> 'sparse'"]
    with pytest.raises(ConfigError, match="image layout 'ragged' is not one of sparse, dense"):
        batch.spec_fingerprint("images", SMALL, [], step_size=1, image_layout="ragged")


# --------------------------------------------------------------------------------------
# on the cluster
# --------------------------------------------------------------------------------------


def test_shards_equal_single_process_and_dataset_has_every_event_once(client, inputs, tmp_path):
    from poetml.datasets import hdf5

    out = tmp_path / "out"
    res = batch.run(
        inputs, out, "images", SMALL, step_size=100, client=client, progress=False, label=3
    )
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
        np.testing.assert_array_equal(np.concatenate([g["event_index"] for g in got]), want_index)
        for g, t in zip(got, tasks, strict=True):
            assert set(np.unique(g["source"])) == {0}  # a shard numbers its one input 0
            assert set(np.unique(g["labels"])) == {3}
            ds = hdf5.load(out / t.shard)
            assert ds.inputs == (str(path),)
            assert ds.attrs["batch_source_id"] == ids[str(path)]
            assert (ds.attrs["entry_start"], ds.attrs["entry_stop"]) == (
                t.entry_start,
                t.entry_stop,
            )
        for t in tasks:
            assert sha256(out / t.shard) == t.sha256

    ds = hdf5.load(out / "dataset.h5")
    assert ds.data.shape == (387, 8, 8, 4)
    assert ds.kind == "images"
    assert ds.channels == SMALL.channels
    assert ds.attrs["complete"]
    assert ds.attrs["spec"]["n_eta"] == 8
    assert ds.inputs == tuple(str(p) for p in inputs)
    assert set(np.unique(ds.labels)) == {3}
    for p in inputs:  # source indexes inputs
        sel = np.asarray(ds.source) == ds.inputs.index(str(p))
        want, want_index = reference("images", SMALL, p)
        np.testing.assert_array_equal(ds.data[sel], want)
        np.testing.assert_array_equal(ds.event_index[sel], want_index)
    pairs = list(zip(ds.source.tolist(), ds.event_index.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 387
    expected = {
        (ids[str(p)], i) for p, n in zip(inputs, (230, 100, 57), strict=True) for i in range(n)
    }
    assert set(pairs) == expected
    # sparse shards, presented as one sparse file: pixels virtual, offsets rebased
    import h5py

    with h5py.File(out / "dataset.h5") as f:
        assert f.attrs["layout"] == "sparse"
        assert f["pixel_index"].is_virtual
        assert f["pixel_value"].is_virtual
        assert not f["image_offsets"].is_virtual
        offsets = f["image_offsets"][()]
        assert offsets[0] == 0
        assert offsets[-1] == len(f["pixel_index"]) == len(f["pixel_value"])
        assert offsets[-1] == np.count_nonzero(ds.data)
        assert np.all(np.diff(offsets) >= 0)
    shard_nnz = [len(read_shard(out / t.shard)["pixel_index"]) for t in st.tasks]
    assert sum(shard_nnz) == offsets[-1]
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


def test_dense_and_sparse_batches_hold_the_same_images(client, inputs, tmp_path):
    from poetml.datasets import hdf5

    kw = {"step_size": 60, "client": client, "progress": False}
    sparse = batch.run(inputs[1:], tmp_path / "sparse", "images", SMALL, **kw)
    dense = batch.run(inputs[1:], tmp_path / "dense", "images", SMALL, image_layout="dense", **kw)
    assert sparse.ok
    assert dense.ok
    a, b = (
        hdf5.load(tmp_path / "sparse" / "dataset.h5"),
        hdf5.load(tmp_path / "dense" / "dataset.h5"),
    )
    assert a.data.shape == b.data.shape == (157, *SMALL.shape)
    assert a.data.tobytes() == b.data.tobytes()
    np.testing.assert_array_equal(a.event_index, b.event_index)
    np.testing.assert_array_equal(a.source, b.source)
    assert a.attrs["layout"] == "sparse"
    assert "layout" not in b.attrs
    # the lazy reader slices across shard boundaries (shards of 60 events)
    ds = hdf5.open_dataset(tmp_path / "sparse" / "dataset.h5")
    try:
        np.testing.assert_array_equal(ds[50:130], b.data[50:130])
    finally:
        ds.file.close()
    # the layout is part of the fingerprint: no mixing of sparse and dense shards
    with pytest.raises(batch.BatchError, match=r"image_layout 'sparse' -> 'dense'"):
        batch.run(inputs[1:], tmp_path / "sparse", "images", SMALL, image_layout="dense", **kw)
    again = batch.run(inputs[1:], tmp_path / "sparse", "images", SMALL, **kw)
    assert again.n_skipped == again.n_tasks


def test_features_shards_equal_single_process(client, inputs, tmp_path):
    from poetml.datasets import hdf5
    from poetml.features import FeatureSpec, feature_names

    spec = FeatureSpec(event_quantities=("ht", "n_jet"))
    out = tmp_path / "out"
    res = batch.run(
        inputs[1:],
        out,
        "features",
        spec,
        step_size=40,
        client=client,
        progress=False,
        compression="lzf",
    )
    assert res.ok
    assert res.n_tasks == 3 + 2
    ds = hdf5.load(out / "dataset.h5")
    assert ds.kind == "features"
    assert ds.labels is None
    assert ds.feature_names == tuple(feature_names(spec))
    for p in inputs[1:]:
        sel = ds.source == ds.inputs.index(str(p))
        want, want_index = reference("features", spec, p)
        np.testing.assert_array_equal(ds.data[sel], want)
        np.testing.assert_array_equal(ds.event_index[sel], want_index)


def _corrupt_basket(src: Path, dst: Path, tree: str, branch: str, basket: int) -> None:
    """Copy ``src`` to ``dst`` with the compressed payload of one basket scrambled."""
    import uproot

    with uproot.open(src) as f:
        b = f[tree][branch]
        seek = int(b.member("fBasketSeek")[basket])
        nbytes = int(b.member("fBasketBytes")[basket])
    data = bytearray(src.read_bytes())
    for i in range(seek + nbytes - 40, seek + nbytes):
        data[i] ^= 0x5A
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, inputs):
    """Two good files, a file of random bytes, a truncated file, and a file with one
    scrambled basket (entries [100, 150) of the jet tree)."""
    from conftest import make_poet_events, write_poet

    d = tmp_path_factory.mktemp("bad")
    partial_src = write_poet(d / "partial_src.root", make_poet_events(200, seed=7), chunk=50)
    _corrupt_basket(partial_src, d / "partial.root", "myjets/Events", "jet_corrpt", 2)
    partial_src.unlink()
    junk = d / "junk.root"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    trunc = truncate(inputs[0], d / "truncated.root")
    return {"good": inputs[1:], "junk": junk, "truncated": trunc, "partial": d / "partial.root"}


def test_corrupt_files_fail_only_their_tasks_cli(client, bad_inputs, tmp_path, capsys):
    from poetml.cli import main
    from poetml.datasets import hdf5

    out = tmp_path / "out"
    files = [
        *bad_inputs["good"],
        bad_inputs["junk"],
        bad_inputs["truncated"],
        bad_inputs["partial"],
    ]
    rc = main(
        [
            "batch",
            "images",
            *map(str, files),
            "-o",
            str(out),
            "--step-size",
            "50",
            "--scheduler",
            client.scheduler.address,
            "--retries",
            "1",
            "--no-progress",
            "--config",
            str(_small_config(tmp_path)),
        ]
    )
    cap = capsys.readouterr()
    assert rc == 1
    assert "failed" in cap.err
    # good files and the readable part of the damaged one are complete
    st = batch.status(out)
    by_file: dict[str, list] = {}
    for t in st.tasks:
        by_file.setdefault(Path(t.path).name, []).append(t)
    assert {t.status for f in ("b.root", "c.root") for t in by_file[f]} == {"done"}
    partial = {(t.entry_start, t.status) for t in by_file["partial.root"]}
    assert partial == {(0, "done"), (50, "done"), (100, "failed"), (150, "done")}
    [bad] = [t for t in by_file["partial.root"] if t.status == "failed"]
    assert "partial.root" in bad.error
    assert "decompress" in bad.error
    assert bad.attempts == 1  # Dask's retries are internal to one submission
    # the unreadable files fail before any task is planned, with their reason
    failed = {Path(s["path"]).name: s["error"] for s in st.failed_sources}
    assert set(failed) == {"junk.root", "truncated.root"}
    assert all("ReadError" in e for e in failed.values())
    for name in ("junk.root", "truncated.root", "partial.root", "[100, 150)"):
        assert name in cap.out
    # the dataset covers exactly the finished tasks and says it is incomplete
    ds = hdf5.load(out / "dataset.h5")
    assert len(ds) == 100 + 57 + 150
    assert not ds.attrs["complete"]

    rc = main(["batch", "status", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    counts = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()[1:4]}
    assert counts == {"done": 7, "failed": 1, "pending": 0}
    assert "[100, 150)" in text
    assert "junk.root" in text
    assert "INCOMPLETE" in text
    rc = main(["batch", "status", str(out), "--json"])
    js = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert js["counts"]["failed"] == 1
    assert js["counts"]["files_failed"] == 2
    assert js["counts"]["done"] == 2 + 2 + 3


def _small_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "small.yaml"
    cfg.write_text("images:\n  n_eta: 8\n  n_phi: 8\n")
    return cfg


def test_resume_redoes_only_unfinished_tasks(client, inputs, tmp_path):
    from poetml.datasets import hdf5

    out = tmp_path / "out"
    kw = {"step_size": 50, "client": client, "progress": False}
    first = batch.run(inputs, out, "images", SMALL, **kw)
    assert first.ok
    assert first.n_tasks == 5 + 2 + 2
    tasks = {(Path(t.path).name, t.entry_start): t for t in batch.status(out).tasks}
    original = {k: read_shard(out / t.shard) for k, t in tasks.items()}

    # a crash, simulated: a shard lost, a result never recorded, a manifest row lost,
    # a shard damaged on disk, a half-written temporary left behind
    lost, unrecorded, forgotten, damaged = (
        ("a.root", 0),
        ("a.root", 150),
        ("b.root", 50),
        ("c.root", 0),
    )
    (out / tasks[lost].shard).unlink()
    with open(out / tasks[damaged].shard, "r+b") as fh:
        fh.seek(-10, 2)
        fh.write(b"\0" * 10)
    db = sqlite3.connect(out / batch.MANIFEST_NAME)
    ids = dict(db.execute("SELECT path, id FROM sources"))
    db.execute(
        "UPDATE tasks SET status = 'pending' WHERE source_id = ? AND entry_start = ?",
        (ids[str(inputs[0])], 150),
    )
    db.execute(
        "DELETE FROM tasks WHERE source_id = ? AND entry_start = ?", (ids[str(inputs[1])], 50)
    )
    db.commit()
    db.close()
    (out / batch.SHARD_DIR / "src000000_000000000000-000000000050.h5.tmp").write_bytes(b"x")
    before = final_shards(out)

    st = batch.status(out)
    assert not st.complete
    assert len(st.pending) == 1
    assert len(st.tasks) == 8

    again = batch.run(inputs, out, "images", SMALL, **kw)
    assert again.ok, again.summary()
    assert again.n_skipped == 9 - 4
    assert again.n_done == 9
    after = final_shards(out)
    redone = {tasks[k].shard.split("/")[-1] for k in (lost, unrecorded, forgotten, damaged)}
    assert set(after) == {t.shard.split("/")[-1] for t in tasks.values()}  # temp file gone
    for name, mtime in after.items():
        if name in redone:
            assert before.get(name) != mtime
        else:
            assert before[name] == mtime, f"{name} was rewritten"
    for k, t in tasks.items():
        got = read_shard(out / t.shard)
        for key in original[k]:
            np.testing.assert_array_equal(got[key], original[k][key])
    ds = hdf5.load(out / "dataset.h5")
    assert len(ds) == 387
    assert ds.attrs["complete"]
    assert len(set(zip(ds.source.tolist(), ds.event_index.tolist(), strict=True))) == 387


def test_changed_spec_refused_unless_overwrite(client, inputs, tmp_path):
    from poetml.datasets import hdf5

    out = tmp_path / "out"
    kw = {"step_size": 50, "client": client, "progress": False}
    assert batch.run(inputs[2:], out, "images", SMALL, **kw).ok
    with pytest.raises(batch.BatchError, match=r"spec n_eta: 8 -> 9.*--overwrite"):
        batch.run(inputs[2:], out, "images", ImageSpec(n_eta=9, n_phi=8), **kw)
    with pytest.raises(batch.BatchError, match=r"inputs 1 added"):
        batch.run(inputs[1:], out, "images", SMALL, **kw)
    with pytest.raises(batch.BatchError, match=r"kind 'images' -> 'features'"):
        batch.run(inputs[2:], out, "features", None, **kw)
    assert hdf5.load(out / "dataset.h5").data.shape[1:] == (8, 8, 4)  # untouched
    res = batch.run(inputs[2:], out, "images", ImageSpec(n_eta=9, n_phi=8), overwrite=True, **kw)
    assert res.ok
    assert res.n_skipped == 0
    assert hdf5.load(out / "dataset.h5").data.shape == (57, 9, 8, 4)
    assert len(list((out / batch.SHARD_DIR).iterdir())) == 2


def test_worker_killed_mid_task_is_retried(client, tmp_path, write_poet_file):
    """SIGKILL the worker process that is running a task: Dask reschedules the task on
    the other worker (its nanny restarts the dead one) and the batch completes intact."""
    import signal
    import threading
    import time

    from poetml.datasets import hdf5

    src = write_poet_file(tmp_path / "big.root", 4000, seed=11)
    out = tmp_path / "out"
    spec = ImageSpec(n_eta=16, n_phi=16)
    result: dict = {}

    def work():
        try:
            result["r"] = batch.run(
                [src], out, "images", spec, step_size=1000, client=client, progress=False
            )
        except Exception as exc:  # noqa: BLE001  (reported by the assertions below)
            result["exc"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        for addr, keys in client.processing().items():
            if any(str(k).startswith("poetml-task") for k in keys):
                pid = client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.01)
    thread.join(300)
    assert killed is not None, "no task was seen running"
    assert "exc" not in result, result.get("exc")
    res = result["r"]
    assert res.ok, res.summary()
    assert res.n_done == 4
    assert res.n_events == 4000
    ds = hdf5.load(out / "dataset.h5")
    want, want_index = reference("images", spec, src)
    np.testing.assert_array_equal(ds.data, want)
    np.testing.assert_array_equal(ds.event_index, want_index)
    assert sorted(final_shards(out)) == sorted(
        t.shard.split("/")[-1] for t in batch.status(out).tasks
    )
    client.wait_for_workers(2, timeout=120)
    assert killed not in client.run(os.getpid).values()


@pytest.mark.slow
def test_ctrl_c_leaves_only_complete_shards_and_resumes(tmp_path, write_poet_file):
    """SIGINT to ``poetml batch`` mid-run: exit status 130, every shard under a final name
    is complete and recorded; the same command then finishes only the rest."""
    import signal
    import subprocess
    import sys
    import time

    src = write_poet_file(tmp_path / "in.root", 4000, seed=5)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "poetml",
        "batch",
        "images",
        str(src),
        "-o",
        str(out),
        "--workers",
        "1",
        "--step-size",
        "250",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        n_done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / batch.MANIFEST_NAME).exists():
                with contextlib.suppress(sqlite3.OperationalError):
                    db = sqlite3.connect(out / batch.MANIFEST_NAME, timeout=1)
                    try:
                        n_done = db.execute(
                            "SELECT COUNT(*) FROM tasks WHERE status = 'done'"
                        ).fetchone()[0]
                    finally:
                        db.close()
            if n_done >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr
    st = batch.status(out)
    done = {t.shard.split("/")[-1]: t for t in st.done}
    assert 2 <= len(done) < 16
    for name in final_shards(out):
        if SHARD_RE.fullmatch(name):
            t = done.get(name)
            if t is None:  # finished after the last record: complete but not yet recorded
                read_shard(out / batch.SHARD_DIR / name)
            else:
                assert sha256(out / t.shard) == t.sha256
    rc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stderr
    assert f"({len(done)} already done before this run)" in rc.stdout
    from poetml.datasets import hdf5

    ds = hdf5.load(out / "dataset.h5")
    np.testing.assert_array_equal(ds.data, reference("images", ImageSpec(), src)[0])
