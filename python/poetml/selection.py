"""Object selections applied in the C++ core from the POET branches.

Defaults are what a CMS analyst would start from: tight muons with PF relative isolation
(cone 0.4) below 0.15, cut-based tight electrons, jets above 30 GeV within the tracker
(|eta| < 2.4) and the CSVv2 medium working point (0.8484) for b tagging.

A cut whose input field is absent from the file (a NanoAOD file without ``Muon_tightId``,
for example) is skipped with a ``UserWarning`` naming the field; it never silently drops
every object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ElectronSelection", "JetSelection", "MuonSelection", "ObjectSelection", "Selection"]


@dataclass(frozen=True)
class MuonSelection:
    min_pt: float = 3.0
    max_abs_eta: float = 2.4
    tight_id: bool = True
    max_iso: float | None = 0.15


@dataclass(frozen=True)
class ElectronSelection:
    min_pt: float = 5.0
    max_abs_eta: float = 2.5
    tight_id: bool = True
    max_iso: float | None = None


@dataclass(frozen=True)
class JetSelection:
    min_pt: float = 30.0
    max_abs_eta: float = 2.4
    #: b-tag discriminant threshold defining a b jet (CSVv2 medium).
    btag_threshold: float = 0.8484


@dataclass(frozen=True)
class ObjectSelection:
    """Kinematic-only selection for photons and taus."""

    min_pt: float = 0.0
    max_abs_eta: float = 1.0e9


@dataclass(frozen=True)
class Selection:
    muon: MuonSelection = field(default_factory=MuonSelection)
    electron: ElectronSelection = field(default_factory=ElectronSelection)
    jet: JetSelection = field(default_factory=JetSelection)
    photon: ObjectSelection = field(default_factory=ObjectSelection)
    tau: ObjectSelection = field(default_factory=ObjectSelection)

    @classmethod
    def none(cls) -> Selection:
        """No cuts at all: every object in the file is used."""
        return cls(
            muon=MuonSelection(min_pt=0.0, max_abs_eta=1.0e9, tight_id=False, max_iso=None),
            electron=ElectronSelection(min_pt=0.0, max_abs_eta=1.0e9, tight_id=False, max_iso=None),
            jet=JetSelection(min_pt=0.0, max_abs_eta=1.0e9),
        )
