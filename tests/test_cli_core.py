"""``poetml inspect | images | features``: output content, configs, errors, interrupts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import poetml
from poetml import reading
from poetml.cli import main
from poetml.datasets import convert, hdf5
from poetml.features import FeatureSpec
from poetml.images import ImageSpec
from poetml.jagged import concatenate


def test_inspect_table(poet_file, capsys):
    assert main(["inspect", str(poet_file)]) == 0
    out = capsys.readouterr().out
    assert "layout:  poet (6 events)" in out
    assert "mymuons/Events  (TTree, 6 entries, 20 branches)" in out
    assert "jet_corrpt" in out
    assert "pt      <- myjets/Events:jet_corrpt" in out


def test_inspect_json_and_unknown_layout(shared_data, capsys):
    assert main(["inspect", "--json", str(shared_data / "uproot-Zmumu.root")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] is None
    assert info["trees"]["events"]["entries"] == 2304
    assert main(["inspect", str(shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root")]) == 0
    out = capsys.readouterr().out
    assert "layout:  nanoaod (200 events)" in out
    assert "more (--all lists them)" in out


def test_inspect_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "x.root")]) == 1
    assert f"poetml inspect: error: no such file: {tmp_path / 'x.root'}" in capsys.readouterr().err


def test_images_command_matches_the_library(poet_file, poet_merged_file, tmp_path, capsys):
    out = tmp_path / "sub" / "im.h5"
    argv = ["images", str(poet_file), str(poet_merged_file), "-o", str(out), "--step-size", "4",
            "--threads", "1", "--label", "1"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "wrote 12 events" in err
    assert "bytes/event" in err
    assert "100%" in err  # the progress bar
    ds = hdf5.load(out)
    spec = ImageSpec()
    expected = np.concatenate(
        [poetml.rasterize(reading.read(p), spec) for p in (poet_file, poet_merged_file)]
    )
    np.testing.assert_array_equal(ds.data, expected)
    assert ds.data.shape == (12, *spec.shape)
    np.testing.assert_array_equal(ds.event_index, [0, 1, 2, 3, 4, 5] * 2)
    np.testing.assert_array_equal(ds.source, [0] * 6 + [1] * 6)
    np.testing.assert_array_equal(ds.labels, np.ones(12))
    assert ds.inputs == (str(poet_file), str(poet_merged_file))
    assert ds.channels == spec.channels
    assert ds.attrs["spec"]["n_eta"] == 32
    assert ds.attrs["reading"]["step_size"] == 4
    assert ds.attrs["poetml_version"] == poetml.__version__
    assert not out.with_name("im.h5.tmp").exists()


def test_features_command_with_config(nanoaod_file, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "reading:\n  step_size: 5\n"
        "selection:\n  jet:\n    min_pt: 20.0\n"
        "features:\n  slots: [[met, 1], [muon, 2], [jet, 3]]\n  event_quantities: [ht, n_jet]\n"
    )
    out = tmp_path / "f.h5"
    assert (
        main(
            [
                "features",
                str(nanoaod_file),
                "-o",
                str(out),
                "--config",
                str(config),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "%|" not in capsys.readouterr().err
    ds = hdf5.load(out)
    cfg = poetml.config.load(config)
    spec = cfg.features
    assert isinstance(spec, FeatureSpec)
    assert spec.selection.jet.min_pt == 20.0
    expected, names = poetml.build_features(reading.read(nanoaod_file), spec)
    np.testing.assert_array_equal(ds.data, expected)
    assert ds.feature_names == tuple(names)
    assert ds.feature_names[-2:] == ("ht", "n_jet")
    assert ds.data.shape == (6, 3 * (1 + 2 + 3) + 2)
    assert ds.attrs["spec"]["selection"]["jet"]["min_pt"] == 20.0
    assert ds.attrs["reading"]["step_size"] == 5
    assert ds.attrs["config_file"] == str(config)


def test_images_config_section(poet_file, tmp_path):
    config = tmp_path / "im.yaml"
    config.write_text(
        "images:\n  n_eta: 10\n  n_phi: 12\n  channels: [jet, met]\n  mode: gaussian\n"
    )
    out = tmp_path / "im.h5"
    assert (
        main(["images", str(poet_file), "-o", str(out), "--config", str(config), "--no-progress"])
        == 0
    )
    ds = hdf5.load(out)
    assert ds.data.shape == (6, 10, 12, 2)
    assert ds.channels == ("jet", "met")
    spec = poetml.config.load(config).images
    np.testing.assert_array_equal(ds.data, poetml.rasterize(reading.read(poet_file), spec))


@pytest.mark.filterwarnings("ignore:selection. muon isolation cut:UserWarning")
def test_file_lacking_a_channel_collection(shared_data, tmp_path, capsys):
    path = shared_data / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
    out = tmp_path / "mu.h5"
    with pytest.warns(UserWarning, match="muon tight_id cut skipped"):
        assert (
            main(["images", str(path), "-o", str(out), "--no-progress", "--step-size", "400"]) == 0
        )
    err = capsys.readouterr().err
    assert "has no electron, jet, met collection; treated as empty" in err
    ds = hdf5.load(out)
    assert ds.data.shape == (1000, 32, 32, 4)
    assert ds.data[..., 1:].sum() == 0  # electron, jet, met channels
    assert ds.data[..., 0].sum() > 0
    batch = concatenate(list(reading.iterate(path, collections=["muon", "electron", "jet", "met"],
                                             missing_collections="empty")))  # fmt: skip
    with pytest.warns(UserWarning, match="tight_id"):
        expected = poetml.rasterize(batch, ImageSpec())
    np.testing.assert_array_equal(ds.data, expected)


def test_errors_exit_1_and_leave_nothing(shared_data, tmp_path, capsys):
    out = tmp_path / "x.h5"
    bad = shared_data / "uproot-small-dy-withoffsets.root"
    assert main(["images", str(bad), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        f"poetml images: error: {bad}: missing branch 'Muon_eta' (muon.eta) in tree 'tree'" in err
    )
    assert list(tmp_path.iterdir()) == []
    assert main(["features", str(tmp_path / "*.root"), "-o", str(out)]) == 1
    assert "no file matches the pattern" in capsys.readouterr().err
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("images:\n  n_etta: 3\n")
    assert main(["images", str(bad), "-o", str(out), "--config", str(bad_cfg)]) == 1
    assert "unknown key 'n_etta'" in capsys.readouterr().err
    assert not out.exists()


def test_interrupt_leaves_no_partial_output(poet_file, tmp_path, monkeypatch, capsys):
    calls = []
    kernel = convert.run_kernel

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return kernel(*args, **kwargs)

    monkeypatch.setattr(convert, "run_kernel", interrupted)
    out = tmp_path / "im.h5"
    assert (
        main(["images", str(poet_file), "-o", str(out), "--step-size", "2", "--no-progress"]) == 130
    )
    assert "interrupted; no partial output was kept" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_console_script_help():
    exe = os.path.join(os.path.dirname(sys.executable), "poetml")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for cmd in ("inspect", "images", "features"):
        assert cmd in res.stdout
    res = subprocess.run([exe, "images", "--help"], capture_output=True, text=True, check=True)
    for opt in ("--config", "--step-size", "--threads", "--layout", "-o OUTPUT"):
        assert opt in res.stdout


def test_console_script_writes_the_file_and_exits_with_the_status(poet_file, tmp_path):
    """The console script (``poetml.cli:run``): the command's output complete and its exit
    status, with the objects left at the end frozen out of the final garbage collection."""
    out = tmp_path / "img.h5"
    code = (
        "import gc, sys; from poetml.cli import run; rc = run(); "
        "print('frozen', gc.get_freeze_count() > 0); sys.exit(rc)"
    )
    args = ["images", str(poet_file), "-o", str(out), "--no-progress"]
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert "frozen True" in res.stdout
    assert hdf5.load(out).data.shape[0] == reading.num_entries(poet_file)
    # a failing command still gives its status (1), and leaves nothing behind
    bad = subprocess.run(
        [sys.executable, "-c", code, "images", str(tmp_path / "none.root"), "-o", str(out) + "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "no such file" in bad.stderr
    assert not os.path.exists(str(out) + "2")
    exe = os.path.join(os.path.dirname(sys.executable), "poetml")
    with open(exe) as f:  # the installed script runs run()
        assert "import run" in f.read()
