"""``poetml run`` with the firmware stage on a tiny autoencoder run (marked slow: it trains).

The run trains a quantized autoencoder on tiny synthetic ntuples, then the firmware stage
deploys it: the C simulation must agree exactly with QKeras on every test event and the
trigger_decision C simulation must reproduce the threshold.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("hls4ml", reason="hls4ml is not installed (the firmware extra)")

from conftest import write_poet_random

from poetml import config, pipeline


def _processes(tmp_path, n_sm: int, n_signal: int) -> list[dict]:
    """Two SM-like processes and one signal, as tiny POET ntuples."""
    muony = write_poet_random(tmp_path / "muony.root", n_sm, seed=1, mean_muons=3.0, mean_jets=0.5)
    jetty = write_poet_random(tmp_path / "jetty.root", n_sm, seed=2, mean_muons=0.2, mean_jets=6.0)
    odd = write_poet_random(
        tmp_path / "odd.root", n_signal, seed=3, mean_muons=0.1, mean_electrons=4.0
    )
    return [{"name": "muony", "files": [str(muony)], "label": "SM"},
            {"name": "jetty", "files": [str(jetty)], "label": "SM"},
            {"name": "odd", "files": [str(odd)], "role": "signal"}]  # fmt: skip


def _ae_run_config(out, processes, training):
    """A tiny quantized dense autoencoder run ending in its firmware (4 MHz working point)."""
    return config.parse({
        "dataset": {"kind": "features", "processes": processes},
        "model": {"type": "dense_ae", "hidden": [8], "latent_dim": 2},
        "training": {"verbose": 0, **training},
        "firmware": {"rate_khz": 4000.0},
        "run": {"output": str(out), "variants": ["float", "quantized"], "progress": False,
                "stages": ["data", "train", "firmware"]},
    })  # fmt: skip


#: the short training of the firmware-scoring tests
QUICK_TRAINING = {"epochs": 1, "batch_size": 64, "patience": 1, "seed": 4}


@pytest.mark.slow
def test_run_ends_with_validated_firmware(tmp_path):
    out = tmp_path / "ae"
    cfg = _ae_run_config(out, _processes(tmp_path, 400, 150),
                         {"epochs": 2, "batch_size": 32, "patience": 2, "seed": 3})  # fmt: skip
    ctx = pipeline.run(cfg)
    fw = ctx.metrics["firmware"]
    assert fw["variant"] == "quantized"
    assert fw["passed"] is True
    assert fw["exact_fraction"] == 1.0
    assert fw["max_diff_lsb"] == 0.0
    report = json.loads((out / "firmware" / "firmware.json").read_text())
    assert report["trigger_csim"]["fire_matches"]
    assert report["trigger_csim"]["score_matches"]
    assert "odd" in report["validation"]["signals"]
    assert (out / "firmware" / "hls" / "firmware" / "trigger.h").is_file()
    assert "## Firmware" in (out / "report.md").read_text()

    # the same model directory through the command line: the run's test split is reused
    from poetml.cli import main

    rc = main(["firmware", str(out / "models" / "quantized"), "--rate-khz", "4000",
               "-o", str(tmp_path / "fw"), "--no-progress"])  # fmt: skip
    assert rc == 0
    again = json.loads((tmp_path / "fw" / "firmware.json").read_text())
    assert again["threshold"]["value"] == report["threshold"]["value"]
    assert (
        again["validation"]["agreement"]["n_events"]
        == report["validation"]["agreement"]["n_events"]
    )


@pytest.mark.slow
def test_conv_autoencoder_run_ends_with_validated_firmware(tmp_path):
    """The image autoencoder end to end: quantized, pruned, deployed as an io_stream project
    whose encoder-only score agrees exactly with QKeras."""
    out = tmp_path / "cae"
    cfg = config.parse({
        "dataset": {"kind": "images", "processes": _processes(tmp_path, 300, 100)},
        "images": {"n_eta": 8, "n_phi": 8, "log1p": True},
        "model": {"type": "conv_ae", "filters": [4], "latent_dim": 4,
                  "pruning": {"sparsity": 0.5, "epochs": 1, "frequency": 1}},
        "training": {"epochs": 2, "batch_size": 32, "patience": 2, "verbose": 0, "seed": 3},
        "evaluation": {"fpr_targets": [1e-2], "rate_khz": [4000.0]},
        "firmware": {"rate_khz": 4000.0},
        "run": {"output": str(out), "variants": ["float", "quantized", "quantized_pruned"],
                "progress": False, "stages": ["data", "train", "evaluate", "firmware"]},
    })  # fmt: skip
    ctx = pipeline.run(cfg)
    assert set(ctx.metrics) >= {"float", "quantized", "quantized_pruned", "firmware"}
    fw = ctx.metrics["firmware"]
    assert fw["variant"] == "quantized_pruned"
    assert fw["passed"] is True
    assert fw["exact_fraction"] == 1.0
    report = json.loads((out / "firmware" / "firmware.json").read_text())
    assert report["io_type"] == "io_stream"
    assert report["score_kind"] == "latent"
    assert report["trigger_csim"]["fire_matches"]
    assert report["trigger_csim"]["score_matches"]


def test_score_with_firmware_writes_the_trigger_decision_of_the_c_simulation(tmp_path):
    """``poetml score MODEL --firmware FWDIR``: the friend tree's trigger bit is, event by
    event, what the C simulation of ``trigger_decision()`` (trigger.h) gives on the same
    inputs, and its score is the fixed-point value the trigger compares; a firmware of
    another model is refused."""
    import numpy as np
    import uproot

    from poetml.cli import main
    from poetml.firmware import csim as cs
    from poetml.firmware.emulate import load_export
    from poetml.training import load_model_dir

    out = tmp_path / "ae"
    procs = _processes(tmp_path, 300, 100)
    pipeline.run(_ae_run_config(out, procs, QUICK_TRAINING))
    fwdir, model_dir = out / "firmware", out / "models" / "quantized"
    report = json.loads((fwdir / "firmware.json").read_text())
    assert report["emulator"]["export"] == str(fwdir / "emulator" / "emulator.npz")
    files = [procs[0]["files"][0], procs[2]["files"][0]]
    rc = main(["score", str(model_dir), *files, "-o", str(tmp_path / "fw_scores.root"),
               "--firmware", str(fwdir), "--quiet"])  # fmt: skip
    assert rc == 0
    with uproot.open(tmp_path / "fw_scores.root") as f:
        t = f["scores"].arrays(library="np")
    assert set(t) == {"entry", "file_index", "firmware_score", "trigger"}
    assert len(t["trigger"]) == 400

    # the referee: hls4ml's C simulation of trigger_decision on the same inputs
    from poetml import features as feat
    from poetml._mapping import from_mapping
    from poetml.features import FeatureSpec
    from poetml.reading import read

    md = load_model_dir(model_dir, with_model=False)
    spec = from_mapping(FeatureSpec, md.config["spec"])
    xs = np.concatenate([
        md.preprocessing.apply(feat.build_features(read(p), spec)[0], p) for p in files
    ]).astype(np.float32)  # fmt: skip
    export, meta = load_export(fwdir / "emulator" / "emulator.npz")
    project_dir = fwdir / "hls"
    sig = cs.top_signature(project_dir, report["config"]["project_name"], export.n_inputs,
                           export.n_outputs)  # fmt: skip
    lib = cs.build_csim_library(project_dir, sig, with_trigger=True)
    with cs.CSim(lib, workers=1) as sim:
        fire, t_score = sim.trigger(xs, progress=False)
    assert np.array_equal(t["trigger"], fire.astype(bool))
    assert 0 < t["trigger"].sum() < len(fire)  # the threshold cuts into these events
    from poetml.firmware.emulate import emulate
    from poetml.firmware.trigger import trigger_scores

    y = emulate(export, xs)
    assert np.array_equal(y[:, meta["score_index"]], t_score)  # what trigger.h compares
    assert np.array_equal(
        t["firmware_score"], trigger_scores(y, meta["score_index"], meta["denominator_index"])
    )

    # a firmware made from another model directory is refused, naming both
    other = tmp_path / "other"
    import shutil

    shutil.copytree(model_dir, other)
    (other / "preprocessing.json").write_text(
        (other / "preprocessing.json").read_text().replace("}", " }", 1)
    )
    from poetml.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"emulator\.npz was made from the model directory"):
        pipeline.score(other, files[:1], tmp_path / "x.root", firmware=fwdir, progress=False)
    assert not (tmp_path / "x.root").exists()
