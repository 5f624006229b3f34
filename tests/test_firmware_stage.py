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


@pytest.mark.slow
def test_run_ends_with_validated_firmware(tmp_path):
    out = tmp_path / "ae"
    cfg = config.parse({
        "dataset": {"kind": "features", "processes": _processes(tmp_path, 400, 150)},
        "model": {"type": "dense_ae", "hidden": [8], "latent_dim": 2},
        "training": {"epochs": 2, "batch_size": 32, "patience": 2, "verbose": 0, "seed": 3},
        "firmware": {"rate_khz": 4000.0},
        "run": {"output": str(out), "variants": ["float", "quantized"], "progress": False,
                "stages": ["data", "train", "firmware"]},
    })  # fmt: skip
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
