"""The summary of a firmware build as text: what ``poetml firmware`` prints.

:func:`result_summary` turns a :class:`~poetml.firmware.build.FirmwareResult` into lines
(each marked for standard output or standard error, in the order they are printed) and the
exit status, so the command only prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .validate import trigger_rule

if TYPE_CHECKING:
    from .build import FirmwareResult


@dataclass(frozen=True)
class Summary:
    """``lines``: (text, to_stderr) in print order; ``ok``: validation passed and, when it
    was asked for, synthesis ran."""

    lines: tuple[tuple[str, bool], ...]
    ok: bool


def result_summary(result: FirmwareResult) -> Summary:
    """The project, the C-simulation agreement, the threshold, each signal's AUC and
    efficiency and the synthesis result (or the cost estimate) of a firmware build."""
    lines: list[tuple[str, bool]] = []

    def out(text: str) -> None:
        lines.append((text, False))

    def err(text: str) -> None:
        lines.append((text, True))

    r = result.report
    a = r["validation"]["agreement"]
    t = r["threshold"]
    out(f"project: {result.project_dir}  (report: {result.out_dir / 'firmware.md'})")
    out(
        f"C simulation vs QKeras on {a['n_events']} events: exact {a['exact_fraction']:.6f}, "
        f"max diff {a['max_diff_lsb']:g} LSB -> {'PASS' if result.passed else 'FAIL'}"
    )
    out(
        f"threshold for {t['target_rate_khz']:g} kHz: {trigger_rule(r, t['value'])} "
        f"({t['rate_khz']:.3g} +- {t['rate_khz_err']:.2g} kHz on {t['n_background']} events)"
    )
    emu = r.get("emulator")
    if emu and emu.get("available"):
        out(
            f"emulator vs C simulation on {emu['n_referee_events']} events: exact "
            f"{emu['exact_fraction']:.6f} -> {'PASS' if emu['agrees'] else 'FAIL'}; emulator "
            f"scored {emu['n_events']} events at {emu['events_per_s']:.0f} events/s "
            f"(C simulation {emu['csim_events_per_s']:.0f} events/s)"
        )
    elif emu:
        out(f"emulator: not used ({emu['reason']})")
    if t.get("warning"):
        err(f"warning: {t['warning']}")
    for name, s in r["validation"]["signals"].items():
        out(
            f"  {name}: AUC {s['auc_csim']:.4f} (shift {s['auc_shift']:+.2g}), efficiency "
            f"{s['eff_csim']:.4g} (shift {s['eff_shift']:+.2g})"
        )
    syn = r.get("synthesis")
    if syn and syn["status"] != "done":
        err(
            f"poetml firmware: project written to {result.project_dir}, but synthesis did "
            f"not run: {syn['error']}"
        )
        return Summary(tuple(lines), ok=False)
    if syn:
        out(
            f"synthesis: latency {syn['latency_worst_cycles']} cycles "
            f"({syn['latency_worst_ns']} ns), II {syn['interval_max_cycles']}, "
            f"LUT {syn['lut']}, FF {syn['ff']}, DSP {syn['dsp']}, BRAM_18K {syn['bram_18k']}"
        )
    else:
        cost = r["cost_estimate"]
        out(
            f"synthesis: not requested; cost estimate {cost['multiplications']} "
            f"multiplications, {cost['bops']:.3g} BOPs (estimate)"
        )
    return Summary(tuple(lines), ok=result.passed)
