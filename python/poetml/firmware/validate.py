"""Bit-accuracy validation: C simulation against the QKeras score model.

Figures: the fraction of outputs (and of events) where the two agree exactly, the largest
difference in units of the output LSB, the AUC and the signal efficiency at the trigger working
point from each (and their shifts), and, for the first disagreeing event, a per-layer trace
(hls4ml's traced layer outputs against the QKeras layer outputs of the same name) showing the
first layer where they part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import require
from ..exceptions import FirmwareError, FirmwareValidationError

__all__ = [
    "FirmwareValidationError",
    "agreement",
    "layer_trace",
    "rank_auc",
    "to_markdown",
    "trace_text",
    "trigger_rule",
    "within_tolerance",
]


def agreement(reference: np.ndarray, csim: np.ndarray, lsb: float) -> dict[str, Any]:
    """Exact-agreement fractions and the largest ``|difference|`` in output LSBs."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    out = np.asarray(csim, np.float64).reshape(len(csim), -1)
    if ref.shape != out.shape:
        raise FirmwareError(f"output shapes differ: QKeras {ref.shape}, C simulation {out.shape}")
    same = ref == out
    diff = np.abs(ref - out)
    bad_events = np.flatnonzero(~same.all(axis=1))
    return {
        "n_events": len(ref),
        "n_outputs": int(ref.size),
        "exact_fraction": float(same.mean()) if ref.size else 1.0,
        "exact_event_fraction": float(same.all(axis=1).mean()) if len(ref) else 1.0,
        "max_abs_diff": float(diff.max()) if ref.size else 0.0,
        "max_diff_lsb": float(diff.max() / lsb) if ref.size else 0.0,
        "output_lsb": float(lsb),
        "n_disagreeing_events": len(bad_events),
        "first_disagreeing_event": int(bad_events[0]) if len(bad_events) else None,
    }


def within_tolerance(
    agreement_figures: dict[str, Any], min_exact_fraction: float, tolerance_lsb: float
) -> bool:
    """True when at least ``min_exact_fraction`` of the outputs agree exactly and none differs
    by more than ``tolerance_lsb`` output LSBs."""
    return (
        agreement_figures["exact_fraction"] >= min_exact_fraction
        and agreement_figures["max_diff_lsb"] <= tolerance_lsb
    )


def rank_auc(background: np.ndarray, signal: np.ndarray) -> float:
    """ROC AUC of signal against background (Mann-Whitney U with tied ranks averaged)."""
    b = np.asarray(background, np.float64).ravel()
    s = np.asarray(signal, np.float64).ravel()
    if len(b) == 0 or len(s) == 0:
        return float("nan")
    allv = np.concatenate([b, s])
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    ranks = avg_rank[inv]
    u = ranks[len(b) :].sum() - len(s) * (len(s) + 1) / 2.0
    return float(u / (len(b) * len(s)))


def layer_trace(
    score_model: Any, hls_model: Any, x: np.ndarray, hls_trace: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per-layer comparison for the events ``x`` (usually one): hls4ml's traced output of every
    layer against the QKeras output of the layer with the same name.

    Each row: layer, hls4ml class, precision, max ``|diff|``, max ``|diff|`` in that layer's
    LSB, agree (None where QKeras has no layer of that name, e.g. an activation hls4ml split
    out).
    ``hls_trace``: the dict of ``hls_model.trace(x)`` when already computed (each ``trace``
    call recompiles the project with tracing).
    """
    tf = require("tensorflow", "tracing layer outputs")
    x = np.asarray(x, np.float32)
    keras_layers = {
        layer.name: layer for layer in score_model.layers if type(layer).__name__ != "InputLayer"
    }
    probe = tf.keras.Model(score_model.inputs, [layer.output for layer in keras_layers.values()])
    k_out = dict(zip(keras_layers, probe.predict(x, verbose=0), strict=False))
    h_trace = hls_trace if hls_trace is not None else hls_model.trace(x)[1]
    rows = []
    for layer in hls_model.get_layers():
        name = layer.name
        if name not in h_trace:
            continue
        precision = layer.get_output_variable().type.precision
        frac = precision.width - precision.integer if hasattr(precision, "integer") else None
        h = np.asarray(h_trace[name], np.float64).reshape(len(x), -1)
        row: dict[str, Any] = {
            "layer": name,
            "class": layer.class_name,
            "precision": str(precision),
        }
        if name in k_out:
            k = np.asarray(k_out[name], np.float64).reshape(len(x), -1)
            if k.shape == h.shape:
                d = np.abs(k - h)
                row.update(
                    max_abs_diff=float(d.max()),
                    max_diff_lsb=float(d.max() * 2.0**frac) if frac is not None else None,
                    agree=bool(np.all(d == 0)),
                    first_index=int(np.argmax(d.ravel() > 0)) if d.max() > 0 else None,
                )
            else:
                row.update(agree=None, note=f"shape {k.shape} vs {h.shape}")
        else:
            row.update(agree=None, note="no QKeras layer of this name")
        rows.append(row)
    return rows


def first_divergence(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first traced layer whose output differs from QKeras."""
    return next((r for r in rows if r.get("agree") is False), None)


def trace_text(rows: list[dict[str, Any]], event: int | None = None) -> str:
    """The layer trace as an aligned text table, the first diverging layer marked."""
    first = first_divergence(rows)
    head = f"per-layer trace of event {event}" if event is not None else "per-layer trace"
    lines = [head, f"{'layer':<22}{'class':<14}{'precision':<34}{'max|diff|':>12}{'LSB':>8}  agree"]
    for r in rows:
        mark = "  <-- first divergence" if r is first else ""
        agree = {True: "yes", False: "NO", None: "-"}[r.get("agree")]
        d = r.get("max_abs_diff")
        lsb = r.get("max_diff_lsb")
        lines.append(
            f"{r['layer']:<22}{r['class']:<14}{r['precision']:<34}"
            f"{'' if d is None else f'{d:.6g}':>12}{'' if lsb is None else f'{lsb:.3g}':>8}  {agree}{mark}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class _Fmt:
    v: Any

    def __format__(self, spec: str) -> str:
        if self.v is None:
            return "n/a"
        if isinstance(self.v, float) and np.isnan(self.v):
            return "n/a"
        return format(self.v, spec)


def trigger_rule(report: dict[str, Any], value: float) -> str:
    """The trigger condition with the threshold's value in it."""
    return report.get("trigger_rule", "score > threshold").replace("threshold", f"{value:.10g}", 1)


def emulator_lines(report: dict[str, Any]) -> list[str]:
    """The report's paragraph on the bit-exact C++ emulator (Markdown lines; none when the
    report predates it)."""
    emu = report.get("emulator")
    if not emu:
        return []
    if not emu.get("available"):
        return [(f"Bit-exact emulator: not used ({emu.get('reason')}); the C simulation scored "
                "every event."), ""]  # fmt: skip
    status = "PASS" if emu.get("agrees") else "FAIL"
    return [
        (
            f"Bit-exact C++ emulator: scored all {emu['n_events']} events "
            f"({emu['events_per_s']:.0f} events/s on {emu['threads']} threads) for the threshold "
            f"and the figures above; against the C simulation (the referee) on "
            f"{emu['n_referee_events']} events: exact outputs {emu['exact_fraction']:.6f}, exact "
            f"events {emu['exact_event_fraction']:.6f}, max diff {emu['max_diff_lsb']:g} LSB "
            f"-> {status} (C simulation: {emu['csim_events_per_s']:.0f} events/s)."
        ),
        "",
    ]


def to_markdown(report: dict[str, Any]) -> str:
    """The validation report (as written to ``firmware.json``) as a Markdown section."""
    v = report["validation"]
    a = v["agreement"]
    t = report["threshold"]
    lines = [
        "## Firmware",
        "",
        (
            f"hls4ml {report['hls4ml_version']} project `{report['project_dir']}` "
            f"({report['config']['backend']} backend, part {report['config']['part']}, "
            f"{report['config']['clock_period']} ns clock, {report['io_type']}, "
            f"{report['config']['strategy']} strategy, reuse factor {report['config']['reuse_factor']})."
        ),
        "",
    ]
    lines += [f"- {note}" for note in report.get("notes", [])]
    lines += [
        "",
        "### C simulation against QKeras",
        "",
        "| events | exact outputs | exact events | max diff (output LSB) | status |",
        "|---:|---:|---:|---:|:---|",
        (
            f"| {a['n_events']} | {a['exact_fraction']:.6f} | {a['exact_event_fraction']:.6f} | "
            f"{a['max_diff_lsb']:g} | {'PASS' if v['passed'] else 'FAIL'} |"
        ),
        "",
        (
            f"Trigger threshold for {t['target_rate_khz']:g} kHz (FPR {t['target_fpr']:.3g}), set on "
            f"{t['n_background']} background events through the C simulation: "
            f"{trigger_rule(report, t['value'])}, giving {t['rate_khz']:.3g} ± {t['rate_khz_err']:.2g} "
            "kHz."
        ),
        "",
    ]
    if t.get("warning"):
        lines += [f"> warning: {t['warning']}", ""]
    if v["signals"]:
        lines += [
            "| signal | AUC QKeras | AUC C sim | ΔAUC | eff. QKeras | eff. C sim | Δeff. |",
            "|:---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, s in v["signals"].items():
            lines.append(
                f"| {name} | {_Fmt(s['auc_qkeras']):.5f} | {_Fmt(s['auc_csim']):.5f} | "
                f"{_Fmt(s['auc_shift']):.2g} | {_Fmt(s['eff_qkeras']):.5f} | "
                f"{_Fmt(s['eff_csim']):.5f} | {_Fmt(s['eff_shift']):.2g} |"
            )
        lines.append("")
    trig = report.get("trigger_csim")
    if trig:
        lines += [
            (
                f"`trigger_decision()` C simulation on {trig['n_events']} events: fire bit equals "
                f"{report.get('trigger_rule', 'score > threshold')} for "
                f"{'all' if trig['fire_matches'] else 'NOT all'} events; scores "
                f"{'equal' if trig['score_matches'] else 'DIFFER from'} the network's."
            ),
            "",
        ]
        thr = report.get("threshold") or {}
        if "rate_khz" in trig and "rate_khz" in thr:
            on = (
                "the whole background"
                if trig.get("rate_sample") == "all"
                else f"a sample of {trig.get('n_background_events', '?')} background events"
            )
            lines += [
                (
                    f"Rate of the C simulation's trigger decision on {on}"
                    f"{' (cross-section weighted)' if trig.get('weighted') else ''}: "
                    f"{trig['rate_khz']:.4g} +- {trig['rate_khz_err']:.2g} kHz; the threshold's "
                    f"rate on the stream: {thr['rate_khz']:.4g} +- {thr['rate_khz_err']:.2g} kHz."
                ),
                "",
            ]
    if v.get("trace"):
        lines += ["First disagreeing event, layer by layer:", "", "```", v["trace_text"], "```", ""]
    lines += emulator_lines(report)
    sp = report.get("csim_speed")
    if sp:
        lines += [
            (
                f"Batched C simulation: {sp['events_per_s']:.0f} events/s on {sp['workers']} "
                f"workers ({sp['n_events']} events in {sp['seconds']:.2f} s)."
            ),
            "",
        ]
    cost = report.get("cost_estimate")
    if cost:
        lines += [
            (
                f"Cost **estimate** (not synthesis): {cost['multiplications']} multiplications, "
                f"{cost['bops']:.3g} bit operations; {cost['note']}"
            ),
            "",
        ]
    syn = report.get("synthesis")
    if syn:
        lines += [f"Synthesis: {syn.get('status')}", ""]
    return "\n".join(lines)
