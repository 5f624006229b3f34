"""Every shipped learning configuration loads; unknown keys list the valid ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from poetml import config
from poetml.exceptions import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_shipped_config_is_tested():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED)


SHIPPED = [
    "dtw_cnn",
    "dhjw_cnn",
    "anomaly_ae",
    "anomaly_ae_single_lepton",
    "anomaly_ae_trigger",
    "anomaly_ae_zero_bias",
    "anomaly_conv_ae",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_config_loads(name):
    cfg = config.load(CONFIGS / f"{name}.yaml")
    ds, model = cfg.dataset, cfg.model
    if name.startswith("anomaly"):
        assert ds.class_names() == ["SM"]
        assert {p.name for p in ds.processes if p.role == "signal"} >= {"zprime", "a4l"}
        if name not in ("anomaly_ae_zero_bias", "anomaly_ae_single_lepton"):
            assert "quantized_pruned" in cfg.run.variants
            assert "firmware" in cfg.run.stages
    if name == "anomaly_conv_ae":
        assert ds.kind == "images"
        assert model.type == "conv_ae"
    elif name.startswith("anomaly"):
        assert ds.kind == "features"
        assert model.type == "dense_ae"
        assert model.hidden == (32, 16)
        assert model.latent_dim == 3
    if name == "anomaly_ae_trigger":
        # its own large background: a 1 kHz threshold (FPR 2.5e-5) rests on >= 10 test
        # events, the evaluation's rule for a trustworthy rate
        assert ds.default_dir != config.load(CONFIGS / "anomaly_ae.yaml").dataset.default_dir
        n_sm = sum(ds.default_events[p.name] for p in ds.processes if p.role == "train")
        assert n_sm * ds.split[2] * 2.5e-5 >= 10
    if name == "anomaly_ae_single_lepton":
        # the ADC2021 convention: the SM stream after the single-lepton filter, weighted
        assert ds.background == "single_lepton"
        assert ds.lepton_filter_pt == 23.0
        assert cfg.training.event_weights == "cross_section"
        assert {p.name for p in ds.processes if p.role == "signal"} >= {"a4l", "hplus_taunu"}
    if name == "anomaly_ae_zero_bias":
        # a stream of crossings at the beam's pile-up, QCD's tail populated by a bias,
        # J/psi (filtered) and H -> 4l left out, the brute-force check at 100 kHz with about
        # 100 unbiased crossings above it
        assert ds.background == "zero_bias"
        assert abs(ds.default_pileup - cfg.evaluation.beam().pileup) < 1
        assert ds.default_bias == {"qcd": 4.0}
        names = {p.name for p in ds.processes if p.role == "train"}
        assert names == {"minbias", "qcd", "wjets", "dy", "ttbar"}
        assert cfg.evaluation.rate_khz[0] == 1.0
        assert cfg.evaluation.check_rate_khz == (100.0, 1000.0)
        assert cfg.training.event_weights == "cross_section"
        n_mb = ds.default_events["minbias"] * ds.split[2]
        assert n_mb * 100.0 / cfg.evaluation.beam().crossing_rate_khz >= 100
    elif not name.startswith("anomaly"):
        assert ds.kind == "images"
        assert model.type == "cnn"
        expected = (
            ["DY", "W+jets", "ttbar"] if name == "dtw_cnn" else ["DY", "Higgs", "J/psi", "W+jets"]
        )
        assert ds.class_names() == expected
        assert model.quantization.bits == 8
    # the pipeline's own consistency check accepts it
    from poetml.pipeline.checks import _check_config

    _check_config(cfg)


def test_unknown_keys_list_valid_ones():
    with pytest.raises(ConfigError, match="unknown key 'epoch'; valid keys: epochs, batch_size"):
        config.parse({"training": {"epoch": 3}})
    with pytest.raises(ConfigError, match="valid keys: name, files, label, role, max_events"):
        config.parse({"dataset": {"processes": [{"name": "dy", "lable": "DY"}]}})
    with pytest.raises(ConfigError, match="unknown variants"):
        config.parse({"run": {"variants": ["float", "int4"]}})
    with pytest.raises(ConfigError, match="'conv' is not one of 'cnn', 'dense_ae', 'conv_ae'"):
        config.parse({"model": {"type": "conv"}})
    with pytest.raises(ConfigError, match="sparsity"):
        config.parse({"model": {"pruning": {"sparsity": 1.5}}})


def test_config_mismatches_are_errors():
    from poetml.pipeline.checks import _check_config

    cfg = config.parse(
        {
            "dataset": {"kind": "features", "processes": [{"name": "a"}, {"name": "b"}]},
            "model": {"type": "cnn"},
        }
    )
    with pytest.raises(ConfigError, match=re.escape("needs dataset.kind: images")):
        _check_config(cfg)
    cfg = config.parse(
        {
            "dataset": {
                "kind": "images",
                "processes": [{"name": "a"}, {"name": "b", "role": "signal"}],
            },
            "model": {"type": "cnn"},
        }
    )
    with pytest.raises(ConfigError, match="role 'signal' is for anomaly detection"):
        _check_config(cfg)
    cfg = config.parse(
        {
            "dataset": {
                "kind": "features",
                "processes": [{"name": "qcd"}],
                "default_events": {"qcd": 10, "qcd_lowpt": 5},
            },
            "model": {"type": "dense_ae"},
        }
    )
    with pytest.raises(
        ConfigError, match="'qcd_lowpt' not in the default dataset; its processes: dy"
    ):
        _check_config(cfg)
    with pytest.raises(ConfigError, match="default_events must be >= 1"):
        config.parse({"dataset": {"default_events": {"qcd": 0}}})
