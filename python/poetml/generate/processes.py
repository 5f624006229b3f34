"""The Pythia 8 processes poetml generates, with their settings and cross sections.

Every process is 13 TeV proton-proton with the Pythia 8.3 default tune (Monash 2013),
particles with c*tau > 10 mm stable (the CMS generator convention: K0S, Lambda, ... reach
the detector), multi-parton interactions on unless switched off.  ``sigma_pb`` is the
generated cross section *times the forced branching ratios* that Pythia reports
(``info.sigmaGen()``) after 2000 events with MPI off, measured with pythia8mc 8.317.2 by
``python bench/bench_generate.py --cross-sections`` (it does not depend on MPI); it is
documentation, re-measurable with :func:`measure_cross_section`.

The four "AD challenge" signals follow the CMS Level-1 anomaly-detection challenge dataset
(Govorkova et al., Sci. Data 9 (2022) 118): a neutral scalar A (50 GeV) -> 4 leptons,
a leptoquark (80 GeV) -> b tau, a scalar h0 (60 GeV) -> tau tau and a charged scalar
h+ (60 GeV) -> tau nu.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMMON_SETTINGS",
    "JPSI_FILTER",
    "PROCESSES",
    "DimuonFilter",
    "Process",
    "forced_decay_ids",
    "get_process",
    "pythia_settings",
]

#: Settings applied to every process before its own.
COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:idA = 2212",
    "Beams:idB = 2212",
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Print:errors = off",
    "Next:numberCount = 0",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",
)


@dataclass(frozen=True)
class DimuonFilter:
    """Generator-level dimuon acceptance filter: an event is kept when a final-state mu+ and
    mu- whose first ancestor of another kind is ``parent`` (``None``: any origin) both have
    pT > ``min_pt`` GeV and ``|eta|`` < ``max_eta``.  Events are generated until ``n`` pass;
    the number tried and the efficiency go into the summary and the manifest, and the
    sample's cross section is ``sigma_pb * filter_efficiency``."""

    min_pt: float = 3.5
    max_eta: float = 2.4
    parent: int | None = 443


#: The J/psi filter.  ``|eta|`` < 2.4 is the CMS muon acceptance; 3.5 GeV per muon is the
#: lowest per-muon threshold of the 2012 CMS dimuon triggers (L1 DoubleMu3p5 seeds,
#: HLT_DoubleMu3p5_*) and about the momentum a muon needs to cross the solenoid and the
#: return-yoke iron and reach the barrel muon stations; 46 of the 47 J/psi -> mu mu of the
#: 2012 DoubleMuParked file in ``shared/data`` have both muons above it (the softest has
#: 3.2 GeV).  Below it the detector (muon efficiency turn-on at 3.5 GeV) would leave most
#: events without a dimuon.
JPSI_FILTER = DimuonFilter(min_pt=3.5, max_eta=2.4, parent=443)


@dataclass(frozen=True)
class Process:
    """One generated process.

    ``settings`` are Pythia ``readString`` lines; ``pthat_min`` is the default
    ``PhaseSpace:pTHatMin`` for processes that take one (``None``: not applicable);
    ``kind`` is ``"background"`` or ``"signal"``; ``filter``: a generator-level
    :class:`DimuonFilter` (``sigma_pb`` is the cross section before it).
    """

    name: str
    title: str
    kind: str
    settings: tuple[str, ...]
    sigma_pb: float
    pthat_min: float | None = None
    notes: str = ""
    filter: DimuonFilter | None = None
    #: a measured or higher-order cross section [pb] for the same final state, where it
    #: differs from Pythia's leading-order one (``None``: none quoted); documentation and
    #: metadata only: event weights use Pythia's own cross section (see :mod:`poetml.generate`)
    sigma_ref_pb: float | None = None
    sigma_ref_source: str = ""


def _p(
    name,
    title,
    kind,
    settings,
    sigma_pb,
    pthat_min=None,
    notes="",
    filter=None,
    sigma_ref_pb=None,
    sigma_ref_source="",
):
    return Process(
        name,
        title,
        kind,
        tuple(settings),
        sigma_pb,
        pthat_min,
        notes,
        filter,
        sigma_ref_pb,
        sigma_ref_source,
    )


_PROCESS_LIST = [
    _p(
        "dy",
        "Drell-Yan Z/gamma* -> mu mu, m(mu mu) > 50 GeV",
        "background",
        [
            "WeakSingleBoson:ffbar2gmZ = on",
            "23:onMode = off",
            "23:onIfAny = 13",
            "PhaseSpace:mHatMin = 50.",
        ],
        sigma_pb=1.515e3,
        notes="full gamma*/Z interference; the reference for tuning to the 2010 CMS Z peak",
        sigma_ref_pb=2025.7,
        sigma_ref_source="NNLO (FEWZ), one lepton flavour: CMS DYJetsToLL_M-50 6077.2 pb / 3",
    ),
    _p(
        "dy_ee",
        "Drell-Yan Z/gamma* -> e e, m(e e) > 50 GeV",
        "background",
        [
            "WeakSingleBoson:ffbar2gmZ = on",
            "23:onMode = off",
            "23:onIfAny = 11",
            "PhaseSpace:mHatMin = 50.",
        ],
        sigma_pb=1.513e3,
        sigma_ref_pb=2025.7,
        sigma_ref_source="NNLO (FEWZ), one lepton flavour: CMS DYJetsToLL_M-50 6077.2 pb / 3",
    ),
    _p(
        "wjets",
        "W -> l nu (l = e, mu, tau) + jets from the parton shower (inclusive, like CMS WJetsToLNu)",
        "background",
        [
            "WeakSingleBoson:ffbar2W = on",
            "24:onMode = off",
            "24:onIfAny = 11 13 15",
        ],
        sigma_pb=4.705e4,
        sigma_ref_pb=61526.7,
        sigma_ref_source="NNLO (FEWZ), W -> l nu summed over e, mu, tau: CMS WJetsToLNu",
    ),
    _p(
        "ttbar",
        "top-quark pairs (gg, qqbar -> t tbar), all decays",
        "background",
        ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
        sigma_pb=507.1,
        notes="leading-order sigma; the NNLO+NNLL value is 832 pb",
        sigma_ref_pb=832.0,
        sigma_ref_source="NNLO+NNLL (Top++ 2.0), m_t = 172.5 GeV",
    ),
    _p(
        "qcd",
        "QCD multijet (HardQCD:all), pT-hat above a configurable threshold",
        "background",
        ["HardQCD:all = on"],
        sigma_pb=1.607e8,
        pthat_min=30.0,
        notes="sigma quoted for the default pT-hat > 30 GeV; set another threshold with --pthat-min",
    ),
    _p(
        "jpsi",
        "prompt J/psi -> mu mu (colour-singlet and octet charmonium, with chi_c and psi(2S) "
        "feed-down forced to J/psi)",
        "background",
        [
            "Charmonium:all = on",
            "443:onMode = off",
            "443:onIfMatch = 13 -13",
            "100443:onMode = off",
            "100443:onIfAny = 443",
            "10441:onMode = off",
            "10441:onIfAny = 443",
            "20443:onMode = off",
            "20443:onIfAny = 443",
            "445:onMode = off",
            "445:onIfAny = 443",
        ],
        sigma_pb=1.825e7,
        pthat_min=6.0,
        notes="pT-hat > 6 GeV so the muons reach the CMS acceptance; generator filter: both "
        "J/psi muons pT > 3.5 GeV, |eta| < 2.4.  sigma_pb is Pythia's charmonium cross "
        "section, which forcing the J/psi (and feed-down) decays does NOT change: event "
        "weights multiply it by the forced branching ratios from Pythia's decay table "
        "(J/psi -> mu mu 5.93 %, psi(2S) -> J/psi X 53.6 %, chi_c0/1/2 -> J/psi gamma 2.0 / "
        "35.6 / 20.2 %) and by the filter efficiency",
        filter=JPSI_FILTER,
    ),
    _p(
        "hzz4l",
        "gg -> H(125) -> Z Z(*) -> 4 l (l = e, mu)",
        "background",
        [
            "HiggsSM:gg2H = on",
            "25:m0 = 125.0",
            "25:onMode = off",
            "25:onIfMatch = 23 23",
            "23:onMode = off",
            "23:onIfAny = 11 13",
        ],
        sigma_pb=3.034e-3,
        notes="leading-order gluon fusion; the sigma includes BR(H->ZZ*) and BR(Z->ee,mumu)^2",
        sigma_ref_pb=5.81e-3,
        sigma_ref_source="gg -> H N3LO 48.58 pb (LHC Higgs WG) x BR(H->ZZ*) 2.641 % x "
        "BR(Z -> ee, mumu)^2 (6.729 %)^2",
    ),
    _p(
        "zprime",
        "Z' (2 TeV, SM-like couplings) -> mu mu",
        "signal",
        [
            "NewGaugeBoson:ffbar2gmZZprime = on",
            "Zprime:gmZmode = 3",
            "32:m0 = 2000.",
            "32:onMode = off",
            "32:onIfAny = 13",
        ],
        sigma_pb=1.591e-2,
    ),
    _p(
        "zprime_ww",
        "heavy resonance Z' (2 TeV) -> W W, both W -> q q'",
        "signal",
        [
            "NewGaugeBoson:ffbar2gmZZprime = on",
            "Zprime:gmZmode = 3",
            "32:m0 = 2000.",
            "Zprime:coup2WW = 1.0",
            "32:onMode = off",
            "32:onIfMatch = 24 -24",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4 5",
        ],
        sigma_pb=4.377e-3,
        notes="boosted hadronic W's: two massive jets, as in the seed autoencoder exercise",
    ),
    _p(
        "a4l",
        "AD-challenge signal: neutral scalar A (50 GeV) -> Z* Z* -> 4 l",
        "signal",
        [
            "HiggsSM:gg2H = on",
            "25:m0 = 50.",
            "25:onMode = off",
            "25:onIfMatch = 23 23",
            "23:onMode = off",
            "23:onIfAny = 11 13",
        ],
        sigma_pb=1.23e-6,
        notes="modelled as an SM-like scalar of 50 GeV produced in gluon fusion, forced to "
        "off-shell Z Z; the tiny sigma is its SM-like BR(ZZ*) at 50 GeV",
    ),
    _p(
        "lq_btau",
        "AD-challenge signal: leptoquark pairs (80 GeV, charge -4/3), LQ -> b tau",
        "signal",
        [
            "LeptoQuark:gg2LQLQbar = on",
            "LeptoQuark:qqbar2LQLQbar = on",
            "42:m0 = 80.",
            "42:chargeType = -4",
            "42:0:products = 5 15",
            "42:onMode = on",
        ],
        sigma_pb=2.544e3,
    ),
    _p(
        "h0_tautau",
        "AD-challenge signal: neutral scalar h0 (60 GeV) -> tau tau",
        "signal",
        [
            "HiggsSM:gg2H = on",
            "25:m0 = 60.",
            "25:onMode = off",
            "25:onIfMatch = 15 -15",
        ],
        sigma_pb=6.934,
    ),
    _p(
        "hplus_taunu",
        "AD-challenge signal: charged scalar h+ (60 GeV) -> tau nu",
        "signal",
        [
            "Higgs:useBSM = on",
            "HiggsBSM:ffbar2H+- = on",
            "37:m0 = 60.",
            "37:onMode = off",
            "37:onIfMatch = 15 16",
        ],
        sigma_pb=0.5031,
        notes="f fbar' -> H+- (2HDM type II couplings, Pythia default tan(beta))",
    ),
]

_PROCESS_LIST.append(
    _p(
        "minbias",
        "minimum bias: all inelastic pp collisions (SoftQCD:inelastic: non-diffractive, "
        "single and double diffractive), MPI always on",
        "background",
        ["SoftQCD:inelastic = on"],
        sigma_pb=7.805e10,
        notes="the zero-bias stream and the pile-up pool (poetml.generate.pileup); about "
        "99.8 % of collisions; MPI is forced on (minimum bias is mostly MPI)",
        sigma_ref_pb=7.95e10,
        sigma_ref_source="TOTEM 13 TeV inelastic cross section 79.5 +- 1.8 mb "
        "(Eur. Phys. J. C 79 (2019) 103)",
    )
)

#: name -> Process, in --list order.
PROCESSES: dict[str, Process] = {p.name: p for p in _PROCESS_LIST}


def get_process(name: str) -> Process:
    """The process called ``name``; a ValueError lists the valid ones."""
    try:
        return PROCESSES[name]
    except KeyError:
        raise ValueError(
            f"unknown process {name!r}; valid processes: {', '.join(PROCESSES)}"
        ) from None


def pythia_settings(
    process: Process | str,
    *,
    seed: int,
    mpi: bool = True,
    pthat_min: float | None = None,
    pthat_max: float | None = None,
    bias_pow: float | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """All ``readString`` lines for one Pythia instance of ``process``.

    ``pthat_min`` / ``pthat_max``: a pT-hat bin (``PhaseSpace:pTHatMin/Max``) for processes
    with a pT-hat; ``bias_pow``: sample pT-hat with ``PhaseSpace:bias2Selection`` at that
    power (reference: the bin's lower edge), so a steeply falling spectrum is populated
    over orders of magnitude; events then carry Pythia's compensating weights."""
    proc = get_process(process) if isinstance(process, str) else process
    lines = [*COMMON_SETTINGS, *proc.settings]
    cut = pthat_min if pthat_min is not None else proc.pthat_min
    if pthat_min is not None and proc.pthat_min is None:
        raise ValueError(
            f"process {proc.name!r} takes no pT-hat threshold; processes that do: "
            + ", ".join(p.name for p in PROCESSES.values() if p.pthat_min is not None)
        )
    if cut is not None:
        lines.append(f"PhaseSpace:pTHatMin = {float(cut)}")
    if pthat_max is not None:
        if cut is None:
            raise ValueError(f"process {proc.name!r} takes no pT-hat range")
        if not pthat_max > cut:
            raise ValueError(f"pthat_max ({pthat_max}) must exceed pthat_min ({cut})")
        lines.append(f"PhaseSpace:pTHatMax = {float(pthat_max)}")
    if bias_pow is not None:
        if cut is None:
            raise ValueError(f"process {proc.name!r} takes no pT-hat bias (it has no pT-hat)")
        if not bias_pow > 0:
            raise ValueError(f"bias_pow must be > 0, got {bias_pow!r}")
        # events sampled with density (pT-hat / pT-hat-min)^pow x d sigma; Pythia gives each
        # the compensating weight, so the weighted spectrum is unbiased and its tail populated
        lines += [
            "PhaseSpace:bias2Selection = on",
            f"PhaseSpace:bias2SelectionPow = {float(bias_pow)}",
            f"PhaseSpace:bias2SelectionRef = {float(cut)}",
        ]
    lines.append(f"PartonLevel:MPI = {'on' if mpi or proc.name == 'minbias' else 'off'}")
    lines += ["Random:setSeed = on", f"Random:seed = {int(seed)}"]
    lines += list(extra)
    return lines


def forced_decay_ids(process: Process | str) -> tuple[int, ...]:
    """Particles whose decays ``process`` restricts (``ID:onMode`` settings), in order.
    Pythia's cross section includes the forced branching ratio of a *resonance* of the hard
    process (Z, W, H, Z' ...) but not that of an ordinary particle (J/psi, psi(2S), chi_c):
    :func:`poetml.generate.forced_fractions` tells which is which from Pythia itself."""
    import re

    proc = get_process(process) if isinstance(process, str) else process
    ids = []
    for line in proc.settings:
        m = re.match(r"\s*(\d+):onMode\s*=", line)
        if m and int(m.group(1)) not in ids:
            ids.append(int(m.group(1)))
    return tuple(ids)
