"""Inputs and unrelated files are never overwritten; outputs appear complete or not at all;
bad values and bad outputs are reported in one line naming the file, branch and entry.

(Issue 11, items 2, 5 and 6.)  Every probe here failed on the code before the fix: the
input replaced by HDF5 with exit 0, a chunk-relative event number with no file name, a
segmentation fault on a full disk, a fixed temporary name shared by concurrent writers,
SIGTERM leaving the temporary file behind, a label silently wrapped to another one.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
from conftest import make_poet_events, write_poet, write_poet_random

from poetml import reading
from poetml._atomic import atomic_path, check_output
from poetml.cli import main
from poetml.datasets.hdf5 import ShardWriter
from poetml.exceptions import BadValueError, WriteError

POETML = [sys.executable, "-m", "poetml"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Temporary or lock files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if any ntuple is opened (checks that refusals come before work)."""

    def refuse(*args, **kwargs):
        raise AssertionError("an input was read before the output was checked")

    monkeypatch.setattr(reading, "iterate", refuse)
    monkeypatch.setattr(reading, "num_entries", refuse)


# ----------------------------------------------------------------- output is an input


@pytest.mark.parametrize("kind", ["images", "features"])
def test_output_equal_to_an_input_is_refused_before_reading(
    kind, poet_file, tmp_path, capsys, no_reading
):
    src = tmp_path / "f.root"
    src.write_bytes(poet_file.read_bytes())
    before = _digest(src)
    link = tmp_path / "link.root"
    link.symlink_to(src)
    hard = tmp_path / "hard.root"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "." / "f.root"):
        assert main([kind, str(src), "-o", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"poetml {kind}: error: output {out} is the input {src}" in err
        assert err.count("\n") == 1
    assert main([kind, str(link), "-o", str(src)]) == 1  # the input given through a link
    assert "would destroy the input" in capsys.readouterr().err
    assert _digest(src) == before
    assert src.is_file()
    assert not src.is_symlink()
    assert link.is_symlink()


def test_score_output_equal_to_an_input_is_refused_before_the_model_is_loaded(
    poet_file, tmp_path, capsys
):
    src = tmp_path / "f.root"
    src.write_bytes(poet_file.read_bytes())
    before = _digest(src)
    # the model directory does not exist: the output check must come first
    assert main(["score", str(tmp_path / "no-model"), str(src), "-o", str(src)]) == 1
    assert "would destroy the input" in capsys.readouterr().err
    assert _digest(src) == before


def test_output_that_is_a_directory_or_unwritable(poet_file, tmp_path, capsys, no_reading):
    assert main(["images", str(poet_file), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path}: it is an existing directory" in err
    assert err.count("\n") == 1

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    target = ro / "x.h5"
    try:
        probe = ro / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:  # root ignores permissions: take a folder of a read-only file system
            probe.unlink()
            target = Path("/sys/poetml-test/x.h5")
            if os.access("/sys", os.W_OK) and Path("/sys").is_dir():
                try:
                    check_output(target)
                except WriteError:
                    pass
                else:  # pragma: no cover - a machine with a writable /sys
                    pytest.skip("no read-only folder to write into on this machine")
        assert main(["features", str(poet_file), "-o", str(target)]) == 1
        err = capsys.readouterr().err
        assert f"poetml features: error: cannot write {target}:" in err
        assert err.count("\n") == 1
    finally:
        ro.chmod(0o755)


def test_label_outside_int32_is_refused(poet_file, tmp_path, capsys, no_reading):
    with pytest.raises(SystemExit) as exc:
        main(["images", str(poet_file), "-o", str(tmp_path / "x.h5"), "--label", str(2**31)])
    assert exc.value.code == 2
    assert "2147483648 does not fit in int32" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_same_file_twice_is_read_once(poet_file, tmp_path):
    out = tmp_path / "x.h5"
    dup = tmp_path / "dup.root"
    dup.symlink_to(poet_file)
    argv = ["features", str(poet_file), str(poet_file), str(dup), "-o", str(out), "--no-progress"]
    with pytest.warns(UserWarning, match=f"input given more than once: {poet_file}, {dup} "):
        assert main(argv) == 0
    n = reading.num_entries(str(poet_file))
    with h5py.File(out) as f:
        assert len(f["features"]) == n
        assert np.array_equal(f["event_index"][:], np.arange(n))


# ----------------------------------------------------------------- bad values


@pytest.fixture(scope="module")
def bad_value_files(tmp_path_factory):
    """POET files with one bad value at entry 42 (NaN pT, negative pT, inf eta)."""
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    for name, field, value in (
        ("nan", "muon_pt", float("nan")),
        ("neg", "muon_pt", -3.0),
        ("inf", "muon_eta", float("inf")),
    ):
        events = make_poet_events(100, seed=3)
        values = ak.to_list(events["muon"][field])
        entry = next(i for i in range(42, 100) if values[i])
        assert entry == 42
        values[entry][0] = value
        events["muon"][field] = ak.Array(values)
        files[name] = write_poet(folder / f"{name}.root", events)
    return files


@pytest.mark.parametrize(
    ("name", "branch", "what"),
    [
        ("nan", "muon_pt", "value nan at entry 42, object 0 of the entry is not finite"),
        ("neg", "muon_pt", "value -3.0 at entry 42, object 0 of the entry is negative"),
        ("inf", "muon_eta", "value inf at entry 42, object 0 of the entry is not finite"),
    ],
)
def test_bad_value_names_file_tree_branch_and_entry(
    bad_value_files, tmp_path, capsys, name, branch, what
):
    path = bad_value_files[name]
    # step 20: the bad entry is event 2 of its chunk, which the old message reported
    with pytest.raises(BadValueError) as exc:
        for _ in reading.iterate(str(path), 20):
            pass
    msg = str(exc.value)
    assert msg.startswith(f"{path}: tree 'mymuons/Events', branch '{branch}': {what}")
    out = tmp_path / "x.h5"
    assert main(["images", str(path), "-o", str(out), "--step-size", "20", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"poetml images: error: {msg}\n"
    assert list(tmp_path.iterdir()) == []


def test_debug_flag_shows_the_traceback(bad_value_files, tmp_path):
    args = ["images", str(bad_value_files["nan"]), "-o", str(tmp_path / "x.h5"), "--no-progress"]
    plain = subprocess.run([*POETML, *args], capture_output=True, text=True, check=False)
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([*POETML, "--debug", *args], capture_output=True, text=True, check=False)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "BadValueError" in debug.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    return write_poet_random(tmp_path_factory.mktemp("big") / "big.root", 20_000, seed=5)


def _limit_file_size(nbytes: int):
    def preexec():  # a full disk, without mounting one: writes beyond nbytes fail (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return preexec


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_full_disk_is_one_line_and_leaves_nothing(big_file, tmp_path, compression):
    out = tmp_path / "x.h5"
    res = subprocess.run(
        [*POETML, "images", str(big_file), "-o", str(out), "--no-progress",
         "--compression", compression],
        capture_output=True, text=True, preexec_fn=_limit_file_size(1 << 17), timeout=300,
        check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-2000:]  # was -11: a segmentation fault
    assert res.stderr == f"poetml images: error: cannot write {out}: File too large\n"
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique_per_process(tmp_path):
    out = tmp_path / "x.h5"
    w = ShardWriter(out, "features", item_shape=(3,))
    try:
        assert w.tmp_path.parent == tmp_path
        assert str(os.getpid()) in w.tmp_path.name
        assert w.tmp_path.exists()
    finally:
        w.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_of_the_same_output_is_refused(poet_file, tmp_path, capsys):
    out = tmp_path / "x.h5"
    with ShardWriter(out, "features", item_shape=(3,)) as w:
        with pytest.raises(WriteError, match="another process is writing it"):
            ShardWriter(out, "features", item_shape=(3,))
        with pytest.raises(WriteError, match="another process is writing it"), atomic_path(out):
            pass  # pragma: no cover
        w.append(np.ones((2, 3), np.float32), [0, 1], 0)
    with h5py.File(out) as f:
        assert len(f["features"]) == 2
    # a writer in another (live) process: the CLI refuses, the file stays as it was
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / ".x.h5.lock"
        lock.write_text(f"{socket.gethostname()} {holder.pid}\n")
        before = _digest(out)
        assert main(["features", str(poet_file), "-o", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"another process is writing it (process {holder.pid} on" in err
        assert _digest(out) == before
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock is stale and taken over
    assert main(["features", str(poet_file), "-o", str(out), "--no-progress"]) == 0
    assert _leftovers(tmp_path) == []


def test_sigterm_cleans_up_as_sigint_does(big_file, tmp_path):
    # dense, uncompressed, small steps: the slowest conversion, so the signal arrives while it
    # runs.  Every SIGTERM ends the run with 143, never 0 (the handler's exception can be
    # dropped by Python; the flag it sets is checked before any rename): nothing is left
    # behind, or (when the signal came after the rename) the complete output only
    cleaned = 0
    for attempt in range(3):
        work = tmp_path / str(attempt)
        work.mkdir()
        out = work / "x.h5"
        proc = subprocess.Popen(
            [*POETML, "images", str(big_file), "-o", str(out), "--no-progress",
             "--step-size", "100", "--compression", "none", "--threads", "1",
             "--image-layout", "dense"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".tmp") for p in work.iterdir()):
            assert proc.poll() is None, "finished before it could be terminated"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "terminated; no partial output was kept" in err
        left = [p.name for p in work.iterdir()]
        assert left in ([], ["x.h5"])
        cleaned += left == []
    assert cleaned  # the usual case: the signal lands while the file is written


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped raise
def test_a_signal_whose_exception_python_drops_still_stops_the_run(tmp_path, monkeypatch):
    """SIGTERM handled while a ``__del__`` runs: Python prints "Exception ignored" and goes
    on.  The run still ends with 143 and no output, as if the raise had gone through."""
    from poetml.datasets import convert

    real = convert.write_batch

    class SignalInDel:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs (and its raise is dropped) in here
                time.sleep(0.0001)

    def write_batch(*args, **kwargs):
        SignalInDel()  # created and destroyed at once
        return real(*args, **kwargs)

    src = write_poet_random(tmp_path / "in" / "a.root", 300, seed=2)
    monkeypatch.setattr(convert, "write_batch", write_batch)
    out = tmp_path / "out" / "x.h5"
    rc = main(["images", str(src), "-o", str(out), "--no-progress"])
    assert rc == 128 + signal.SIGTERM
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
