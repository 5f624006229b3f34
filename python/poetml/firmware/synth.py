"""Vendor HLS synthesis when the tool exists, and parsing of its C-synthesis report.

hls4ml writes ``build_prj.tcl`` into every project; synthesis runs it with the backend's tool
(Vitis: ``vitis-run --tcl build_prj.tcl --mode hls`` or ``vitis_hls -f build_prj.tcl``; Vivado:
``vivado_hls -f build_prj.tcl``) with the options in ``build_opt.tcl`` (C synthesis only).
The report ``<project>_prj/solution1/syn/report/<project>_csynth.xml`` is parsed into latency
(cycles and ns), initiation interval and LUT/FF/DSP/BRAM.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..exceptions import FirmwareError, SynthesisUnavailable

__all__ = [
    "SynthesisUnavailable",
    "find_tool",
    "parse_csynth_xml",
    "run_synthesis",
    "synthesis_command",
]

TOOLS = {"Vitis": ("vitis-run", "vitis_hls"), "Vivado": ("vivado_hls",)}


def find_tool(backend: str) -> str | None:
    """Path of the first HLS tool for ``backend`` found on PATH, or None."""
    for tool in TOOLS.get(backend, ()):
        path = shutil.which(tool)
        if path:
            return path
    return None


def synthesis_command(backend: str, tool: str | None = None) -> list[str]:
    """The command that runs ``build_prj.tcl`` in the project folder."""
    name = Path(tool).name if tool else TOOLS[backend][0]
    if name == "vitis-run":
        return [tool or name, "--tcl", "build_prj.tcl", "--mode", "hls"]
    return [tool or name, "-f", "build_prj.tcl"]


BUILD_OPTS = """\
array set opt {
    reset      0
    csim       0
    synth      1
    cosim      0
    validation 0
    export     0
    vsynth     0
    fifo_opt   0
}
"""


def _text(node: ET.Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    return None if found is None or found.text is None else found.text.strip()


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None  # "undef" for unbounded latencies


def parse_csynth_xml(path: str | Path) -> dict[str, Any]:
    """Parse a Vivado/Vitis HLS ``*_csynth.xml`` report into a flat dict.

    Keys: top, part, target_clock_ns, estimated_clock_ns, latency_best/worst_cycles,
    latency_best/worst_ns, interval_min/max_cycles, and lut, ff, dsp, bram_18k, uram with their
    ``available_*`` counterparts (None where the report has no value).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FirmwareError(f"cannot parse the synthesis report {path}: {exc}") from exc
    perf = root.find("PerformanceEstimates")
    area = root.find("AreaEstimates")
    if perf is None or area is None:
        raise FirmwareError(f"{path}: no PerformanceEstimates/AreaEstimates; not a csynth report")
    target = _text(root, "UserAssignments/TargetClockPeriod")
    est = _text(perf, "SummaryOfTimingAnalysis/EstimatedClockPeriod")
    out: dict[str, Any] = {
        "report": str(path),
        "top": _text(root, "UserAssignments/TopModelName"),
        "part": _text(root, "UserAssignments/Part"),
        "target_clock_ns": float(target) if target else None,
        "estimated_clock_ns": float(est) if est else None,
        "latency_best_cycles": _int(_text(perf, "SummaryOfOverallLatency/Best-caseLatency")),
        "latency_worst_cycles": _int(_text(perf, "SummaryOfOverallLatency/Worst-caseLatency")),
        "interval_min_cycles": _int(_text(perf, "SummaryOfOverallLatency/Interval-min")),
        "interval_max_cycles": _int(_text(perf, "SummaryOfOverallLatency/Interval-max")),
    }
    clock = out["target_clock_ns"]
    for which in ("best", "worst"):
        cycles = out[f"latency_{which}_cycles"]
        out[f"latency_{which}_ns"] = cycles * clock if cycles is not None and clock else None
    names = {
        "LUT": "lut",
        "FF": "ff",
        "DSP": "dsp",
        "DSP48E": "dsp",
        "BRAM_18K": "bram_18k",
        "URAM": "uram",
    }
    for field in set(names.values()):
        out[field] = None
        out[f"available_{field}"] = None
    for section, prefix in (("Resources", ""), ("AvailableResources", "available_")):
        node = area.find(section)
        for child in [] if node is None else list(node):
            key = names.get(child.tag)
            if key is not None:
                out[prefix + key] = _int(child.text)
    return out


def run_synthesis(
    project_dir: str | Path, project: str, backend: str, timeout: float | None = None
) -> dict[str, Any]:
    """Run C synthesis of the project with the vendor tool and parse its report.

    Raises :class:`SynthesisUnavailable` (with the command to run elsewhere) when the tool for
    ``backend`` is not on PATH; the project folder keeps its ready ``build_prj.tcl``.
    """
    project_dir = Path(project_dir)
    tool = find_tool(backend)
    if tool is None:
        command = " ".join(synthesis_command(backend))
        raise SynthesisUnavailable(
            f"no {backend} HLS tool ({' or '.join(TOOLS[backend])}) on PATH, so synthesis cannot "
            f"run here; the project {project_dir} is ready: on a machine with the tool run "
            f"`cd {project_dir} && {command}` (build_opt.tcl selects C synthesis only; "
            "build_trigger.tcl synthesizes the network with its trigger decision)"
        )
    (project_dir / "build_opt.tcl").write_text(BUILD_OPTS)
    cmd = synthesis_command(backend, tool)
    log = project_dir / "poetml_synth.log"
    with open(log, "w") as fh:
        proc = subprocess.run(
            cmd, cwd=project_dir, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if proc.returncode != 0:
        raise FirmwareError(
            f"{' '.join(cmd)} failed in {project_dir} (exit {proc.returncode}); see {log}"
        )
    reports = sorted(project_dir.glob(f"{project}_prj/*/syn/report/{project}_csynth.xml"))
    if not reports:
        raise FirmwareError(
            f"synthesis finished but wrote no {project}_csynth.xml under {project_dir}; see {log}"
        )
    return parse_csynth_xml(reports[0])
