"""Physics checks of generated samples against real CMS data, computed identically on both.

:func:`z_peak` fits a Voigt profile (Breit-Wigner of the Z width convolved with a Gaussian
resolution) to opposite-sign dimuon masses in 81-101 GeV by unbinned maximum likelihood
and reports the peak position, the FWHM of the fitted profile and the rms in the window.
:func:`dimuons_real_2010` and :func:`dimuons_poet` pick the leading opposite-sign pair with
the same cuts from the real CMS 2010 file and from a generated POET file.

:func:`jpsi_peak` measures the J/psi peak with robust estimators (the data hold about 50
J/psi): the median, half the central 68 % interval and 1.4826 x the median absolute
deviation of opposite-sign dimuon masses in 2.9-3.3 GeV.  :func:`dimuons_nanoaod_2012` and
:func:`dimuons_poet_leading` pick the leading opposite-sign pair with the same cuts from the
real CMS 2012 DoubleMuParked file and from a generated POET file: leading muon pT > 13 GeV,
the other > 8 GeV (the thresholds of HLT_Mu13_Mu8, the path that wrote most of the 2012
DoubleMuParked J/psi), both ``|eta|`` < 1.2.  The eta cut is there because the resolution
depends strongly on eta and the data's J/psi are barrel-enriched by their trigger (38 of the
48 with the pT cuts have both muons in ``|eta|`` < 1.2, against about half in the
simulation), which the simulation does not model; in the barrel both hold the same mix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "JpsiPeak",
    "ZPeak",
    "dimuons_nanoaod_2012",
    "dimuons_poet",
    "dimuons_poet_leading",
    "dimuons_real_2010",
    "jpsi_peak",
    "transverse_mass_w",
    "z_peak",
]

Z_WIDTH = 2.4952
WINDOW = (81.0, 101.0)
#: cuts applied to both samples: pT of each muon, |eta| of each muon
MIN_PT = 20.0
MAX_ETA = 2.1
#: J/psi: mass window, leading / subleading muon pT, |eta| of both muons
JPSI_WINDOW = (2.9, 3.3)
JPSI_MIN_PT = (13.0, 8.0)
JPSI_MAX_ETA = 1.2


@dataclass(frozen=True)
class ZPeak:
    peak: float
    peak_err: float
    sigma: float
    fwhm: float
    rms: float
    n: int


def _voigt_fwhm(sigma: float, gamma_hwhm: float) -> float:
    fg = 2 * sigma * np.sqrt(2 * np.log(2))
    fl = 2 * gamma_hwhm
    return float(0.5346 * fl + np.sqrt(0.2166 * fl**2 + fg**2))


def z_peak(masses: np.ndarray, window: tuple[float, float] = WINDOW) -> ZPeak:
    """Unbinned Voigt fit (Z width fixed, mean and Gaussian sigma free) in ``window``."""
    from scipy.integrate import trapezoid
    from scipy.optimize import minimize
    from scipy.special import voigt_profile

    m = np.asarray(masses, float)
    m = m[(m > window[0]) & (m < window[1])]
    if len(m) < 20:
        raise ValueError(f"too few dimuons in {window} GeV for a fit: {len(m)}")
    grid = np.linspace(window[0], window[1], 2001)
    g = Z_WIDTH / 2

    def nll(x: np.ndarray) -> float:
        mu, s = x
        s = abs(s) + 1e-3
        norm = trapezoid(voigt_profile(grid - mu, s, g), grid)
        return float(-np.sum(np.log(voigt_profile(m - mu, s, g) / norm + 1e-300)))

    res = minimize(
        nll,
        x0=[float(np.median(m)), 1.5],
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-4},
    )
    mu, s = res.x
    s = abs(s) + 1e-3
    h = 0.02
    curv = (
        nll(np.array([mu + h, s])) - 2 * nll(np.array([mu, s])) + nll(np.array([mu - h, s]))
    ) / h**2
    err = float(1 / np.sqrt(curv)) if curv > 0 else float("nan")
    return ZPeak(float(mu), err, float(s), _voigt_fwhm(s, g), float(np.std(m)), len(m))


@dataclass(frozen=True)
class JpsiPeak:
    median: float
    sigma_q68: float  #: half the width of the central 68 % of the masses
    sigma_mad: float  #: 1.4826 x median absolute deviation
    rms: float
    n: int


def jpsi_peak(masses: np.ndarray, window: tuple[float, float] = JPSI_WINDOW) -> JpsiPeak:
    """Robust width estimators of the J/psi peak in ``window`` (no fit: ~50 data events)."""
    m = np.asarray(masses, float)
    m = m[(m > window[0]) & (m < window[1])]
    if len(m) < 10:
        raise ValueError(f"too few dimuons in {window} GeV: {len(m)}")
    med = float(np.median(m))
    lo, hi = np.percentile(m, [15.865, 84.135])
    mad = 1.4826 * float(np.median(np.abs(m - med)))
    return JpsiPeak(med, float(hi - lo) / 2, mad, float(np.std(m)), len(m))


def _leading_os_pair_mass(pt, eta, phi, ch, min_pt, max_eta):
    """Mass of the two leading muons (pT-ordered jagged arrays) when they have opposite
    charge and pass the cuts; events with fewer than two muons are dropped."""
    import awkward as ak

    two = ak.to_numpy(ak.num(pt) >= 2)
    cols = [ak.to_numpy(x[two][:, i]).astype(np.float64) for i in (0, 1) for x in (pt, eta, phi)]
    q = [ak.to_numpy(ch[two][:, i]) for i in (0, 1)]
    pt1, eta1, phi1, pt2, eta2, phi2 = cols
    ok = (
        (q[0] * q[1] < 0)
        & (np.maximum(pt1, pt2) > min_pt[0])
        & (np.minimum(pt1, pt2) > min_pt[1])
        & (np.abs(eta1) < max_eta)
        & (np.abs(eta2) < max_eta)
    )
    return _pair_mass(pt1[ok], eta1[ok], phi1[ok], pt2[ok], eta2[ok], phi2[ok])


def dimuons_nanoaod_2012(
    path: str | os.PathLike[str],
    min_pt: tuple[float, float] = JPSI_MIN_PT,
    max_eta: float = JPSI_MAX_ETA,
) -> np.ndarray:
    """Leading opposite-sign dimuon masses of the real CMS 2012 DoubleMuParked NanoAOD-style
    file (RNTuple ``Events``)."""
    import uproot

    with uproot.open(path) as f:
        t = f["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge"])
    return _leading_os_pair_mass(
        t["Muon_pt"], t["Muon_eta"], t["Muon_phi"], t["Muon_charge"], min_pt, max_eta
    )


def dimuons_poet_leading(
    path: str | os.PathLike[str],
    min_pt: tuple[float, float] = JPSI_MIN_PT,
    max_eta: float = JPSI_MAX_ETA,
    tree: str = "mymuons/Events",
) -> np.ndarray:
    """The same as :func:`dimuons_nanoaod_2012` on a generated POET file (all reconstructed
    muons, no ID or isolation: the NanoAOD file carries none)."""
    import uproot

    with uproot.open(path) as f:
        a = f[tree].arrays(["muon_pt", "muon_eta", "muon_phi", "muon_ch"])
    return _leading_os_pair_mass(a.muon_pt, a.muon_eta, a.muon_phi, a.muon_ch, min_pt, max_eta)


def _pair_mass(pt1, eta1, phi1, pt2, eta2, phi2):
    mmu = 0.1056584

    def four(pt, eta, phi):
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mmu**2)

    a, b = four(pt1, eta1, phi1), four(pt2, eta2, phi2)
    e = a[3] + b[3]
    p2 = (a[0] + b[0]) ** 2 + (a[1] + b[1]) ** 2 + (a[2] + b[2]) ** 2
    return np.sqrt(np.maximum(e**2 - p2, 0))


def dimuons_real_2010(path: str | os.PathLike[str]) -> np.ndarray:
    """Opposite-sign dimuon masses from the real CMS 2010 ``uproot-Zmumu.root`` (one pair per
    row), with the cuts of :data:`MIN_PT` and :data:`MAX_ETA` on both muons."""
    import uproot

    with uproot.open(path) as f:
        t = f["events"].arrays(
            ["pt1", "eta1", "phi1", "Q1", "pt2", "eta2", "phi2", "Q2"], library="np"
        )
    ok = (
        (t["Q1"] * t["Q2"] < 0)
        & (t["pt1"] > MIN_PT)
        & (t["pt2"] > MIN_PT)
        & (np.abs(t["eta1"]) < MAX_ETA)
        & (np.abs(t["eta2"]) < MAX_ETA)
    )
    return _pair_mass(
        t["pt1"][ok], t["eta1"][ok], t["phi1"][ok], t["pt2"][ok], t["eta2"][ok], t["phi2"][ok]
    )


def dimuons_poet(
    path: str | os.PathLike[str], tree: str = "mymuons/Events", max_iso: float = 0.15
) -> np.ndarray:
    """Leading opposite-sign pair of tight, isolated muons per event in a generated POET file,
    with the same kinematic cuts as :func:`dimuons_real_2010`."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        a = f[tree].arrays(
            ["muon_pt", "muon_eta", "muon_phi", "muon_ch", "muon_isTight", "muon_pfreliso04all"]
        )
    sel = (
        (a.muon_pt > MIN_PT)
        & (np.abs(a.muon_eta) < MAX_ETA)
        & (a.muon_isTight == 1)
        & (a.muon_pfreliso04all < max_iso)
    )
    mu = a[sel]
    mu = mu[ak.num(mu.muon_pt) >= 2]
    first, second = mu[:, 0], mu[:, 1]
    os_ = first.muon_ch * second.muon_ch < 0
    first, second = first[os_], second[os_]
    return _pair_mass(
        *(
            ak.to_numpy(x)
            for x in (
                first.muon_pt,
                first.muon_eta,
                first.muon_phi,
                second.muon_pt,
                second.muon_eta,
                second.muon_phi,
            )
        )
    )


def gen_muons_jets_met(path: str | os.PathLike[str]) -> tuple[Any, Any, np.ndarray]:
    """Generator particles (``GenPart_*`` records), jets (``jet_corrpt``, ``jet_eta``,
    ``jet_phi`` records) and MET of a generated POET file, for checks of what the detector
    turns generator muons into."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        g = f["mygenparticles/Events"].arrays(
            ["GenPart_pt", "GenPart_eta", "GenPart_phi", "GenPart_pdgId", "GenPart_status"]
        )
        j = f["myjets/Events"].arrays(["jet_corrpt", "jet_eta", "jet_phi"])
        met = f["mymets/Events"].arrays(["met_pt"], library="np")["met_pt"]
    g = ak.zip({k: g[k] for k in g.fields})
    j = ak.zip({k: j[k] for k in j.fields})
    return g, j, met


def forward_muon_jet_pairs(
    gen: Any, jets: Any, min_pt: float = 20.0, min_abs_eta: float = 2.4
) -> tuple[Any, Any, Any]:
    """Generator muons (final state, pT > ``min_pt``, |eta| > ``min_abs_eta``: outside the
    muon acceptance) and, for each muon and each jet of its event, their Delta R and the
    jet/muon pT ratio (nested per muon): ``(muons, dr, ratio)``.  A jet at small Delta R
    carrying most of the muon's pT is the muon clustered as a jet."""
    import awkward as ak

    fwd = (
        (np.abs(gen.GenPart_pdgId) == 13)
        & (gen.GenPart_status == 1)
        & (gen.GenPart_pt > min_pt)
        & (np.abs(gen.GenPart_eta) > min_abs_eta)
    )
    mu = gen[fwd]
    pairs = ak.cartesian({"m": mu, "j": jets}, nested=True)
    dphi = (pairs.m.GenPart_phi - pairs.j.jet_phi + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(pairs.m.GenPart_eta - pairs.j.jet_eta, dphi)
    return mu, dr, pairs.j.jet_corrpt / pairs.m.GenPart_pt


def transverse_mass_w(path: str | os.PathLike[str]) -> np.ndarray:
    """W transverse mass of events with exactly one tight isolated muon (pT > 25 GeV) and the
    reconstructed MET."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        mu = f["mymuons/Events"].arrays(
            ["muon_pt", "muon_eta", "muon_phi", "muon_isTight", "muon_pfreliso04all"]
        )
        met = f["mymets/Events"].arrays(["met_pt", "met_phi"], library="np")
    sel = (
        (mu.muon_pt > 25)
        & (np.abs(mu.muon_eta) < 2.1)
        & (mu.muon_isTight == 1)
        & (mu.muon_pfreliso04all < 0.15)
    )
    good = mu[sel]
    one = ak.to_numpy(ak.num(good.muon_pt) == 1)
    pt = ak.to_numpy(ak.firsts(good.muon_pt[one]))
    phi = ak.to_numpy(ak.firsts(good.muon_phi[one]))
    mpt, mphi = met["met_pt"][one], met["met_phi"][one]
    return np.sqrt(np.maximum(2 * pt * mpt * (1 - np.cos(phi - mphi)), 0))


def four_lepton_mass(path: str | os.PathLike[str]) -> np.ndarray:
    """Invariant mass of events with exactly four loose, isolated (relative isolation < 0.35)
    muons and electrons in total: the H -> ZZ -> 4l check."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        mu = f["mymuons/Events"].arrays(
            ["muon_e", "muon_px", "muon_py", "muon_pz", "muon_pfreliso04all", "muon_isLoose"]
        )
        el = f["myelectrons/Events"].arrays(
            [
                "electron_e",
                "electron_px",
                "electron_py",
                "electron_pz",
                "electron_iso",
                "electron_isLoose",
            ]
        )
    m = mu[(mu.muon_pfreliso04all < 0.35) & (mu.muon_isLoose == 1)]
    e = el[(el.electron_iso < 0.35) & (el.electron_isLoose == 1)]
    n4 = (ak.num(m.muon_e) + ak.num(e.electron_e)) == 4
    tot = {
        c: ak.sum(m[f"muon_{c}"], axis=1) + ak.sum(e[f"electron_{c}"], axis=1)
        for c in ("e", "px", "py", "pz")
    }
    m4 = np.sqrt(np.maximum(tot["e"] ** 2 - tot["px"] ** 2 - tot["py"] ** 2 - tot["pz"] ** 2, 0))
    return ak.to_numpy(m4[n4])
