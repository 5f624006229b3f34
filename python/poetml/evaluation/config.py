"""The ``evaluation:`` configuration section (a frozen dataclass, no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConfigError

__all__ = ["EvaluationConfig", "MenuConfig"]


@dataclass(frozen=True)
class MenuConfig:
    """A simple L1-like trigger menu the anomaly trigger is compared with: a single-muon
    seed (leading muon ``pT >= muon_pt`` GeV, as CMS's SingleMu22) or a single-electron
    seed (leading electron ``pT >= electron_pt`` GeV, as SingleEG/SingleEle30) fires.
    ``enabled: false`` leaves the comparison out of the report."""

    muon_pt: float = 22.0
    electron_pt: float = 30.0
    enabled: bool = True

    def __post_init__(self) -> None:
        for key in ("muon_pt", "electron_pt"):
            v = getattr(self, key)
            if isinstance(v, bool) or not (math.isfinite(v) and v > 0):
                raise ConfigError(f"must be a pT threshold > 0 GeV, got {v}", key=key)


@dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation options: anomaly working points (false-positive rates and trigger rates
    in kHz of a ``collision_rate_mhz`` bunch-crossing rate); the class whose selected events
    get the dimuon-mass plot (default: the first); plot labels.

    When the dataset's events carry weights [pb] (generated files, or processes with
    ``cross_section_pb``) and ``weighted`` is true, the trigger rates are also those of the
    weighted background stream at ``luminosity`` [cm^-2 s^-1] with ``filled_fraction`` of
    the bunch crossings colliding (:class:`poetml.rates.Beam`)."""

    fpr_targets: tuple[float, ...] = (1e-5,)
    rate_khz: tuple[float, ...] = (1.0,)
    collision_rate_mhz: float = 40.0
    selected_class: str | None = None
    label: str = "poetml Simulation"
    com: float | None = None
    batch_size: int = 1024
    weighted: bool = True
    luminosity: float = 2.0e34
    filled_fraction: float = 2544 / 3564
    menu: MenuConfig = field(default_factory=MenuConfig)
    check_rate_khz: tuple[float, ...] = (100.0,)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.collision_rate_mhz) and self.collision_rate_mhz > 0):
            raise ConfigError(
                f"must be > 0 MHz, got {self.collision_rate_mhz}", key="collision_rate_mhz"
            )
        limit = self.collision_rate_mhz * 1e3
        for key in ("rate_khz", "check_rate_khz"):
            for i, r in enumerate(getattr(self, key)):
                if not 0 < r < limit:
                    raise ConfigError(
                        f"{r} kHz must be > 0 and below the collision rate "
                        f"({self.collision_rate_mhz:g} MHz = {limit:g} kHz)",
                        key=f"{key}[{i}]",
                    )
        for i, f in enumerate(self.fpr_targets):
            if not 0 < f < 1:
                raise ConfigError(
                    f"a false-positive rate must be in (0, 1), got {f}", key=f"fpr_targets[{i}]"
                )
        if not (math.isfinite(self.luminosity) and self.luminosity > 0):
            raise ConfigError(f"must be > 0 cm^-2 s^-1, got {self.luminosity}", key="luminosity")
        if not 0 < self.filled_fraction <= 1:
            raise ConfigError(
                f"must be in (0, 1], got {self.filled_fraction}", key="filled_fraction"
            )
        if isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ConfigError(f"must be >= 1, got {self.batch_size}", key="batch_size")
        if self.com is not None and not (math.isfinite(self.com) and self.com > 0):
            raise ConfigError(f"must be a centre-of-mass energy > 0 TeV, got {self.com}", key="com")

    def beam(self) -> Any:
        """The :class:`poetml.rates.Beam` of these options."""
        from ..rates import Beam

        return Beam(self.luminosity, self.collision_rate_mhz, self.filled_fraction)
