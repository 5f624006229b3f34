"""Trigger threshold for a rate, and the synthesizable trigger-decision function.

The threshold is :func:`poetml.rates.threshold_at_fpr` (the same the evaluation's working
points use): rate = false-positive rate x collision rate (40 MHz by default, so 1 kHz is an
FPR of 2.5e-5), at most ``floor(FPR x N)`` background events above it, fire when
``score > threshold``.  It is computed on background events through the C simulation (not
the float model); :class:`Threshold` adds what the firmware needs (the sample's rate and its
uncertainty; :func:`write_trigger` writes it as a fixed-point constant).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import rates
from .._atomic import write_text
from ..exceptions import FirmwareError

__all__ = [
    "RATIO_FRAC_BITS",
    "Threshold",
    "ratio_threshold",
    "ratio_threshold_type",
    "threshold_for_rate",
    "trigger_fires",
    "trigger_scores",
    "write_trigger",
]

#: fraction bits of the threshold constant of a ratio score (num > threshold x den)
RATIO_FRAC_BITS = 24


def trigger_scores(y: Any, score_index: int, denominator_index: int | None = None) -> np.ndarray:
    """The trigger score of each event from the network outputs ``y`` (n, n_out):
    ``y[:, score_index]``, or with ``denominator_index`` the ratio of the two outputs (0 where
    the denominator is 0)."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    num = y[:, score_index]
    if denominator_index is None:
        return num
    den = y[:, denominator_index]
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def trigger_fires(
    y: Any, threshold: float, score_index: int, denominator_index: int | None = None
) -> np.ndarray:
    """The trigger bit of each event as ``trigger.h`` computes it (no division):
    ``y[:, score_index] > threshold`` or ``y[:, score_index] > threshold x
    y[:, denominator_index]``."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    num = y[:, score_index]
    if denominator_index is None:
        return num > threshold
    return num > threshold * y[:, denominator_index]


@dataclass(frozen=True)
class Threshold:
    """A trigger working point on a background sample.

    ``value``: fire when score > value.  ``fpr`` and ``rate_khz`` are what the sample gives at
    that threshold (``n_pass`` of ``n_background`` events), ``rate_khz_err`` its binomial
    (Poisson) uncertainty; ``target_*`` what was asked.  ``warning`` is set when the sample has
    too few background events to resolve the requested rate.
    """

    value: float
    target_rate_khz: float
    target_fpr: float
    fpr: float
    rate_khz: float
    rate_khz_err: float
    n_pass: int
    n_background: int
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_for_rate(
    background_scores: np.ndarray,
    rate_khz: float,
    collision_rate_mhz: float = 40.0,
    *,
    weights_pb: np.ndarray | None = None,
    beam: rates.Beam | None = None,
) -> Threshold:
    """The trigger threshold for ``rate_khz``.

    Unweighted background: :func:`poetml.rates.threshold_at_fpr` at
    ``rates.rate_to_fpr(rate_khz, collision_rate_mhz)``, keeping at most
    ``k = floor(target_fpr * n)`` background events (the (k+1)-th largest score, so ties
    never push the rate above the target); ``warning`` is
    :func:`poetml.rates.small_sample_warning`.

    ``weights_pb``: the background is a weighted stream (pb per event) and the threshold is
    :func:`poetml.rates.threshold_for_rate_weighted` at ``beam``'s luminosity (the same
    function the evaluation's weighted working points use); ``rate_khz`` and
    ``rate_khz_err`` are the stream's rate above it and its uncertainty from the sum of
    squared weights, ``fpr`` the weighted fraction, and ``warning`` is set below 10
    effective background events above the threshold.
    """
    s = np.asarray(background_scores, np.float64).ravel()
    n = len(s)
    if n == 0:
        raise FirmwareError("no background events to set the trigger threshold on")
    if not np.all(np.isfinite(s)):
        raise FirmwareError(
            f"background scores contain {np.count_nonzero(~np.isfinite(s))} non-finite values"
        )
    if weights_pb is not None:
        return _weighted_threshold(s, weights_pb, rate_khz, beam or rates.Beam())
    if rate_khz <= 0:
        raise FirmwareError(f"rate_khz must be > 0, got {rate_khz}")
    if rate_khz >= collision_rate_mhz * 1e3:
        raise FirmwareError(
            f"rate {rate_khz} kHz is not below the collision rate {collision_rate_mhz} MHz"
        )
    target = rates.rate_to_fpr(rate_khz, collision_rate_mhz)
    value = rates.threshold_at_fpr(s, target)
    if not math.isfinite(value):  # every event may pass (target within 1e-12 of 1)
        value = float(s.min())
    n_pass = int(np.count_nonzero(s > value))
    warning = rates.small_sample_warning(
        f"rate={float(rate_khz):g} kHz", target, n, collision_rate_mhz=collision_rate_mhz
    )
    fpr = n_pass / n
    return Threshold(
        value=value,
        target_rate_khz=float(rate_khz),
        target_fpr=target,
        fpr=fpr,
        rate_khz=rates.fpr_to_rate(fpr, collision_rate_mhz),
        rate_khz_err=rates.fpr_to_rate(math.sqrt(max(n_pass, 1)) / n, collision_rate_mhz),
        n_pass=n_pass,
        n_background=n,
        warning=warning,
    )


def _weighted_threshold(
    s: np.ndarray, weights_pb: np.ndarray, rate_khz: float, beam: rates.Beam
) -> Threshold:
    try:
        w = rates.check_weights(weights_pb, len(s), "background weights")
        value = rates.threshold_for_rate_weighted(s, w, rate_khz, beam)
    except ValueError as exc:
        raise FirmwareError(str(exc)) from exc
    if not math.isfinite(value):
        value = float(s.min())
    r = rates.rate_above(s, w, value, beam)
    total = float(w.sum())
    warning = None
    if r.n_effective < 10:
        warning = (
            f"rate={float(rate_khz):g} kHz: {r.n_effective:.3g} effective background events "
            f"above the threshold (rule: at least 10); the rate {r.rate_khz:.3g} +- "
            f"{r.rate_khz_err:.2g} kHz is not measured reliably"
        )
    return Threshold(
        value=value,
        target_rate_khz=float(rate_khz),
        target_fpr=float(rate_khz) / (total * beam.khz_per_pb) if total > 0 else math.nan,
        fpr=float(w[s > value].sum()) / total if total > 0 else math.nan,
        rate_khz=r.rate_khz,
        rate_khz_err=r.rate_khz_err,
        n_pass=r.n_events,
        n_background=len(s),
        warning=warning,
    )


def ratio_threshold(
    num: np.ndarray,
    den: np.ndarray,
    rate_khz: float,
    collision_rate_mhz: float = 40.0,
    *,
    weights_pb: np.ndarray | None = None,
    beam: rates.Beam | None = None,
) -> Threshold:
    """The working point of a ratio score ``num / den`` (0 where ``den`` is 0), which the
    firmware tests without a division as ``num > t x den``.

    ``t`` is the threshold :func:`threshold_for_rate` gives for the ratios, rounded up to
    the grid of :data:`RATIO_FRAC_BITS` fraction bits so it is an exact fixed-point constant
    (rounding up never raises the rate); the counts are those of ``num > t x den``, exact in
    float64 for fixed-point ``num`` and ``den``.  ``weights_pb``/``beam``: a weighted
    background stream, as in :func:`threshold_for_rate` (the rate of ``num > t x den``
    from the weights).
    """
    num = np.asarray(num, np.float64).ravel()
    den = np.asarray(den, np.float64).ravel()
    if np.any(den < 0):
        raise FirmwareError("a ratio score needs a non-negative denominator")
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    base = threshold_for_rate(ratio, rate_khz, collision_rate_mhz, weights_pb=weights_pb, beam=beam)
    value = math.ceil(base.value * 2.0**RATIO_FRAC_BITS) / 2.0**RATIO_FRAC_BITS
    if weights_pb is not None:
        beam = beam or rates.Beam()
        w = rates.check_weights(weights_pb, len(num), "background weights")
        fires = num > value * den
        total = float(w.sum())
        r = rates.rate_above(fires.astype(np.float64), w, 0.5, beam)
        return Threshold(
            value=value,
            target_rate_khz=base.target_rate_khz,
            target_fpr=base.target_fpr,
            fpr=float(w[fires].sum()) / total if total > 0 else math.nan,
            rate_khz=r.rate_khz,
            rate_khz_err=r.rate_khz_err,
            n_pass=r.n_events,
            n_background=len(num),
            warning=base.warning,
        )
    n_pass = int(np.count_nonzero(num > value * den))
    collision_khz = collision_rate_mhz * 1e3
    return Threshold(
        value=value,
        target_rate_khz=base.target_rate_khz,
        target_fpr=base.target_fpr,
        fpr=n_pass / len(num),
        rate_khz=n_pass / len(num) * collision_khz,
        rate_khz_err=math.sqrt(max(n_pass, 1)) / len(num) * collision_khz,
        n_pass=n_pass,
        n_background=len(num),
        warning=base.warning,
    )


def ratio_threshold_type(value: float) -> str:
    """An unsigned fixed-point type that holds ``value`` exactly (see :func:`ratio_threshold`)."""
    integer = max(1, math.floor(math.log2(value)) + 1) if value >= 1 else 1
    return f"ap_ufixed<{integer + RATIO_FRAC_BITS},{integer}>"


def _exact_literal(value: float, frac_bits: int) -> str:
    """A C literal of ``value``, checked to lie on the fixed-point grid of the score type."""
    scaled = value * 2.0**frac_bits
    if scaled != round(scaled):
        raise FirmwareError(
            f"threshold {value!r} is not a multiple of the score LSB 2^-{frac_bits}; thresholds "
            "must come from C-simulation scores"
        )
    return repr(float(value))


def write_trigger(
    project_dir: str | Path,
    sig: Any,
    threshold: Threshold,
    score_precision: str,
    score_frac_bits: int,
    score_index: int = 0,
    part: str | None = None,
    clock_period: float | None = None,
    denominator_index: int | None = None,
) -> tuple[Path, Path]:
    """Write ``firmware/trigger.h`` (the threshold as a fixed-point constant of the score type)
    and ``firmware/trigger.cpp`` (top function ``trigger_decision``: runs the network, outputs
    the score and the trigger bit ``score > threshold``).  ``sig`` is the
    :class:`~poetml.firmware.csim.TopSignature` of the network's top function.  With
    ``denominator_index`` the score is a ratio (see :func:`ratio_threshold`): the constant
    gets its own type and the bit is ``output[score_index] > threshold x
    output[denominator_index]``.  With ``part`` and ``clock_period`` also
    ``build_trigger.tcl``, the vendor-tool script that synthesizes ``trigger_decision``
    (``vitis_hls -f build_trigger.tcl``)."""
    fw = Path(project_dir) / "firmware"
    ratio = denominator_index is not None
    frac_bits = RATIO_FRAC_BITS if ratio else score_frac_bits
    literal = _exact_literal(threshold.value, frac_bits)
    raw = round(threshold.value * 2.0**frac_bits)
    threshold_type = ratio_threshold_type(threshold.value) if ratio else "trigger_score_t"
    if sig.io_stream:
        proto = f"void trigger_decision(hls::stream<{sig.in_type}> &in, trigger_score_t &score, bool &fire)"
        body = (
            f'    hls::stream<{sig.out_type}> out("score");\n'
            f"    {sig.project}(in, out);\n"
            f"    {sig.out_type} result = out.read();\n"
            f"    score = result[{score_index}];\n"
        )
    else:
        proto = f"void trigger_decision({sig.in_type} in[{sig.n_in}], trigger_score_t &score, bool &fire)"
        body = (
            f"    {sig.out_type} result[{sig.n_out}];\n"
            f"    #pragma HLS ARRAY_PARTITION variable=result complete dim=0\n"
            f"    {sig.project}(in, result);\n"
            f"    score = result[{score_index}];\n"
        )
    rule = (
        f"score > kTriggerThreshold * result[{denominator_index}]"
        if ratio
        else "score > kTriggerThreshold"
    )
    what = (
        f"score = output {score_index} of the network, the anomaly score is score / output "
        f"{denominator_index}; fire = {rule}"
        if ratio
        else f"fire = {rule}"
    )
    header = f"""\
// Trigger decision for {sig.project}, written by poetml.firmware.trigger.
// Threshold set on {threshold.n_background} background events through the C simulation for
// {threshold.target_rate_khz:g} kHz (FPR {threshold.target_fpr:.4g}); the sample gives
// {threshold.rate_khz:.4g} +- {threshold.rate_khz_err:.3g} kHz ({threshold.n_pass} events pass).
#ifndef POETML_TRIGGER_DECISION_H_
#define POETML_TRIGGER_DECISION_H_

#include "{sig.project}.h"

typedef {score_precision} trigger_score_t;

// {what}
// (threshold: raw integer value {raw} x 2^-{frac_bits})
static const {threshold_type} kTriggerThreshold = {literal};

{proto};

#endif
"""
    source = f"""\
// Top-level trigger function, written by poetml.firmware.trigger.
#include "trigger.h"

{proto} {{
    #pragma HLS PIPELINE
{body}    fire = {rule};
}}
"""
    h, c = fw / "trigger.h", fw / "trigger.cpp"
    files = [(h, header), (c, source)]
    if part and clock_period:
        tcl = f"""\
# C synthesis of trigger_decision() (network + threshold), written by poetml.firmware.trigger.
# Run in this folder: vitis_hls -f build_trigger.tcl   (or vivado_hls -f build_trigger.tcl)
open_project -reset {sig.project}_trigger_prj
set_top trigger_decision
add_files firmware/{sig.project}.cpp -cflags "-std=c++0x -Ifirmware -Ifirmware/ap_types"
add_files firmware/trigger.cpp -cflags "-std=c++0x -Ifirmware -Ifirmware/ap_types"
open_solution -reset solution1
set_part {{{part}}}
create_clock -period {clock_period} -name default
csynth_design
exit
"""
        files.append((Path(project_dir) / "build_trigger.tcl", tcl))
    for path, text in files:
        write_text(path, text)
    return h, c
