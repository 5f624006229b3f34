"""Physics of the generated samples against real CMS data and known features (small
samples, MPI off so they run in about a minute on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")
pytest.importorskip("scipy")
ak = pytest.importorskip("awkward")
uproot = pytest.importorskip("uproot")

from poetml.generate import generate
from poetml.generate import validation as val

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("physics")


def _sample(gen_dir, process, n, seed=11, **kw):
    path = gen_dir / f"{process}_{n}.root"
    if not path.exists():
        generate(process, n, path, seed=seed, mpi=False, progress=False, **kw)
    return path


def test_z_peak_matches_real_cms_2010_data(gen_dir):
    real = SHARED / "uproot-Zmumu.root"
    if not real.exists():
        pytest.skip(f"real CMS file {real} not found (the repo is cloned beside shared/)")
    data = val.z_peak(val.dimuons_real_2010(real))
    sim = val.z_peak(val.dimuons_poet(_sample(gen_dir, "dy", 4000)))
    assert sim.n > 500
    assert abs(sim.peak - data.peak) < 0.5, (sim, data)
    assert abs(sim.fwhm / data.fwhm - 1) < 0.20, (sim, data)
    assert abs(sim.rms / data.rms - 1) < 0.20, (sim, data)


def test_w_transverse_mass_jacobian_edge(gen_dir):
    mt = val.transverse_mass_w(_sample(gen_dir, "wjets", 3000))
    assert len(mt) > 300
    hist, edges = np.histogram(mt, bins=np.arange(0, 122, 4.0))
    centers = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(hist, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(smooth))
    assert 60 < centers[peak] < 84, (centers[peak], hist)
    # the edge: first bin above the peak where the distribution drops below half its maximum
    after = np.flatnonzero(smooth[peak:] < 0.5 * smooth[peak])
    edge = centers[peak + after[0]]
    assert 76 <= edge <= 94, (edge, hist)
    assert np.mean(mt > 100) < 0.05


def test_ttbar_jet_multiplicity_and_btag_rate(gen_dir):
    path = _sample(gen_dir, "ttbar", 400)
    with uproot.open(path) as f:
        j = f["myjets/Events"].arrays(["jet_corrpt", "jet_eta", "jet_btag", "jet_hflav"])
    good = j[(j.jet_corrpt > 30) & (np.abs(j.jet_eta) < 2.4)]
    njet = ak.to_numpy(ak.num(good.jet_corrpt))
    assert 3.5 < njet.mean() < 6.5, njet.mean()
    tagged = good.jet_btag > 0.8484
    flav = ak.flatten(good.jet_hflav)
    tag = ak.flatten(tagged)
    eff_b = float(ak.mean(tag[flav == 5]))
    eff_l = float(ak.mean(tag[flav == 0]))
    assert 0.57 < eff_b < 0.73, eff_b
    assert eff_l < 0.04, eff_l
    nb = ak.to_numpy(ak.sum(tagged, axis=1))
    assert 0.8 < nb.mean() < 1.6, nb.mean()
    assert np.mean(nb >= 1) > 0.6


def test_h_to_4l_mass_near_125(gen_dir):
    m4 = val.four_lepton_mass(_sample(gen_dir, "hzz4l", 300))
    assert len(m4) > 40
    assert abs(np.median(m4) - 125) < 3, np.median(m4)
    assert np.mean(np.abs(m4 - 125) < 10) > 0.6


def test_jet_correction_restores_the_true_scale(gen_dir):
    """jet_corrpt / (visible generator-jet pT) averages 1 while the raw response is < 1."""
    from poetml.generate import _Job, _run_chunk  # noqa: F401  (same code path as files)
    from poetml.generate.detector import DetectorConfig

    cfg = DetectorConfig()
    pt_true = np.array([30.0, 60.0, 120.0])
    raw_mean = cfg.jet_response_a[0] * pt_true - cfg.jet_response_b
    corr = (raw_mean + cfg.jet_response_b) / cfg.jet_response_a[0]
    np.testing.assert_allclose(corr, pt_true)
    path = _sample(gen_dir, "ttbar", 400)
    with uproot.open(path) as f:
        j = f["myjets/Events"].arrays(["jet_pt", "jet_corrpt"])
    resp = ak.to_numpy(ak.flatten(j.jet_pt / j.jet_corrpt))
    assert 0.8 < np.median(resp) < 0.97


@pytest.mark.slow
def test_z_peak_with_mpi_and_pileup(gen_dir):
    real = SHARED / "uproot-Zmumu.root"
    if not real.exists():
        pytest.skip(f"real CMS file {real} not found")
    path = gen_dir / "dy_mpi.root"
    generate("dy", 2500, path, seed=5, mpi=True, pileup=3, progress=False)
    data = val.z_peak(val.dimuons_real_2010(real))
    sim = val.z_peak(val.dimuons_poet(path))
    assert abs(sim.peak - data.peak) < 0.5
    assert abs(sim.fwhm / data.fwhm - 1) < 0.20
