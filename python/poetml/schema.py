"""Canonical physics objects and the branch names that carry them.

This module is the one place branch names live.  Everything else in poetml speaks of
*canonical* collections (``muon``, ``electron``, ``jet``, ``met``, optional ``photon`` and
``tau``) and *canonical* fields (``pt``, ``eta``, ``phi`` ...), and asks this module how
they are spelled in a given file layout:

``poet``
    The POET layout the analyzers in ``analyzers/`` write: one TFileService directory per
    analyzer (``mymuons/Events``, ``myelectrons/Events``, ``myjets/Events``,
    ``mymets/Events``, and ``mygenparticles/Events`` for generator truth), trees aligned
    entry by entry.
``poet-merged``
    The same branches in one tree called ``events``.
``nanoaod``
    CMS NanoAOD: one ``Events`` tree, ``nMuon`` / ``Muon_pt`` ...

``POET_COLLECTIONS`` lists *every* branch each analyzer writes, with its C++ type; a test
parses the ``Branch("...")`` calls in ``analyzers/`` and checks they are exactly these, so
the analyzers and the reader cannot drift apart.  The generator (``poetml.generate``)
writes the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CANONICAL_FIELDS",
    "COLLECTIONS",
    "DEFAULT_READ_FIELDS",
    "GENERATION_METADATA_KEY",
    "LAYOUTS",
    "MASSES",
    "NANOAOD",
    "NANOAOD_PTHAT_BRANCH",
    "NANOAOD_WEIGHT_BRANCH",
    "OBJECT_COLLECTIONS",
    "PILEUP_PTHAT_BRANCH_NAME",
    "POET_COLLECTIONS",
    "POET_FIELD_FALLBACKS",
    "POET_MERGED_TREE",
    "POET_TREE",
    "PTHAT_BRANCH_NAME",
    "RECORD_LAYOUTS",
    "REQUIRED_FIELDS",
    "SUPPLIED_FIELDS",
    "WEIGHT_BRANCH_NAME",
    "Branch",
    "NanoCollection",
    "NanoField",
    "PoetCollection",
    "RecordField",
    "detect_record_layout",
    "nano_record_path",
    "poet_collection",
    "record_fields",
]

#: File layouts poetml reads.
LAYOUTS = ("poet", "poet-merged", "nanoaod")

#: Name of the tree inside every POET analyzer directory.
POET_TREE = "Events"
#: Name of the single tree of the merged POET layout.
POET_MERGED_TREE = "events"
#: Name of the NanoAOD tree.
NANOAOD_TREE = "Events"

#: Per-event weight [pb] (float64) that ``poetml generate`` writes into the generator-truth
#: tree (``mygenparticles/Events``, or ``events`` in the merged layout); the weights of a
#: file sum to its cross section x filter efficiency x branching ratio.  Real-data POET
#: files have none (weight 1).  NanoAOD simulation carries the unnormalised ``genWeight``.
WEIGHT_BRANCH_NAME = "weight"
#: NanoAOD's generator weight (to be scaled by sigma / sum of genWeight).
NANOAOD_WEIGHT_BRANCH = "genWeight"
#: Per-event pT-hat [GeV] (float32) of the hard 2 -> 2 scattering (for minimum bias: of the
#: hardest multi-parton interaction), beside ``weight``; what stitches a minimum-bias sample
#: to pT-hat-generated QCD (events of the one above the other's threshold are vetoed).
PTHAT_BRANCH_NAME = "pthat"
#: NanoAOD's equivalent (the generator's binning variable, pT-hat for QCD samples).
NANOAOD_PTHAT_BRANCH = "Generator_binvar"
#: Per-event largest pT-hat [GeV] (float32) among the overlaid pile-up interactions (0
#: without pile-up), beside ``pthat``: whether a crossing holds a hard interaction besides
#: its primary one, for the zero-bias stitch.  NanoAOD has no equivalent.
PILEUP_PTHAT_BRANCH_NAME = "pileup_pthat_max"
#: Top-level key of the JSON string ``poetml generate`` stores in every file: generator
#: cross section and error, events tried and accepted, filter efficiency, seed, settings.
GENERATION_METADATA_KEY = "poetml_generation"

#: Collections with a variable number of objects per event, in canonical order.
OBJECT_COLLECTIONS = ("muon", "electron", "jet", "photon", "tau")
#: All canonical collections; ``met`` has exactly one value per event.
COLLECTIONS = (*OBJECT_COLLECTIONS, "met")

#: Canonical fields of each collection, with their meaning.
CANONICAL_FIELDS: dict[str, dict[str, str]] = {
    "muon": {
        "pt": "transverse momentum [GeV]",
        "eta": "pseudorapidity",
        "phi": "azimuth [rad]",
        "mass": "mass [GeV] (the muon mass when the file has no mass branch)",
        "charge": "electric charge (+1 / -1)",
        "tight_id": "passes the CMS tight muon ID (1 / 0)",
        "medium_id": "passes the CMS medium muon ID (1 / 0)",
        "loose_id": "passes the CMS loose muon ID (1 / 0)",
        "iso": "PF relative isolation, cone 0.4, delta-beta corrected (POET "
        "muon_pfreliso04DBCorr, or muon_pfreliso04all in files without it; NanoAOD "
        "Muon_pfRelIso04_all, which is delta-beta corrected)",
        "iso03": "PF relative isolation, cone 0.3, all particles",
        "dxy": "transverse impact parameter [cm]",
        "dz": "longitudinal impact parameter [cm]",
    },
    "electron": {
        "pt": "transverse momentum [GeV]",
        "eta": "pseudorapidity",
        "phi": "azimuth [rad]",
        "mass": "mass [GeV] (the electron mass when the file has no mass branch)",
        "charge": "electric charge (+1 / -1)",
        "tight_id": "passes the CMS cut-based tight electron ID (1 / 0)",
        "medium_id": "passes the CMS cut-based medium electron ID (1 / 0)",
        "loose_id": "passes the CMS cut-based loose electron ID (1 / 0)",
        "iso": "PF relative isolation, cone 0.3, all particles",
        "dxy": "transverse impact parameter [cm]",
        "dz": "longitudinal impact parameter [cm]",
    },
    "jet": {
        "pt": "corrected transverse momentum [GeV] (POET jet_corrpt, NanoAOD Jet_pt)",
        "eta": "pseudorapidity",
        "phi": "azimuth [rad]",
        "mass": "mass [GeV]",
        "charge": "always 0 for jets",
        "btag": "b-tag discriminant (CSVv2)",
        "raw_pt": "uncorrected transverse momentum [GeV] (POET jet_pt)",
        "hflav": "hadron flavour (5 b, 4 c, 0 light), simulation only",
        "tight_id": "passes the tight jet ID (1 / 0; NanoAOD Jet_jetId bit 2; POET writes none)",
    },
    "photon": {
        "pt": "transverse momentum [GeV]",
        "eta": "pseudorapidity",
        "phi": "azimuth [rad]",
        "mass": "always 0",
        "charge": "always 0",
    },
    "tau": {
        "pt": "transverse momentum [GeV]",
        "eta": "pseudorapidity",
        "phi": "azimuth [rad]",
        "mass": "mass [GeV]",
        "charge": "electric charge",
    },
    "met": {
        "pt": "missing transverse momentum [GeV]",
        "phi": "azimuth of the missing transverse momentum [rad]",
        "sumet": "scalar sum of transverse energy [GeV]",
        "significance": "MET significance",
    },
}

#: Fields a file must provide for a collection to be read at all.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    **{c: ("pt", "eta", "phi") for c in OBJECT_COLLECTIONS},
    "met": ("pt", "phi"),
}

#: Fields read by default: the kinematics plus what the default object selections and the
#: glyph encoding use.  Absent optional fields are simply not in the batch.
DEFAULT_READ_FIELDS: dict[str, tuple[str, ...]] = {
    "muon": ("pt", "eta", "phi", "mass", "charge", "tight_id", "iso"),
    "electron": ("pt", "eta", "phi", "mass", "charge", "tight_id", "iso"),
    "jet": ("pt", "eta", "phi", "mass", "btag", "tight_id"),
    "photon": ("pt", "eta", "phi"),
    "tau": ("pt", "eta", "phi", "charge"),
    "met": ("pt", "phi"),
}

#: Constant masses [GeV] used when a layout stores no mass branch.
MASSES: dict[str, float] = {"muon": 0.1056584, "electron": 0.000511, "photon": 0.0}

#: Object fields supplied when a layout stores no branch for them: (collection, field) ->
#: value (the masses above; jets and photons carry no charge).
SUPPLIED_FIELDS: dict[tuple[str, str], float] = {
    **{(c, "mass"): m for c, m in MASSES.items()},
    ("jet", "charge"): 0.0,
    ("photon", "charge"): 0.0,
}


# --------------------------------------------------------------------------------------
# POET
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """One branch an analyzer writes.

    ``ctype`` is the C++ type of the variable the analyzer binds to the branch
    (``int``, ``float``, ``std::vector<float>``, ``std::vector<int>``).  ``field`` is the
    canonical field the branch feeds, ``None`` when poetml writes it for users but does not
    read it itself.
    """

    name: str
    ctype: str
    doc: str
    field: str | None = None


@dataclass(frozen=True)
class PoetCollection:
    """The tree one POET analyzer writes into its own TFileService directory."""

    name: str
    directory: str
    analyzer: str
    counter: str | None
    branches: tuple[Branch, ...]

    def branch_for(self, field: str) -> str | None:
        """POET branch name carrying canonical ``field``, or ``None`` if there is none."""
        for b in self.branches:
            if b.field == field:
                return b.name
        return None

    @property
    def branch_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.branches)


def _v(name: str, doc: str, field: str | None = None, ctype: str = "std::vector<float>") -> Branch:
    return Branch(name, ctype, doc, field)


def _vi(name: str, doc: str, field: str | None = None) -> Branch:
    return Branch(name, "std::vector<int>", doc, field)


POET_COLLECTIONS: dict[str, PoetCollection] = {
    "muon": PoetCollection(
        name="muon",
        directory="mymuons",
        analyzer="MuonAnalyzer",
        counter="numbermuon",
        branches=(
            Branch("numbermuon", "int", "number of muons in the event"),
            _v("muon_e", "energy [GeV]"),
            _v("muon_pt", "transverse momentum [GeV]", "pt"),
            _v("muon_px", "x momentum [GeV]"),
            _v("muon_py", "y momentum [GeV]"),
            _v("muon_pz", "z momentum [GeV]"),
            _v("muon_eta", "pseudorapidity", "eta"),
            _v("muon_phi", "azimuth [rad]", "phi"),
            _vi("muon_ch", "charge", "charge"),
            _vi("muon_isLoose", "loose ID", "loose_id"),
            _vi("muon_isMedium", "medium ID", "medium_id"),
            _vi("muon_isTight", "tight ID", "tight_id"),
            _v("muon_pfreliso03all", "PF relative isolation dR<0.3, all particles", "iso03"),
            _v("muon_pfreliso04all", "PF relative isolation dR<0.4, all particles"),
            _v(
                "muon_pfreliso04DBCorr",
                "PF relative isolation dR<0.4, delta-beta corrected",
                "iso",
            ),
            _v("muon_dxy", "transverse impact parameter [cm]", "dxy"),
            _v("muon_dz", "longitudinal impact parameter [cm]", "dz"),
            _v("muon_dxyError", "error on dxy [cm]"),
            _v("muon_dzError", "error on dz [cm]"),
            _vi("muon_genpartidx", "index of the matched generator particle (-1: none)"),
        ),
    ),
    "electron": PoetCollection(
        name="electron",
        directory="myelectrons",
        analyzer="ElectronAnalyzer",
        counter="numberelectron",
        branches=(
            Branch("numberelectron", "int", "number of electrons in the event"),
            _v("electron_e", "energy [GeV]"),
            _v("electron_pt", "transverse momentum [GeV]", "pt"),
            _v("electron_px", "x momentum [GeV]"),
            _v("electron_py", "y momentum [GeV]"),
            _v("electron_pz", "z momentum [GeV]"),
            _v("electron_eta", "pseudorapidity", "eta"),
            _v("electron_phi", "azimuth [rad]", "phi"),
            _vi("electron_ch", "charge", "charge"),
            _v("electron_iso", "PF relative isolation dR<0.3", "iso"),
            _vi("electron_isLoose", "cut-based loose ID", "loose_id"),
            _vi("electron_isMedium", "cut-based medium ID", "medium_id"),
            _vi("electron_isTight", "cut-based tight ID", "tight_id"),
            _v("electron_dxy", "transverse impact parameter [cm]", "dxy"),
            _v("electron_dz", "longitudinal impact parameter [cm]", "dz"),
            _v("electron_dxyError", "error on dxy [cm]"),
            _v("electron_dzError", "error on dz [cm]"),
        ),
    ),
    "jet": PoetCollection(
        name="jet",
        directory="myjets",
        analyzer="JetAnalyzer",
        counter="numberjet",
        branches=(
            Branch("numberjet", "int", "number of jets in the event"),
            _v("jet_e", "uncorrected energy [GeV]"),
            _v("jet_pt", "uncorrected transverse momentum [GeV]", "raw_pt"),
            _v("jet_eta", "pseudorapidity", "eta"),
            _v("jet_phi", "azimuth [rad]", "phi"),
            _v("jet_mass", "mass [GeV]", "mass"),
            _v("jet_btag", "CSVv2 b-tag discriminant", "btag"),
            _vi("jet_hflav", "hadron flavour (5 b, 4 c, 0 light)", "hflav"),
            _v("jet_corrpt", "corrected transverse momentum [GeV]", "pt"),
            _v("jet_corre", "corrected energy [GeV]"),
        ),
    ),
    "met": PoetCollection(
        name="met",
        directory="mymets",
        analyzer="MetAnalyzer",
        counter=None,
        branches=(
            Branch("met_e", "float", "MET energy [GeV]"),
            Branch("met_pt", "float", "missing transverse momentum [GeV]", "pt"),
            Branch("met_px", "float", "x component [GeV]"),
            Branch("met_py", "float", "y component [GeV]"),
            Branch("met_phi", "float", "azimuth [rad]", "phi"),
            Branch("met_sumet", "float", "scalar sum of transverse energy [GeV]", "sumet"),
            Branch("met_significance", "float", "MET significance", "significance"),
        ),
    ),
    "genparticle": PoetCollection(
        name="genparticle",
        directory="mygenparticles",
        analyzer="GenParticleAnalyzer",
        counter="numGenPart",
        branches=(
            Branch("numGenPart", "int", "number of stored generator particles"),
            _v("GenPart_pt", "transverse momentum [GeV]"),
            _v("GenPart_eta", "pseudorapidity"),
            _v("GenPart_phi", "azimuth [rad]"),
            _v("GenPart_mass", "mass [GeV]"),
            _vi("GenPart_pdgId", "PDG particle ID"),
            _vi("GenPart_status", "generator status code"),
            _v("GenPart_px", "x momentum [GeV]"),
            _v("GenPart_py", "y momentum [GeV]"),
            _v("GenPart_pz", "z momentum [GeV]"),
            Branch("GenMET_pt", "float", "generator-level MET from neutrinos [GeV]"),
            Branch("GenMET_phi", "float", "generator-level MET azimuth [rad]"),
        ),
    ),
}


#: (collection, canonical field) -> POET branches read when the field's own branch is
#: absent, in order: older POET files (and this project's before 2026-12) have no
#: ``muon_pfreliso04DBCorr``; their isolation is ``muon_pfreliso04all``.
POET_FIELD_FALLBACKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("muon", "iso"): ("muon_pfreliso04all",),
}


def poet_collection(name: str) -> PoetCollection:
    """The POET collection called ``name``; a KeyError lists the known ones."""
    try:
        return POET_COLLECTIONS[name]
    except KeyError:
        raise KeyError(
            f"no POET collection {name!r}; known: {', '.join(POET_COLLECTIONS)}"
        ) from None


# --------------------------------------------------------------------------------------
# NanoAOD
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NanoField:
    """How a canonical field is read from NanoAOD.

    ``branch`` is read; ``convert``, when given, turns its (awkward or NumPy) array into the
    canonical value (for example ``Electron_cutBased >= 4`` for ``tight_id``).
    ``extra`` names additional branches ``convert`` needs, passed as keyword arrays.
    """

    branch: str
    convert: Callable[..., object] | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class NanoCollection:
    name: str
    counter: str | None
    fields: dict[str, NanoField]


def _cut_based(level: int) -> Callable[[object], object]:
    def convert(cut_based):
        return cut_based >= level

    convert.__doc__ = f"cutBased >= {level}"
    return convert


def _jet_tight(jet_id):
    """(Jet_jetId & 2) != 0"""
    return (np.asarray(jet_id).astype(np.int64) & 2) != 0


def _raw_pt(pt, Jet_rawFactor):
    return pt * (1.0 - Jet_rawFactor)


NANOAOD: dict[str, NanoCollection] = {
    "muon": NanoCollection(
        "muon",
        "nMuon",
        {
            "pt": NanoField("Muon_pt"),
            "eta": NanoField("Muon_eta"),
            "phi": NanoField("Muon_phi"),
            "mass": NanoField("Muon_mass"),
            "charge": NanoField("Muon_charge"),
            "tight_id": NanoField("Muon_tightId"),
            "medium_id": NanoField("Muon_mediumId"),
            "loose_id": NanoField("Muon_looseId"),
            "iso": NanoField("Muon_pfRelIso04_all"),
            "iso03": NanoField("Muon_pfRelIso03_all"),
            "dxy": NanoField("Muon_dxy"),
            "dz": NanoField("Muon_dz"),
        },
    ),
    "electron": NanoCollection(
        "electron",
        "nElectron",
        {
            "pt": NanoField("Electron_pt"),
            "eta": NanoField("Electron_eta"),
            "phi": NanoField("Electron_phi"),
            "mass": NanoField("Electron_mass"),
            "charge": NanoField("Electron_charge"),
            "tight_id": NanoField("Electron_cutBased", _cut_based(4)),
            "medium_id": NanoField("Electron_cutBased", _cut_based(3)),
            "loose_id": NanoField("Electron_cutBased", _cut_based(2)),
            "iso": NanoField("Electron_pfRelIso03_all"),
            "dxy": NanoField("Electron_dxy"),
            "dz": NanoField("Electron_dz"),
        },
    ),
    "jet": NanoCollection(
        "jet",
        "nJet",
        {
            "pt": NanoField("Jet_pt"),
            "eta": NanoField("Jet_eta"),
            "phi": NanoField("Jet_phi"),
            "mass": NanoField("Jet_mass"),
            "btag": NanoField("Jet_btagCSVV2"),
            "raw_pt": NanoField("Jet_pt", _raw_pt, ("Jet_rawFactor",)),
            "hflav": NanoField("Jet_hadronFlavour"),
            "tight_id": NanoField("Jet_jetId", _jet_tight),
        },
    ),
    "photon": NanoCollection(
        "photon",
        "nPhoton",
        {
            "pt": NanoField("Photon_pt"),
            "eta": NanoField("Photon_eta"),
            "phi": NanoField("Photon_phi"),
            "mass": NanoField("Photon_mass"),
        },
    ),
    "tau": NanoCollection(
        "tau",
        "nTau",
        {
            "pt": NanoField("Tau_pt"),
            "eta": NanoField("Tau_eta"),
            "phi": NanoField("Tau_phi"),
            "mass": NanoField("Tau_mass"),
            "charge": NanoField("Tau_charge"),
        },
    ),
    "met": NanoCollection(
        "met",
        None,
        {
            "pt": NanoField("MET_pt"),
            "phi": NanoField("MET_phi"),
            "sumet": NanoField("MET_sumEt"),
            "significance": NanoField("MET_significance"),
        },
    ),
}

# --------------------------------------------------------------------------------------
# awkward records of events (coffea NanoEvents, uproot ``tree.arrays()`` ...)
# --------------------------------------------------------------------------------------

#: How canonical fields are named inside an awkward record of events:
#: ``nanoaod`` as coffea's NanoEvents (``events.Muon.pt``) or flat NanoAOD branches
#: (``events.Muon_pt``); ``poet`` flat POET branches (``events.muon_pt``, ``events.met_pt``);
#: ``canonical`` poetml's own names (``events.muon.pt``, ``events.met.pt``).
RECORD_LAYOUTS = ("nanoaod", "poet", "canonical")


def nano_record_path(branch: str) -> tuple[str, ...]:
    """Path of a NanoAOD branch inside a NanoEvents record: ``Muon_pt`` -> ``("Muon", "pt")``."""
    collection, _, name = branch.partition("_")
    return (collection, name) if name else (branch,)


@dataclass(frozen=True)
class RecordField:
    """Where one canonical field sits in an awkward record of events.

    ``path`` is the chain of record fields to follow; ``convert``, when given, turns the
    values into the canonical ones, with the arrays at ``extra`` (paths) passed as keyword
    arguments named by ``extra_names``.
    """

    path: tuple[str, ...]
    convert: Callable[..., object] | None = None
    extra: tuple[tuple[str, ...], ...] = ()
    extra_names: tuple[str, ...] = ()


def record_fields(layout: str, collection: str, field: str) -> list[RecordField]:
    """Candidate places of canonical ``collection.field`` in a record of ``layout``, the
    preferred first (NanoAOD: the NanoEvents path, then the flat branch name)."""
    if layout not in RECORD_LAYOUTS:
        raise ValueError(f"unknown record layout {layout!r}; valid: {', '.join(RECORD_LAYOUTS)}")
    if layout == "canonical":
        return [RecordField((collection, field))]
    if layout == "poet":
        pc = POET_COLLECTIONS.get(collection)
        branch = pc.branch_for(field) if pc is not None else None
        return [] if branch is None else [RecordField((branch,))]
    nc = NANOAOD.get(collection)
    nf = nc.fields.get(field) if nc is not None else None
    if nf is None:
        return []
    return [
        RecordField(
            nano_record_path(nf.branch),
            nf.convert,
            tuple(nano_record_path(e) for e in nf.extra),
            nf.extra,
        ),
        RecordField((nf.branch,), nf.convert, tuple((e,) for e in nf.extra), nf.extra),
    ]


def detect_record_layout(names: Iterable[str]) -> str | None:
    """The record layout whose names the top-level fields ``names`` use, or None."""
    names = set(names)
    nano = {nano_record_path(nc.fields["pt"].branch)[0] for nc in NANOAOD.values()}
    nano |= {nc.fields["pt"].branch for nc in NANOAOD.values()}
    if names & nano:
        return "nanoaod"
    poet = {b for pc in POET_COLLECTIONS.values() for b in pc.branch_names}
    if names & poet:
        return "poet"
    if names & set(COLLECTIONS):
        return "canonical"
    return None


#: dtype of every canonical column handed to the C++ core.
COLUMN_DTYPE = np.dtype(np.float32)
#: dtype of every offsets array.
OFFSETS_DTYPE = np.dtype(np.int64)
