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
    assert abs(sim.fwhm / data.fwhm - 1) < 0.15, (sim, data)
    assert abs(sim.rms / data.rms - 1) < 0.15, (sim, data)


JPSI_2012 = SHARED / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"


@pytest.mark.slow  # about 60 s: 4000 filtered J/psi (20000 generated)
def test_jpsi_width_matches_real_cms_2012_data(gen_dir):
    """The same selection (leading opposite-sign pair, pT > 13 / 8 GeV, |eta| < 1.2) and the
    same estimators (central-68 % half width, MAD) on the 2012 file and on J/psi with
    pT-hat > 15 GeV: the low-pT end of the muon resolution."""
    if not JPSI_2012.exists():
        pytest.skip(f"real CMS file {JPSI_2012} not found (the repo is cloned beside shared/)")
    data = val.jpsi_peak(val.dimuons_nanoaod_2012(JPSI_2012))
    sim = val.jpsi_peak(val.dimuons_poet_leading(_sample(gen_dir, "jpsi", 4000, pthat_min=15.0)))
    assert data.n > 30, data
    assert sim.n > 120, sim
    # no momentum-scale bias in the simulation; the data peak sits 0.2 % below the PDG mass
    assert abs(sim.median - data.median) < 0.015, (sim, data)
    assert abs(sim.sigma_q68 / data.sigma_q68 - 1) < 0.15, (sim, data)
    assert abs(sim.sigma_mad / data.sigma_mad - 1) < 0.15, (sim, data)


def test_forward_muons_are_not_jets_and_are_missing_energy(gen_dir):
    """Generator muons beyond the muon acceptance (|eta| > 2.4) never become jets and show
    up as MET; neutrinos never enter jets either (W -> mu nu below)."""
    g, j, met = val.gen_muons_jets_met(_sample(gen_dir, "dy", 4000))
    mu, dr, ratio = val.forward_muon_jet_pairs(g, j)
    became = ak.to_numpy(ak.flatten(ak.any((dr < 0.1) & (ratio > 0.9), axis=2)))
    assert len(became) > 200
    # before the fix 96 % did; what is left is hard collinear FSR photons
    assert became.mean() < 0.02, became.mean()
    # forward jets above 30 GeV are rare in DY (before: 38 % of events)
    fj = ak.to_numpy(ak.any((np.abs(j.jet_eta) > 2.4) & (j.jet_corrpt > 30), axis=1))
    assert fj.mean() < 0.10, fj.mean()
    # MET follows the lost muon (before: median MET / muon pT 0.29)
    has = ak.to_numpy(ak.num(mu.GenPart_pt) > 0)
    lead = ak.to_numpy(ak.max(mu.GenPart_pt[has], axis=1, mask_identity=False))  # plain floats
    frac = np.median(met[has] / lead)
    assert 0.65 < frac < 1.1, frac
    assert np.median(met[has]) > 2 * np.median(met[~has])


def test_neutrinos_and_muons_are_never_jet_constituents(monkeypatch):
    """Directly on the detector: the jet-clustering inputs of W events are the same whether or
    not the event holds its muons and neutrinos."""
    from poetml.generate import detector, make_pythia, next_events
    from poetml.generate.processes import pythia_settings

    seen = []
    orig = detector.cluster_jets

    def spy(px, py, pz, e, event, n_events, r):
        seen.append(np.sort(np.asarray(e)))
        return orig(px, py, pz, e, event, n_events, r)

    monkeypatch.setattr(detector, "cluster_jets", spy)
    p = make_pythia(pythia_settings("wjets", seed=3, mpi=False))
    parts = detector.flatten_batch(next_events(p, 60))
    # no electron reconstruction: isolated electrons are taken out of the jet inputs, and
    # which pass would depend on the random stream the muons consume
    cfg = detector.DetectorConfig(electron_max_eta=0.0)
    out = detector.simulate(parts, np.random.default_rng(1), cfg)
    assert out.counts["muon"].sum() > 5
    # the same events with every muon and neutrino made non-final (absent)
    lep = np.isin(np.abs(parts.id), (12, 13, 14, 16)) & (parts.status > 0)
    parts.status = np.where(lep, -parts.status, parts.status)
    out = detector.simulate(parts, np.random.default_rng(1), cfg)
    assert out.counts["muon"].sum() == 0
    np.testing.assert_array_equal(seen[0], seen[1])


def test_jpsi_class_has_dimuons_filter_recorded(gen_dir):
    """The generator filter (both J/psi muons pT > 3.5 GeV, |eta| < 2.4) makes the class a
    dimuon class; the partner muon does not count in the isolation."""
    path = gen_dir / "jpsi_filtered.root"
    s = generate("jpsi", 600, path, seed=12, mpi=False, progress=False, workers=1)
    assert s["filter"] == {"min_pt": 3.5, "max_eta": 2.4, "parent": 443}
    assert s["events"] == 600
    assert s["tried"] > 600
    assert 0.03 < s["filter_efficiency"] < 0.3, s["filter_efficiency"]
    # Pythia's charmonium sigma ignores the forced decays: the weights carry them.  Each
    # event's weight / (sigma x efficiency / N) is BR(J/psi -> mu mu) times the BR of the
    # feed-down decay that made the J/psi (none, psi(2S), chi_c0, chi_c1, chi_c2).
    assert s["sigma_filtered_pb"] == pytest.approx(
        s["sigma_pb"] * s["filter_efficiency"] * s["branching_ratio"]
    )
    with uproot.open(path) as f:
        w = f["mygenparticles/Events"]["weight"].array(library="np")
    assert w.sum() == pytest.approx(s["sigma_filtered_pb"])
    br = w / (s["sigma_pb"] * s["filter_efficiency"] / 600)
    br_mumu = 0.05961  # PDG 2024, J/psi -> mu+ mu-
    feed = np.array([1.0, 0.614, 0.0140, 0.343, 0.190])  # PDG: direct, psi(2S), chi_c0/1/2
    nearest = np.min(np.abs(br[:, None] / (br_mumu * feed[None, :]) - 1), axis=1)
    assert np.all(nearest < 0.5), br[nearest >= 0.5]  # Pythia's table vs PDG: within 50 %
    direct = np.abs(br / br_mumu - 1) < 0.01  # Pythia's 5.93 % vs PDG 5.961 %
    assert 0.1 < direct.mean() < 0.6, direct.mean()
    assert br_mumu * 0.0140 * 0.5 < s["branching_ratio"] < br_mumu
    with uproot.open(path) as f:
        a = f["mymuons/Events"].arrays(
            ["muon_pt", "muon_eta", "muon_phi", "muon_ch", "muon_isTight", "muon_pfreliso04all"]
        )
    a = ak.zip({k: a[k] for k in a.fields})
    n_mu = ak.to_numpy(ak.num(a.muon_pt))
    assert np.mean(n_mu == 0) < 0.08  # before: 58 %
    assert np.mean(n_mu >= 2) > 0.6  # before: 6 %
    # default selection: tight, isolation < 0.15, pT > 3 GeV, |eta| < 2.4
    sel = a[
        (a.muon_isTight == 1)
        & (a.muon_pfreliso04all < 0.15)
        & (a.muon_pt > 3)
        & (np.abs(a.muon_eta) < 2.4)
    ]
    c = ak.combinations(sel, 2, fields=["x", "y"])
    px = c.x.muon_pt * np.cos(c.x.muon_phi) + c.y.muon_pt * np.cos(c.y.muon_phi)
    py = c.x.muon_pt * np.sin(c.x.muon_phi) + c.y.muon_pt * np.sin(c.y.muon_phi)
    pzx, pzy = c.x.muon_pt * np.sinh(c.x.muon_eta), c.y.muon_pt * np.sinh(c.y.muon_eta)
    mm = 0.1056584
    e = np.sqrt(c.x.muon_pt**2 + pzx**2 + mm**2) + np.sqrt(c.y.muon_pt**2 + pzy**2 + mm**2)
    m = np.sqrt(np.maximum(e**2 - px**2 - py**2 - (pzx + pzy) ** 2, 0))
    cand = ak.to_numpy(ak.any((c.x.muon_ch * c.y.muon_ch < 0) & (m > 2.8) & (m < 3.4), axis=1))
    assert cand.mean() > 0.15, cand.mean()  # before: 1.2 % (MPI on; MPI off here)
    # the partner muon is not in the cone sum: for pairs closer than 0.4, the absolute
    # isolation of a muon is below its partner's pT (before the fix it always exceeded it)
    allc = ak.combinations(a, 2, fields=["x", "y"])
    dphi = (allc.x.muon_phi - allc.y.muon_phi + np.pi) % (2 * np.pi) - np.pi
    close = np.hypot(allc.x.muon_eta - allc.y.muon_eta, dphi) < 0.4
    absiso = ak.to_numpy(ak.flatten((allc.x.muon_pfreliso04all * allc.x.muon_pt)[close]))
    partner = ak.to_numpy(ak.flatten(allc.y.muon_pt[close]))
    assert len(absiso) > 30
    assert np.mean(absiso >= partner) < 0.1, np.mean(absiso >= partner)


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
    # a continuous discriminant (not two values per flavour) whose medium working point
    # gives CMS's CSVv2 efficiencies for 30-100 GeV jets: 65 % b, 12 % c, 1 % light
    disc = ak.to_numpy(ak.flatten(good.jet_btag))
    assert len(np.unique(disc)) > 0.95 * len(disc)
    pt = ak.to_numpy(ak.flatten(good.jet_corrpt))
    mid = (pt > 30) & (pt < 100)
    fl, tg = ak.to_numpy(flav), ak.to_numpy(tag)
    assert abs(tg[mid & (fl == 5)].mean() - 0.65) < 0.07
    assert tg[mid & (fl == 0)].mean() < 0.03


def test_btag_efficiency_depends_on_pt_and_eta_as_in_cms():
    """The parametrisation (CMS BTV-16-002 CSVv2 medium): b 65 % at 30-100 GeV, lower at
    20 GeV and above 150 GeV; light mistags doubling from 100 to 500 GeV; forward jets less
    efficient.  And the discriminant realises it: the fraction above the threshold of many
    jets of one kind equals the efficiency."""
    from poetml.generate.detector import DetectorConfig, btag_discriminant, btag_efficiency

    cfg = DetectorConfig()
    pt = np.array([20.0, 50.0, 90.0, 300.0, 500.0, 50.0])
    eta = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    b = btag_efficiency(np.full(6, 5), pt, eta, cfg)
    light = btag_efficiency(np.zeros(6, int), pt, eta, cfg)
    np.testing.assert_allclose(b[1:3], 0.65)
    assert b[0] < b[1]
    assert b[4] < b[3] < b[1]
    assert b[5] < b[1]
    np.testing.assert_allclose(light[1:3], 0.01)
    assert light[4] == pytest.approx(0.02)
    rng = np.random.default_rng(3)
    for flav, eff in ((5, 0.65), (4, 0.12), (0, 0.01)):
        d = btag_discriminant(
            np.full(200_000, flav), np.full(200_000, 60.0), np.zeros(200_000), rng, cfg
        )
        assert np.all((d > 0) & (d < 1))
        assert np.mean(d > cfg.btag_threshold) == pytest.approx(eff, abs=0.004)


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


def _leading_jet_and_weight(path):
    with uproot.open(path) as f:
        jets = f["myjets/Events"]["jet_corrpt"].array()
        w = f["mygenparticles/Events"]["weight"].array(library="np")
    lead = ak.to_numpy(ak.fill_none(ak.max(jets, axis=1), 0.0))
    return lead, w


def test_pthat_bias_and_bins_give_the_same_weighted_spectrum(gen_dir):
    """Three ways to the QCD jet spectrum, checked against each other (Pythia's own cross
    sections in independent runs are the reference): pT-hat > 30 GeV sampled with
    bias2Selection (pow 4, weighted back), and the two bins 30-150 and > 150 GeV
    concatenated.  Their weights sum to the same inclusive cross section, and the weighted
    leading-jet spectrum agrees above 200 and 300 GeV within the weights' uncertainty; the
    bias fills the tail (an unbiased sample of the same size has a handful of events
    there)."""
    biased = _sample(gen_dir, "qcd", 2000, seed=3, bias_pow=4.0)
    lo = gen_dir / "qcd_30_150.root"
    hi = gen_dir / "qcd_150.root"
    s_lo = generate("qcd", 1000, lo, seed=5, pthat_min=30, pthat_max=150, mpi=False, progress=False)
    s_hi = generate("qcd", 1000, hi, seed=4, pthat_min=150, mpi=False, progress=False)
    lb, wb = _leading_jet_and_weight(biased)
    l1, w1 = _leading_jet_and_weight(lo)
    l2, w2 = _leading_jet_and_weight(hi)
    assert wb.max() / wb.min() > 1e3  # weights span orders of magnitude
    # inclusive cross section: Pythia's per-run estimates agree at their few-% precision
    assert wb.sum() == pytest.approx(
        s_lo["sigma_filtered_pb"] + s_hi["sigma_filtered_pb"], rel=0.06
    )
    for cut in (200.0, 300.0):
        a, ea = wb[lb > cut].sum(), np.sqrt((wb[lb > cut] ** 2).sum())
        sel1, sel2 = l1 > cut, l2 > cut
        b = w1[sel1].sum() + w2[sel2].sum()
        eb = np.sqrt((w1[sel1] ** 2).sum() + (w2[sel2] ** 2).sum())
        assert abs(a - b) < 3 * np.hypot(ea, eb), (cut, a, ea, b, eb)
    # the tail is populated: > 300 GeV holds hundreds of biased events, where an unbiased
    # sample of 2000 would expect sigma(> 300) / sigma * 2000 of them
    n_tail = int((lb > 300).sum())
    expected_unbiased = 2000 * wb[lb > 300].sum() / wb.sum()
    assert n_tail > 100, n_tail
    assert expected_unbiased < 1, expected_unbiased
