"""Fixed-length feature vectors: pT-ordered, zero-padded object slots plus event-level
quantities.

Thin wrapper over ``poetml._core.build_features``; ``poetml._reference.build_features`` is
its plain NumPy twin.  The default layout is the one of the CMS Level-1 anomaly-detection
work: MET, then up to 4 electrons, 4 muons and 10 jets, each (pT, eta, phi): 57 numbers.
Feature names are ``met_pt, met_eta, met_phi, electron_0_pt, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .selection import Selection

__all__ = ["EVENT_QUANTITIES", "FeatureSpec"]

#: Event-level quantities that can be appended after the object slots.
EVENT_QUANTITIES = {
    "ht": "scalar sum of selected jet pT [GeV]",
    "met": "missing transverse momentum [GeV]",
    "n_muon": "number of selected muons",
    "n_electron": "number of selected electrons",
    "n_jet": "number of selected jets",
    "n_bjet": "number of selected jets above the b-tag threshold",
    "m_mumu": "invariant mass of the leading opposite-charge selected muon pair [GeV], 0 if none",
    "m_jj": "invariant mass of the two leading selected jets [GeV], 0 if fewer than two",
}


@dataclass(frozen=True)
class FeatureSpec:
    """Which object slots and event quantities make the feature vector."""

    slots: tuple[tuple[str, int], ...] = (("met", 1), ("electron", 4), ("muon", 4), ("jet", 10))
    fields: tuple[str, ...] = ("pt", "eta", "phi")
    event_quantities: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
