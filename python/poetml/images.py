"""Event images: eta-phi grids with one channel per object type.

Thin wrapper over ``poetml._core.rasterize``; ``poetml._reference.rasterize`` is its plain
NumPy twin.  Conventions (DESIGN.md section 3): eta in [eta_min, eta_max), phi in [-pi, pi),
``ix = floor((eta - eta_min) / (eta_max - eta_min) * n_eta)``,
``iy = floor((phi + pi) / (2 pi) * n_phi)``, phi periodic, objects outside the eta range
dropped (and counted), MET at eta = 0 in its own channel.  Output ``(N, n_eta, n_phi, C)``
float32, channels last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .selection import Selection

__all__ = ["IMAGE_MODES", "ImageSpec"]

#: Rasterization modes.
IMAGE_MODES = ("histogram", "gaussian", "glyph")


@dataclass(frozen=True)
class ImageSpec:
    """How events become images.

    mode
        ``histogram``: pT summed per pixel per channel.  ``gaussian``: each object spread as a
        normalised Gaussian of ``sigma`` pixels (periodic in phi, truncated at 3 sigma).
        ``glyph``: the cnn-hep-thesis encoding, a ring per object whose radius grows with
        ln pT and whose line is thicker for positive charge.
    log1p
        apply ``log1p`` to the pixel values.
    normalize
        divide each event's image by its total so it sums to 1 (empty events stay 0).
    saturate_bits, lsb_gev
        when ``saturate_bits`` is set, pixel values become unsigned integers of that many
        bits: ``min(floor(value / lsb_gev), 2**bits - 1)``, as Level-1 calorimeter images.
    """

    n_eta: int = 32
    n_phi: int = 32
    eta_min: float = -2.5
    eta_max: float = 2.5
    channels: tuple[str, ...] = ("muon", "electron", "jet", "met")
    mode: str = "histogram"
    sigma: float = 1.0
    glyph_radius0: float = 0.5
    glyph_radius_per_log: float = 0.5
    glyph_width: float = 0.5
    glyph_width_positive: float = 1.0
    log1p: bool = False
    normalize: bool = False
    saturate_bits: int | None = None
    lsb_gev: float = 0.5
    selection: Selection = field(default_factory=Selection)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image: (n_eta, n_phi, n_channels)."""
        return (self.n_eta, self.n_phi, len(self.channels))
