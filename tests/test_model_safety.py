"""Loading a model never runs code stored in the model file (unless trust_model / --trust-model),
and a broken model directory is one poetml error line naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from poetml.cli import main
from poetml.datasets.scalers import Preprocessing, Scaler
from poetml.exceptions import ConfigError, PoetmlError, ReadError, UntrustedModelError

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the learn extra)")
pytest.importorskip("qkeras", reason="QKeras is not installed (the learn extra)")

PREP = Preprocessing(
    Scaler("features", tuple("abcdef"), (1.0,) * 6, (False,) * 6),
    12,
    4,
    ("background",),
    (6,),
    "features",
)


def _tf():
    from poetml.models import _backend

    return _backend.tf()


def _save_dir(path: Path, model, config: dict | None = None) -> Path:
    from poetml import training

    return training.save_model_dir(
        path, model, PREP, config=config or {"variant": "float"}, history={"loss": [1.0]}
    )


def _lambda_model(marker: Path):
    """A model whose Lambda layer creates ``marker`` whenever it is called (Keras calls it
    while it rebuilds the model from a file)."""
    tf = _tf()
    fn = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]")
    inp = tf.keras.Input((6,), name="x")
    x = tf.keras.layers.Dense(3, name="dense")(inp)
    x = tf.keras.layers.Lambda(fn, name="sneaky")(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(6, name="out")(x))
    marker.unlink()  # created while the model was built here
    return model


@pytest.fixture
def lambda_dir(tmp_path):
    marker = tmp_path / "MARKER"
    d = _save_dir(tmp_path / "evil", _lambda_model(marker))
    assert (d / "model.h5").is_file()
    assert not marker.exists()
    return d, marker


def test_lambda_layer_is_refused_and_never_runs(lambda_dir):
    from poetml import training
    from poetml.firmware.convert import load_qkeras_model
    from poetml.models import load_model

    d, marker = lambda_dir
    for load in (
        lambda: training.load_model_dir(d),
        lambda: load_model(d / "model.h5"),
        lambda: load_qkeras_model(d / "model.h5"),
    ):
        with pytest.raises(UntrustedModelError) as err:
            load()
        msg = str(err.value)
        assert "'sneaky'" in msg
        assert "Lambda" in msg
        assert str(d / "model.h5") in msg
        assert "--trust-model" in msg
        assert "\n" not in msg
        assert not marker.exists()


def test_lambda_in_keras_format_is_refused(tmp_path):
    from poetml.models import load_model

    marker = tmp_path / "MARKER"
    model = _lambda_model(marker)
    model.save(tmp_path / "evil.keras")
    marker.unlink(missing_ok=True)
    with pytest.raises(UntrustedModelError, match=r"evil\.keras: layer 'sneaky' is a Lambda"):
        load_model(tmp_path / "evil.keras")
    assert not marker.exists()


def test_trust_model_opts_in_and_runs_the_code(lambda_dir):
    from poetml import training

    d, marker = lambda_dir
    md = training.load_model_dir(d, trust_model=True)
    assert marker.exists()  # the file's code ran: that is what trust_model means
    assert md.model.get_layer("sneaky").__class__.__name__ == "Lambda"


@pytest.mark.parametrize("command", ["score", "firmware"])
def test_cli_refuses_lambda_in_one_line(command, lambda_dir, poet_file, tmp_path, capsys):
    d, marker = lambda_dir
    if command == "score":
        argv = ["score", str(d), str(poet_file), "-o", str(tmp_path / "s.root")]
    else:
        argv = ["firmware", str(d), "-o", str(tmp_path / "fw")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"poetml {command}: error: " in err
    assert "'sneaky'" in err
    assert str(d) in err
    assert "--trust-model" in err
    assert not marker.exists()
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "RUNS PYTHON CODE STORED IN THE MODEL FILE" in " ".join(capsys.readouterr().out.split())


def test_op_layer_is_refused(tmp_path):
    from poetml.models import load_model

    tf = _tf()
    inp = tf.keras.Input((3,))
    out = tf.reduce_sum(tf.keras.layers.Dense(2, name="d")(inp), axis=1)  # a TFOpLambda
    tf.keras.Model(inp, out).save(tmp_path / "op.h5", save_format="h5")
    with pytest.raises(UntrustedModelError, match="TFOpLambda"):
        load_model(tmp_path / "op.h5")


def test_unknown_custom_object_is_refused(tmp_path):
    from poetml.models import load_model

    tf = _tf()

    class Doubler(tf.keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inp = tf.keras.Input((3,))
    tf.keras.Model(inp, Doubler(name="twice")(inp)).save(tmp_path / "c.h5", save_format="h5")
    with pytest.raises(UntrustedModelError, match=r"c\.h5: layer 'twice' is of class 'Doubler'"):
        load_model(tmp_path / "c.h5")


def _qkeras_model():
    from poetml.models import ModelConfig, build

    _tf().keras.utils.set_random_seed(3)
    return build(ModelConfig(type="dense_ae", hidden=(4,), latent_dim=2), (6,), quantized=True)


def test_qkeras_model_dir_round_trips(tmp_path):
    from poetml import training

    model = _qkeras_model()
    d = _save_dir(tmp_path / "q", model)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    back = training.load_model_dir(d)
    assert type(back.model.get_layer("enc_0")).__name__ == "QDense"
    np.testing.assert_array_equal(back.model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_old_model_h5_dir_still_loads(tmp_path):
    """A directory as poetml wrote it before (model.h5 saved directly by Keras)."""
    from poetml import training

    model = _qkeras_model()
    d = _save_dir(tmp_path / "old", model)
    (d / "model.h5").unlink()
    model.save(d / "model.h5", include_optimizer=False, save_format="h5")
    x = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    np.testing.assert_array_equal(
        training.load_model_dir(d).model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_keras_format_loads_after_qkeras_is_imported(tmp_path):
    """tf_keras (imported with QKeras) shadows Keras' names in TensorFlow's registry; the
    .keras loader then mixed the two packages and never returned.  Run in a subprocess with
    a timeout so a hang is a failure."""
    code = f"""
import numpy as np
from poetml.models import _backend, load_model
tf = _backend.tf()
inp = tf.keras.Input((6,), name="input")
x = tf.keras.layers.Activation("relu", name="act")(tf.keras.layers.Dense(4, name="d")(inp))
m = tf.keras.Model(inp, tf.keras.layers.Dense(2, name="o")(x))
m.save({str(tmp_path / "m.keras")!r})
back = load_model({str(tmp_path / "m.keras")!r})
x = np.ones((3, 6), np.float32)
assert np.array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
print("ROUND-TRIP-OK")
"""
    try:
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading a .keras model did not finish")
    assert "ROUND-TRIP-OK" in res.stdout, res.stderr[-2000:]


@pytest.mark.parametrize("name", ["model.h5", "preprocessing.json", "config.json"])
def test_broken_model_dir_file_is_one_line_naming_it(name, tmp_path, poet_file, capsys):
    from poetml import training

    d = _save_dir(tmp_path / "m", _qkeras_model())
    f = d / name
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3])  # truncated
    with pytest.raises(ReadError, match=f"cannot (load|read) .*{f.name}"):
        training.load_model_dir(d)
    assert main(["score", str(d), str(poet_file), "-o", str(tmp_path / "s.root")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert str(f) in err, err


def test_model_dir_config_without_inputs_is_one_line_naming_it(tmp_path, poet_file, capsys):
    """A config.json that is JSON but names no inputs (no ``spec``) is one line naming it."""
    d = _save_dir(tmp_path / "m", _qkeras_model())
    (d / "config.json").write_text('{"variant": "float"}')
    assert main(["score", str(d), str(poet_file), "-o", str(tmp_path / "s.root")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{d / 'config.json'}: no 'spec' entry" in err, err
    assert not (tmp_path / "s.root").exists()


def test_truncated_keras_file_is_a_read_error(tmp_path):
    from poetml.models import load_model

    f = tmp_path / "m.keras"
    f.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ReadError, match=r"cannot read the model file .*m\.keras"):
        load_model(f)


def _run_cfg(model: dict):
    from poetml import config

    return config.parse({"dataset": {"kind": "features"}, "model": model})


def test_model_dir_from_another_config_is_refused(tmp_path):
    from poetml import pipeline
    from poetml.features import FeatureSpec

    prep = SimpleNamespace(
        data=SimpleNamespace(kind="features"), spec=FeatureSpec(), class_names=("background",)
    )
    trained = _run_cfg({"type": "dense_ae", "hidden": [4], "latent_dim": 2})
    d = _save_dir(
        tmp_path / "models" / "float",
        _qkeras_model(),
        config=pipeline.model_dir_config(trained, prep, "float"),
    )
    # the same configuration: accepted
    assert pipeline.load_run_model_dir(trained, prep, d, "float").path == d
    other = _run_cfg({"type": "dense_ae", "hidden": [8], "latent_dim": 2})
    with pytest.raises(ConfigError) as err:
        pipeline.evaluate(other, prep, {"float": d}, tmp_path)
    msg = str(err.value)
    assert str(d) in msg
    assert "model.hidden is [4] there, [8] here" in msg
    assert "\n" not in msg
    assert isinstance(err.value, PoetmlError)
    meta = json.loads((d / "config.json").read_text())
    assert meta["model"]["hidden"] == [4]
