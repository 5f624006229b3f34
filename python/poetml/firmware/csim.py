"""Fast batched C simulation of an hls4ml project.

hls4ml's ``ModelGraph.predict`` calls the compiled C simulation once per event from Python.
Here a small C++ file (``poetml_csim.cpp``, written into the project) loops over a whole batch
of events in C++, calling hls4ml's own per-event bridge (``<project>_bridge.cpp``: the same input
conversion, the same top function, the same output conversion as ``predict``).  It is compiled
into a shared library loaded with :mod:`ctypes`.

The generated HLS code keeps state in function-local statics (weights loaded on the first call,
activation tables, line buffers of streaming convolutions), so one library must not run on two
threads at once.  :class:`CSim` therefore loads one private copy of the library per worker
(a copied file is a separate ``dlopen`` with its own statics; ``-fno-gnu-unique`` keeps the
template statics private too) and runs the workers on threads: ctypes releases the GIL for the
duration of each foreign call, so the workers use all cores.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic import temp_path
from ..exceptions import FirmwareError

if TYPE_CHECKING:  # typing.Self is Python 3.11+; only the type checker needs it
    from typing_extensions import Self

__all__ = [
    "CSim",
    "TopSignature",
    "build_csim_library",
    "compile_flags",
    "default_workers",
    "top_signature",
]

BUILD_DIR = "poetml_build"


def default_workers() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class TopSignature:
    """Types of the top function's input and output as hls4ml wrote them in ``<project>.h``."""

    project: str
    io_stream: bool
    in_type: str
    out_type: str
    n_in: int
    n_out: int


def top_signature(project_dir: str | Path, project: str, n_in: int, n_out: int) -> TopSignature:
    """Parse the prototype of the top function ``project`` in ``firmware/<project>.h``."""
    header = Path(project_dir) / "firmware" / f"{project}.h"
    try:
        text = header.read_text()
    except OSError as exc:
        raise FirmwareError(f"cannot read the HLS header {header}: {exc}") from exc
    match = re.search(rf"void\s+{re.escape(project)}\s*\((.*?)\)\s*;", text, re.DOTALL)
    if not match:
        raise FirmwareError(f"{header}: no prototype of the top function {project}()")
    args = [a.strip() for a in match.group(1).split(",") if a.strip()]
    if len(args) != 2:
        raise FirmwareError(
            f"{header}: top function {project}() has {len(args)} arguments; poetml's batched "
            "C simulation supports one input and one output"
        )
    stream = re.compile(r"hls::stream<\s*(\w+)\s*>\s*&\s*\w+")
    array = re.compile(r"(\w+)\s+\w+\s*\[")
    s_in, s_out = stream.match(args[0]), stream.match(args[1])
    if s_in and s_out:
        return TopSignature(project, True, s_in.group(1), s_out.group(1), n_in, n_out)
    a_in, a_out = array.match(args[0]), array.match(args[1])
    if a_in and a_out:
        return TopSignature(project, False, a_in.group(1), a_out.group(1), n_in, n_out)
    raise FirmwareError(f"{header}: cannot read the argument types of {project}(): {args}")


def compile_flags() -> list[str]:
    """g++ flags of hls4ml's ``build_lib.sh``: -O3, PIC, private template statics."""
    flags = ["-O3", "-fPIC", "-std=c++17"]
    probe = subprocess.run(
        ["g++", "-Werror", "-fsyntax-only", "-fno-gnu-unique", "-xc++", "-", "-o", "/dev/null"],
        input=b"",
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        flags.append("-fno-gnu-unique")
    return flags


_CSIM_CPP = """\
// Batched C simulation entry points, written by poetml.firmware.csim.
// Loops over events in C++, calling hls4ml's per-event bridge (same conversions as predict()).
#include <cstddef>
#include <malloc.h>
#include "{project}_bridge.cpp"
#ifdef POETML_WITH_TRIGGER
#include "firmware/trigger.h"
#endif

namespace {{
// hls4ml's io_stream C simulation allocates and frees its stream buffers on every event. With
// glibc's default 128 KiB trim threshold each free hands the memory back to the OS and the next
// event faults it in again; page faults of one process serialise across threads, so a second
// worker added nothing for CNNs. Keeping up to 64 MiB of freed memory per arena lets the
// workers run side by side (bench/bench_csim.py: CNN, 2 workers, 1.0x -> ~1.9x).
struct KeepFreedMemory {{
    KeepFreedMemory() {{ mallopt(M_TRIM_THRESHOLD, 64 << 20); }}
}} keep_freed_memory;
}}  // namespace

extern "C" {{

long poetml_n_inputs() {{ return {n_in}; }}
long poetml_n_outputs() {{ return {n_out}; }}

// x: n x {n_in} doubles, y: n x {n_out} doubles (row-major)
void poetml_predict(const double *x, double *y, long n) {{
    for (long i = 0; i < n; ++i) {{
        {project}_double(const_cast<double *>(x + i * {n_in}), y + i * {n_out});
    }}
}}

#ifdef POETML_WITH_TRIGGER
// Runs the synthesizable trigger_decision() on each event: fire bit and score.
void poetml_trigger(const double *x, unsigned char *fire, double *score, long n) {{
    for (long i = 0; i < n; ++i) {{
{trigger_body}
        fire[i] = f ? 1 : 0;
        score[i] = s.to_double();
    }}
}}
#endif
}}
"""

_TRIGGER_BODY_STREAM = """\
        hls::stream<{in_type}> in_s("in");
        nnet::convert_data<double, {in_type}, {n_in}>(const_cast<double *>(x + i * {n_in}), in_s);
        trigger_score_t s;
        bool f;
        trigger_decision(in_s, s, f);"""

_TRIGGER_BODY_PARALLEL = """\
        {in_type} in_ap[{n_in}];
        nnet::convert_data<double, {in_type}, {n_in}>(const_cast<double *>(x + i * {n_in}), in_ap);
        trigger_score_t s;
        bool f;
        trigger_decision(in_ap, s, f);"""


def _run(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_all(procs: list[tuple[list[str], subprocess.Popen]], cwd: Path) -> None:
    failed = []
    for cmd, proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"$ {' '.join(cmd)}\n{out.decode(errors='replace')[-4000:]}")
    if failed:
        raise FirmwareError(f"C++ compilation in {cwd} failed:\n" + "\n".join(failed))


def build_csim_library(
    project_dir: str | Path, sig: TopSignature, with_trigger: bool = False
) -> Path:
    """Compile the batched C simulation of the project in ``project_dir``; return the library.

    The top function's object file is built once and reused; with ``with_trigger`` the library
    also holds ``firmware/trigger.cpp`` and the batched ``poetml_trigger`` entry point.
    """
    if shutil.which("g++") is None:
        raise FirmwareError("g++ is needed to compile the C simulation but is not on PATH")
    project_dir = Path(project_dir).resolve()
    build = project_dir / BUILD_DIR
    build.mkdir(exist_ok=True)
    body = (_TRIGGER_BODY_STREAM if sig.io_stream else _TRIGGER_BODY_PARALLEL).format(
        in_type=sig.in_type, n_in=sig.n_in
    )
    src = project_dir / "poetml_csim.cpp"
    src.write_text(
        _CSIM_CPP.format(project=sig.project, n_in=sig.n_in, n_out=sig.n_out, trigger_body=body)
    )
    flags = compile_flags()
    inc = [
        "-I",
        str(project_dir),
        "-I",
        str(project_dir / "firmware"),
        "-I",
        str(project_dir / "firmware" / "ap_types"),
    ]
    weights = f'-DWEIGHTS_DIR="{project_dir / "firmware" / "weights"}"'
    top_obj = build / f"{sig.project}.o"
    top_src = project_dir / "firmware" / f"{sig.project}.cpp"
    procs = []
    if not top_obj.exists() or top_obj.stat().st_mtime < top_src.stat().st_mtime:
        cmd = ["g++", *flags, *inc, weights, "-c", str(top_src), "-o", str(top_obj)]
        procs.append((cmd, _run(cmd, project_dir)))
    tag = "trigger" if with_trigger else "csim"
    objs = [top_obj]
    defines = ["-DPOETML_WITH_TRIGGER"] if with_trigger else []
    cmd = [
        "g++",
        *flags,
        *inc,
        weights,
        *defines,
        "-c",
        str(src),
        "-o",
        str(build / f"poetml_{tag}.o"),
    ]
    procs.append((cmd, _run(cmd, project_dir)))
    objs.append(build / f"poetml_{tag}.o")
    if with_trigger:
        cmd = [
            "g++",
            *flags,
            *inc,
            weights,
            "-c",
            str(project_dir / "firmware" / "trigger.cpp"),
            "-o",
            str(build / "trigger.o"),
        ]
        procs.append((cmd, _run(cmd, project_dir)))
        objs.append(build / "trigger.o")
    _wait_all(procs, project_dir)
    lib = build / f"poetml_{tag}.so"
    tmp = temp_path(lib)  # unique per process: two builds of one project never collide
    cmd = ["g++", *flags, "-shared", *map(str, objs), "-o", str(tmp)]
    _wait_all([(cmd, _run(cmd, project_dir))], project_dir)
    tmp.replace(lib)
    return lib


class CSim:
    """A compiled batched C simulation, run on ``workers`` threads with private library copies.

    ``predict(x)`` returns ``(n, n_out)`` float64 outputs of the C simulation for ``(n, ...)``
    inputs (flattened per event in C order, as hls4ml does); ``trigger(x)`` returns the fire bits
    and scores of ``trigger_decision`` when the library was built with the trigger.
    """

    def __init__(self, library: str | Path, workers: int = 0, chunk: int = 2048):
        self.library = Path(library)
        self.workers = workers or default_workers()
        self.chunk = chunk
        self._tmp = tempfile.TemporaryDirectory(prefix="poetml_csim_")
        self._libs = []
        for i in range(self.workers):
            copy = Path(self._tmp.name) / f"worker{i}_{self.library.name}"
            shutil.copyfile(self.library, copy)
            lib = ctypes.CDLL(str(copy))
            dptr = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
            lib.poetml_predict.argtypes = [dptr, dptr, ctypes.c_long]
            lib.poetml_predict.restype = None
            if hasattr(lib, "poetml_trigger"):
                lib.poetml_trigger.argtypes = [
                    dptr,
                    np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS"),
                    dptr,
                    ctypes.c_long,
                ]
                lib.poetml_trigger.restype = None
            self._libs.append(lib)
        self.n_in = int(self._libs[0].poetml_n_inputs())
        self.n_out = int(self._libs[0].poetml_n_outputs())
        self.has_trigger = hasattr(self._libs[0], "poetml_trigger")

    def close(self) -> None:
        self._libs.clear()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        flat = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float64)
        if flat.shape[1] != self.n_in:
            raise FirmwareError(
                f"C simulation expects {self.n_in} input values per event, got {flat.shape[1]} "
                f"(input shape {x.shape})"
            )
        return flat

    def _parallel(self, n: int, work, progress: bool, desc: str) -> None:
        # at most self.chunk events per call, but small batches still split over all workers
        chunk = max(1, min(self.chunk, -(-n // (4 * self.workers))))
        starts = list(range(0, n, chunk))
        bar = None
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=desc, unit="ev", leave=False)
        lock = threading.Lock()

        def run(w: int) -> None:
            lib = self._libs[w]
            for s in starts[w :: self.workers]:
                e = min(s + chunk, n)
                work(lib, s, e)
                if bar is not None:
                    with lock:
                        bar.update(e - s)

        # worker w owns library copy w for the whole run, so no library runs on two threads
        if n:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(run, range(min(self.workers, len(starts)))))
        if bar is not None:
            bar.close()

    def predict(self, x: np.ndarray, progress: bool = True) -> np.ndarray:
        """C-simulation outputs ``(n, n_out)`` float64 for the events in ``x``."""
        flat = self._inputs(x)
        y = np.zeros((len(flat), self.n_out), np.float64)

        def work(lib, s, e):
            lib.poetml_predict(flat[s:e], y[s:e], e - s)

        self._parallel(len(flat), work, progress, "C simulation")
        return y

    def trigger(self, x: np.ndarray, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(fire, score)`` of the HLS ``trigger_decision`` function for each event."""
        if not self.has_trigger:
            raise FirmwareError(f"{self.library} was built without the trigger function")
        flat = self._inputs(x)
        fire = np.zeros(len(flat), np.uint8)
        score = np.zeros(len(flat), np.float64)

        def work(lib, s, e):
            lib.poetml_trigger(flat[s:e], fire[s:e], score[s:e], e - s)

        self._parallel(len(flat), work, progress, "trigger C simulation")
        return fire.astype(bool), score
