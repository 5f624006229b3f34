"""Configurations are checked completely when they are loaded, before any data, generation
or training: each bad value is a ConfigError naming its key path; ``poetml check`` validates a
configuration and the files it names; ``poetml firmware`` writes only under its output,
refuses a float model before touching data and generates nothing unless asked."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import pytest
from conftest import write_poet_random

from poetml import config, pipeline
from poetml.cli import main
from poetml.exceptions import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

BASE = """\
dataset:
  kind: features
  default_dir: {default_dir}
  processes:
    - {{name: qcd, label: SM}}
    - {{name: zprime, role: signal}}
{dataset_extra}features:
  slots: [[met, 1], [muon, 2], [jet, 2]]
{features_extra}model:
  type: dense_ae
  hidden: [4]
  latent_dim: 2
training: {{epochs: 1, batch_size: 16, verbose: 0}}
{evaluation}run:
  output: {output}
  progress: false
"""


@pytest.fixture
def no_work(monkeypatch):
    """Generation, dataset building and training fail the test if they start."""
    import poetml.generate
    from poetml.datasets import labelled

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the configuration was checked")

    monkeypatch.setattr(poetml.generate, "generate_default", forbidden)
    monkeypatch.setattr(labelled, "build", forbidden)
    monkeypatch.setattr(pipeline, "train", forbidden)
    monkeypatch.setattr(pipeline.training, "train", forbidden)  # what `poetml run` calls


def _write(tmp_path: Path, dataset: str = "", features: str = "", evaluation: str = "") -> Path:
    text = BASE.format(
        default_dir=tmp_path / "default-data", output=tmp_path / "out",
        dataset_extra=dataset, features_extra=features, evaluation=evaluation,
    )  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


BAD = [
    # (yaml pieces, key path, words of the message)
    (
        {"dataset": "  split: [0.7, 0.2, 0.2]\n"},
        "dataset.split",
        "fractions must sum to 1, got 0.7+0.2+0.2=1.1",
    ),
    ({"dataset": "  split: [0.0, 0.5, 0.5]\n"}, "dataset.split", "must be in (0, 1), got 0.0"),
    ({"dataset": "  split: [1.2, -0.1, -0.1]\n"}, "dataset.split", "must be in (0, 1)"),
    ({"dataset": "  step_size: 0\n"}, "dataset.step_size", "positive number of events, got 0"),
    ({"dataset": "  step_size: -5\n"}, "dataset.step_size", "got -5"),
    ({"dataset": "  default_scale: -1\n"}, "dataset.default_scale", "> 0"),
    ({"dataset": "  default_scale: 0\n"}, "dataset.default_scale", "> 0"),
    ({"dataset": "  default_pileup: -1\n"}, "dataset.default_pileup", ">= 0, got -1"),
    ({"dataset": "  default_bias: {qcd: -2}\n"}, "dataset.default_bias", "qcd: the pT-hat bias"),
    (
        {"evaluation": "evaluation:\n  rate_khz: [1.0, 0.0]\n"},
        "evaluation.rate_khz[1]",
        "must be > 0",
    ),
    (
        {"evaluation": "evaluation:\n  rate_khz: [50000.0]\n"},
        "evaluation.rate_khz[0]",
        "below the collision rate (40 MHz = 40000 kHz)",
    ),
    (
        {"evaluation": "evaluation:\n  rate_khz: [50.0]\n  collision_rate_mhz: 0.01\n"},
        "evaluation.rate_khz[0]",
        "below the collision rate",
    ),
    ({"evaluation": "evaluation:\n  fpr_targets: [1.5]\n"}, "evaluation.fpr_targets[0]", "(0, 1)"),
]


@pytest.mark.parametrize(("pieces", "key", "words"), BAD)
def test_bad_value_is_an_error_with_its_key_path_before_any_work(
    tmp_path, no_work, capsys, pieces, key, words
):
    path = _write(tmp_path, **pieces)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    msg = str(info.value)
    assert f"{path}: {key}: " in msg
    assert words in msg
    for command in ("check", "run", "train", "evaluate"):
        assert main([command, str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{key}: " in err, (command, err)
        assert words in err, (command, err)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "default-data").exists()


@pytest.mark.parametrize(
    ("bias", "words"),
    [("{jpsi: 4.0}", "'jpsi' has a generator filter"), ("{nope: 4.0}", "'nope' is not in")],
)
def test_pthat_bias_only_for_processes_that_have_one(tmp_path, no_work, capsys, bias, words):
    path = _write(tmp_path, dataset=f"  default_bias: {bias}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "dataset.default_bias: " in err
    assert words in err, err
    assert not (tmp_path / "default-data").exists()


def test_base_config_is_valid(tmp_path, no_work, capsys):
    path = _write(tmp_path)
    cfg = config.load(path)
    assert cfg.dataset.split == (0.6, 0.2, 0.2)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert " OK: " in out
    assert "2 from the default dataset" in out
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "default-data").exists()


def test_huge_feature_slot_request_is_refused(tmp_path, no_work, capsys):
    path = tmp_path / "slots.yaml"
    path.write_text(
        _write(tmp_path)
        .read_text()
        .replace("[[met, 1], [muon, 2], [jet, 2]]", "[[met, 1], [jet, 100000000]]")
    )
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert f"{path}: features.slots[1]: " in str(info.value)
    assert "more than the limit of 1024 per collection" in str(info.value)
    assert main(["run", str(path)]) == 1
    assert "features.slots[1]: 100000000 jet slots" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_values_are_checked_in_the_dataclasses_too():
    """A notebook building a section without YAML gets the same checks."""
    from poetml.datasets.labelled import DatasetConfig
    from poetml.features import FeatureSpec
    from poetml.pipeline import EvaluationConfig

    with pytest.raises(ConfigError, match=r"^split: fractions must sum to 1"):
        DatasetConfig(split=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match=r"^default_scale: "):
        DatasetConfig(default_scale=-2.0)
    with pytest.raises(ConfigError, match=r"^rate_khz\[0\]: "):
        EvaluationConfig(rate_khz=(40_000.0,))
    with pytest.raises(ConfigError, match=r"^slots\[0\]: .*limit of 1024"):
        FeatureSpec(slots=(("jet", 2000),))


def test_errors_of_several_sections_are_all_reported(tmp_path, capsys):
    path = _write(
        tmp_path,
        dataset="  split: [0.7, 0.2, 0.2]\n",
        evaluation="evaluation:\n  rate_khz: [0.0]\n",
    )
    assert main(["check", str(path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "dataset.split: " in lines[0]
    assert "evaluation.rate_khz[0]: " in lines[1]


def test_duplicate_yaml_key_is_an_error(tmp_path, no_work, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("training:\n  epochs: 3\n  batch_size: 8\n  epochs: 30\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    msg = str(info.value)
    assert f"{path}: line 4: duplicate key 'epochs' (first given on line 2)" in msg
    # a repeated section too
    path.write_text("model:\n  type: cnn\nmodel:\n  type: dense_ae\n")
    with pytest.raises(
        ConfigError, match=re.escape("line 3: duplicate key 'model' (first given on line 1")
    ):
        config.load(path)
    assert main(["check", str(path)]) == 1
    assert "duplicate key 'model'" in capsys.readouterr().err
    # the same key in two different mappings is fine
    path.write_text("images:\n  selection: {muon: {min_pt: 1}, jet: {min_pt: 1}}\n")
    assert config.load(path).images.selection.jet.min_pt == 1.0


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_check_accepts_every_shipped_config(name, no_work, capsys):
    assert main(["check", str(CONFIGS / f"{name}.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"poetml check: {CONFIGS / name}.yaml OK: ")
    assert out.count("\n") == 1


def test_check_names_missing_input_files(tmp_path, no_work, capsys):
    real = write_poet_random(tmp_path / "real.root", 5, seed=1)
    path = tmp_path / "files.yaml"
    path.write_text(
        _write(tmp_path)
        .read_text()
        .replace(
            "- {name: qcd, label: SM}",
            f"- {{name: a, files: [{real}, {tmp_path / 'gone.root'}]}}\n"
            f"    - {{name: b, files: ['{tmp_path}/nothing_*.root']}}",
        )
    )
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    gone = tmp_path / "gone.root"
    assert f"dataset.processes[0].files[1] (process 'a'): no such file {gone}" in err
    assert "dataset.processes[1].files[0] (process 'b'): no file matches the pattern" in err
    assert "real.root" not in err
    assert main(["run", str(path)]) == 1
    assert "gone.root" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_default_dataset_without_generation_is_reported(tmp_path, no_work, capsys):
    path = tmp_path / "nogen.yaml"
    path.write_text(_write(tmp_path).read_text() + "  generate_missing: false\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "dataset.default_dir: the default dataset" in err
    assert "poetml generate" in err


def test_unknown_stage_is_reported_by_check(tmp_path, no_work, capsys):
    path = tmp_path / "stage.yaml"
    path.write_text(_write(tmp_path).read_text() + "  stages: [data, trian]\n")
    assert main(["check", str(path)]) == 1
    assert "run.stages: unknown stage 'trian'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ firmware

N_FEATURES = 3 * (1 + 2 + 2)


_DEFAULT_BEAM = {"luminosity": 2.0e34, "collision_rate_mhz": 40.0, "filled_fraction": 2544 / 3564}


def _fake_run(
    tmp_path: Path,
    *,
    quantized: bool,
    processes: list[dict],
    default_dir: Path | None = None,
    beam: dict | None = _DEFAULT_BEAM,
) -> Path:
    """RUN/models/<variant> as poetml run writes it: config.json (``beam``: None as an
    older poetml wrote it, without one) and a tiny model."""
    pytest.importorskip("qkeras", reason="QKeras is not installed (the learn extra)")
    from poetml.config import to_mapping
    from poetml.datasets.labelled import DatasetConfig
    from poetml.features import FeatureSpec
    from poetml.models import ModelConfig, build
    from poetml.training import TrainingConfig

    variant = "quantized" if quantized else "float"
    d = tmp_path / "run" / "models" / variant
    d.mkdir(parents=True)
    ds = config.from_mapping(DatasetConfig, {
        "kind": "features", "processes": processes, "split": [0.5, 0.25, 0.25],
        **({"default_dir": str(default_dir)} if default_dir else {})})  # fmt: skip
    spec = FeatureSpec(slots=(("met", 1), ("muon", 2), ("jet", 2)))
    mcfg = ModelConfig(type="dense_ae", hidden=(4,), latent_dim=2)
    model = build(mcfg, (N_FEATURES,), None, quantized=quantized)
    with warnings.catch_warnings():  # legacy-HDF5 notes: h5 is what poetml run saves
        warnings.simplefilter("ignore")
        model.save(d / "model.h5", include_optimizer=False, save_format="h5")
    (d / "config.json").write_text(json.dumps({
        "variant": variant, "kind": "features", "spec": to_mapping(spec),
        "spec_type": "FeatureSpec", "model": to_mapping(mcfg),
        "training": to_mapping(TrainingConfig()), "dataset": to_mapping(ds),
        **({"beam": beam} if beam is not None else {})}))  # fmt: skip
    return d


def _tree(root: Path, skip: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and skip not in p.parents}  # fmt: skip


def test_firmware_refuses_a_float_model_before_touching_data(tmp_path, no_work, capsys):
    d = _fake_run(tmp_path, quantized=False,
                  processes=[{"name": "qcd"}, {"name": "zprime", "role": "signal"}],
                  default_dir=tmp_path / "default-data")  # fmt: skip
    out = tmp_path / "fw"
    assert main(["firmware", str(d), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "float model (no QKeras layer)" in err
    assert "models/quantized" in err
    assert not (tmp_path / "default-data").exists()
    assert not (tmp_path / "run" / "data").exists()
    assert not out.exists()


def test_firmware_writes_only_under_its_output(tmp_path):
    """The run's dataset path holds a foreign file: it is left alone and the dataset is
    rebuilt under the firmware output."""
    import poetml.pipeline.firmware as fwbuild

    a = write_poet_random(tmp_path / "a.root", 40, seed=1, mean_muons=2.0)
    s = write_poet_random(tmp_path / "s.root", 20, seed=2, mean_electrons=2.0)
    d = _fake_run(
        tmp_path,
        quantized=True,
        processes=[
            {"name": "a", "files": [str(a)]},
            {"name": "s", "files": [str(s)], "role": "signal"},
        ],
    )
    sentinel = tmp_path / "run" / "data" / "dataset.h5"  # MODEL_DIR/../../data/dataset.h5
    sentinel.parent.mkdir()
    sentinel.write_bytes(b"not a dataset: must stay as it is")
    out = tmp_path / "fw"
    before = _tree(tmp_path, out)
    # the real conversion, C simulation and trigger: everything lands under OUT
    result = fwbuild.build_from_model_dir(d, out, progress=False)
    assert sentinel.read_bytes() == b"not a dataset: must stay as it is"
    assert _tree(tmp_path, out) == before
    assert (out / "data" / "dataset.h5").is_file()
    assert Path(result.out_dir).resolve() == out.resolve()
    # a second time the dataset under the output is reused
    mtime = (out / "data" / "dataset.h5").stat().st_mtime_ns
    from poetml.pipeline.firmware import prepared_for_model_dir

    prepared_for_model_dir(d, out)
    assert (out / "data" / "dataset.h5").stat().st_mtime_ns == mtime


def test_firmware_reads_the_runs_dataset_when_it_matches(tmp_path, monkeypatch):
    a = write_poet_random(tmp_path / "a.root", 40, seed=1, mean_muons=2.0)
    s = write_poet_random(tmp_path / "s.root", 20, seed=2, mean_electrons=2.0)
    d = _fake_run(
        tmp_path,
        quantized=True,
        processes=[
            {"name": "a", "files": [str(a)]},
            {"name": "s", "files": [str(s)], "role": "signal"},
        ],
    )
    from poetml.pipeline.firmware import prepared_for_model_dir

    # what the run wrote: build it once into RUN/data, as `poetml run` does
    first = prepared_for_model_dir(d, tmp_path / "fw0")
    (tmp_path / "run" / "data").mkdir()
    (tmp_path / "fw0" / "data" / "dataset.h5").rename(tmp_path / "run" / "data" / "dataset.h5")
    from poetml.datasets import labelled

    monkeypatch.setattr(labelled, "build", lambda *a, **k: pytest.fail("rebuilt the dataset"))
    again = prepared_for_model_dir(d, tmp_path / "fw")
    assert not (tmp_path / "fw").exists()
    assert (again.x_test == first.x_test).all()


def test_firmware_of_a_run_model_uses_the_runs_beam(tmp_path, monkeypatch):
    """``poetml firmware RUN/models/quantized`` quotes rates at the beam the run recorded in
    config.json (the weights of a zero-bias stream depend on it too), not the default one;
    a directory an older poetml wrote (no beam) gets the default with a warning."""
    import poetml.firmware.build as fwb
    import poetml.pipeline.firmware as fwbuild
    from poetml.exceptions import FirmwareError
    from poetml.pipeline.firmware import prepared_for_model_dir

    a = write_poet_random(tmp_path / "a.root", 40, seed=1, mean_muons=2.0)
    s = write_poet_random(tmp_path / "s.root", 20, seed=2, mean_electrons=2.0)
    processes = [
        {"name": "a", "files": [str(a)], "cross_section_pb": 1.0e6},
        {"name": "s", "files": [str(s)], "role": "signal"},
    ]
    beam = {"luminosity": 7.5e33, "collision_rate_mhz": 40.0, "filled_fraction": 0.5}
    d = _fake_run(tmp_path / "low", quantized=True, processes=processes, beam=beam)
    prep = prepared_for_model_dir(d, tmp_path / "fw")
    assert prep.weighted
    assert (prep.beam.luminosity, prep.beam.filled_fraction) == (7.5e33, 0.5)
    seen = {}

    def stop(*args, **kw):  # the real build is tested elsewhere: here, what it is given
        seen.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(fwb, "build_firmware", stop)
    with pytest.raises(RuntimeError, match="stop here"):
        fwbuild.build_from_model_dir(d, tmp_path / "fw", progress=False)
    assert seen["beam"].luminosity == 7.5e33
    assert seen["beam"].crossing_rate_khz == pytest.approx(40.0e3 * 0.5)
    assert seen["background_weights"] is not None
    # an older directory: the default beam, said
    old = _fake_run(tmp_path / "old", quantized=True, processes=processes, beam=None)
    with pytest.warns(UserWarning, match="records no beam .* default luminosity 2e\\+34"):
        assert prepared_for_model_dir(old, tmp_path / "fw-old").beam.luminosity == 2.0e34
    bad = _fake_run(tmp_path / "bad", quantized=True, processes=processes, beam={"lumi": 1})
    with pytest.raises(FirmwareError, match="'beam' must map luminosity"):
        prepared_for_model_dir(bad, tmp_path / "fw-bad")


def test_a_model_dir_reused_at_another_luminosity_is_not_refused(tmp_path):
    """The beam a run quotes its rates at does not change the model: a model directory
    recorded at one luminosity serves a run at another; its architecture still counts."""
    from poetml.exceptions import ConfigError
    from poetml.training import check_model_dir_config

    recorded = {"model": {"type": "dense_ae"}, "beam": dict(_DEFAULT_BEAM)}
    other_beam = {"model": {"type": "dense_ae"}, "beam": {**_DEFAULT_BEAM, "luminosity": 1e34}}
    check_model_dir_config(tmp_path, recorded, other_beam, "this run")
    with pytest.raises(ConfigError, match=r"model\.type is 'dense_ae' there, 'cnn' here"):
        check_model_dir_config(tmp_path, recorded, {**other_beam, "model": {"type": "cnn"}}, "x")


def test_firmware_generates_nothing_unless_asked(tmp_path, no_work, capsys):
    d = _fake_run(tmp_path, quantized=True,
                  processes=[{"name": "qcd"}, {"name": "zprime", "role": "signal"}],
                  default_dir=tmp_path / "default-data")  # fmt: skip
    out = tmp_path / "fw"
    assert main(["firmware", str(d), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "pass --generate to generate" in err
    assert "qcd 2000" in err
    assert str(out / "default-data") in err
    assert not (tmp_path / "default-data").exists()
    assert not (tmp_path / "run" / "data").exists()
    assert not (out / "default-data").exists()


def test_firmware_generate_flag_says_what_and_writes_under_output(tmp_path, monkeypatch, capsys):
    import poetml.generate
    import poetml.pipeline.firmware as fwbuild

    d = _fake_run(tmp_path, quantized=True,
                  processes=[{"name": "qcd"}, {"name": "zprime", "role": "signal"}],
                  default_dir=tmp_path / "default-data")  # fmt: skip
    out = tmp_path / "fw"
    asked = {}

    def fake_generate(directory, **kw):  # stands in for Pythia: records where and what
        asked.update(kw, directory=Path(directory))
        raise RuntimeError("stop here")

    monkeypatch.setattr(poetml.generate, "generate_default", fake_generate)
    with pytest.raises(RuntimeError, match="stop here"):
        fwbuild.build_from_model_dir(d, out, progress=False, generate=True)
    printed = capsys.readouterr().out
    assert f"generating the default dataset into {out / 'default-data'}" in printed
    assert "qcd 2000" in printed
    assert asked["directory"] == out / "default-data"
    assert asked["events"]["zprime"] == 1000
    assert not (tmp_path / "default-data").exists()


def test_run_generates_only_the_default_processes_it_names(tmp_path, monkeypatch):
    """The default dataset is asked for the processes without files only (issue 16)."""
    import poetml.generate
    from poetml.pipeline.data import _resolve_files

    cfg = config.load(_write(tmp_path, dataset="  default_events: {qcd: 30}\n"))
    asked = {}

    def fake_generate(directory, **kw):
        asked.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(poetml.generate, "generate_default", fake_generate)
    with pytest.raises(RuntimeError, match="stop here"):
        _resolve_files(cfg, progress=False)
    assert asked["events"] == {"qcd": 30, "zprime": 1000}
    assert pipeline.default_dataset_events(cfg)["dy"] == 2000  # all of them, when asked


def test_check_names_a_default_process_missing_from_the_manifest(tmp_path):
    d = tmp_path / "default-data"
    d.mkdir()
    (d / "qcd.root").write_bytes(b"")
    (d / "manifest.json").write_text(
        json.dumps({"processes": {"qcd": {"file": "qcd.root", "label": 3, "events": 1}}})
    )
    path = _write(tmp_path)
    path.write_text(path.read_text() + "  generate_missing: false\n")
    cfg = config.load(path)
    problems = pipeline.config_problems(cfg)
    assert any("'zprime'" in p and "not in the default dataset" in p for p in problems), problems
    assert not any("'qcd'" in p for p in problems), problems


@pytest.mark.parametrize(("pileup", "ok"), [(0, False), (40, False), (56, True), (60, True)])
def test_zero_bias_needs_the_beams_pileup(tmp_path, no_work, capsys, pileup, ok):
    """A zero-bias stream counts crossings, each generated minimum-bias event standing for
    one: its pile-up must be the beam's (about 55.7 at 2e34), within 10 %."""
    text = BASE.format(
        default_dir=tmp_path / "default-data",
        output=tmp_path / "out",
        dataset_extra=f"  background: zero_bias\n  default_pileup: {pileup}\n",
        features_extra="",
        evaluation="",
    ).replace(
        "- {name: qcd, label: SM}", "- {name: minbias, label: SM}\n    - {name: qcd, label: SM}"
    )
    path = tmp_path / "zb.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == (0 if ok else 1)
    err = capsys.readouterr().err
    if not ok:
        assert "dataset.default_pileup: background zero_bias counts bunch crossings" in err, err
        assert "beam's mean of 55.7 interactions" in err, err
    assert not (tmp_path / "default-data").exists()
