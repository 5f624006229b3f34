"""``poetml generate --validate DIR``: the generator's physics against references, line by line.

Every figure that the physics tests assert is computed here on freshly generated samples
(MPI off, as in the tests; files are kept in ``DIR`` and reused when present) and compared
with an independent reference: real CMS data in ``shared/data`` (the 2010 Z peak, the 2012
J/psi peak), PDG values, measured cross sections.  Each :class:`Check` carries its value,
the reference, the tolerance and whether it passes; checks that need a real-data file
which is absent are reported as skipped, never as passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Check", "format_checks", "run_checks"]

#: PDG 2024 values used as references
PDG_Z_MASS = 91.1876
PDG_W_MASS = 80.369
PDG_H_MASS = 125.20
PDG_BR_JPSI_MUMU = 0.05961
#: TOTEM, 13 TeV inelastic cross section [pb], Eur. Phys. J. C 79 (2019) 103
TOTEM_SIGMA_INEL_PB = 79.5e9
TOTEM_SIGMA_INEL_ERR_PB = 1.8e9


@dataclass(frozen=True)
class Check:
    """One figure against its reference.  ``status``: ``pass``, ``FAIL`` or ``skip``."""

    item: str
    name: str
    value: float | None
    reference: str
    tolerance: str
    status: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(item: str, name: str, value: float, ok: bool, reference: str, tolerance: str) -> Check:
    return Check(item, name, float(value), reference, tolerance, "pass" if ok else "FAIL")


def _sample(outdir: Path, process: str, n: int, seed: int, **kw: Any) -> tuple[Path, dict]:
    """Generate (or reuse) ``outdir/<process>_<n>[_tag].root``; returns (path, summary)."""
    from . import generate

    tag = "_".join(f"{k}{v}" for k, v in sorted(kw.items()))
    path = outdir / f"{process}_{n}{'_' + tag if tag else ''}.root"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    s = generate(process, n, path, seed=seed, mpi=False, progress=False, **kw)
    s.pop("metadata", None)
    meta.write_text(json.dumps(s))
    return path, s


def _z(outdir: Path, shared: Path, scale: float) -> Iterator[Check]:
    from . import validation as val

    real = shared / "uproot-Zmumu.root"
    dy, _ = _sample(outdir, "dy", max(500, int(4000 * scale)), 11)
    sim = val.z_peak(val.dimuons_poet(dy))
    if not real.exists():
        yield Check("Z", "Z peak and width", None, str(real), "", "skip", "real 2010 file absent")
        return
    data = val.z_peak(val.dimuons_real_2010(real))
    yield _check(
        "Z", "peak [GeV]", sim.peak, abs(sim.peak - data.peak) < 0.5,
        f"CMS 2010 data {data.peak:.2f} (PDG {PDG_Z_MASS})", "+-0.5 GeV",
    )  # fmt: skip
    yield _check(
        "Z", "FWHM sim/data", sim.fwhm / data.fwhm, abs(sim.fwhm / data.fwhm - 1) < 0.15,
        f"CMS 2010 data {data.fwhm:.2f} GeV", "within 15 %",
    )  # fmt: skip


def _forward(outdir: Path, scale: float) -> Iterator[Check]:
    import awkward as ak

    from . import validation as val

    dy, _ = _sample(outdir, "dy", max(500, int(4000 * scale)), 11)
    g, j, met = val.gen_muons_jets_met(dy)
    mu, dr, ratio = val.forward_muon_jet_pairs(g, j)
    became = ak.to_numpy(ak.flatten(ak.any((dr < 0.1) & (ratio > 0.9), axis=2)))
    yield _check(
        "forward muons", "muons |eta| > 2.4 clustered into jets", became.mean(),
        became.mean() < 0.02, "0 (muons are never jet constituents; was 96 %)", "< 2 %",
    )  # fmt: skip
    has = ak.to_numpy(ak.num(mu.GenPart_pt) > 0)
    lead = ak.to_numpy(ak.max(mu.GenPart_pt[has], axis=1))
    frac = float(np.median(met[has] / lead))
    yield _check(
        "forward muons", "median MET / lost muon pT", frac, 0.65 < frac < 1.1,
        "about 1 (a lost muon is missing energy; was 0.29)", "0.65-1.1",
    )  # fmt: skip


def _jpsi(outdir: Path, shared: Path, scale: float) -> Iterator[Check]:
    import awkward as ak
    import uproot

    from . import validation as val

    n = max(300, int(1000 * scale))
    path, s = _sample(outdir, "jpsi", n, 12)
    with uproot.open(path) as f:
        nmu = ak.to_numpy(ak.num(f["mymuons/Events"]["muon_pt"].array()))
        w = f["mygenparticles/Events"]["weight"].array(library="np")
    yield _check(
        "J/psi", "events without a muon", np.mean(nmu == 0), np.mean(nmu == 0) < 0.08,
        "generator dimuon filter (was 59 %)", "< 8 %",
    )  # fmt: skip
    yield _check(
        "J/psi", "events with >= 2 muons", np.mean(nmu >= 2), np.mean(nmu >= 2) > 0.6,
        "generator dimuon filter (was 5.6 %)", "> 60 %",
    )  # fmt: skip
    br = w / (s["sigma_pb"] * s["filter_efficiency"] / n)
    direct = br[np.abs(br / PDG_BR_JPSI_MUMU - 1) < 0.02]
    yield _check(
        "J/psi", "BR(J/psi -> mu mu) in direct-J/psi weights", float(np.median(direct)),
        abs(np.median(direct) / PDG_BR_JPSI_MUMU - 1) < 0.01,
        f"PDG {PDG_BR_JPSI_MUMU}", "within 1 %",
    )  # fmt: skip
    hi, _ = _sample(outdir, "jpsi", max(1000, int(4000 * scale)), 9, pthat_min=15.0)
    real = shared / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
    if not real.exists():
        yield Check("J/psi", "width", None, str(real), "", "skip", "real 2012 file absent")
        return
    data = val.jpsi_peak(val.dimuons_nanoaod_2012(real))
    sim = val.jpsi_peak(val.dimuons_poet_leading(hi))
    yield _check(
        "J/psi", "width (central 68 %) sim/data, |eta| < 1.2", sim.sigma_q68 / data.sigma_q68,
        abs(sim.sigma_q68 / data.sigma_q68 - 1) < 0.15,
        f"CMS 2012 data {1e3 * data.sigma_q68:.1f} MeV", "within 15 %",
    )  # fmt: skip


def _w_h_tt(outdir: Path, scale: float) -> Iterator[Check]:
    import awkward as ak
    import uproot

    from . import validation as val

    wj, _ = _sample(outdir, "wjets", max(1000, int(3000 * scale)), 11)
    mt = val.transverse_mass_w(wj)
    hist, edges = np.histogram(mt, bins=np.arange(0, 122, 4.0))
    centers = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(hist, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(smooth))
    after = np.flatnonzero(smooth[peak:] < 0.5 * smooth[peak])
    edge = float(centers[peak + after[0]]) if len(after) else float("nan")
    yield _check(
        "W", "m_T Jacobian edge [GeV] (half maximum)", edge, 76 <= edge <= 94,
        f"PDG m_W {PDG_W_MASS}", "76-94 GeV (4 GeV bins, resolution)",
    )  # fmt: skip
    h4, _ = _sample(outdir, "hzz4l", max(150, int(300 * scale)), 11)
    m4 = val.four_lepton_mass(h4)
    yield _check(
        "H -> 4l", "median m(4l) [GeV]", float(np.median(m4)),
        abs(np.median(m4) - PDG_H_MASS) < 3, f"PDG m_H {PDG_H_MASS}", "+-3 GeV",
    )  # fmt: skip
    tt, s = _sample(outdir, "ttbar", max(200, int(400 * scale)), 11)
    with uproot.open(tt) as f:
        j = f["myjets/Events"].arrays(["jet_corrpt", "jet_eta"])
    njet = ak.to_numpy(ak.num(j.jet_corrpt[(j.jet_corrpt > 30) & (np.abs(j.jet_eta) < 2.4)]))
    yield _check(
        "ttbar", "jets pT > 30 GeV, |eta| < 2.4 per event", float(njet.mean()),
        3.5 < njet.mean() < 6.5, "CMS lepton+jets / dilepton mix: about 4", "3.5-6.5",
    )  # fmt: skip
    yield Check(
        "ttbar",
        "sigma: Pythia LO / NNLO+NNLL",
        s["sigma_pb"] / 832.0,
        "832 pb (Top++ 2.0); weights use Pythia's LO unless a dataset sets cross_section_pb",
        "information",
        "info",
    )


def _minbias(outdir: Path, scale: float) -> Iterator[Check]:
    from . import measure_cross_section

    sigma, err = measure_cross_section("minbias", max(500, int(2000 * scale)), mpi=True)
    yield _check(
        "minimum bias", "sigma_inel [mb]", sigma * 1e-9,
        abs(sigma - TOTEM_SIGMA_INEL_PB) < 2.5 * np.hypot(err, TOTEM_SIGMA_INEL_ERR_PB),
        "TOTEM 79.5 +- 1.8 mb", "2.5 sigma",
    )  # fmt: skip


def _bias(outdir: Path, scale: float) -> Iterator[Check]:
    import awkward as ak
    import uproot

    n = max(800, int(2000 * scale))
    b, _ = _sample(outdir, "qcd", n, 3, bias_pow=4.0)
    lo, s_lo = _sample(outdir, "qcd", n // 2, 5, pthat_min=30.0, pthat_max=150.0)
    hi, s_hi = _sample(outdir, "qcd", n // 2, 4, pthat_min=150.0)

    def lead(p: Path) -> tuple[np.ndarray, np.ndarray]:
        with uproot.open(p) as f:
            jets = f["myjets/Events"]["jet_corrpt"].array()
            w = f["mygenparticles/Events"]["weight"].array(library="np")
        return ak.to_numpy(ak.fill_none(ak.max(jets, axis=1), 0.0)), w

    lb, wb = lead(b)
    l1, w1 = lead(lo)
    l2, w2 = lead(hi)
    tot = s_lo["sigma_filtered_pb"] + s_hi["sigma_filtered_pb"]
    yield _check(
        "QCD pT-hat", "sigma(> 30 GeV) biased / binned", wb.sum() / tot,
        abs(wb.sum() / tot - 1) < 0.06, "bins 30-150 + > 150 GeV (independent runs)", "6 %",
    )  # fmt: skip
    a, ea = wb[lb > 300].sum(), np.sqrt((wb[lb > 300] ** 2).sum())
    c = w1[l1 > 300].sum() + w2[l2 > 300].sum()
    ec = np.sqrt((w1[l1 > 300] ** 2).sum() + (w2[l2 > 300] ** 2).sum())
    pull = (a - c) / np.hypot(ea, ec) if np.hypot(ea, ec) > 0 else float("inf")
    yield _check(
        "QCD pT-hat", "sigma(leading jet > 300 GeV): pull biased vs binned", pull,
        abs(pull) < 3, "pT-hat bins", "|pull| < 3",
    )  # fmt: skip


_GROUPS: dict[str, Callable[..., Iterator[Check]]] = {
    "z": lambda o, sh, sc: _z(o, sh, sc),
    "forward": lambda o, sh, sc: _forward(o, sc),
    "jpsi": lambda o, sh, sc: _jpsi(o, sh, sc),
    "w_h_tt": lambda o, sh, sc: _w_h_tt(o, sc),
    "minbias": lambda o, sh, sc: _minbias(o, sc),
    "bias": lambda o, sh, sc: _bias(o, sc),
}


def run_checks(
    outdir: str | os.PathLike[str],
    *,
    shared: str | os.PathLike[str] | None = None,
    scale: float = 1.0,
    only: tuple[str, ...] | None = None,
    progress: bool = True,
) -> list[Check]:
    """Generate (or reuse) the validation samples in ``outdir`` and return every check.

    ``shared``: the folder with the real CMS files (default: ``../shared/data`` beside the
    current directory, as in a clone); ``scale`` multiplies the sample sizes (0.25 for a
    quick look: tolerances stay, so small samples may fail); ``only``: groups among
    ``z, forward, jpsi, w_h_tt, minbias, bias``."""
    from tqdm.auto import tqdm

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    sh = Path(shared) if shared is not None else Path("..") / "shared" / "data"
    groups = only or tuple(_GROUPS)
    bad = [g for g in groups if g not in _GROUPS]
    if bad:
        raise ValueError(f"unknown validation groups {bad}; valid: {', '.join(_GROUPS)}")
    checks: list[Check] = []
    for g in tqdm(groups, desc="validate", unit="group", disable=not progress):
        checks.extend(_GROUPS[g](out, sh, scale))
    return checks


def format_checks(checks: list[Check]) -> str:
    """The checks as an aligned text table, with a summary line."""
    rows = [("item", "figure", "value", "reference", "tolerance", "status")]
    for c in checks:
        v = "-" if c.value is None else f"{c.value:.4g}"
        rows.append(
            (
                c.item,
                c.name,
                v,
                c.reference,
                c.tolerance,
                c.status + (f" ({c.note})" if c.note else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5] for r in rows]
    n_fail = sum(c.status == "FAIL" for c in checks)
    n_pass = sum(c.status == "pass" for c in checks)
    n_skip = sum(c.status == "skip" for c in checks)
    lines.append(f"{n_pass} passed, {n_fail} failed, {n_skip} skipped")
    return "\n".join(lines)
