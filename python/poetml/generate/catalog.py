"""What ``poetml generate`` prints: the process table, a run's summary, a default dataset's.

Text only (nothing is generated here); the command prints what these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .processes import COMMON_SETTINGS, PROCESSES


def process_table() -> str:
    """The processes with their kind, cross section, Pythia settings and notes, after the
    settings every run shares (``poetml generate --list``)."""
    out = [
        (
            "13 TeV pp processes (Pythia 8.3, Monash tune). sigma = Pythia's sigmaGen x forced "
            "BRs, pythia8mc 8.317.2, 2000 events, MPI off.\n"
        ),
        "Common settings: " + "; ".join(COMMON_SETTINGS),
        "Added per run: PartonLevel:MPI = on|off, Random:seed from (seed, chunk)\n",
    ]
    for p in PROCESSES.values():
        out.append(f"{p.name:12s} [{p.kind}]  sigma = {p.sigma_pb:.4g} pb")
        out.append(f"    {p.title}")
        out.extend(f"      {s}" for s in p.settings)
        if p.pthat_min is not None:
            out.append(f"      PhaseSpace:pTHatMin = {p.pthat_min}  (default; --pthat-min)")
        if p.notes:
            out.append(f"    note: {p.notes}")
    return "\n".join(out)


def default_summary(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """File, label and event count of each process of a default dataset's manifest
    (what :func:`poetml.generate.generate_default` returns)."""
    return {
        k: {"file": v["file"], "label": v["label"], "events": v["events"]}
        for k, v in manifest["processes"].items()
    }


def run_summary(summary: Mapping[str, Any]) -> str:
    """One line for what :func:`poetml.generate.generate` returns: events, file, layout,
    time, rate, workers and Pythia's cross section."""
    s = summary
    return (
        f"wrote {s['events']} {s['process']} events to {s['path']} ({s['layout']} layout) in "
        f"{s['seconds']:.1f} s ({s['events_per_second']:.0f} ev/s, {s['workers']} workers); "
        f"Pythia sigma = {s['sigma_pb']:.4g} pb"
    )
