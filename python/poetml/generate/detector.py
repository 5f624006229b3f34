"""A parametric CMS-like detector, vectorised over a whole batch of Pythia events.

Input is the batch :func:`Pythia.nextBatch` returns (an awkward array of event records);
output is one dict of flat NumPy columns plus per-event counts for each POET collection
(:class:`DetectorOutput`).  There is no Python loop over events: the record is flattened
once, every object is a row of a flat array, and per-event pairings (lepton-particle for
isolation, jet-hadron for flavour) are built with ``np.repeat`` over per-event counts.

The parameters (:class:`DetectorConfig`) are CMS Run-2-like numbers; the pT-dependent muon
momentum resolution is tuned so that the simulated Z -> mu mu peak matches the real CMS 2010
data in ``../shared/data/uproot-Zmumu.root`` and the J/psi -> mu mu peak the 2012
DoubleMuParked file there (see ``tests/test_generate_physics.py``).

Muons and neutrinos never enter jets or isolation sums (muons are not calorimeter deposits
nor PF hadrons or photons); MET is the negative vector sum of the visible particles with
jets and isolated electrons at their reconstructed scale, plus every *reconstructed* muon at
its measured momentum, so a muon outside ``|eta|`` < 2.4 or lost to inefficiency is missing
energy, as in particle-flow MET.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DETECTOR_REVISION",
    "DetectorConfig",
    "DetectorOutput",
    "Particles",
    "dimuon_accept",
    "flatten_batch",
    "simulate",
]

#: Bumped when the detector's behaviour changes beyond its parameters (it is part of the
#: default dataset's settings hash, so a cached dataset is regenerated).  2: muons and
#: neutrinos are never clustered into jets nor counted in isolation; MET counts only
#: reconstructed muons; pT-dependent muon resolution.  3: muon isolation split into
#: charged (primary vertex), neutral and pile-up charged sums: ``pfreliso04all`` no longer
#: counts pile-up charged hadrons, ``pfreliso04DBCorr`` (delta-beta) is written; the b-tag
#: discriminant is continuous with pT- and eta-dependent efficiencies.
DETECTOR_REVISION = 3

_MUON_MASS = 0.1056584
_ELECTRON_MASS = 0.000511
_NEUTRINOS = (12, 14, 16)
#: never clustered into jets, never in isolation sums, in MET only as reconstructed muons
_INVISIBLE_TO_CALO = (12, 13, 14, 16)


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the parametric detector (defaults: CMS Run 2; muon resolution tuned on
    the 2010 Z and 2012 J/psi peaks)."""

    # muons
    muon_max_eta: float = 2.4
    muon_min_pt: float = 3.0
    muon_eff_plateau: float = 0.98
    #: relative pT resolution sigma(pT)/pT = a(eta) (+) b * pT [GeV]: a is the multiple-
    #: scattering term for ``|eta|`` < 0.9, 0.9-1.2, > 1.2, b the curvature (alignment and
    #: hit-resolution) term.  Tuned together on the Z of the 2010 file (muons of ~40 GeV,
    #: Voigt FWHM and rms, all and barrel-barrel) and the J/psi of the 2012 file (muons of
    #: ~10-20 GeV, central-68 % width): 1.3 % at 10 GeV and 1.6 % at 45 GeV in the barrel.
    #: No muon-system term: above a few hundred GeV it overestimates the resolution.
    muon_res_a: tuple[float, float, float] = (0.013, 0.016, 0.030)
    muon_res_b: float = 2.0e-4
    # electrons
    electron_max_eta: float = 2.5
    electron_gap: tuple[float, float] = (1.4442, 1.566)
    electron_min_pt: float = 5.0
    #: ECAL energy resolution, barrel: stochastic, noise [GeV], constant (endcap x1.6)
    electron_res: tuple[float, float, float] = (0.03, 0.12, 0.007)
    # jets
    jet_r: float = 0.4
    jet_max_eta: float = 4.7
    jet_min_corrpt: float = 15.0
    #: mean raw response: pT_raw = a(eta) * pT_true - b;  a for ``|eta|`` < 1.3, 1.3-3, > 3
    jet_response_a: tuple[float, float, float] = (0.96, 0.93, 0.88)
    jet_response_b: float = 2.5
    #: relative jet resolution sqrt((N/pT)^2 + S^2/pT + C^2)
    jet_res: tuple[float, float, float] = (3.0, 1.0, 0.05)
    #: CSVv2 medium working point and the efficiencies at it (b, c, light)
    btag_threshold: float = 0.8484
    btag_eff: tuple[float, float, float] = (0.65, 0.12, 0.01)
    btag_max_eta: float = 2.4
    # isolation inputs
    iso_min_pt: float = 0.5
    iso_max_eta: float = 3.0
    # MET: unclustered resolution sigma = k * sqrt(sum pT of unclustered particles)
    met_unclustered_k: float = 0.5
    # what counts as isolated for removal from jet inputs
    jet_lepton_iso: float = 0.25


@dataclass
class Particles:
    """Flat view of a batch of Pythia events (plus pile-up particles, if any)."""

    offsets: np.ndarray  # int64, n_events + 1 (hard-scatter particles only)
    id: np.ndarray
    status: np.ndarray
    mother1: np.ndarray  # global index, -1 none
    daughter1: np.ndarray  # global index, -1 none
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    m: np.ndarray
    vx: np.ndarray  # production vertex [mm]
    vy: np.ndarray
    vz: np.ndarray
    event: np.ndarray  # event index of each particle
    # pile-up final-state particles, flat, with their own event index
    pu: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1


def flatten_batch(batch) -> Particles:
    """Flatten the awkward batch from ``nextBatch`` into :class:`Particles` (pile-up is
    added afterwards as ``Particles.pu``, see :mod:`poetml.generate.pileup`)."""

    prt = batch["prt"]
    fields = _record_columns(prt)
    counts = fields.pop("counts")
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    event = np.repeat(np.arange(len(counts)), counts)
    base = offsets[:-1][event]
    mother1 = fields["mother1"].astype(np.int64)
    daughter1 = fields["daughter1"].astype(np.int64)
    mother1 = np.where(mother1 > 0, mother1 + base, -1)
    daughter1 = np.where(daughter1 > 0, daughter1 + base, -1)
    parts = Particles(
        offsets=offsets,
        id=fields["id"].astype(np.int64),
        status=fields["status"].astype(np.int64),
        mother1=mother1,
        daughter1=daughter1,
        px=fields["px"],
        py=fields["py"],
        pz=fields["pz"],
        e=fields["e"],
        m=fields["m"],
        vx=fields["vx"],
        vy=fields["vy"],
        vz=fields["vz"],
        event=event,
    )
    return parts


def _record_columns(prt) -> dict[str, np.ndarray]:
    """Flat NumPy columns of the particle records (zero-copy from the awkward layout when it
    is the ListOffsetArray of records ``nextBatch`` builds; ``ak.flatten`` otherwise)."""
    import awkward as ak

    names = ("id", "status", "mother1", "daughter1", "m")
    lay = ak.to_layout(prt)
    try:
        off = np.asarray(lay.offsets.data)
        rec = lay.content
        lo, hi = int(off[0]), int(off[-1])
        out = {k: np.asarray(rec.content(k).data)[lo:hi] for k in names}
        p = rec.content("p")
        for k in ("px", "py", "pz", "e"):
            out[k] = np.asarray(p.content(k).data, np.float64)[lo:hi]
        v = rec.content("vProd")
        idx = np.asarray(v.index.data)[lo:hi]
        for k, name in (("vx", "px"), ("vy", "py"), ("vz", "pz")):
            data = np.asarray(v.content.content(name).data, np.float64)
            out[k] = np.where(idx >= 0, data[np.maximum(idx, 0)] if len(data) else 0.0, 0.0)
        out["counts"] = np.diff(off).astype(np.int64)
        return out
    except (AttributeError, TypeError):  # another layout: the generic (slower) path
        out = {k: np.asarray(ak.to_numpy(ak.flatten(prt[k]))) for k in names}
        for k in ("px", "py", "pz", "e"):
            out[k] = np.asarray(ak.to_numpy(ak.flatten(prt.p[k])), np.float64)
        for k, name in (("vx", "px"), ("vy", "py"), ("vz", "pz")):
            out[k] = np.asarray(
                ak.to_numpy(ak.flatten(ak.fill_none(prt.vProd[name], 0.0))), np.float64
            )
        out["counts"] = ak.to_numpy(ak.num(prt)).astype(np.int64)
        return out


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _pt_eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e4))
    eta = np.clip(eta, -1e4, 1e4)
    phi = np.arctan2(py, px)
    return pt, eta, phi


def _dphi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _pairs(ev_a: np.ndarray, ev_b: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ev_a[i] == ev_b[j]; ``ev_b`` must be sorted."""
    cnt_b = np.bincount(ev_b, minlength=n_events)
    start_b = np.zeros(n_events + 1, np.int64)
    np.cumsum(cnt_b, out=start_b[1:])
    per_a = cnt_b[ev_a]
    ia = np.repeat(np.arange(len(ev_a)), per_a)
    first = np.zeros(len(ev_a) + 1, np.int64)
    np.cumsum(per_a, out=first[1:])
    local = np.arange(int(first[-1])) - np.repeat(first[:-1], per_a)
    jb = np.repeat(start_b[:-1][ev_a], per_a) + local
    return ia, jb


def _is_hadron(pid: np.ndarray) -> np.ndarray:
    a = np.abs(pid)
    return (a > 100) & (a < 1_000_000)


def _has_quark(pid: np.ndarray, q: int) -> np.ndarray:
    a = np.abs(pid)
    meson = ((a // 100) % 10 == q) & ((a // 1000) % 10 == 0)
    baryon = (a // 1000) % 10 == q
    return _is_hadron(pid) & (meson | baryon)


def _first_other_ancestor(parts: Particles, idx: np.ndarray, steps: int = 40) -> np.ndarray:
    """Follow mother1 from ``idx`` while the id stays the same (shower copies)."""
    cur = idx.copy()
    for _ in range(steps):
        mo = parts.mother1[cur]
        same = (mo >= 0) & (parts.id[np.maximum(mo, 0)] == parts.id[cur])
        if not same.any():
            break
        cur = np.where(same, mo, cur)
    return parts.mother1[cur]


def dimuon_accept(
    parts: Particles, min_pt: float, max_eta: float, parent: int | None
) -> np.ndarray:
    """Per event: a final-state mu+ and mu- (from ``parent`` when given, following shower
    copies) both with pT > ``min_pt`` and ``|eta|`` < ``max_eta`` (generator level)."""
    mu = np.flatnonzero((parts.status > 0) & (np.abs(parts.id) == 13))
    mpt, meta, _ = _pt_eta_phi(parts.px[mu], parts.py[mu], parts.pz[mu])
    ok = (mpt > min_pt) & (np.abs(meta) < max_eta)
    if parent is not None:
        anc = _first_other_ancestor(parts, mu)
        ok &= (anc >= 0) & (np.abs(parts.id[np.maximum(anc, 0)]) == abs(parent))
    ev = parts.event[mu]
    n = parts.n_events
    plus = np.bincount(ev[ok & (parts.id[mu] < 0)], minlength=n)
    minus = np.bincount(ev[ok & (parts.id[mu] > 0)], minlength=n)
    return np.asarray((plus > 0) & (minus > 0))


def _wsum(x: np.ndarray, weights: np.ndarray, minlength: int) -> np.ndarray:
    """Weighted bincount that is float64 even when empty (np.bincount gives int64 then)."""
    return np.bincount(x, weights=weights, minlength=minlength).astype(np.float64, copy=False)


def _counts(ev: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(ev, minlength=n_events).astype(np.int32)


@dataclass
class DetectorOutput:
    """Flat columns of one chunk: ``counts[coll]`` per event, ``columns[coll][branch]`` flat
    (object collections) or per event (``met``, GenMET)."""

    n_events: int
    counts: dict[str, np.ndarray]
    columns: dict[str, dict[str, np.ndarray]]


# --------------------------------------------------------------------------------------
# b tagging
# --------------------------------------------------------------------------------------


def btag_efficiency(
    hflav: np.ndarray, pt: np.ndarray, eta: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """Probability that a jet passes the medium working point (``btag_threshold``): the
    CSVv2 medium efficiencies of CMS Run 2 (BTV-16-002) for 30-100 GeV central jets,
    ``btag_eff`` = 65 % b, 12 % c, 1 % light, with their trends: b falls to about 55 % at
    20 GeV and by 10 points per factor 4 in pT above 150 GeV, light mistags double from
    100 to 500 GeV, and beyond ``|eta|`` 1.5 the b and c efficiencies are 15 % lower and
    the light mistag rate 30 % higher."""
    lpt = np.log(np.maximum(pt, 1.0))
    b = (
        cfg.btag_eff[0]
        - 0.10 * np.clip((30.0 - pt) / 10.0, 0.0, 1.0)
        - 0.10 * np.clip((lpt - np.log(150.0)) / np.log(4.0), 0.0, 1.5)
    )
    c = np.full_like(pt, cfg.btag_eff[1], dtype=np.float64)
    light = cfg.btag_eff[2] * (1.0 + np.clip((lpt - np.log(100.0)) / np.log(5.0), 0.0, 2.0))
    fwd = np.abs(eta) > 1.5
    b = np.where(fwd, 0.85 * b, b)
    c = np.where(fwd, 0.85 * c, c)
    light = np.where(fwd, 1.3 * light, light)
    return np.select([hflav == 5, hflav == 4], [b, c], light)


def btag_discriminant(
    hflav: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    rng: np.random.Generator,
    cfg: DetectorConfig,
) -> np.ndarray:
    """A continuous CSVv2-like discriminant in (0, 1): ``Phi(mu + z)`` with ``z`` standard
    normal and ``mu`` set per jet so that exactly :func:`btag_efficiency` of jets of its
    flavour, pT and eta lie above ``btag_threshold``.  It reproduces the efficiencies at
    every threshold's *medium* point by construction and gives smooth, flavour-ordered
    shapes elsewhere; it does not use the tracks or displaced vertices of the event, so it
    carries no information about the jet beyond its true flavour, pT and eta."""
    from scipy.special import ndtr, ndtri

    eff = np.clip(btag_efficiency(hflav, pt, eta, cfg), 1e-4, 1 - 1e-4)
    mu = ndtri(cfg.btag_threshold) + ndtri(eff)
    return np.asarray(ndtr(mu + rng.standard_normal(len(pt))), np.float64)


# --------------------------------------------------------------------------------------
# isolation
# --------------------------------------------------------------------------------------


def _isolation(lep_ev, lep_eta, lep_phi, lep_gidx, vis, n_events, cones):
    """Sum of pT of the isolation inputs within each cone of every lepton (itself excluded).

    The inputs are the visible particles without muons: as in the CMS PF isolation
    (``sumChargedHadronPt + sumNeutralHadronEt + sumPhotonEt``, which POET's
    ``pfreliso04all`` is), PF muons are not charged hadrons, so a second muon in the cone,
    such as the partner muon of a J/psi or Upsilon, never spoils the isolation."""
    return [
        p["all"] for p in _isolation_parts(lep_ev, lep_eta, lep_phi, lep_gidx, vis, n_events, cones)
    ]


def _isolation_parts(lep_ev, lep_eta, lep_phi, lep_gidx, vis, n_events, cones):
    """Per cone, the CMS PF isolation sums of every lepton (itself excluded): ``charged``
    (charged hadrons from the primary vertex: ``sumChargedHadronPt``), ``neutral``
    (neutral hadrons and photons, whatever their vertex), ``pu`` (charged particles from
    pile-up vertices: ``sumPUPt``, which the tracker tells apart by their vertex) and
    ``all`` = charged + neutral, POET's ``pfreliso04all`` numerator."""
    n = len(lep_ev)
    out = [{k: np.zeros(n) for k in ("charged", "neutral", "pu", "all")} for _ in cones]
    if n == 0 or len(vis["event"]) == 0:
        return out
    ia, jb = _pairs(lep_ev, vis["event"], n_events)
    not_self = vis["gidx"][jb] != lep_gidx[ia]
    dr2 = (lep_eta[ia] - vis["eta"][jb]) ** 2 + _dphi(lep_phi[ia], vis["phi"][jb]) ** 2
    charged = _charged(vis["id"][jb])
    from_pu = vis["pu"][jb]
    kinds = {
        "charged": charged & ~from_pu,
        "neutral": ~charged,
        "pu": charged & from_pu,
    }
    for k, cone in enumerate(cones):
        sel = not_self & (dr2 < cone * cone)
        for name, mask in kinds.items():
            m = sel & mask
            out[k][name] = _wsum(ia[m], weights=vis["pt"][jb][m], minlength=n)
        out[k]["all"] = out[k]["charged"] + out[k]["neutral"]
    return out


def delta_beta(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The delta-beta corrected isolation sum CMS muon selections use (POET's
    ``pfreliso04DBCorr`` numerator): charged + max(0, neutral - 0.5 x pile-up charged)."""
    return parts["charged"] + np.maximum(0.0, parts["neutral"] - 0.5 * parts["pu"])


# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stdout_silenced():
    """Send the C-level stdout to /dev/null (FastJet prints its banner there on first use)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


_FASTJET_BANNER_DONE = False


def cluster_jets(px, py, pz, e, event, n_events, r):
    """Anti-kT jets of the flat particles (sorted by event) with FastJet's multi-event
    interface: one call for the whole batch.  Returns flat jet px, py, pz, E, event."""
    global _FASTJET_BANNER_DONE
    import awkward as ak

    from .._optional import require

    fastjet = require("fastjet", "jet clustering in poetml.generate")
    counts = np.bincount(event, minlength=n_events)
    arr = ak.unflatten(
        ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D"), counts
    )
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, r)
    if not _FASTJET_BANNER_DONE:
        with _stdout_silenced():
            cs = fastjet.ClusterSequence(arr, jetdef)
            jets = cs.inclusive_jets(min_pt=5.0)
        _FASTJET_BANNER_DONE = True
    else:
        cs = fastjet.ClusterSequence(arr, jetdef)
        jets = cs.inclusive_jets(min_pt=5.0)
    njet = ak.to_numpy(ak.num(jets)).astype(np.int64)
    out = {
        k: np.asarray(ak.to_numpy(ak.flatten(jets[k])), np.float64) for k in ("px", "py", "pz", "E")
    }
    out["event"] = np.repeat(np.arange(n_events), njet)
    return out


def simulate(
    parts: Particles, rng: np.random.Generator, cfg: DetectorConfig | None = None
) -> DetectorOutput:
    """Run the parametric detector on a flattened batch; every branch of
    ``schema.POET_COLLECTIONS`` gets a column."""
    cfg = cfg or DetectorConfig()
    n_ev = parts.n_events
    pid = parts.id
    apid = np.abs(pid)
    final = parts.status > 0
    astat = np.abs(parts.status)
    # kinematics only of what is used: final state, hard process, heavy hadrons, taus
    need = final | ((astat >= 21) & (astat <= 29)) | (apid == 15) | ((apid > 400) & (apid < 6000))
    pt = np.zeros(len(pid))
    eta = np.zeros(len(pid))
    phi = np.zeros(len(pid))
    nidx = np.flatnonzero(need)
    pt[nidx], eta[nidx], phi[nidx] = _pt_eta_phi(parts.px[nidx], parts.py[nidx], parts.pz[nidx])
    charged_all = _charged(pid)
    # detector thresholds of particle-flow candidates: tracks pT > 0.3 GeV in the tracker
    # (|eta| < 2.5), calorimeter deposits E > 1 GeV elsewhere / for neutrals, |eta| < 5
    seen = np.where(charged_all & (np.abs(eta) < 2.5), pt > 0.3, parts.e > 1.0) & (
        np.abs(eta) < 5.0
    )
    # muons and neutrinos are not calorimeter deposits or PF hadrons/photons: they are never
    # clustered into jets nor summed in isolation cones, and a muon enters MET only when it
    # is reconstructed (below); one outside |eta| < 2.4 or lost to inefficiency is missing
    # energy, as particle-flow MET sees it
    visible = final & ~np.isin(apid, _INVISIBLE_TO_CALO) & seen

    # ---------------- visible particles for isolation / jets / MET (hard + pile-up)
    vidx = np.flatnonzero(visible)
    vis = {
        "event": parts.event[vidx],
        "px": parts.px[vidx],
        "py": parts.py[vidx],
        "pz": parts.pz[vidx],
        "e": parts.e[vidx],
        "id": pid[vidx],
        "gidx": vidx,
        "pu": np.zeros(len(vidx), bool),
    }
    vis["pt"], vis["eta"], vis["phi"] = pt[vidx], eta[vidx], phi[vidx]
    if parts.pu:
        pu = parts.pu
        upt, ueta, uphi = _pt_eta_phi(pu["px"], pu["py"], pu["pz"])
        useen = np.where(_charged(pu["id"]) & (np.abs(ueta) < 2.5), upt > 0.3, pu["e"] > 1.0)
        keep = ~np.isin(np.abs(pu["id"]), _INVISIBLE_TO_CALO) & useen & (np.abs(ueta) < 5.0)
        merged = {
            "event": np.concatenate([vis["event"], pu["event"][keep]]),
            "px": np.concatenate([vis["px"], pu["px"][keep]]),
            "py": np.concatenate([vis["py"], pu["py"][keep]]),
            "pz": np.concatenate([vis["pz"], pu["pz"][keep]]),
            "e": np.concatenate([vis["e"], pu["e"][keep]]),
            "id": np.concatenate([vis["id"], pu["id"][keep]]),
            "gidx": np.concatenate([vis["gidx"], np.full(int(keep.sum()), -1, np.int64)]),
            "pu": np.concatenate([vis["pu"], np.ones(int(keep.sum()), bool)]),
            "pt": np.concatenate([vis["pt"], upt[keep]]),
            "eta": np.concatenate([vis["eta"], ueta[keep]]),
            "phi": np.concatenate([vis["phi"], uphi[keep]]),
        }
        order = np.argsort(merged["event"], kind="stable")
        vis = {k: v[order] for k, v in merged.items()}
    charged = _charged(vis["id"])
    iso_in = (np.abs(vis["eta"]) < cfg.iso_max_eta) & (
        vis["pt"] > np.where(charged, cfg.iso_min_pt, 2 * cfg.iso_min_pt)
    )
    iso_vis = {k: v[iso_in] for k, v in vis.items()}

    # ---------------- leptons (generator level -> reco)
    def prompt_of(idx: np.ndarray) -> np.ndarray:
        anc = _first_other_ancestor(parts, idx)
        return ~((anc >= 0) & _is_hadron(pid[np.maximum(anc, 0)]))

    def impact(idx: np.ndarray, lpt: np.ndarray, is_e: bool) -> tuple[np.ndarray, ...]:
        # true impact parameters from the production vertex (mm -> cm), then smeared
        vx, vy, vz = parts.vx[idx] * 0.1, parts.vy[idx] * 0.1, parts.vz[idx] * 0.1
        px, py, pz = parts.px[idx], parts.py[idx], parts.pz[idx]
        ptt = np.maximum(pt[idx], 1e-9)
        dxy = (-vx * py + vy * px) / ptt
        dz = vz - (vx * px + vy * py) / ptt * pz / ptt
        s = 1.5 if is_e else 1.0
        sig_xy = s * np.sqrt(0.0012**2 + (0.0060 / np.maximum(lpt, 0.5)) ** 2)
        sig_z = 2.5 * sig_xy * np.cosh(np.clip(eta[idx], -3, 3)) ** 0.5
        dxy_r = dxy + rng.normal(0.0, 1.0, len(idx)) * sig_xy
        dz_r = dz + rng.normal(0.0, 1.0, len(idx)) * sig_z
        err_xy = sig_xy * rng.uniform(0.85, 1.15, len(idx))
        err_z = sig_z * rng.uniform(0.85, 1.15, len(idx))
        return dxy_r, dz_r, err_xy, err_z

    # muons
    midx = np.flatnonzero(
        final & (apid == 13) & (np.abs(eta) < cfg.muon_max_eta) & (pt > 0.8 * cfg.muon_min_pt)
    )
    aeta = np.abs(eta[midx])
    a = np.where(
        aeta < 0.9, cfg.muon_res_a[0], np.where(aeta < 1.2, cfg.muon_res_a[1], cfg.muon_res_a[2])
    )
    sig = np.sqrt(a**2 + (cfg.muon_res_b * pt[midx]) ** 2)
    mpt = pt[midx] * (1.0 + sig * rng.normal(0.0, 1.0, len(midx)))
    eff = cfg.muon_eff_plateau / (1.0 + np.exp(-(pt[midx] - 3.5) / 0.6))
    ok = (rng.uniform(size=len(midx)) < eff) & (mpt > cfg.muon_min_pt)
    midx, mpt = midx[ok], mpt[ok]
    m_prompt = prompt_of(midx)
    m_ev = parts.event[midx]
    m03, m04 = _isolation_parts(m_ev, eta[midx], phi[midx], midx, iso_vis, n_ev, (0.3, 0.4))
    m_iso03 = m03["all"] / mpt
    m_iso04 = m04["all"] / mpt
    m_iso04db = delta_beta(m04) / mpt
    m_dxy, m_dz, m_dxye, m_dze = impact(midx, mpt, False)
    u = rng.uniform(size=(3, len(midx)))
    m_loose = u[0] < 0.995
    m_medium = m_loose & (u[1] < np.where(m_prompt, 0.985, 0.93))
    m_tight = (
        m_loose
        & (u[2] < np.where(m_prompt, 0.97, 0.90))
        & (np.abs(m_dxy) < 0.2)
        & (np.abs(m_dz) < 0.5)
    )
    m_ch = -np.sign(pid[midx]).astype(np.int32)

    # electrons
    eidx = np.flatnonzero(
        final
        & (apid == 11)
        & (np.abs(eta) < cfg.electron_max_eta)
        & (pt > 0.8 * cfg.electron_min_pt)
    )
    aeta = np.abs(eta[eidx])
    eidx = eidx[(aeta < cfg.electron_gap[0]) | (aeta > cfg.electron_gap[1])]
    aeta = np.abs(eta[eidx])
    ee = parts.e[eidx]
    sa, sn, sc = cfg.electron_res
    scale = np.where(aeta < 1.479, 1.0, 1.6)
    esig = scale * np.sqrt(sa**2 / ee + (sn / ee) ** 2 + sc**2)
    fac = 1.0 + esig * rng.normal(0.0, 1.0, len(eidx))
    ept = pt[eidx] * fac
    e_eff = np.where(
        pt[eidx] > 20.0, 0.95, 0.95 * (0.55 + 0.45 * np.clip((pt[eidx] - 5.0) / 15.0, 0, 1))
    )
    ok = (rng.uniform(size=len(eidx)) < e_eff) & (ept > cfg.electron_min_pt)
    eidx, ept, fac = eidx[ok], ept[ok], fac[ok]
    e_prompt = prompt_of(eidx)
    e_ev = parts.event[eidx]
    (e_iso,) = _isolation(e_ev, eta[eidx], phi[eidx], eidx, iso_vis, n_ev, (0.3,))
    e_iso /= ept
    e_dxy, e_dz, e_dxye, e_dze = impact(eidx, ept, True)
    barrel = np.abs(eta[eidx]) < 1.479
    u = rng.uniform(size=len(eidx))
    pf = np.where(e_prompt, 1.0, 0.6)
    # Run-2 cut-based IDs: shower-shape efficiency x relative-isolation and impact cuts
    e_loose = (u < 0.96 * pf) & (e_iso < np.where(barrel, 0.0994, 0.107))
    e_medium = e_loose & (u < 0.90 * pf) & (e_iso < np.where(barrel, 0.0695, 0.0821))
    e_tight = (
        e_medium
        & (u < 0.82 * pf)
        & (e_iso < np.where(barrel, 0.0588, 0.0571))
        & (np.abs(e_dxy) < np.where(barrel, 0.05, 0.10))
        & (np.abs(e_dz) < np.where(barrel, 0.10, 0.20))
    )
    flip = rng.uniform(size=len(eidx)) < np.where(barrel, 0.002, 0.01)
    e_ch = (-np.sign(pid[eidx]) * np.where(flip, -1, 1)).astype(np.int32)

    # ---------------- jets (muons and neutrinos are not in ``vis``; isolated electrons are
    # removed from the jet inputs)
    iso_el = eidx[e_iso < cfg.jet_lepton_iso]
    removed = np.zeros(len(pid), bool)
    removed[iso_el] = True
    jin = (np.abs(vis["eta"]) < 5.0) & ~(vis["pu"] & charged)  # charged-hadron subtraction
    hard_v = vis["gidx"] >= 0
    jin &= ~(hard_v & removed[np.maximum(vis["gidx"], 0)])
    jets = cluster_jets(
        vis["px"][jin],
        vis["py"][jin],
        vis["pz"][jin],
        vis["e"][jin],
        vis["event"][jin],
        n_ev,
        cfg.jet_r,
    )
    jpt, jeta, jphi = _pt_eta_phi(jets["px"], jets["py"], jets["pz"])
    jm = np.sqrt(
        np.maximum(jets["E"] ** 2 - jets["px"] ** 2 - jets["py"] ** 2 - jets["pz"] ** 2, 0)
    )
    ajeta = np.abs(jeta)
    ra = np.where(
        ajeta < 1.3,
        cfg.jet_response_a[0],
        np.where(ajeta < 3.0, cfg.jet_response_a[1], cfg.jet_response_a[2]),
    )
    rn, rs, rc = cfg.jet_res
    jsig = np.sqrt((rn / np.maximum(jpt, 1.0)) ** 2 + rs**2 / np.maximum(jpt, 1.0) + rc**2)
    raw = (ra * jpt - cfg.jet_response_b) * 1.0 + ra * jpt * jsig * rng.normal(0.0, 1.0, len(jpt))
    raw = np.maximum(raw, 0.1)
    corr = (raw + cfg.jet_response_b) / ra  # the correction undoes the mean response
    keep = (corr > cfg.jet_min_corrpt) & (ajeta < cfg.jet_max_eta)
    j = {k: v[keep] for k, v in jets.items()}
    jpt, jeta, jphi, jm, raw, corr, jsig = (x[keep] for x in (jpt, jeta, jphi, jm, raw, corr, jsig))
    j_ev = j["event"]
    rscale = raw / np.maximum(jpt, 1e-9)
    j_mass = jm * rscale * (1.0 + 0.05 * rng.normal(0.0, 1.0, len(jpt)))
    j_mass = np.maximum(j_mass, 0.0)
    j_e = np.sqrt((raw * np.cosh(jeta)) ** 2 + j_mass**2)
    j_corre = j_e * corr / raw

    # hadron flavour: B (then C) hadrons with pT > 5 GeV within R of the jet axis
    hflav = np.zeros(len(jpt), np.int32)
    hard5 = nidx[(pt[nidx] > 5.0) & (apid[nidx] > 400)]
    for q in (4, 5):
        hid = hard5[_has_quark(pid[hard5], q)]
        if len(hid) and len(jpt):
            ia, jb = _pairs(j_ev, parts.event[hid], n_ev)
            dr2 = (jeta[ia] - eta[hid][jb]) ** 2 + _dphi(jphi[ia], phi[hid][jb]) ** 2
            hit = np.bincount(ia[dr2 < cfg.jet_r**2], minlength=len(jpt)) > 0
            hflav[hit] = q  # b overrides c (processed last)
    # CSVv2-like continuous discriminant with pT- and eta-dependent efficiencies
    disc = btag_discriminant(hflav, corr, jeta, rng, cfg)  # at the corrected pT, as CMS quotes
    disc = np.where(np.abs(jeta) < cfg.btag_max_eta, disc, 0.0)

    # ---------------- MET
    vin = np.abs(vis["eta"]) < 5.0
    sx = _wsum(vis["event"][vin], weights=vis["px"][vin], minlength=n_ev)
    sy = _wsum(vis["event"][vin], weights=vis["py"][vin], minlength=n_ev)
    sumet_true = _wsum(vis["event"][vin], weights=vis["pt"][vin], minlength=n_ev)
    # replace true objects by reconstructed ones: corrected jets, iso leptons
    cfac = corr / np.maximum(jpt, 1e-9) - 1.0
    dx = _wsum(j_ev, weights=j["px"] * cfac, minlength=n_ev)
    dy = _wsum(j_ev, weights=j["py"] * cfac, minlength=n_ev)
    dsum = _wsum(j_ev, weights=corr - jpt, minlength=n_ev)
    clustered = _wsum(j_ev, weights=jpt, minlength=n_ev)
    isol = np.isin(eidx, iso_el)
    ii, rr = eidx[isol], ept[isol]
    f = rr / pt[ii] - 1.0
    ev = parts.event[ii]
    dx += _wsum(ev, weights=parts.px[ii] * f, minlength=n_ev)
    dy += _wsum(ev, weights=parts.py[ii] * f, minlength=n_ev)
    dsum += _wsum(ev, weights=rr - pt[ii], minlength=n_ev)
    clustered += _wsum(ev, weights=pt[ii], minlength=n_ev)
    unclustered = np.maximum(sumet_true - clustered, 0.0)
    # reconstructed muons (every one, isolated or not) at their measured momentum; the rest
    # of the muons are invisible
    dx += _wsum(m_ev, weights=mpt * np.cos(phi[midx]), minlength=n_ev)
    dy += _wsum(m_ev, weights=mpt * np.sin(phi[midx]), minlength=n_ev)
    dsum += _wsum(m_ev, weights=mpt, minlength=n_ev)
    sig_u = cfg.met_unclustered_k * np.sqrt(unclustered)
    metx = -(sx + dx) + sig_u * rng.normal(0.0, 1.0, n_ev)
    mety = -(sy + dy) + sig_u * rng.normal(0.0, 1.0, n_ev)
    sumet = sumet_true + dsum
    # significance: met^T V^-1 met with V = unclustered + jet resolution terms
    cj, sj = np.cos(jphi), np.sin(jphi)
    var_j = (jsig * corr) ** 2
    vxx = sig_u**2 + _wsum(j_ev, weights=var_j * cj * cj, minlength=n_ev) + 1e-6
    vyy = sig_u**2 + _wsum(j_ev, weights=var_j * sj * sj, minlength=n_ev) + 1e-6
    vxy = _wsum(j_ev, weights=var_j * cj * sj, minlength=n_ev)
    det = vxx * vyy - vxy**2
    signif = (metx**2 * vyy - 2 * metx * mety * vxy + mety**2 * vxx) / det
    met_pt = np.hypot(metx, mety)

    # ---------------- generator truth
    nu = np.flatnonzero(final & np.isin(apid, _NEUTRINOS))
    gmx = _wsum(parts.event[nu], weights=parts.px[nu], minlength=n_ev)
    gmy = _wsum(parts.event[nu], weights=parts.py[nu], minlength=n_ev)
    d1 = parts.daughter1
    last_copy = (parts.status > 0) | (d1 < 0) | (pid[np.maximum(d1, 0)] != pid)
    bhad = np.zeros(len(pid), bool)
    bhad[nidx] = _has_quark(pid[nidx], 5)
    keep_gen = (
        ((astat >= 21) & (astat <= 29))
        | (final & np.isin(apid, (11, 13)) & (pt > 1.0))
        | (final & np.isin(apid, _NEUTRINOS) & (pt > 1.0))
        | ((apid == 15) & last_copy & (parts.status < 0))
        | (bhad & last_copy)
    )
    gidx = np.flatnonzero(keep_gen)
    g_ev = parts.event[gidx]
    gpos = np.cumsum(keep_gen) - 1  # global position in the kept list
    g_first = np.zeros(n_ev + 1, np.int64)
    np.cumsum(np.bincount(g_ev, minlength=n_ev), out=g_first[1:])
    m_genidx = (gpos[midx] - g_first[:-1][m_ev]).astype(np.int32)
    st = parts.status[gidx]
    decayed = (
        (st < 0)
        & (_is_hadron(pid[gidx]) | (apid[gidx] == 15))
        & (d1[gidx] >= 0)
        & ~((np.abs(st) >= 21) & (np.abs(st) <= 29))
    )
    g_status = np.where(st > 0, 1, np.where(decayed, 2, np.abs(st))).astype(np.int32)
    g_pt, g_eta, g_phi = pt[gidx], eta[gidx], phi[gidx]

    # ---------------- assemble (POET branch names, float32 / int32)
    f32 = np.float32

    def lep_cols(prefix, idx, rpt, mass):
        px = rpt * np.cos(phi[idx])
        py = rpt * np.sin(phi[idx])
        pz = rpt * np.sinh(eta[idx])
        en = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
        return {
            f"{prefix}_e": en,
            f"{prefix}_pt": rpt,
            f"{prefix}_px": px,
            f"{prefix}_py": py,
            f"{prefix}_pz": pz,
            f"{prefix}_eta": eta[idx],
            f"{prefix}_phi": phi[idx],
        }

    muon = lep_cols("muon", midx, mpt, _MUON_MASS)
    muon.update(
        {
            "muon_ch": m_ch,
            "muon_isLoose": m_loose,
            "muon_isMedium": m_medium,
            "muon_isTight": m_tight,
            "muon_pfreliso03all": m_iso03,
            "muon_pfreliso04all": m_iso04,
            "muon_pfreliso04DBCorr": m_iso04db,
            "muon_dxy": m_dxy,
            "muon_dz": m_dz,
            "muon_dxyError": m_dxye,
            "muon_dzError": m_dze,
            "muon_genpartidx": m_genidx,
        }
    )
    electron = lep_cols("electron", eidx, ept, _ELECTRON_MASS)
    electron.update(
        {
            "electron_ch": e_ch,
            "electron_iso": e_iso,
            "electron_isLoose": e_loose,
            "electron_isMedium": e_medium,
            "electron_isTight": e_tight,
            "electron_dxy": e_dxy,
            "electron_dz": e_dz,
            "electron_dxyError": e_dxye,
            "electron_dzError": e_dze,
        }
    )
    jet = {
        "jet_e": j_e,
        "jet_pt": raw,
        "jet_eta": jeta,
        "jet_phi": jphi,
        "jet_mass": j_mass,
        "jet_btag": disc,
        "jet_hflav": hflav,
        "jet_corrpt": corr,
        "jet_corre": j_corre,
    }
    met = {
        "met_e": met_pt,
        "met_pt": met_pt,
        "met_px": metx,
        "met_py": mety,
        "met_phi": np.arctan2(mety, metx),
        "met_sumet": sumet,
        "met_significance": signif,
    }
    gen = {
        "GenPart_pt": g_pt,
        "GenPart_eta": g_eta,
        "GenPart_phi": g_phi,
        "GenPart_mass": parts.m[gidx],
        "GenPart_pdgId": pid[gidx],
        "GenPart_status": g_status,
        "GenPart_px": parts.px[gidx],
        "GenPart_py": parts.py[gidx],
        "GenPart_pz": parts.pz[gidx],
        "GenMET_pt": np.hypot(gmx, gmy),
        "GenMET_phi": np.arctan2(gmy, gmx),
    }
    # pT-order the object collections inside each event (POET stores them pT-ordered)
    muon = _pt_order(muon, m_ev, "muon_pt")
    electron = _pt_order(electron, e_ev, "electron_pt")
    jet = _pt_order(jet, j_ev, "jet_corrpt")

    from ..schema import POET_COLLECTIONS

    columns: dict[str, dict[str, np.ndarray]] = {}
    for cname, cols in (
        ("muon", muon),
        ("electron", electron),
        ("jet", jet),
        ("met", met),
        ("genparticle", gen),
    ):
        out = {}
        for b in POET_COLLECTIONS[cname].branches:
            if b.name == POET_COLLECTIONS[cname].counter:
                continue
            dtype = np.int32 if b.ctype in ("int", "std::vector<int>") else f32
            out[b.name] = np.asarray(cols[b.name]).astype(dtype)
        columns[cname] = out
    counts = {
        "muon": _counts(m_ev, n_ev),
        "electron": _counts(e_ev, n_ev),
        "jet": _counts(j_ev, n_ev),
        "genparticle": _counts(g_ev, n_ev),
    }
    return DetectorOutput(n_ev, counts, columns)


def _charged(pid: np.ndarray) -> np.ndarray:
    """Electric charge != 0 for the common final-state particles."""
    a = np.abs(pid)
    return np.isin(a, (11, 13, 211, 321, 2212, 3222, 3112, 3312, 3334, 15))


def _pt_order(cols: dict[str, np.ndarray], ev: np.ndarray, key: str) -> dict[str, np.ndarray]:
    # objects are grouped by event already (ev non-decreasing); sort by (event, -pt)
    order = np.lexsort((-np.asarray(cols[key]), ev))
    return {k: np.asarray(v)[order] for k, v in cols.items()}
