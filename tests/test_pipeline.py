"""End-to-end learning pipeline on tiny synthetic POET ntuples: data -> train -> evaluate ->
score, resume, and the bad-input errors (all raised before any training)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_poet_random

from poetml import config, pipeline
from poetml.datasets.scalers import DatasetError
from poetml.exceptions import ConfigError

TINY_TRAINING = {"epochs": 2, "batch_size": 32, "patience": 2, "verbose": 0, "seed": 3}


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("procs")
    return {
        "muony": write_poet_random(d / "muony.root", 120, seed=1, mean_muons=3.0, mean_jets=0.5),
        "jetty": write_poet_random(d / "jetty.root", 100, seed=2, mean_muons=0.2, mean_jets=6.0),
        "odd": write_poet_random(d / "odd.root", 60, seed=3, mean_muons=0.1, mean_electrons=4.0),
    }


def _cnn_cfg(ntuples: dict[str, Path], out: Path, **over) -> config.RunConfig:
    data = {
        "dataset": {
            "kind": "images",
            "processes": [
                {"name": "muony", "files": [str(ntuples["muony"])], "label": "A"},
                {"name": "jetty", "files": [str(ntuples["jetty"])], "label": "B"},
            ],
            "split": [0.5, 0.25, 0.25],
        },
        "images": {"n_eta": 8, "n_phi": 8, "log1p": True},
        "model": {"type": "cnn", "filters": [2], "dense": [4]},
        "training": TINY_TRAINING,
        "run": {"output": str(out), "variants": ["float", "quantized"], "progress": False},
    }
    for k, v in over.items():
        data[k] = v
    return config.parse(data)


def test_classifier_run_train_evaluate_score_resume(ntuples, tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
    import uproot

    out = tmp_path / "out"
    cfg = _cnn_cfg(ntuples, out)
    ctx = pipeline.run(cfg)
    for v in ("float", "quantized"):
        d = out / "models" / v
        assert (d / "model.h5").is_file()
        prep = json.loads((d / "preprocessing.json").read_text())
        assert prep["class_names"] == ["A", "B"]
        assert prep["input_quantization"]["hls_type"] == "ap_fixed<12,5>"
    assert (out / "data" / "dataset.h5").is_file()
    assert (out / "report.md").is_file()
    run_json = json.loads((out / "run.json").read_text())
    assert set(run_json["metrics"]) == {"float", "quantized"}
    assert ctx.prepared is not None
    n = len(ctx.prepared.data)
    assert n == 220
    # test split is disjoint from train and val
    s = ctx.prepared.split
    assert not set(s.train) & set(s.test)
    assert not set(s.val) & set(s.test)

    # resume: a second run skips the finished models
    capsys.readouterr()
    pipeline.run(cfg)
    assert "up to date" in capsys.readouterr().out

    # scores aligned entry by entry with the input ntuple
    scores = tmp_path / "scores.root"
    pipeline.score(out / "models" / "float", [ntuples["jetty"]], scores, progress=False)
    with uproot.open(scores) as f:
        t = f["scores"]
        arr = t.arrays(library="np")
    assert t.num_entries == 100
    np.testing.assert_array_equal(arr["entry"], np.arange(100))
    np.testing.assert_allclose(arr["score_A"] + arr["score_B"], 1.0, atol=1e-5)
    # the same events through the pipeline's own preprocessing give the same scores
    from poetml.training import load_model_dir

    md = load_model_dir(out / "models" / "float")
    data = ctx.prepared.data
    pick = np.flatnonzero(data.process == 1)
    order = np.argsort(data.event_index[pick])
    assert data.sparse  # the cached image dataset stays sparse
    x = md.preprocessing.apply(data.x.take(pick[order]).dense())
    p = md.model.predict(x, verbose=0)
    np.testing.assert_allclose(arr["score_A"], p[:, 0], rtol=1e-4, atol=1e-6)

    # the CLI: two inputs chained in order, like a TChain of them
    from poetml.cli import main

    both = tmp_path / "both.root"
    rc = main(
        [
            "score",
            str(out / "models" / "quantized"),
            str(ntuples["muony"]),
            str(ntuples["jetty"]),
            "-o",
            str(both),
            "--quiet",
        ]
    )
    assert rc == 0
    with uproot.open(both) as f:
        b = f["scores"].arrays(library="np")
    assert len(b["entry"]) == 220
    np.testing.assert_array_equal(b["file_index"], np.repeat([0, 1], [120, 100]))
    np.testing.assert_array_equal(b["entry"], np.concatenate([np.arange(120), np.arange(100)]))
    assert not (tmp_path / "both.root.tmp").exists()
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read configuration" in capsys.readouterr().err


def test_seeded_training_repeats_exactly(ntuples, tmp_path):
    """Same config, same seed: the same weights, whether a variant is trained after another
    one in the same process or on its own (a resumed run)."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
    from poetml.training import load_model_dir

    cfg = _cnn_cfg(ntuples, tmp_path / "a")
    prep = pipeline.prepare_data(cfg, tmp_path / "a")
    both = pipeline.train(cfg, prep, tmp_path / "a", variants=["float", "quantized"])
    alone = pipeline.train(cfg, prep, tmp_path / "b", variants=["quantized"])
    again = pipeline.train(cfg, prep, tmp_path / "c", variants=["float"])
    for first, second in ((both["quantized"], alone["quantized"]), (both["float"], again["float"])):
        w1 = load_model_dir(first).model.get_weights()
        w2 = load_model_dir(second).model.get_weights()
        assert len(w1) == len(w2) > 0
        for a, b in zip(w1, w2, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~1-2 min on 2 cores; pruning itself is covered by test_models
def test_autoencoder_run_with_pruning(ntuples, tmp_path):
    out = tmp_path / "ae"
    cfg = config.parse(
        {
            "dataset": {
                "kind": "features",
                "processes": [
                    {"name": "muony", "files": [str(ntuples["muony"])], "label": "SM"},
                    {"name": "jetty", "files": [str(ntuples["jetty"])], "label": "SM"},
                    {"name": "odd", "files": [str(ntuples["odd"])], "role": "signal"},
                ],
            },
            "model": {
                "type": "dense_ae",
                "hidden": [8],
                "latent_dim": 2,
                "pruning": {"sparsity": 0.5, "epochs": 1, "frequency": 1},
            },
            "training": TINY_TRAINING,
            "evaluation": {"fpr_targets": [1e-2], "rate_khz": [400.0]},
            "run": {
                "output": str(out),
                "variants": ["float", "quantized", "quantized_pruned"],
                "progress": False,
            },
        }
    )
    ctx = pipeline.run(cfg)
    meta = json.loads((out / "models" / "quantized_pruned" / "metadata.json").read_text())
    assert meta["sparsity"]["total"] == pytest.approx(0.5, abs=0.1)
    assert meta["sparsity"]["latent"] < 0.4  # the bottleneck was excluded
    assert set(ctx.metrics) == {"float", "quantized", "quantized_pruned"}
    assert (out / "metrics_anomaly.json").is_file()


def test_missing_file_and_unknown_process(ntuples, tmp_path):
    cfg = _cnn_cfg(
        ntuples,
        tmp_path,
        dataset={
            "processes": [
                {"name": "a", "files": [str(tmp_path / "nope.root")]},
                {"name": "b", "files": [str(ntuples["jetty"])]},
            ]
        },
    )
    with pytest.raises(ConfigError, match=re.escape("nope.root")):
        pipeline.prepare_data(cfg)
    from poetml.datasets.labelled import DatasetConfig, ProcessConfig, resolve_files

    ds = DatasetConfig(processes=(ProcessConfig("dy"), ProcessConfig("unicorns")))
    manifest = {"processes": {"dy": {"file": "dy.root"}}}
    with pytest.raises(
        ConfigError, match="'unicorns' is not in the default dataset; known processes: dy"
    ):
        resolve_files(ds, tmp_path, manifest)


def test_single_class_is_an_error_before_training(ntuples, tmp_path):
    cfg = _cnn_cfg(
        ntuples,
        tmp_path,
        dataset={
            "processes": [
                {"name": "a", "files": [str(ntuples["muony"])], "label": "X"},
                {"name": "b", "files": [str(ntuples["jetty"])], "label": "X"},
            ]
        },
    )
    with pytest.raises(ConfigError, match="at least 2 classes"):
        pipeline.run(cfg)
    assert not (tmp_path / "models").exists()


def test_nan_inputs_and_mismatched_outputs(ntuples, tmp_path):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
    cfg = _cnn_cfg(ntuples, tmp_path)
    prep = pipeline.prepare_data(cfg, tmp_path)
    data = prep.data
    x = data.x.dense()
    x[7, 1, 2, 0] = np.nan
    from dataclasses import replace

    bad = replace(data, x=x)
    with pytest.raises(DatasetError, match="first at event 7"):
        pipeline.prepare(cfg, bad)
    values = data.x.values.copy()  # the same, sparse
    values[data.x.offsets[7]] = np.nan
    bad = replace(data, x=replace(data.x, values=values))
    with pytest.raises(DatasetError, match="first at event 7"):
        pipeline.prepare(cfg, bad)
    from poetml.models import ModelConfig, build

    wrong = build(ModelConfig(filters=(2,), dense=(4,)), prep.preprocessing.input_shape, 3)
    with pytest.raises(DatasetError, match="outputs shape \\(3,\\)"):
        pipeline.check_outputs(wrong, prep)


def test_interrupted_save_leaves_no_complete_model_dir(tmp_path):
    from poetml import training
    from poetml.datasets.scalers import Preprocessing, Scaler

    class Boom:
        def save(self, path, **kw):
            Path(path).write_text("half")
            raise KeyboardInterrupt

    prep = Preprocessing(
        Scaler("features", ("a",), (1.0,), (False,)), 8, 2, ("x",), (1,), "features"
    )
    with pytest.raises(KeyboardInterrupt):
        training.save_model_dir(tmp_path / "m", Boom(), prep, config={}, history={})
    assert not (tmp_path / "m").exists()
    assert not training.is_complete(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------
# Targets on the default dataset (generated by poetml.generate; long): pytest -m slow
# ----------------------------------------------------------------------------------------

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.slow
def test_dtw_target(tmp_path):
    cfg = config.load(CONFIGS / "dtw_cnn.yaml")
    ctx = pipeline.run(cfg, tmp_path / "dtw")
    acc = {v: m["accuracy"] for v, m in ctx.metrics.items()}
    # 0.828 measured 2026-12-02; the earlier target of 0.90 rested on forward muons that the
    # detector simulation clustered into jets (issue 13, item 1)
    assert acc["float"] >= 0.80, acc
    assert acc["quantized"] >= acc["float"] - 0.01, acc


@pytest.mark.slow
def test_anomaly_target(tmp_path):
    cfg = config.load(CONFIGS / "anomaly_ae.yaml")
    ctx = pipeline.run(cfg, tmp_path / "ae")
    f, qp = ctx.metrics["float"], ctx.metrics["quantized_pruned"]

    def separation(auc: float) -> float:
        # an AUC below 0.5 ranks the signal as more SM-like than the SM: its power to
        # separate is 1 - AUC, so the comparison is on max(AUC, 1 - AUC)
        return max(auc, 1.0 - auc)

    for sig, m in f["signals"].items():
        assert m["auc"] is not None
        # quantized + pruned within 5 % relative of float in separation power
        got, want = separation(qp["signals"][sig]["auc"]), separation(m["auc"])
        assert got == pytest.approx(want, rel=0.05), sig
    # the signals the autoencoder finds, it finds as well quantized and pruned
    for sig in ("zprime", "zprime_ww"):
        assert f["signals"][sig]["auc"] > 0.95
        assert qp["signals"][sig]["auc"] == pytest.approx(f["signals"][sig]["auc"], abs=0.01)
