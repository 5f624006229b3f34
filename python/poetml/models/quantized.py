"""QKeras building blocks shared by the quantized twins, and the NumPy twin of the input
quantizer.

All quantizers follow QKeras' ``quantized_bits(bits, integer, keep_negative=True, alpha=1)``
convention: ``bits`` in total including the sign, ``integer`` bits left of the binary point
not counting the sign, i.e. hls4ml's ``ap_fixed<bits, integer + 1>`` with rounding to the
nearest step and saturation at the ends.  ``alpha=1`` keeps power-of-two scales, which is
what hls4ml turns into plain fixed-point types.
"""

from __future__ import annotations

from typing import Any

from .._fixed import quantize_fixed
from . import QuantizationConfig, _backend

__all__ = [
    "activation_quantizer",
    "hls_type",
    "input_quantizer",
    "quantize_fixed",
    "weight_quantizer",
]


def hls_type(bits: int, integer: int, signed: bool = True) -> str:
    """The HLS fixed-point type of ``quantized_bits(bits, integer)`` (``ap_fixed<W,I>``)."""
    return f"ap_fixed<{bits},{integer + 1}>" if signed else f"ap_ufixed<{bits},{integer}>"


def input_quantizer(q: QuantizationConfig) -> Any:
    qk = _backend.qkeras()
    return qk.quantized_bits(q.input_bits, q.input_integer, keep_negative=True, alpha=1)


def weight_quantizer(q: QuantizationConfig) -> Any:
    qk = _backend.qkeras()
    return qk.quantized_bits(q.bits, q.integer, keep_negative=True, alpha=1)


def activation_quantizer(q: QuantizationConfig, negative_slope: float = 0.0) -> Any:
    qk = _backend.qkeras()
    if negative_slope:
        return qk.quantized_relu(
            q.activation_bits, q.activation_integer, negative_slope=negative_slope
        )
    return qk.quantized_relu(q.activation_bits, q.activation_integer)


def layer_kwargs(q: QuantizationConfig) -> dict[str, Any]:
    """Kernel and bias quantizers for a QDense/QConv2D."""
    return {"kernel_quantizer": weight_quantizer(q), "bias_quantizer": weight_quantizer(q)}
