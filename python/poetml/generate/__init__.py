"""Event generation: Pythia 8 + FastJet + a parametric CMS-like detector -> POET ntuples.

    from poetml.generate import generate, generate_default, PROCESSES
    generate("dy", events=2000, output="dy.root", seed=1)          # POET layout
    manifest = generate_default("data/default")                    # labelled default dataset

Events are generated in fixed-size chunks; chunk ``k`` gets its own Pythia instance seeded
from ``(seed, k)`` and its own detector random stream, and chunks are written in order, so
the same ``(process, events, seed, chunk_size, settings)`` gives the same file contents
whatever the number of worker processes.  ``pythia8mc`` and ``fastjet`` are imported
lazily (``pip install 'poetml[generate]'``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import write_text
from .detector import (
    DETECTOR_REVISION,
    DetectorConfig,
    DetectorOutput,
    dimuon_accept,
    flatten_batch,
    simulate,
)
from .pileup import DEFAULT_POOL_SIZE, PILEUP_PTHAT_BELOW
from .processes import (
    COMMON_SETTINGS,
    PROCESSES,
    DimuonFilter,
    Process,
    forced_decay_ids,
    get_process,
    pythia_settings,
)
from .writer import LAYOUTS, NTUPLE_FORMAT, NtupleWriter

__all__ = [
    "COMMON_SETTINGS",
    "DEFAULT_DATASET",
    "LAYOUTS",
    "ON_REQUEST",
    "PROCESSES",
    "DetectorConfig",
    "DimuonFilter",
    "Process",
    "generate",
    "generate_default",
    "get_process",
    "make_pythia",
    "measure_cross_section",
]

#: events per chunk (one Pythia instance and one seed per chunk)
DEFAULT_CHUNK_SIZE = 1000


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def make_pythia(settings: Sequence[str]):
    """An initialised ``pythia8mc.Pythia`` with ``settings`` (no banner)."""
    from .._optional import require

    pythia8mc = require("pythia8mc", "event generation")
    p = pythia8mc.Pythia("", False)
    for line in settings:
        if not p.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    if not p.init():
        raise RuntimeError(f"Pythia initialisation failed with settings {list(settings)}")
    return p


def next_events(pythia, n: int):
    """Exactly ``n`` events from ``pythia.nextBatch`` (failed events are skipped and topped up)."""
    import awkward as ak

    parts = []
    got = 0
    for _ in range(100):
        b = pythia.nextBatch(n - got)
        parts.append(b)
        got += len(b)
        if got >= n:
            break
    else:
        raise RuntimeError(f"Pythia failed to produce {n} events (got {got})")
    return parts[0] if len(parts) == 1 else ak.concatenate(parts)


def _chunk_seeds(seed: int, chunk: int) -> tuple[int, np.random.SeedSequence, int]:
    ss = np.random.SeedSequence([int(seed), int(chunk)])
    pythia_seed, pu_seed = (int(s) % 900_000_000 + 1 for s in ss.generate_state(2))
    return pythia_seed, np.random.SeedSequence([int(seed), int(chunk), 1]), pu_seed


@dataclass(frozen=True)
class _Job:
    process: str
    chunk: int
    n: int
    seed: int
    mpi: bool
    pileup: float
    pthat_min: float | None
    extra: tuple[str, ...]
    detector: DetectorConfig
    filter: bool = True
    pthat_max: float | None = None
    bias_pow: float | None = None
    pool: str | None = None  # the pile-up pool file (.npz), when pileup > 0


@dataclass
class _ChunkResult:
    """What one chunk returns: the detector output, Pythia's cross section and its error
    [pb] (before any generator filter; with the forced BRs of resonances only), the events
    tried, each event's relative weight (Pythia's event weight x the forced branching
    ratios Pythia leaves out, see :func:`forced_fractions`) and those fractions."""

    out: DetectorOutput
    sigma_pb: float
    sigma_err_pb: float
    tried: int
    rel_weight: np.ndarray
    forced: dict[int, float]
    pthat: np.ndarray | None = None
    pileup_pthat: np.ndarray | None = None


#: most events one filtered generation call asks Pythia for (memory bound)
_FILTER_BATCH_MAX = 4000


def next_filtered_events(pythia, n: int, filt: DimuonFilter):
    """The first ``n`` events of ``pythia``'s stream that pass ``filt``, and how many events
    were tried up to and including the ``n``-th accepted one (so the count does not depend on
    how the stream is cut into batches)."""
    import awkward as ak

    kept = []
    got = tried = 0
    eff = 0.2  # first guess, updated from the events so far
    while got < n:
        need = n - got
        ask = int(min(_FILTER_BATCH_MAX, max(50, np.ceil(1.3 * need / max(eff, 1e-3)))))
        b = next_events(pythia, ask)
        acc = np.flatnonzero(
            dimuon_accept(flatten_batch(b), filt.min_pt, filt.max_eta, filt.parent)
        )
        if len(acc) >= need:
            acc = acc[:need]
            tried += int(acc[-1]) + 1
        else:
            tried += len(b)
        got += len(acc)
        if len(acc):
            kept.append(b[acc])
        eff = (got + 0.5) / (tried + 1.0)
        if got == 0 and tried >= 200_000:
            raise RuntimeError(
                f"no event of {tried} passed the generator filter {filt}; loosen it or "
                "raise the pT-hat threshold"
            )
    batch = kept[0] if len(kept) == 1 else ak.concatenate(kept)
    return ak.to_packed(batch), tried


def forced_fractions(pythia, ids: Sequence[int]) -> dict[int, float]:
    """particle id -> the fraction of its decays left on (sum of the branching ratios of
    the open channels over all), from ``pythia``'s decay table, for the ids that are *not*
    resonances (Pythia's cross section already includes the forced BRs of resonances)."""
    pd = pythia.particleData
    out = {}
    for pid in ids:
        if pd.isResonance(pid):
            continue
        e = pd.particleDataEntryPtr(pid)
        chans = [e.channel(i) for i in range(e.sizeChannels())]
        total = sum(c.bRatio() for c in chans)
        out[int(pid)] = float(sum(c.bRatio() for c in chans if c.onMode() > 0) / total)
    return out


def _nominal_weights(batch) -> np.ndarray:
    """Pythia's nominal weight of each event (1 without a bias)."""
    import awkward as ak

    return ak.to_numpy(ak.firsts(batch["info"]["weights"], axis=-1)).astype(np.float64)


def _pthat(batch) -> np.ndarray:
    """Each event's pT-hat [GeV]: sqrt of Pythia's pT2Hat (0 for 2 -> 1 processes and
    diffraction)."""
    import awkward as ak

    return np.sqrt(np.maximum(ak.to_numpy(batch["info"]["pT2Hat"]), 0.0)).astype(np.float32)


def _forced_factors(batch, forced: dict[int, float]) -> np.ndarray:
    """Per event: the product of ``forced[id]`` over every decaying particle with such an id
    (the last copy in the record: its first daughter has another id)."""
    import awkward as ak

    ids = batch["prt"]["id"]
    w = np.ones(len(ids))
    if not forced:
        return w
    d1 = batch["prt"]["daughter1"]
    counts = ak.num(ids)
    flat_id = ak.to_numpy(ak.flatten(ids))
    flat_d1 = ak.to_numpy(ak.flatten(d1))
    starts = np.concatenate([[0], np.cumsum(ak.to_numpy(counts))[:-1]]).astype(np.int64)
    ev = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    dpos = starts[ev] + flat_d1
    has_d = (flat_d1 > 0) & (dpos < len(flat_id))
    decays = has_d & (flat_id[np.where(has_d, dpos, 0)] != flat_id)
    for pid, frac in forced.items():
        n = np.bincount(ev[decays & (np.abs(flat_id) == pid)], minlength=len(counts))
        w = w * frac**n
    return w


def _run_chunk(job: _Job) -> _ChunkResult:
    """Generate, simulate and return one chunk (runs in a worker process)."""
    pseed, dseed, _ = _chunk_seeds(job.seed, job.chunk)
    proc = get_process(job.process)
    settings = pythia_settings(
        job.process,
        seed=pseed,
        mpi=job.mpi,
        pthat_min=job.pthat_min,
        pthat_max=job.pthat_max,
        bias_pow=job.bias_pow,
        extra=job.extra,
    )
    pythia = make_pythia(settings)
    forced = forced_fractions(pythia, forced_decay_ids(proc))
    filt = proc.filter if job.filter else None
    if filt is None:
        batch, tried = next_events(pythia, job.n), job.n
    else:
        batch, tried = next_filtered_events(pythia, job.n, filt)
    info = pythia.infoPython()
    sigma_pb = float(info.sigmaGen()) * 1e9
    sigma_err_pb = float(info.sigmaErr()) * 1e9
    nominal = _nominal_weights(batch)
    # Pythia's weights normalised to mean 1 over the chunk, times the forced BRs
    rel = nominal / nominal.mean() * _forced_factors(batch, forced)
    rng = np.random.default_rng(dseed)
    parts = flatten_batch(batch)
    pu_pthat = np.zeros(job.n, np.float32)
    if job.pileup > 0:
        from .pileup import read_pool

        pool = read_pool(str(job.pool))
        parts.pu = pool.overlay(rng.poisson(job.pileup, job.n), rng)
        pu_pthat = parts.pu.pop("pthat_max").astype(np.float32)
    out = simulate(parts, rng, job.detector)
    return _ChunkResult(out, sigma_pb, sigma_err_pb, tried, rel, forced, _pthat(batch), pu_pthat)


def _check_output(output: str | os.PathLike[str]) -> Path:
    path = Path(output)
    if path.is_dir():
        raise ValueError(
            f"output {str(path)!r} is a directory; give a file name such as {str(path / 'events.root')!r}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory {str(parent)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"output file {str(path)!r} exists and is not writable")
    return path


@dataclass
class _Task:
    """One output file: its validated arguments and its chunks."""

    proc: Process
    path: Path
    layout: str
    jobs: list[_Job]
    seed: int
    mpi: bool
    pileup: float
    pool: dict[str, Any] | None = None


def _prepare(
    process: str,
    events: int,
    output: str | os.PathLike[str],
    *,
    seed: int,
    layout: str,
    workers: int | None,
    mpi: bool,
    pileup: float,
    pthat_min: float | None,
    extra_settings: Sequence[str],
    chunk_size: int,
    detector: DetectorConfig | None,
    gen_filter: bool = True,
    pthat_max: float | None = None,
    bias_pow: float | None = None,
    pool: str | None = None,
) -> _Task:
    """Check every argument (before any work) and split the run into chunks."""
    proc = get_process(process)
    if isinstance(events, bool) or not isinstance(events, (int, np.integer)) or events <= 0:
        raise ValueError(f"events must be a positive integer, got {events!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    if not pileup >= 0 or not np.isfinite(pileup):
        raise ValueError(f"pileup must be a finite mean >= 0, got {pileup!r}")
    if pthat_min is not None or pthat_max is not None or bias_pow is not None:
        # raises the explanatory error for a process without pT-hat or a bad range
        pythia_settings(proc, seed=1, pthat_min=pthat_min, pthat_max=pthat_max, bias_pow=bias_pow)
    if bias_pow is not None and gen_filter and proc.filter is not None:
        raise ValueError(
            f"process {proc.name!r} has a generator filter, which poetml does not combine with "
            "a pT-hat bias (the filter efficiency would need Pythia's weights); use pT-hat "
            "bins (pthat_min / pthat_max) or gen_filter=False"
        )
    path = _check_output(output)
    det = detector or DetectorConfig()
    n_chunks = -(-int(events) // chunk_size)
    jobs = [
        _Job(
            proc.name,
            k,
            min(chunk_size, int(events) - k * chunk_size),
            int(seed),
            bool(mpi),
            float(pileup),
            pthat_min,
            tuple(extra_settings),
            det,
            bool(gen_filter),
            None if pthat_max is None else float(pthat_max),
            None if bias_pow is None else float(bias_pow),
            pool if pileup > 0 else None,
        )
        for k in range(n_chunks)
    ]
    return _Task(proc, path, layout, jobs, int(seed), bool(mpi), float(pileup))


def _execute(
    tasks: list[_Task], workers: int | None, progress: bool, desc: str | None = None
) -> list[dict[str, Any]]:
    """Run the chunks of all tasks on one pool (all queued at once, so no core idles between
    files) and write each file's chunks in order.  Returns one summary per task."""
    from tqdm.auto import tqdm

    from .._optional import require

    require("pythia8mc", "event generation")
    require("fastjet", "jet clustering in poetml.generate")
    n_jobs = sum(len(t.jobs) for t in tasks)
    nproc = max(1, min(workers or _available_cores(), n_jobs))
    total = sum(j.n for t in tasks for j in t.jobs)
    name = desc or f"generate {tasks[0].proc.name}"
    bar = tqdm(total=total, desc=name, unit="ev", disable=not progress)
    summaries = []
    pool = None
    try:
        if nproc > 1:
            import multiprocessing as mp

            # spawn, not fork: the caller may hold threads (TensorFlow, tqdm) that fork breaks
            pool = ProcessPoolExecutor(nproc, mp_context=mp.get_context("spawn"))
            futures = [[pool.submit(_run_chunk, j) for j in t.jobs] for t in tasks]
        for ti, task in enumerate(tasks):
            t0 = time.perf_counter()
            results = (f.result() for f in futures[ti]) if pool else map(_run_chunk, task.jobs)
            chunks: list[tuple[int, float, float, int, float]] = []
            forced: dict[int, float] = {}
            if len(tasks) > 1:
                bar.set_postfix_str(task.proc.name)
            n_total = sum(j.n for j in task.jobs)
            with NtupleWriter(task.path, task.layout) as writer:
                for job, res in zip(task.jobs, results, strict=False):
                    # pb per event: this chunk's sigma x filter efficiency x the event's
                    # relative weight (Pythia weight, forced BRs) / events in the file, so
                    # the file's weights sum to sigma x efficiency x BR
                    eff = job.n / res.tried
                    weight = res.sigma_pb * eff * res.rel_weight / n_total
                    writer.write(
                        res.out, weight=weight, pthat=res.pthat, pileup_pthat=res.pileup_pthat
                    )
                    chunks.append(
                        (job.n, res.sigma_pb, res.sigma_err_pb, res.tried, float(weight.sum()))
                    )
                    forced = res.forced
                    bar.update(job.n)
                summary = _file_summary(task, chunks, forced, nproc)
                writer.metadata = summary["metadata"]
            dt = time.perf_counter() - t0
            summary.update(
                seconds=dt,
                events_per_second=summary["events"] / dt if dt > 0 else float("inf"),
            )
            summaries.append(summary)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return summaries


def _file_summary(
    task: _Task,
    chunks: list[tuple[int, float, float, int, float]],
    forced: dict[int, float],
    nproc: int,
) -> dict[str, Any]:
    """The summary of one written file (without timing) and the metadata stored in it."""
    from .._version import __version__

    n = np.array([c[0] for c in chunks], float)
    sg = np.array([c[1] for c in chunks], float)
    err = np.array([c[2] for c in chunks], float)
    tried = np.array([c[3] for c in chunks], float)
    wsum = float(sum(c[4] for c in chunks))
    events = int(n.sum())
    tried_all = int(tried.sum())
    # Pythia's sigma of the file: chunks' estimates weighted by events tried; its error:
    # the chunks' errors combined as independent estimates
    sigma = float((tried * sg).sum() / tried.sum())
    sigma_err = float(np.sqrt(((tried / tried.sum()) ** 2 * err**2).sum()))
    job = task.jobs[0]
    filt = task.proc.filter if job.filter else None
    proc = task.proc
    br = wsum / (sigma * events / tried_all) if sigma > 0 else float("nan")
    metadata = {
        "generator": "Pythia 8 (pythia8mc) + FastJet + poetml parametric detector",
        "poetml_version": __version__,
        "detector_revision": DETECTOR_REVISION,
        "ntuple_format": NTUPLE_FORMAT,
        "process": proc.name,
        "title": proc.title,
        "kind": proc.kind,
        "events": events,
        "tried": tried_all,
        "filter": asdict(filt) if filt else None,
        "filter_efficiency": events / tried_all,
        "sigma_pb": sigma,
        "sigma_err_pb": sigma_err,
        "forced_branching_ratios": {str(k): v for k, v in forced.items()},
        "branching_ratio": br,
        "sigma_weighted_pb": wsum,
        "weights": (
            "per-event 'weight' branch [pb] = Pythia's leading-order cross section x filter "
            "efficiency x forced branching ratios Pythia leaves out x Pythia's event weight "
            "(bias) / events; sums to sigma_weighted_pb"
        ),
        "sigma_reference_pb": proc.sigma_ref_pb,
        "sigma_reference_source": proc.sigma_ref_source or None,
        "seed": task.seed,
        "chunk_size": max(j.n for j in task.jobs),
        "mpi": task.mpi,
        "pileup": task.pileup,
        "pileup_pool": task.pool,
        "pileup_pthat_below": PILEUP_PTHAT_BELOW if task.pileup > 0 else None,
        "pthat_min": job.pthat_min if job.pthat_min is not None else proc.pthat_min,
        "pthat_max": job.pthat_max,
        "bias_pow": job.bias_pow,
        "settings": pythia_settings(
            proc,
            seed=0,
            mpi=job.mpi,
            pthat_min=job.pthat_min,
            pthat_max=job.pthat_max,
            bias_pow=job.bias_pow,
        )[:-2]  # without the per-chunk seed lines
        + list(job.extra),
        "detector": asdict(job.detector),
    }
    return {
        "path": str(task.path),
        "process": proc.name,
        "events": events,
        "layout": task.layout,
        "seed": task.seed,
        "workers": nproc,
        "mpi": task.mpi,
        "pileup": task.pileup,
        "sigma_pb": sigma,
        "sigma_err_pb": sigma_err,
        "filter": metadata["filter"],
        "tried": tried_all,
        "filter_efficiency": events / tried_all,
        "sigma_filtered_pb": wsum,
        "branching_ratio": br,
        "metadata": metadata,
    }


def generate(
    process: str,
    events: int,
    output: str | os.PathLike[str],
    *,
    seed: int = 1,
    layout: str = "poet",
    workers: int | None = None,
    mpi: bool = True,
    pileup: float = 0.0,
    pthat_min: float | None = None,
    extra_settings: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    detector: DetectorConfig | None = None,
    progress: bool = True,
    gen_filter: bool = True,
    pthat_max: float | None = None,
    bias_pow: float | None = None,
    pileup_pool: int = DEFAULT_POOL_SIZE,
    pileup_cache: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Generate ``events`` events of ``process`` into the ROOT file ``output``.

    ``layout``: ``"poet"`` (one ``Events`` tree per analyzer directory) or ``"merged"``
    (one ``events`` tree).  ``workers``: processes (default: all available cores).
    ``mpi``: multi-parton interactions.  ``pileup``: mean number of overlaid minimum-bias
    events (Poisson), 0 for none; they are drawn from a premixed pool of ``pileup_pool``
    minimum-bias events generated once and cached in ``pileup_cache`` (default
    ``~/.cache/poetml/pileup``; see :mod:`poetml.generate.pileup`).  ``pthat_min``: ``PhaseSpace:pTHatMin`` for processes
    that take one (``qcd``, ``jpsi``).  ``chunk_size`` is part of the seed's identity: the
    same seed and chunk size give the same file for any number of workers.  All arguments
    are checked before any work.  ``gen_filter``: apply the process's generator-level
    filter (:class:`DimuonFilter`, quarkonia), if it has one; events are generated until
    ``events`` pass it.  ``pthat_max``: upper edge of a pT-hat bin (files of adjacent bins
    combine by concatenation: their weights add up to the inclusive spectrum);
    ``bias_pow``: ``PhaseSpace:bias2Selection`` with weight ``(pT-hat / pthat_min)^-pow``
    per event, so the tail of a falling spectrum is populated.

    Every file carries a per-event ``weight`` branch in pb (in ``mygenparticles/Events``, or
    ``events`` in the merged layout) whose sum is the cross section of the generated
    sample, and its metadata as the JSON string ``poetml_generation`` (see
    :func:`read_metadata`; ``poetml inspect`` shows it).

    Returns a summary: path, process, events, seconds, events per second, the cross
    section Pythia measured (``sigma_pb`` and ``sigma_err_pb``: pb, with the forced
    branching ratios of resonances, before the filter), ``filter`` (its parameters or
    None), ``tried`` (events generated up to the last accepted one), ``filter_efficiency``
    (events / tried), ``branching_ratio`` (the forced BRs Pythia leaves out, averaged over
    the events: J/psi -> mu mu and feed-down) and ``sigma_filtered_pb`` (the sum of the
    event weights: sigma_pb x filter_efficiency x branching_ratio), ``metadata`` (what the
    file stores).
    """
    task = _prepare(
        process,
        events,
        output,
        seed=seed,
        layout=layout,
        workers=workers,
        mpi=mpi,
        pileup=pileup,
        pthat_min=pthat_min,
        extra_settings=extra_settings,
        chunk_size=chunk_size,
        detector=detector,
        gen_filter=gen_filter,
        pthat_max=pthat_max,
        bias_pow=bias_pow,
    )
    _attach_pool(task, pileup_pool, pileup_cache)
    return _execute([task], workers, progress)[0]


def _attach_pool(
    task: _Task, size: int, cache: str | os.PathLike[str] | None, *, seed: int = 7
) -> None:
    """Give ``task``'s chunks the pile-up pool (loaded or generated once) when it has
    pile-up; the pool is recorded in the task for the file's metadata."""
    if task.pileup <= 0:
        return
    from dataclasses import replace

    from .pileup import load_pool

    pool = load_pool(size, seed=seed, cache_dir=cache)
    task.jobs = [replace(j, pool=pool.path) for j in task.jobs]
    task.pool = {
        "file": Path(pool.path).name,
        "events": pool.n_events,
        "seed": seed,
        "sigma_pb": pool.sigma_pb,
    }


def measure_cross_section(
    process: str,
    events: int = 2000,
    *,
    seed: int = 1,
    mpi: bool = False,
    pthat_min: float | None = None,
) -> tuple[float, float]:
    """(sigma, error) in pb that Pythia reports for ``process`` after ``events`` events."""
    p = make_pythia(pythia_settings(process, seed=seed, mpi=mpi, pthat_min=pthat_min))
    next_events(p, events)
    info = p.infoPython()
    return float(info.sigmaGen()) * 1e9, float(info.sigmaErr()) * 1e9


# --------------------------------------------------------------------------------------
# the default labelled dataset
# --------------------------------------------------------------------------------------

#: process -> events in the default dataset (labels follow this order).  Sized from the
#: measured speeds (README, section generate): 18000 events, MPI on, an estimated 3-5
#: minutes on 2 idle cores, leaving most of a ~15 minute main job for images and training.
DEFAULT_DATASET: dict[str, int] = {
    "dy": 2000,
    "wjets": 2000,
    "ttbar": 2000,
    "qcd": 2000,
    "jpsi": 2000,
    "hzz4l": 2000,
    "zprime": 1000,
    "zprime_ww": 1000,
    "a4l": 1000,
    "lq_btau": 1000,
    "h0_tautau": 1000,
    "hplus_taunu": 1000,
}

#: processes a run's default dataset generates only when its configuration names them
#: (not part of ``poetml generate --default``), with their default event counts: minimum
#: bias, the zero-bias stream's soft crossings
ON_REQUEST: dict[str, int] = {"minbias": 2000}

MANIFEST_NAME = "manifest.json"


def _default_index(name: str) -> int:
    """The stable position of process ``name`` in the default dataset: its label, and the
    offset of its seed (``seed + 1000 * index``).  Processes outside :data:`DEFAULT_DATASET`
    follow it in catalogue order."""
    order = list(DEFAULT_DATASET)
    if name in DEFAULT_DATASET:
        return order.index(name)
    extra = [p for p in PROCESSES if p not in DEFAULT_DATASET]
    return len(order) + extra.index(name)


def _default_settings(
    name: str,
    events: int,
    seed: int,
    mpi: bool,
    pileup: float,
    chunk_size: int,
    detector: DetectorConfig,
    bias_pow: float | None = None,
) -> dict[str, Any]:
    """Everything that decides the file of process ``name`` in the default dataset (``seed``
    is the process's own seed)."""
    from .._version import __version__

    proc = get_process(name)
    return {
        "poetml_version": __version__,
        "process": name,
        "events": events,
        "seed": seed,
        "mpi": mpi,
        "pileup": pileup,
        "chunk_size": chunk_size,
        "layout": "poet",
        "detector": asdict(detector),
        "detector_revision": DETECTOR_REVISION,
        "ntuple_format": NTUPLE_FORMAT,
        "settings": list(proc.settings),
        "pthat_min": proc.pthat_min,
        "filter": _filter_dict(proc.filter),
        "common_settings": list(COMMON_SETTINGS),
        # only when set, so the cache keys of unbiased processes stay what they were
        **({} if bias_pow is None else {"bias_pow": float(bias_pow)}),
    }


def _filter_dict(filt: DimuonFilter | None) -> dict[str, Any] | None:
    return asdict(filt) if filt is not None else None


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``settings``."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _write_manifest(path: Path, processes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entries = dict(sorted(processes.items(), key=lambda kv: int(kv[1]["label"])))
    manifest = {
        "labels": {name: e["label"] for name, e in entries.items()},
        "processes": entries,
    }
    text = json.dumps(manifest, indent=2, sort_keys=False)
    try:
        same = path.read_text() == text
    except OSError:
        same = False
    if not same:
        write_text(path, text)
    return dict(json.loads(text))  # the same value a later call reads back


def generate_default(
    directory: str | os.PathLike[str],
    *,
    events: dict[str, int] | None = None,
    scale: float = 1.0,
    seed: int = 12345,
    mpi: bool = True,
    pileup: float = 0.0,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    detector: DetectorConfig | None = None,
    progress: bool = True,
    force: bool = False,
    bias: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Write (or reuse) the labelled default dataset in ``directory``; return its manifest.

    ``bias``: per process, the power of ``PhaseSpace:bias2Selection`` (weighted events that
    populate the pT-hat tail; the ``weight`` branch carries it).

    ``events`` names the processes to provide and their counts (default: all of
    :data:`DEFAULT_DATASET`); ``scale`` multiplies the counts.  The manifest
    (``manifest.json``) maps each process to its file, integer label (its position in
    :data:`DEFAULT_DATASET`, whatever subset is generated), kind (background / signal),
    event count, seed (``seed + 1000 * label``), Pythia settings, cross section and, for
    filtered processes (J/psi), the generator filter, the events tried and the filter
    efficiency; ``sigma_filtered_pb`` = ``sigma_pb`` x efficiency x the forced branching
    ratios Pythia leaves out = the sum of the file's ``weight`` branch [pb].  With
    ``pileup`` > 0 the pile-up pool is cached in ``directory/pileup``.

    The cache is per process: each entry stores the SHA-256 (``settings_hash``) of
    everything that decides its file (process, count, seed, MPI, pile-up, chunk size,
    detector and its revision, poetml version).  A requested process is generated only when
    it has no entry, its hash differs, or its file is missing or has another number of
    entries (``force``: always); processes in the manifest that are not requested are kept.
    All processes to generate share one pool of ``workers`` (default: all cores).
    """
    counts = dict(events if events is not None else DEFAULT_DATASET)
    for name in counts:
        get_process(name)
    bias = {k: float(v) for k, v in (bias or {}).items() if k in counts}
    counts = {k: max(1, round(v * scale)) for k, v in counts.items()}
    det = detector or DetectorConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mpath = directory / MANIFEST_NAME
    old: dict[str, dict[str, Any]] = {}
    if mpath.exists():
        try:
            read = json.loads(mpath.read_text())
            old = {
                k: v
                for k, v in dict(read["processes"]).items()
                if isinstance(v, dict) and "settings_hash" in v
            }
        except (OSError, ValueError, KeyError, TypeError):
            old = {}
    wanted: dict[str, tuple[int, int, dict[str, Any], str]] = {}
    for name, n in counts.items():
        label = _default_index(name)
        pseed = int(seed) + 1000 * label
        settings = json.loads(
            json.dumps(
                _default_settings(
                    name, n, pseed, bool(mpi), float(pileup), chunk_size, det, bias.get(name)
                )
            )
        )
        wanted[name] = (label, pseed, settings, settings_hash(settings))
    todo = [
        name
        for name, (_, _, _, digest) in wanted.items()
        if force
        or name not in old
        or old[name].get("settings_hash") != digest
        or not _file_ok(directory, old[name])
    ]
    if not todo:
        return _write_manifest(mpath, old)
    tasks = [
        _prepare(
            name,
            counts[name],
            directory / f"{name}.root",
            seed=wanted[name][1],
            layout="poet",
            workers=workers,
            mpi=mpi,
            pileup=pileup,
            pthat_min=None,
            extra_settings=(),
            chunk_size=chunk_size,
            detector=det,
            bias_pow=bias.get(name),
        )
        for name in todo
    ]
    for task in tasks:  # one pool for the dataset, cached beside it
        _attach_pool(task, DEFAULT_POOL_SIZE, directory / "pileup")
    for name in todo:  # a run stopped half-way leaves no entry claiming a rewritten file
        old.pop(name, None)
    _write_manifest(mpath, old)
    summaries = _execute(tasks, workers, progress, desc="default dataset")
    for name, summary in zip(todo, summaries, strict=True):
        proc = get_process(name)
        label, pseed, settings, digest = wanted[name]
        old[name] = {
            "file": f"{name}.root",
            "label": label,
            "kind": proc.kind,
            "title": proc.title,
            "events": counts[name],
            "seed": pseed,
            "settings": list(proc.settings),
            "sigma_pb": summary["sigma_pb"],
            "sigma_err_pb": summary["sigma_err_pb"],
            "sigma_reference_pb": proc.sigma_ref_pb,
            "branching_ratio": summary["branching_ratio"],
            "filter": summary["filter"],
            "tried": summary["tried"],
            "filter_efficiency": summary["filter_efficiency"],
            "sigma_filtered_pb": summary["sigma_filtered_pb"],
            "bias_pow": bias.get(name),
            "pileup": float(pileup),
            "settings_hash": digest,
            "generation": settings,
        }
    return _write_manifest(mpath, old)


def _file_ok(directory: Path, entry: dict[str, Any]) -> bool:
    """``entry``'s file is there with its number of events."""
    import uproot

    try:
        with uproot.open(directory / entry["file"]) as f:
            return bool(f["mymuons/Events"].num_entries == entry["events"])
    except Exception:  # noqa: BLE001 - any unreadable file means: regenerate
        return False
