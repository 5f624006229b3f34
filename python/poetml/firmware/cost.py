"""A resource ESTIMATE of an hls4ml network when no vendor tool can synthesize it.

Counted from the converted network (after hls4ml's optimizers, so with the deployed
precisions): for every Dense, Conv and Multiply layer, the multiplications by a non-zero
weight (pruned weights cost nothing: with the Latency strategy a product by the constant 0 is
removed), grouped by (input bits x weight bits), and the bit-operation count (BOPs, Baskin et
al. 2021, as used in the hls4ml/QKeras literature):

    BOPs = sum over products of  b_in * b_w  +  sum over additions of  b_acc

with one addition of accumulator width per product.  This is a proxy for LUT/DSP usage that
ranks designs; it is not a synthesis result (no timing, no BRAM, no control logic), and a
product by a power-of-two weight, which the tool turns into a shift, is still counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

__all__ = ["estimate_cost"]

NOTE = (
    "ESTIMATE from the converted network (non-zero-weight products and bit operations), "
    "not a synthesis report; run with --synth where vitis_hls/vivado_hls exists for real figures"
)


def _width(var: Any) -> int:
    p = var.type.precision
    return int(getattr(p, "width", 32))


def _positions(layer: Any) -> int:
    n = 1
    for key in ("out_height", "out_width"):
        v = layer.get_attr(key)
        if v:
            n *= int(v)
    if layer.class_name.startswith("Conv1D") or layer.class_name == "PointwiseConv1D":
        n = int(layer.get_attr("out_width") or 1)
    return n


def estimate_cost(hls_model: Any) -> dict[str, Any]:
    """Multiplications by bit width and the BOP count of ``hls_model`` (labelled an estimate)."""
    layers = []
    by_width: Counter[str] = Counter()
    total_mult = 0
    total_bops = 0.0
    for layer in hls_model.get_layers():
        cls = layer.class_name
        if cls in ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D"):
            w = layer.weights.get("weight") if hasattr(layer, "weights") else None
            if w is None:
                continue
            nnz = int(np.count_nonzero(np.asarray(w.data)))
            b_w = int(getattr(w.type.precision, "width", 32))
            b_in = _width(layer.get_input_variable())
            acc = layer.get_attr("accum_t")
            b_acc = int(
                getattr(getattr(acc, "precision", None), "width", 0)
                or _width(layer.get_output_variable())
            )
            mults = nnz * (_positions(layer) if cls.startswith(("Conv", "Pointwise")) else 1)
        elif cls == "Merge" and layer.get_attr("op") == "multiply":
            ins = (
                layer.get_input_variable(layer.inputs[0]),
                layer.get_input_variable(layer.inputs[1]),
            )
            mults = int(layer.get_output_variable().size())
            b_in, b_w = _width(ins[0]), _width(ins[1])
            b_acc = 0
            nnz = mults
        else:
            continue
        bops = mults * (b_in * b_w + b_acc)
        total_mult += mults
        total_bops += bops
        by_width[f"{b_in}x{b_w}"] += mults
        layers.append(
            {
                "layer": layer.name,
                "class": cls,
                "multiplications": mults,
                "nonzero_weights": nnz,
                "input_bits": b_in,
                "weight_bits": b_w,
                "accum_bits": b_acc,
                "bops": bops,
            }
        )
    return {
        "estimate": True,
        "note": NOTE,
        "multiplications": total_mult,
        "multiplications_by_bits": dict(sorted(by_width.items())),
        "bops": total_bops,
        "layers": layers,
    }
