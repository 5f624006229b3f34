"""The NumPy twin of QKeras' input quantizer (a leaf module: NumPy only), so the scaler in
:mod:`poetml.datasets.scalers` and the models in :mod:`poetml.models.quantized` share it."""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_fixed"]


def quantize_fixed(x: np.ndarray, bits: int, integer: int) -> np.ndarray:
    """Round ``x`` to the grid of ``quantized_bits(bits, integer, keep_negative=True,
    alpha=1)``: steps of ``2**-(bits - integer - 1)``, saturating to
    ``[-2**integer, 2**integer - step]``.  Returns float32; NaN stays NaN."""
    step = 2.0 ** -(bits - integer - 1)
    lo, hi = -(2.0**integer), 2.0**integer - step
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.round(x / step) * step, lo, hi).astype(np.float32)
