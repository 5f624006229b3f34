"""Per-event weights [pb] from the files through labelled datasets, splits and HDF5."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import write_poet_random

from poetml.datasets import labelled
from poetml.datasets.labelled import DatasetConfig, ProcessConfig
from poetml.datasets.scalers import DatasetError
from poetml.exceptions import ConfigError
from poetml.features import FeatureSpec
from poetml.reading import read_weights

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")


@pytest.fixture(scope="module")
def weighted_files(tmp_path_factory):
    from poetml.generate import generate

    d = tmp_path_factory.mktemp("w")
    out = {}
    for name, proc, n in (("dy", "dy", 60), ("tt", "ttbar", 40)):
        s = generate(proc, n, d / f"{name}.root", seed=3, mpi=False, workers=1, progress=False)
        out[name] = (d / f"{name}.root", s)
    return out


def _build(processes):
    cfg = DatasetConfig(kind="features", processes=tuple(processes))
    return labelled.build(cfg, FeatureSpec(), labelled.resolve_files(cfg), progress=False)


def test_weights_come_from_the_files_and_sum_to_each_cross_section(weighted_files, tmp_path):
    (dy, sdy), (tt, stt) = weighted_files["dy"], weighted_files["tt"]
    data = _build(
        [
            ProcessConfig("dy", (str(dy),)),
            ProcessConfig("tt", (str(tt),), max_events=10),  # a part stands for the file
        ]
    )
    w = data.weights
    assert w.dtype == np.float64
    assert w[data.process == 0].sum() == pytest.approx(sdy["sigma_filtered_pb"], rel=1e-9)
    assert w[data.process == 1].sum() == pytest.approx(stt["sigma_filtered_pb"], rel=1e-9)
    assert np.count_nonzero(data.process == 1) == 10
    # the file's own branch, event by event, for the process read whole
    file_w, kind = read_weights(dy)
    assert kind == "pb"
    np.testing.assert_array_equal(w[data.process == 0], file_w[data.event_index[data.process == 0]])
    # HDF5 round trip and selection keep them
    back = labelled.load(labelled.save(tmp_path / "d.h5", data))
    np.testing.assert_array_equal(back.weights, w)
    np.testing.assert_array_equal(data.select(np.array([3, 65])).weights, w[[3, 65]])


def test_cross_section_rescales_weighted_and_unweighted_files(weighted_files, tmp_path):
    dy, _ = weighted_files["dy"]
    plain = write_poet_random(tmp_path / "plain.root", 25, seed=1)  # no weights (like data)
    data = _build(
        [
            ProcessConfig("dy", (str(dy),), cross_section_pb=2025.7),  # NNLO instead of LO
            ProcessConfig("plain", (str(plain),)),
            ProcessConfig("plain_xs", (str(plain),), cross_section_pb=50.0),
        ]
    )
    assert data.weights[data.process == 0].sum() == pytest.approx(2025.7)
    np.testing.assert_array_equal(data.weights[data.process == 1], 1.0)  # one event each
    np.testing.assert_allclose(data.weights[data.process == 2], 50.0 / 25)


def test_nanoaod_genweight_needs_a_cross_section(shared_data):
    nano = shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    if not nano.exists():
        pytest.skip(f"real CMS file {nano} not found (the repo is cloned beside shared/)")
    with pytest.raises(ConfigError, match=r"genWeight.*cross_section_pb"):
        _build([ProcessConfig("w", (str(nano),))])
    data = _build([ProcessConfig("w", (str(nano),), cross_section_pb=61526.7)])
    gw, kind = read_weights(nano)
    assert kind == "genWeight"
    assert (gw < 0).any()  # NLO: negative weights, kept with their sign
    assert data.weights.sum() == pytest.approx(61526.7)
    np.testing.assert_allclose(data.weights, gw * 61526.7 / gw.sum())


def test_bad_cross_section_is_a_config_error():
    with pytest.raises(ConfigError, match="cross section > 0"):
        ProcessConfig("x", cross_section_pb=-1.0)


def test_split_weights_keep_each_process_cross_section():
    from poetml.datasets.splits import split_weights, stratified_split

    rng = np.random.default_rng(1)
    proc = np.repeat([0, 1, 2], [500, 300, 200])
    w = np.concatenate([np.full(500, 2.0), rng.exponential(1.0, 300), np.full(200, 1e-3)])
    sp = stratified_split(proc, (0.6, 0.2, 0.2), seed=3)
    for idx in (sp.train, sp.val, sp.test):
        ws = split_weights(w, proc, idx)
        for k in range(3):
            assert ws[proc[idx] == k].sum() == pytest.approx(w[proc == k].sum())
        # within a process the relative weights are untouched
        sel = proc[idx] == 1
        np.testing.assert_allclose(ws[sel] / w[idx][sel], ws[sel][0] / w[idx][sel][0])


def _toy_labelled(lead, weights, processes):
    n = len(lead)
    proc = np.repeat(np.arange(len(processes)), n // len(processes))
    return labelled.LabelledData(
        np.zeros((n, 3), np.float32),
        proc.astype(np.int32),
        tuple(processes),
        "features",
        ("a", "b", "c"),
        np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64),
        ("f",),
        {"lead_lepton_pt": np.asarray(lead, np.float32)},
        np.asarray(weights, np.float64),
    )


def test_single_lepton_stream_keeps_events_above_23_gev_with_their_weights():
    from poetml.pipeline.data import apply_background

    procs = (ProcessConfig("w"), ProcessConfig("qcd"))
    lead = [30.0, 10.0, 25.0, 0.0, 40.0, 5.0, 22.9, 23.1]
    w = [1.0, 1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 10.0]
    data = _toy_labelled(lead, w, procs)
    ds = DatasetConfig(kind="features", processes=procs, background="single_lepton")
    out, info = apply_background(ds, data)
    assert out.event_index.tolist() == [0, 2, 4, 7]
    assert info["w"]["efficiency"] == pytest.approx(0.5)
    assert info["qcd"]["kept_sigma_pb"] == pytest.approx(20.0)
    assert out.weights.sum() == pytest.approx(22.0)  # the stream's cross section after the filter


#: a toy beam whose filled crossings are 100 pb: L = 1e36 cm^-2 s^-1 (1 pb -> 1 Hz) and
#: 0.1 kHz of crossings
TOY_BEAM_ARGS = (1e36, 1e-4, 1.0)


def test_zero_bias_stream_totals_the_crossing_rate():
    """The zero-bias stream counts bunch crossings: its weights sum to the crossing rate /
    luminosity, so rate = L x sum(w) is 0.1 kHz for all of it; the hard processes keep
    their weights (a crossing holding a hard interaction happens at L x sigma)."""
    from poetml.pipeline.data import apply_background
    from poetml.rates import Beam, rate_above

    beam = Beam(*TOY_BEAM_ARGS)
    procs = (ProcessConfig("minbias"), ProcessConfig("qcd"), ProcessConfig("sig", role="signal"))
    w = [25.0] * 4 + [1.0] * 4 + [0.5] * 4
    data = _toy_labelled([0.0] * 12, w, procs)
    ds = DatasetConfig(kind="features", processes=procs, background="zero_bias")
    out, info = apply_background(ds, data, beam)
    train = out.process != 2
    assert out.weights[train].sum() == pytest.approx(100.0)  # crossings [pb]
    assert info["crossings_pb"] == pytest.approx(100.0)
    r = rate_above(np.zeros(8), out.weights[train], -1.0, beam)
    assert r.rate_khz == pytest.approx(beam.crossing_rate_khz)
    assert info["hard_sigma_pb"] == pytest.approx(4.0)
    np.testing.assert_allclose(out.weights[out.process == 0], 24.0)  # (100 - 4) / 4
    np.testing.assert_allclose(out.weights[out.process == 1], 1.0)
    with pytest.raises(ConfigError, match="zero_bias needs a process named minbias"):
        DatasetConfig(kind="features", processes=procs[1:], background="zero_bias")


def test_zero_bias_stream_stitches_crossings_to_pthat_generated_qcd():
    """A minimum-bias crossing whose primary interaction has pT-hat above qcd's generation
    threshold (30 GeV) is qcd's: vetoed (weight 0), not counted twice; the soft crossings
    share the crossing rate less every hard process's (qcd and dy); the info gives
    minimum bias's own cross section above the threshold beside qcd's, the stitch's
    cross-check; pile-up harder than the threshold is refused, naming file and entry."""
    from poetml.pipeline.data import apply_background
    from poetml.rates import Beam

    beam = Beam(*TOY_BEAM_ARGS)
    procs = (ProcessConfig("minbias"), ProcessConfig("qcd"), ProcessConfig("dy"))
    n = 6
    proc = np.repeat(np.arange(3), n).astype(np.int32)
    w = np.array([20.0] * n + [1.0] * n + [0.1] * n)
    pthat = np.array([1, 5, 31, 40, 2, 29.9] + [30, 35, 50, 80, 31, 33] + [0] * n, np.float32)
    pu = np.array([0, 29, 0, 0, 10, 0] + [0, 0, 25, 0, 0, 0] + [0] * n, np.float32)
    data = labelled.LabelledData(
        np.zeros((3 * n, 2), np.float32), proc, procs, "features", ("a", "b"),
        np.zeros(3 * n, np.int32), np.arange(3 * n, dtype=np.int64), ("f.root",),
        {labelled.GEN_PTHAT: pthat, labelled.GEN_PILEUP_PTHAT: pu}, w,
    )  # fmt: skip
    ds = DatasetConfig(kind="features", processes=procs, background="zero_bias")
    out, info = apply_background(ds, data, beam)
    mb = out.weights[:n]
    assert mb[[2, 3]].tolist() == [0.0, 0.0]  # a hard primary: vetoed
    np.testing.assert_allclose(mb[[0, 1, 4, 5]], (100.0 - 6.6) / 4)
    np.testing.assert_allclose(out.weights[n:], w[n:])  # hard processes untouched
    assert out.weights.sum() == pytest.approx(100.0)  # the crossings
    st = info["stitching"]
    assert st["processes"] == ["qcd"]
    assert st["pthat_threshold_gev"] == 30.0
    assert st["minbias_events_vetoed"] == 2
    assert st["minbias_sigma_above_pb"] == pytest.approx(40.0)
    assert st["stitched_sigma_pb"] == pytest.approx(6.0)
    # without pT-hat (older files) nothing is vetoed
    old = dataclasses.replace(data, aux={})
    out2, info2 = apply_background(ds, old, beam)
    np.testing.assert_allclose(out2.weights[:n], (100.0 - 6.6) / 6)
    assert info2["stitching"]["processes"] == []
    # hard pile-up (files made with another pool) cannot be stitched
    loud = pu.copy()
    loud[n + 4] = 45.0
    bad = dataclasses.replace(
        data, aux={labelled.GEN_PTHAT: pthat, labelled.GEN_PILEUP_PTHAT: loud}
    )
    with pytest.raises(DatasetError, match=r"f.root entry 10: its pile-up holds .* 45 GeV"):
        apply_background(ds, bad, beam)


def test_leading_lepton_pt_is_the_highest_electron_or_muon(poet_file, poet_events):
    import awkward as ak

    from poetml.pipeline.data import _leading_lepton_pt
    from poetml.reading import read

    got = _leading_lepton_pt(read(poet_file))
    mu = ak.fill_none(ak.max(poet_events["muon"]["muon_pt"], axis=1), 0.0)
    el = ak.fill_none(ak.max(poet_events["electron"]["electron_pt"], axis=1), 0.0)
    np.testing.assert_allclose(got, np.maximum(ak.to_numpy(mu), ak.to_numpy(el)), rtol=1e-6)


def test_zero_bias_brute_force_weights_count_each_hard_interaction_for_a_crossing():
    """Alone, the minimum-bias sample estimates the crossings' rate: its weights total the
    crossing rate f; an event with a hard primary (pT-hat >= 30 GeV) stands for f mu / n,
    as any of a crossing's mu interactions may be the hard one; other processes get 0."""
    from poetml.pipeline.data import zero_bias_unbiased_khz
    from poetml.rates import Beam

    beam = Beam()
    procs = (ProcessConfig("minbias"), ProcessConfig("qcd"))
    n = 1000
    proc = np.array([0] * n + [1] * 10, np.int32)
    pthat = np.concatenate([np.full(n, 5.0), np.full(10, 40.0)]).astype(np.float32)
    pthat[[3, 700]] = [31.0, 90.0]
    data = labelled.LabelledData(
        np.zeros((n + 10, 1), np.float32), proc, procs, "features", ("a",),
        np.zeros(n + 10, np.int32), np.arange(n + 10, dtype=np.int64), ("f",),
        {labelled.GEN_PTHAT: pthat}, np.ones(n + 10),
    )  # fmt: skip
    u = zero_bias_unbiased_khz(data, beam)
    f, mu = beam.crossing_rate_khz, beam.pileup
    assert u[:n].sum() == pytest.approx(f)
    np.testing.assert_allclose(u[[3, 700]], f * mu / n)
    np.testing.assert_allclose(u[n:], 0.0)
    np.testing.assert_allclose(u[0], f * (1 - mu * 2 / n) / (998))
