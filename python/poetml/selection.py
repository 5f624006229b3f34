"""Object selections applied in the C++ core from the POET branches.

Defaults are what a CMS analyst would start from: tight muons with PF relative isolation
(cone 0.4) below 0.15, cut-based tight electrons, jets above 30 GeV within the tracker
(``|eta| < 2.4``) and the CSVv2 medium working point (0.8484) for b tagging.

A cut whose input field is absent from the file (a NanoAOD file without ``Muon_tightId``,
for example) is skipped with a ``UserWarning`` naming the field; it never silently drops
every object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ConfigError

__all__ = ["ElectronSelection", "JetSelection", "MuonSelection", "ObjectSelection", "Selection"]


def _check(sel: Any) -> None:
    """Cuts make sense: a finite pT >= 0, |eta| > 0, isolation >= 0, a finite b-tag threshold."""
    if not (math.isfinite(sel.min_pt) and sel.min_pt >= 0):
        raise ConfigError(f"must be a finite pT >= 0 GeV, got {sel.min_pt}", key="min_pt")
    if not sel.max_abs_eta > 0:  # .inf: no cut
        raise ConfigError(f"must be > 0, got {sel.max_abs_eta}", key="max_abs_eta")
    iso = getattr(sel, "max_iso", None)
    if iso is not None and not (math.isfinite(iso) and iso >= 0):
        raise ConfigError(f"must be finite and >= 0 (or null: no cut), got {iso}", key="max_iso")
    btag = getattr(sel, "btag_threshold", 0.0)
    if not math.isfinite(btag):
        raise ConfigError(f"must be finite, got {btag}", key="btag_threshold")


@dataclass(frozen=True)
class MuonSelection:
    min_pt: float = 3.0
    max_abs_eta: float = 2.4
    tight_id: bool = True
    max_iso: float | None = 0.15

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class ElectronSelection:
    min_pt: float = 5.0
    max_abs_eta: float = 2.5
    tight_id: bool = True
    max_iso: float | None = None

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class JetSelection:
    min_pt: float = 30.0
    max_abs_eta: float = 2.4
    #: b-tag discriminant threshold defining a b jet (CSVv2 medium).
    btag_threshold: float = 0.8484
    #: lepton-jet cleaning: a jet within Delta R < lepton_dr of a *selected* muon or
    #: electron is dropped (particle-flow jets contain the leptons: NanoAOD, POET); None: off
    lepton_dr: float | None = 0.4
    #: the tight jet ID, applied where the file has it (NanoAOD ``Jet_jetId``); POET writes
    #: no jet-ID branch, so there it is silently not applied
    jet_id: bool = True

    def __post_init__(self) -> None:
        _check(self)
        dr = self.lepton_dr
        if dr is not None and not (math.isfinite(dr) and dr >= 0):
            raise ConfigError(
                f"must be a Delta R >= 0 (or null: no cleaning), got {dr}", key="lepton_dr"
            )


@dataclass(frozen=True)
class ObjectSelection:
    """Kinematic-only selection for photons and taus."""

    min_pt: float = 0.0
    max_abs_eta: float = 1.0e9

    def __post_init__(self) -> None:
        _check(self)


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
            jet=JetSelection(min_pt=0.0, max_abs_eta=1.0e9, lepton_dr=None, jet_id=False),
        )
