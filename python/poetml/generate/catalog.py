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
            "13 TeV pp processes (Pythia 8.3, Monash tune). sigma = Pythia's sigmaGen "
            "(leading order; includes the forced BRs of resonances such as Z, W, H but not "
            "of J/psi and feed-down, which the event weights apply), pythia8mc 8.317.2, 2000 "
            "events, MPI off.  ref = a measured or higher-order value where it differs; event "
            "weights use Pythia's sigma.\n"
        ),
        "Common settings: " + "; ".join(COMMON_SETTINGS),
        "Added per run: PartonLevel:MPI = on|off, Random:seed from (seed, chunk)\n",
    ]
    for p in PROCESSES.values():
        ref = f"  (ref {p.sigma_ref_pb:.4g} pb: {p.sigma_ref_source})" if p.sigma_ref_pb else ""
        out.append(f"{p.name:12s} [{p.kind}]  sigma = {p.sigma_pb:.4g} pb{ref}")
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
        f"Pythia sigma = {s['sigma_pb']:.4g} +- {s['sigma_err_pb']:.2g} pb; sum of weights = "
        f"{s['sigma_filtered_pb']:.4g} pb (filter efficiency {s['filter_efficiency']:.4g}, "
        f"BR {s['branching_ratio']:.4g})"
    )
