"""``poetml run`` keeps image datasets sparse from end to end: the cached dataset is in the
sparse layout, the splits are SparseImages, the scaler is fitted on stored pixels, training
and evaluation densify one batch at a time; and a tiny run gives the same scaler, the same
weights and the same metrics as the same run from a dense copy of the dataset (same seed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_poet_random

from poetml import config, pipeline
from poetml.datasets import labelled, sparse
from poetml.images import SparseImages
from poetml.pipeline.data import DATASET_FORMAT

TINY_TRAINING = {"epochs": 2, "batch_size": 16, "patience": 2, "verbose": 0, "seed": 3}


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("procs-sparse")
    return {
        "muony": write_poet_random(d / "muony.root", 90, seed=1, mean_muons=3.0, mean_jets=0.5),
        "jetty": write_poet_random(d / "jetty.root", 70, seed=2, mean_muons=0.2, mean_jets=6.0),
        "odd": write_poet_random(d / "odd.root", 40, seed=3, mean_muons=0.1, mean_electrons=4.0),
    }


def _cfg(
    ntuples: dict[str, Path],
    out: Path,
    autoencoder: bool = False,
    n: int = 8,
    epochs: int = 2,
    batch_size: int = 16,
) -> config.RunConfig:
    if autoencoder:
        processes = [
            {"name": "muony", "files": [str(ntuples["muony"])], "label": "SM"},
            {"name": "jetty", "files": [str(ntuples["jetty"])], "label": "SM"},
            {"name": "odd", "files": [str(ntuples["odd"])], "role": "signal"},
        ]
        model = {"type": "conv_ae", "filters": [2], "latent_dim": 2}
    else:
        processes = [
            {"name": "muony", "files": [str(ntuples["muony"])], "label": "A"},
            {"name": "jetty", "files": [str(ntuples["jetty"])], "label": "B"},
        ]
        model = {"type": "cnn", "filters": [2], "dense": [4]}
    return config.parse(
        {
            "dataset": {"kind": "images", "processes": processes, "split": [0.5, 0.25, 0.25]},
            "images": {"n_eta": n, "n_phi": n, "log1p": True},
            "model": model,
            "training": {**TINY_TRAINING, "epochs": epochs, "batch_size": batch_size},
            # small evaluation batches: the test split is scored in several of them
            "evaluation": {"batch_size": 7, "fpr_targets": [0.1], "rate_khz": [4000.0]},
            "run": {"output": str(out), "variants": ["float", "quantized"], "progress": False},
        }
    )


def _without_paths(obj):
    """Metrics with the plot paths (which name the output directory) left out."""
    if isinstance(obj, dict):
        return {k: _without_paths(v) for k, v in obj.items() if k not in ("plots", "path")}
    if isinstance(obj, list):
        return [_without_paths(v) for v in obj]
    return obj


def test_the_cached_image_dataset_is_in_the_sparse_layout(ntuples, tmp_path):
    import h5py

    out = tmp_path / "run"
    cfg = _cfg(ntuples, out)
    path = out / "data" / "dataset.h5"
    # a dense cache (as poetml wrote before format 6) is not reused: rebuilt sparse
    data0 = labelled.build(cfg.dataset, cfg.images, labelled.resolve_files(cfg.dataset),
                           progress=False)  # fmt: skip
    assert isinstance(data0.x, SparseImages)
    labelled.save(path, dataclasses.replace(data0, x=data0.x.dense()),
                  attrs={"fingerprint": "an older format"})  # fmt: skip
    with h5py.File(path, "r") as f:
        assert "images" in f
        assert not sparse.is_sparse(f)

    prep = pipeline.prepare_data(cfg, out)
    assert DATASET_FORMAT >= 6
    with h5py.File(path, "r") as f:
        assert sparse.is_sparse(f)
        assert "images" not in f  # no dense tensor stored
        assert f.attrs["layout"] == "sparse"
        assert list(f.attrs["image_shape"]) == [8, 8, 4]
        assert json.loads(f.attrs["channels"]) == list(cfg.images.channels)
        assert f.attrs["fingerprint"] == pipeline.dataset_key(
            cfg, labelled.resolve_files(cfg.dataset)
        )
        assert {"labels", "event_index", "source", "weight"} <= set(f)
        assert len(f["image_offsets"]) == 161
    # the same images as the dense build, exactly
    np.testing.assert_array_equal(prep.data.x.dense(), data0.x.dense())
    # what is cached is read back sparse, and the splits stay sparse and raw
    cached = pipeline.cached_dataset(
        path, pipeline.dataset_key(cfg, labelled.resolve_files(cfg.dataset))
    )
    assert cached is not None
    assert cached.sparse
    assert prep.sparse
    for part, idx in ((prep.x_train, prep.split.train), (prep.x_val, prep.split.val),
                      (prep.x_test, prep.split.test)):  # fmt: skip
        assert isinstance(part, SparseImages)
        np.testing.assert_array_equal(part.dense(), data0.x.dense()[idx])
    assert isinstance(prep.test.x, SparseImages)
    # a second data stage reuses the cache
    mtime = path.stat().st_mtime_ns
    pipeline.prepare_data(cfg, out)
    assert path.stat().st_mtime_ns == mtime


def _dense_reference(cfg, sparse_prep, out: Path):
    """The same run from a dense copy of the same dataset: prepare (dense scaler fit, whole
    splits preprocessed in memory), train, evaluate."""
    data = sparse_prep.data
    dense = dataclasses.replace(data, x=data.x.dense())
    prep = pipeline.prepare(cfg, dense)
    assert not prep.sparse
    assert isinstance(prep.x_train, np.ndarray)
    assert prep.preprocessing == sparse_prep.preprocessing  # the scaler fitted the same
    dirs = pipeline.train(cfg, prep, out)
    metrics, _ = pipeline.evaluate(cfg, prep, dirs, out)
    return prep, dirs, metrics


@pytest.mark.parametrize("autoencoder", [False, True], ids=["cnn", "conv_ae"])
def test_a_sparse_run_gives_the_dense_metrics(ntuples, tmp_path, autoencoder):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
    from poetml.training import load_model_dir

    cfg = _cfg(ntuples, tmp_path / "sparse", autoencoder)
    ctx = pipeline.run(cfg)
    assert ctx.prepared is not None
    assert ctx.prepared.sparse
    prep_d, dirs_d, metrics_d = _dense_reference(cfg, ctx.prepared, tmp_path / "dense")
    for v in ("float", "quantized"):
        w_sparse = load_model_dir(ctx.model_dirs[v]).model.get_weights()
        w_dense = load_model_dir(dirs_d[v]).model.get_weights()
        assert len(w_sparse) == len(w_dense) > 0
        for a, b in zip(w_sparse, w_dense, strict=True):
            np.testing.assert_array_equal(a, b)
        h_sparse = json.loads((ctx.model_dirs[v] / "history.json").read_text())
        assert h_sparse == json.loads((dirs_d[v] / "history.json").read_text())
        assert len(h_sparse["loss"]) == 2
    assert set(ctx.metrics) == {"float", "quantized"}
    assert _without_paths(ctx.metrics) == _without_paths(metrics_d)
    if autoencoder:
        m = ctx.metrics["float"]
        assert set(m["signals"]) == {"odd"}
        assert m["signals"]["odd"]["auc"] is not None
        # the scores themselves, batch by batch from sparse against the dense array
        md = load_model_dir(ctx.model_dirs["float"])
        s_sparse = pipeline.anomaly_scores(md.model, ctx.prepared.x_test, md.preprocessing, 7)
        s_dense = pipeline.anomaly_scores(md.model, prep_d.x_test, md.preprocessing, 7)
        assert s_sparse.shape == (len(prep_d.x_test),)
        np.testing.assert_array_equal(s_sparse, s_dense)
    else:
        assert 0.0 <= ctx.metrics["float"]["accuracy"] <= 1.0
        assert (tmp_path / "sparse" / "plots" / "mean_images.png").is_file()


def test_the_sparse_path_holds_no_dense_split(tmp_path):
    """Memory (NumPy's buffers, which tracemalloc sees) of preparing, training and evaluating
    from the sparse cache against the same from a dense copy of the dataset: preparing
    allocates a small fraction of one dense split, and training or evaluating allocates
    batches, not splits, beyond what the dense path allocates for TensorFlow and the plots."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
    import tracemalloc
    from functools import partial

    d = tmp_path / "files"
    d.mkdir()
    files = {
        "muony": write_poet_random(d / "m.root", 400, seed=1, mean_muons=3.0, mean_jets=0.5),
        "jetty": write_poet_random(d / "j.root", 400, seed=2, mean_muons=0.2, mean_jets=6.0),
    }
    cfg = _cfg(files, tmp_path / "sparse", n=64, epochs=1, batch_size=8)
    pipeline.prepare_data(cfg, tmp_path / "sparse")  # builds the cache
    peaks: dict[str, dict[str, int]] = {"sparse": {}, "dense": {}}

    def measure(mode: str, stage: str, fn):
        tracemalloc.start()
        try:
            result = fn()
            peaks[mode][stage] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return result

    sp = measure("sparse", "prepare", lambda: pipeline.prepare_data(cfg, tmp_path / "sparse"))
    data = sp.data
    dn = measure("dense", "prepare",
                 lambda: pipeline.prepare(cfg, dataclasses.replace(data, x=data.x.dense())))  # fmt: skip
    assert sp.sparse
    assert not dn.sparse
    # what the first training, evaluation and plots allocate for good (imports, caches,
    # TensorFlow's tracing machinery) is not what is measured: warm both paths up first
    for i, prep in enumerate((sp, dn)):
        warm = pipeline.train(cfg, prep, tmp_path / f"warm{i}", variants=["float"])
        pipeline.evaluate(cfg, prep, warm, tmp_path / f"warm{i}")
    for mode, prep in (("sparse", sp), ("dense", dn)):
        out = tmp_path / mode
        dirs = measure(mode, "train", partial(pipeline.train, cfg, prep, out, variants=["float"]))
        measure(mode, "evaluate", partial(pipeline.evaluate, cfg, prep, dirs, out))
    split = len(sp.x_train) * 64 * 64 * 4 * 4  # bytes of the dense training split: 26 MB
    print(f"peak bytes allocated (dense training split {split}): {peaks}")
    assert peaks["sparse"]["prepare"] < split / 20 < peaks["dense"]["prepare"]
    for stage in ("train", "evaluate"):
        assert peaks["sparse"][stage] - peaks["dense"][stage] < split / 2, (stage, peaks)
