"""Physics validation of ``poetml.generate`` (issue 13, items 1 and 2), printed as numbers.

    python bench/validate_generate.py OUTDIR [--dy 3000] [--jpsi 2000] [--jpsi-hi 3000]

generates (MPI on, as in the default dataset; reuses files already in OUTDIR)

* ``dy.root``: Drell-Yan -> mu mu.  Generator muons with pT > 20 GeV beyond the muon
  acceptance (``|eta|`` > 2.4): how many have a jet within dR < 0.2 holding more than half
  their pT (they "became jets"), the jet/muon pT ratio; the fraction of events with a forward
  jet (``|eta|`` > 2.4, corrected pT > 30 GeV) and the share of those jets that are such
  muons; the reconstructed MET in events with a forward muon against that muon's pT.
* ``jpsi.root`` (default settings): fractions of events with no muon, an opposite-sign
  dimuon, a selected candidate (default selection: tight, relative isolation < 0.15,
  pT > 3 GeV, ``|eta|`` < 2.4, opposite sign, 2.8 < m < 3.4 GeV), the share of J/psi muons
  (any ID, in an opposite-sign pair in 2.9-3.3 GeV) failing isolation < 0.15, and the
  generator filter efficiency when the process has one.
* ``jpsi_hi.root`` (pT-hat > 15 GeV) for the J/psi width with the selection of the 2012
  file (:func:`poetml.generate.validation.dimuons_nanoaod_2012`), and the Z width of
  ``dy.root`` against the 2010 file (:func:`~poetml.generate.validation.z_peak`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
SHARED = ROOT.parent / "shared" / "data"


def _gen(path: Path, process: str, n: int, seed: int, **kw) -> dict:
    from poetml.generate import generate

    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return json.loads(meta.read_text())
    kw.setdefault("mpi", True)
    s = generate(process, n, path, seed=seed, workers=1, progress=False, **kw)
    meta.write_text(json.dumps(s))
    return s


def _dr(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def item1(path: Path) -> None:
    import awkward as ak

    from poetml.generate.validation import forward_muon_jet_pairs, gen_muons_jets_met

    g, j, met = gen_muons_jets_met(path)
    n = len(met)
    mu, dr, ratio = forward_muon_jet_pairs(g, j)
    hit = (dr < 0.2) & (ratio > 0.5)
    became = ak.to_numpy(ak.flatten(ak.any(hit, axis=2)))
    rat = ak.to_numpy(ak.flatten(ak.max(ak.where(hit, ratio, 0), axis=2)))
    nmu = len(became)
    print(f"[item 1] DY events: {n}")
    print(
        f"  generator muons pT > 20, |eta| > 2.4: {nmu}; with a jet (dR < 0.2, > 50% of pT): "
        f"{int(became.sum())} ({became.mean():.1%}); median jet/muon pT "
        f"{np.median(rat[became]) if became.any() else float('nan'):.3f}"
    )
    fj = (np.abs(j.jet_eta) > 2.4) & (j.jet_corrpt > 30)
    ev_fj = ak.to_numpy(ak.any(fj, axis=1))
    jp = ak.cartesian({"j": j[fj], "m": mu}, nested=True)
    jdr = _dr(jp.j.jet_eta, jp.j.jet_phi, jp.m.GenPart_eta, jp.m.GenPart_phi)
    is_mu = ak.to_numpy(
        ak.flatten(ak.any((jdr < 0.2) & (jp.j.jet_corrpt > 0.5 * jp.m.GenPart_pt), axis=2))
    )
    print(
        f"  events with a forward jet > 30 GeV: {ev_fj.mean():.1%}; forward jets that are "
        f"such muons: {is_mu.mean() if len(is_mu) else 0:.1%} of {len(is_mu)}"
    )
    has = ak.to_numpy(ak.num(mu.GenPart_pt) > 0)
    lead = ak.to_numpy(ak.max(mu.GenPart_pt[has], axis=1))
    print(
        f"  events with such a muon: {has.sum()}; their MET median {np.median(met[has]):.1f} GeV, "
        f"muon pT median {np.median(lead):.1f} GeV, median MET/muon pT "
        f"{np.median(met[has] / lead):.2f}; other events MET median {np.median(met[~has]):.1f} GeV"
    )


def _pairs_os(a, min_pt, max_eta):
    import awkward as ak

    c = ak.combinations(a, 2, fields=["a", "b"])
    mm = 0.1056584

    def four(x):
        px = x.muon_pt * np.cos(x.muon_phi)
        py = x.muon_pt * np.sin(x.muon_phi)
        pz = x.muon_pt * np.sinh(x.muon_eta)
        return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mm**2)

    pa, pb = four(c.a), four(c.b)
    m = np.sqrt(
        np.maximum(
            (pa[3] + pb[3]) ** 2
            - (pa[0] + pb[0]) ** 2
            - (pa[1] + pb[1]) ** 2
            - (pa[2] + pb[2]) ** 2,
            0,
        )
    )
    ok = c.a.muon_ch * c.b.muon_ch < 0
    return c, m, ok


def item2(path: Path, summary: dict) -> None:
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        a = f["mymuons/Events"].arrays(
            ["muon_pt", "muon_eta", "muon_phi", "muon_ch", "muon_isTight", "muon_pfreliso04all"]
        )
    a = ak.zip({k: a[k] for k in a.fields})
    n = len(a)
    nmu = ak.to_numpy(ak.num(a.muon_pt))
    c, m, os_ = _pairs_os(a, 0, 9)
    has_os = ak.to_numpy(ak.any(os_, axis=1))
    sel = (
        (a.muon_isTight == 1)
        & (a.muon_pfreliso04all < 0.15)
        & (a.muon_pt > 3)
        & (np.abs(a.muon_eta) < 2.4)
    )
    _cs, ms, oss = _pairs_os(a[sel], 0, 9)
    cand = ak.to_numpy(ak.any(oss & (ms > 2.8) & (ms < 3.4), axis=1))
    inpk = os_ & (m > 2.9) & (m < 3.3)
    isos = ak.to_numpy(
        ak.flatten(
            ak.concatenate([c.a.muon_pfreliso04all[inpk], c.b.muon_pfreliso04all[inpk]], axis=1)
        )
    )
    print(f"[item 2] J/psi events: {n}")
    print(f"  no muon: {np.mean(nmu == 0):.1%}; an opposite-sign dimuon: {has_os.mean():.1%}")
    print(
        f"  selected candidate (tight, iso < 0.15, pT > 3, 2.8 < m < 3.4): {int(cand.sum())} "
        f"({cand.mean():.1%})"
    )
    print(
        f"  J/psi muons (OS pair 2.9-3.3 GeV): {len(isos)}, failing iso < 0.15: {np.mean(isos >= 0.15):.1%}"
    )
    filt = {k: summary[k] for k in ("filter", "tried", "filter_efficiency") if k in summary}
    print(f"  generator filter: {filt or 'none'}; sigma_pb {summary.get('sigma_pb'):.4g}")


def widths(dy: Path, jhi: Path) -> None:
    from poetml.generate import validation as val

    zreal = SHARED / "uproot-Zmumu.root"
    jreal = SHARED / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
    d = val.z_peak(val.dimuons_real_2010(zreal))
    s = val.z_peak(val.dimuons_poet(dy))
    print("[widths] Z (81-101 GeV, both muons pT > 20, |eta| < 2.1, Voigt fit)")
    for k in ("peak", "sigma", "fwhm", "rms", "n"):
        a, b = getattr(d, k), getattr(s, k)
        print(f"  {k:6s} data {a:8.3f}  sim {b:8.3f}  sim/data {b / a:.3f}")
    for eta in (1.2, 2.4):
        d = val.jpsi_peak(val.dimuons_nanoaod_2012(jreal, max_eta=eta))
        s = val.jpsi_peak(val.dimuons_poet_leading(jhi, max_eta=eta))
        print(f"[widths] J/psi (2.9-3.3 GeV, leading OS pair, pT > 13 / 8, |eta| < {eta})")
        for k in ("median", "sigma_q68", "sigma_mad", "rms", "n"):
            a, b = getattr(d, k), getattr(s, k)
            print(f"  {k:9s} data {a:8.4f}  sim {b:8.4f}  sim/data {b / a:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--dy", type=int, default=3000)
    ap.add_argument("--jpsi", type=int, default=2000)
    ap.add_argument("--jpsi-hi", type=int, default=3000)
    ap.add_argument("--only", choices=("1", "2", "w"), default=None)
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    dy = args.outdir / "dy.root"
    if args.only in (None, "1", "w"):
        _gen(dy, "dy", args.dy, 7)
    if args.only in (None, "1"):
        item1(dy)
    if args.only in (None, "2"):
        jp = args.outdir / "jpsi.root"
        item2(jp, _gen(jp, "jpsi", args.jpsi, 8))
    if args.only in (None, "w"):
        jhi = args.outdir / "jpsi_hi.root"
        _gen(jhi, "jpsi", args.jpsi_hi, 9, pthat_min=15.0, mpi=False)
        widths(dy, jhi)


if __name__ == "__main__":
    main()
