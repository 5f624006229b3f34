"""``poetml batch score``: firmware-exact scores and trigger bit on Dask, equal event for
event to ``poetml score --firmware`` (whose trigger bit a test of test_firmware_stage checks
against the C simulation of trigger_decision)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("hls4ml", reason="hls4ml is not installed (the firmware extra)")
pytest.importorskip("distributed")

from conftest import write_poet_random
from test_firmware_stage import QUICK_TRAINING, _ae_run_config, _processes

from poetml import batch, pipeline
from poetml.cli import main


@pytest.fixture(scope="module")
def run_and_firmware(tmp_path_factory):
    """A tiny quantized dense autoencoder run with its firmware (as in
    test_firmware_stage), and two small POET files to score."""
    tmp = tmp_path_factory.mktemp("bscore")
    out = tmp / "ae"
    pipeline.run(_ae_run_config(out, _processes(tmp, 300, 100), QUICK_TRAINING))
    files = [
        write_poet_random(tmp / "in" / "a.root", 230, seed=11, mean_muons=1.5, mean_jets=3.0),
        write_poet_random(tmp / "in" / "b.root", 90, seed=12, mean_electrons=2.0),
    ]
    return out / "models" / "quantized", out / "firmware", [str(f) for f in files]


def _cmd(model_dir, files, out, fwdir, *extra):
    return ["batch", "score", str(model_dir), *files, "-o", str(out), "--firmware", str(fwdir),
            "--step-size", "64", "--no-progress", *extra]  # fmt: skip


def _dataset(out) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(out / batch.DATASET_NAME, "r") as f:
        got = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        got["attrs"] = dict(f.attrs)  # type: ignore[assignment]
    return got


def test_batch_score_equals_poetml_score_firmware_and_resumes(run_and_firmware, tmp_path, capsys):
    import uproot

    model_dir, fwdir, files = run_and_firmware
    out = tmp_path / "out"
    assert main(_cmd(model_dir, files, out, fwdir, "--workers", "2")) == 0
    first = capsys.readouterr().out
    assert "dataset:" in first
    assert "complete" in first

    # the reference: poetml score --firmware, one process, the friend tree
    ref = pipeline.score(model_dir, files, tmp_path / "ref.root", firmware=fwdir, progress=False)
    with uproot.open(ref) as f:
        t = f["scores"].arrays(library="np")
    ds = _dataset(out)
    assert {"firmware_score", "trigger", "event_index", "source", "sources"} <= set(ds)
    assert json.loads(ds["attrs"]["columns"]) == ["firmware_score", "trigger"]
    assert ds["firmware_score"].dtype == np.float64
    assert ds["trigger"].dtype == np.uint8
    assert len(ds["firmware_score"]) == len(t["firmware_score"]) == 320
    sources = np.array([s.decode() for s in ds["sources"]])
    assert list(sources[ds["source"]]) == [files[i] for i in t["file_index"]]
    assert np.array_equal(ds["event_index"], t["entry"])
    assert np.array_equal(ds["firmware_score"], t["firmware_score"])  # bit for bit
    assert np.array_equal(ds["trigger"].astype(bool), t["trigger"])
    assert 0 < ds["trigger"].sum() < len(ds["trigger"])  # the threshold cuts into these events

    # re-running the same command redoes nothing: every task skipped, shards untouched
    st = batch.status(out)
    assert st.complete
    n_tasks = len(st.tasks)
    assert n_tasks == 4 + 2  # 230 events in 64-entry tasks, 90 in 64
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / batch.SHARD_DIR).iterdir()}
    assert main(_cmd(model_dir, files, out, fwdir, "--workers", "1")) == 0
    again = capsys.readouterr().out
    assert f"{n_tasks} done ({n_tasks} already done before this run)" in again
    assert {p.name: p.stat().st_mtime_ns for p in (out / batch.SHARD_DIR).iterdir()} == mtimes

    # another firmware of the same model (here: another threshold) is refused, naming the
    # export's checksum, unless --overwrite
    from poetml.firmware.emulate import load_export, save_export
    from poetml.firmware.scoring import load_scorer

    other = tmp_path / "fw2"
    export, meta = load_export(fwdir / "emulator" / "emulator.npz")
    meta["threshold"] = float(np.median(ds["firmware_score"]))
    save_export(export, other / "emulator" / "emulator.npz", meta)
    assert main(_cmd(model_dir, files, out, other, "--workers", "1")) == 1
    err = capsys.readouterr().err
    assert "different settings" in err
    assert "firmware_sha256" in err
    assert "--overwrite" in err
    assert np.array_equal(_dataset(out)["trigger"], ds["trigger"])  # untouched
    assert main(_cmd(model_dir, files, out, other, "--workers", "2", "--overwrite")) == 0
    new = _dataset(out)
    assert new["attrs"]["batch_fingerprint"] != ds["attrs"]["batch_fingerprint"]
    scorer = load_scorer(other, model_dir)
    from poetml.reading import read

    want = np.concatenate([scorer.score(read(f))["trigger"] for f in files])
    assert np.array_equal(new["trigger"].astype(bool), want)
    assert not np.array_equal(new["trigger"], ds["trigger"])


def test_batch_score_without_firmware_is_refused(run_and_firmware, tmp_path, capsys):
    model_dir, _, files = run_and_firmware
    rc = main(["batch", "score", str(model_dir), *files, "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "--firmware FWDIR is required" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_scorer_pickles_and_workers_do_not_load_tensorflow(run_and_firmware, tmp_path):
    """The scorer shipped to workers is plain data (the network is rebuilt where it is
    unpickled) and scoring in a fresh process imports neither TensorFlow nor hls4ml."""
    import pickle
    import subprocess

    from poetml.firmware.scoring import load_scorer
    from poetml.reading import read

    model_dir, fwdir, files = run_and_firmware
    scorer = load_scorer(fwdir, model_dir)
    want = scorer.score(read(files[1]))
    blob = tmp_path / "scorer.pkl"
    blob.write_bytes(pickle.dumps(scorer))
    code = (
        "import pickle, sys; import numpy as np; from poetml.reading import read\n"
        f"s = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        f"c = s.score(read({files[1]!r}))\n"
        "np.save(sys.argv[1], c['firmware_score'])\n"
        "assert 'tensorflow' not in sys.modules and 'hls4ml' not in sys.modules\n"
    )
    npy = tmp_path / "s.npy"
    subprocess.run([sys.executable, "-c", code, str(npy)], check=True)
    assert np.array_equal(np.load(npy), want["firmware_score"])


def test_model_and_firmware_identity_is_in_the_fingerprint(run_and_firmware, tmp_path):
    from poetml.batch.inputs import spec_fingerprint
    from poetml.batch.tasks import sha256
    from poetml.exceptions import ConfigError
    from poetml.firmware.scoring import load_scorer

    model_dir, fwdir, files = run_and_firmware
    scorer = load_scorer(fwdir, model_dir)
    fp = spec_fingerprint("scores", scorer, files, step_size=64)
    assert fp["spec"]["firmware_sha256"] == sha256(fwdir / "emulator" / "emulator.npz")
    assert set(fp["spec"]["model"]) == {"preprocessing_sha256", "model_sha256"}
    other = tmp_path / "md"
    shutil.copytree(model_dir, other)
    assert spec_fingerprint("scores", load_scorer(fwdir, other), files, step_size=64) == fp
    with pytest.raises(ConfigError, match="needs a scorer"):
        spec_fingerprint("scores", None, files, step_size=64)
