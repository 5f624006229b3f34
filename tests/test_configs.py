"""Every shipped learning configuration loads; unknown keys list the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from poetml import config
from poetml.exceptions import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["dtw_cnn", "dhjw_cnn", "anomaly_ae"])
def test_config_loads(name):
    cfg = config.load(CONFIGS / f"{name}.yaml")
    ds, model = cfg["dataset"], cfg["model"]
    if name == "anomaly_ae":
        assert ds.kind == "features" and model.type == "dense_ae"
        assert ds.class_names() == ["SM"]
        assert {p.name for p in ds.processes if p.role == "signal"} >= {"zprime", "a4l"}
        assert "quantized_pruned" in cfg["run"].variants
        assert model.hidden == (32, 16) and model.latent_dim == 3
    else:
        assert ds.kind == "images" and model.type == "cnn"
        expected = ["DY", "W+jets", "ttbar"] if name == "dtw_cnn" else ["DY", "Higgs", "J/psi", "W+jets"]
        assert ds.class_names() == expected
        assert model.quantization.bits == 8
    # the pipeline's own consistency check accepts it
    from poetml.pipeline import _check_config

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
    from poetml.pipeline import _check_config

    cfg = config.parse({"dataset": {"kind": "features", "processes": [{"name": "a"}, {"name": "b"}]},
                        "model": {"type": "cnn"}})
    with pytest.raises(ConfigError, match="needs dataset.kind: images"):
        _check_config(cfg)
    cfg = config.parse({"dataset": {"kind": "images", "processes": [
        {"name": "a"}, {"name": "b", "role": "signal"}]}, "model": {"type": "cnn"}})
    with pytest.raises(ConfigError, match="role 'signal' is for anomaly detection"):
        _check_config(cfg)
