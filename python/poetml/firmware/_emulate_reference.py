"""Plain-Python/NumPy twin of the firmware emulator (``cpp/include/poetml/emulate.hpp``).

A readable definition of the integer arithmetic, checked against the C++ kernels by the
property tests in ``tests/test_emulate.py``: Python integers (no overflow anywhere), one
operation at a time, in hls4ml's order.  Slow; for tests only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["cast", "cast_array", "from_double", "run_network"]

Format = tuple[int, int, bool, str, str]  # (width, integer, signed, quantization, overflow)


def _round_up(mode: str, floor_v: int, qb: bool, r: bool, neg: bool) -> bool:
    if mode == "trn":
        return False
    if mode == "rnd":
        return qb
    if mode == "rnd_conv":
        return qb and (bool(floor_v & 1) or r)
    if mode == "trn_zero":
        return neg and (qb or r)
    if mode == "rnd_zero":
        return qb and (neg or r)
    if mode == "rnd_min_inf":
        return qb and r
    if mode == "rnd_inf":
        return qb and (not neg or r)
    raise ValueError(f"unknown quantization mode {mode!r}")


def cast(v: int, frac_from: int, to: Format) -> int:
    """Raw ``v`` (value ``v x 2^-frac_from``) converted into ``to`` as ap_fixed does."""
    width, integer, signed, q_mode, o_mode = to
    frac = width - integer
    s = frac_from - frac
    neg = v < 0
    if s > 0:
        floor_v = v >> s  # Python's >> floors
        dropped = v - (floor_v << s)  # in [0, 2^s)
        half = 1 << (s - 1)
        qb = dropped >= half
        r = (dropped & (half - 1)) != 0
        q = floor_v + int(_round_up(q_mode, floor_v, qb, r, neg))
    else:
        q = v << -s
    hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
    lo = -(1 << (width - 1)) if signed else 0
    if o_mode == "sat_sym" and signed and width > 1:
        lo = -hi
    if lo <= q <= hi:
        return q
    if o_mode == "wrap":
        low = q & ((1 << width) - 1)
        return low - (1 << width) if signed and low >> (width - 1) else low
    if o_mode in ("sat", "sat_sym"):
        return hi if q > hi else lo
    if o_mode == "sat_zero":
        return 0
    raise ValueError(f"unknown overflow mode {o_mode!r}")


def cast_array(v: np.ndarray, frac_from: int, to: Format) -> np.ndarray:
    """:func:`cast` of every element of an int64 array."""
    return np.array([cast(int(x), frac_from, to) for x in np.ravel(v)], np.int64).reshape(
        np.shape(v)
    )


def from_double(x: float, to: Format) -> int:
    """A finite double converted into ``to`` as ap_fixed's constructor does (its exact
    binary value, then :func:`cast`)."""
    if not math.isfinite(x):
        raise ValueError(f"{x} is not finite")
    num, den = float(x).as_integer_ratio()  # den is a power of two
    return cast(num, den.bit_length() - 1, to)


def _frac(f: Format) -> int:
    return f[0] - f[1]


def run_network(
    tensors: Sequence[tuple[str, tuple[int, ...], Format]],
    layers: Sequence[dict[str, Any]],
    input_index: int,
    output_index: int,
    x: np.ndarray,
) -> np.ndarray:
    """Raw int64 outputs ``(n, n_out)`` of the network (the arguments of
    :class:`poetml._core.EmuNetwork`) for float inputs ``x`` (n, n_in), one event at a time."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    out = []
    for event in x:
        vals: dict[int, list[int]] = {
            input_index: [from_double(float(v), tensors[input_index][2]) for v in event]
        }
        for layer in layers:
            ins = layer["inputs"]
            a = vals[ins[0]]
            fa = _frac(tensors[ins[0]][2])
            in_shape = tensors[ins[0]][1]
            o_shape = tensors[layer["output"]][1]
            fo = tensors[layer["output"]][2]
            op = layer["op"]
            if op in ("dense", "conv2d"):
                w = [int(v) for v in layer["weights"]]
                b = [int(v) for v in layer["bias"]]
                acc_f = layer["accum"]
                pf = fa + layer["weight_frac"]
                n_out = len(b)

                def dense(xs: list[int], w: list[int] = w, b: list[int] = b) -> list[int]:
                    acc = [cast(bj, layer["bias_frac"], acc_f) for bj in b]  # noqa: B023
                    for i, xi in enumerate(xs):
                        for j in range(n_out):  # noqa: B023
                            p = cast(xi * w[i * n_out + j], pf, acc_f)  # noqa: B023
                            acc[j] = cast(acc[j] + p, _frac(acc_f), acc_f)  # noqa: B023
                    return [cast(v, _frac(acc_f), fo) for v in acc]  # noqa: B023

                if op == "dense":
                    res = dense(a)
                else:
                    _, wi, c = in_shape
                    oh, ow, _ = o_shape
                    kh, kw = layer["kernel"]
                    sh, sw = layer["stride"]
                    res = [0] * (oh * ow * n_out)
                    for r in range(oh):
                        for q in range(ow):
                            win = [
                                a[((r * sh + i) * wi + q * sw + j) * c + ch]
                                for i in range(kh)
                                for j in range(kw)
                                for ch in range(c)
                            ]
                            res[(r * ow + q) * n_out : (r * ow + q + 1) * n_out] = dense(win)
            elif op == "relu":
                res = [cast(v, fa, fo) if v > 0 else 0 for v in a]
            elif op == "linear":
                res = [cast(v, fa, fo) for v in a]
            elif op == "max_pool2d":
                _, wi, c = in_shape
                oh, ow, _ = o_shape
                kh, kw = layer["kernel"]
                sh, sw = layer["stride"]
                res = [
                    cast(
                        max(
                            a[((r * sh + i) * wi + q * sw + j) * c + ch]
                            for i in range(kh)
                            for j in range(kw)
                        ),
                        fa,
                        fo,
                    )
                    for r in range(oh)
                    for q in range(ow)
                    for ch in range(c)
                ]
            elif op == "batchnorm":
                sc = [int(v) for v in layer["weights"]]
                bi = [int(v) for v in layer["bias"]]
                pf = fa + layer["weight_frac"]
                f = max(pf, layer["bias_frac"])
                res = [
                    cast(
                        (v * sc[i % len(sc)] << (f - pf))
                        + (bi[i % len(bi)] << (f - layer["bias_frac"])),
                        f,
                        fo,
                    )
                    for i, v in enumerate(a)
                ]
            elif op == "upsampling2d":
                h, wi, c = in_shape
                oh, ow, _ = o_shape
                res = [
                    cast(a[((r // (oh // h)) * wi + q // (ow // wi)) * c + ch], fa, fo)
                    for r in range(oh)
                    for q in range(ow)
                    for ch in range(c)
                ]
            elif op == "zero_pad2d":
                h, wi, c = in_shape
                oh, ow, _ = o_shape
                top, left = layer["pad"]
                res = [0] * (oh * ow * c)
                for r in range(h):
                    for q in range(wi):
                        for ch in range(c):
                            res[((r + top) * ow + q + left) * c + ch] = cast(
                                a[(r * wi + q) * c + ch], fa, fo
                            )
            elif op in ("add", "subtract", "multiply"):
                b2 = vals[ins[1]]
                fb = _frac(tensors[ins[1]][2])
                n = math.prod(o_shape)
                res = []
                for i in range(n):
                    u, v = a[i % len(a)], b2[i % len(b2)]
                    if op == "multiply":
                        res.append(cast(u * v, fa + fb, fo))
                    else:
                        f = max(fa, fb)
                        v2 = (v << (f - fb)) * (1 if op == "add" else -1)
                        res.append(cast((u << (f - fa)) + v2, f, fo))
            elif op == "concatenate":
                b2 = vals[ins[1]]
                fb = _frac(tensors[ins[1]][2])
                c1, c2 = in_shape[-1], tensors[ins[1]][1][-1]
                res = []
                for r in range(len(a) // c1):
                    res += [cast(v, fa, fo) for v in a[r * c1 : (r + 1) * c1]]
                    res += [cast(v, fb, fo) for v in b2[r * c2 : (r + 1) * c2]]
            else:
                raise ValueError(f"layer {layer.get('name')!r}: unknown operation {op!r}")
            vals[layer["output"]] = res
        out.append(vals[output_index])
    return np.array(out, np.int64).reshape(len(x), -1)
