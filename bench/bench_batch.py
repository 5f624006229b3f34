"""Benchmarks of ``poetml batch`` (dask.distributed LocalCluster, real files).

(a) memory: peak resident memory of a worker process against the step size, on a POET
    file of at least 2 GB and on one 4 times smaller: it follows the step size and not the
    file size.
(b) throughput: events per second from ROOT files to image shards with 1 and 2 worker
    processes (1 thread each); the ratio 2 workers / 1 worker is printed.

Inputs are generated in a temporary folder (uncompressed random POET events, so the file
is big for its event count) and deleted at the end.  Run from the repository root::

    python bench/bench_batch.py                 # both parts
    python bench/bench_batch.py --only memory --big-gb 2.2
    python bench/bench_batch.py --only throughput --events 200000

Needs about 1.5 x --big-gb of free disk in --tmp (default: the system temp folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_poet_big(
    path: Path, n_events: int, *, seed: int = 0, chunk: int = 200_000, compression: object = None
) -> Path:
    """Write ``n_events`` random POET events (the analyzers' trees and branch names) in
    chunks of ``chunk`` events, so that writing needs little memory whatever the size."""
    import awkward as ak
    import uproot

    from poetml.schema import POET_COLLECTIONS

    rng = np.random.default_rng(seed)
    with uproot.recreate(path, compression=compression) as f:
        trees = {}
        for lo in range(0, n_events, chunk):
            n = min(chunk, n_events - lo)
            for coll in POET_COLLECTIONS.values():
                flat: dict[str, np.ndarray] = {}
                jagged: dict[str, object] = {}
                counts = rng.poisson({"jet": 5, "genparticle": 8}.get(coll.name, 1.5), n)
                total = int(counts.sum())
                prefix = None
                for b in coll.branches:
                    if b.name == coll.counter:
                        continue
                    if b.ctype.startswith("std::vector"):
                        prefix = b.name.split("_")[0]
                        if "int" in b.ctype:
                            vals = rng.integers(0, 2, total).astype(np.int32)
                        elif b.field == "eta" or b.name.endswith("_eta"):
                            vals = rng.uniform(-3, 3, total).astype(np.float32)
                        elif b.field == "phi" or b.name.endswith("_phi"):
                            vals = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
                        elif b.field in ("iso", "iso03", "btag"):
                            vals = rng.uniform(0, 0.3, total).astype(np.float32)
                        else:
                            vals = (rng.exponential(25.0, total) + 3).astype(np.float32)
                        jagged[b.name[len(prefix) + 1 :]] = ak.unflatten(vals, counts)
                    elif b.name.endswith("phi"):
                        flat[b.name] = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
                    else:
                        flat[b.name] = rng.exponential(30.0, n).astype(np.float32)
                directory = f"{coll.directory}/Events"
                data: dict[str, object] = dict(flat)
                if jagged:
                    data[prefix] = ak.zip(jagged)  # type: ignore[index]
                if directory not in trees:
                    types = {k: v.dtype for k, v in flat.items()}
                    if jagged:
                        types[prefix] = data[prefix].type.content  # type: ignore[index,union-attr]
                        counter = coll.counter[: -len(prefix)]  # type: ignore[index,arg-type]
                        trees[directory] = f.mktree(
                            directory, types, counter_name=lambda c, p=counter: p + c
                        )
                    else:
                        trees[directory] = f.mktree(directory, types)
                trees[directory].extend(data)
    return path


def events_for_bytes(target: int, tmp: Path) -> int:
    """Events needed for a file of ``target`` bytes, from a 20k-event sample."""
    sample = write_poet_big(tmp / "sample.root", 20_000, seed=99)
    per_event = sample.stat().st_size / 20_000
    sample.unlink()
    return int(target / per_event) + 1


def _cluster(workers: int):
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


def _baseline_rss(client) -> int:
    from poetml.batch.tasks import peak_rss

    return max(client.run(peak_rss).values())


def bench_memory(tmp: Path, big_gb: float, step_sizes: list[int], kind: str) -> list[dict]:
    from poetml import batch
    from poetml.features import FeatureSpec
    from poetml.images import ImageSpec

    spec = ImageSpec() if kind == "images" else FeatureSpec()
    n_big = events_for_bytes(int(big_gb * 1e9), tmp)
    t0 = time.perf_counter()
    big = write_poet_big(tmp / "big.root", n_big, seed=1)
    print(
        f"generated {big} : {big.stat().st_size / 1e9:.2f} GB, {n_big} events, "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    small = write_poet_big(tmp / "small.root", n_big // 4, seed=2)
    print(
        f"generated {small} : {small.stat().st_size / 1e9:.2f} GB, {n_big // 4} events", flush=True
    )
    rows = []
    for path in (small, big):
        for step in step_sizes:
            cluster, client = _cluster(1)
            try:
                base = _baseline_rss(client)
                out = tmp / f"out-{path.stem}-{step}"
                res = batch.run(
                    [path], out, kind, spec, step_size=step, client=client, progress=False
                )
                assert res.ok, res.summary()
                peak = max(t.peak_rss or 0 for t in batch.status(out).tasks)
                row = {
                    "file": path.name,
                    "file_gb": round(path.stat().st_size / 1e9, 3),
                    "events": res.n_events,
                    "step_size": step,
                    "tasks": res.n_tasks,
                    "worker_rss_before_mb": round(base / 2**20),
                    "worker_peak_rss_mb": round(peak / 2**20),
                    "seconds": round(res.seconds, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                shutil.rmtree(out)
            finally:
                client.close()
                cluster.close()
    big.unlink()
    small.unlink()
    return rows


def bench_throughput(tmp: Path, n_events: int, n_files: int, step: int, repeat: int) -> dict:
    from poetml import batch
    from poetml.images import ImageSpec

    files = [
        write_poet_big(tmp / f"tp{i}.root", n_events // n_files, seed=10 + i, compression=None)
        for i in range(n_files)
    ]
    total = sum(f.stat().st_size for f in files)
    print(
        f"throughput inputs: {n_files} files, {n_events} events, {total / 1e9:.2f} GB", flush=True
    )
    rates: dict[int, list[float]] = {1: [], 2: []}
    cores_used: dict[int, list[float]] = {1: [], 2: []}
    cpu_per_event: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeat):
        for workers in (1, 2):
            cluster, client = _cluster(workers)
            try:
                # warm the workers (imports) so that start-up is not timed
                client.run(lambda: __import__("poetml.batch") and None)
                out = tmp / f"tp-out-{workers}"
                t0 = time.perf_counter()
                res = batch.run(
                    files, out, "images", ImageSpec(), step_size=step, client=client, progress=False
                )
                dt = time.perf_counter() - t0
                assert res.ok, res.summary()
                cpu = sum(t.cpu_seconds or 0 for t in batch.status(out).tasks)
                rates[workers].append(res.n_events / dt)
                cores_used[workers].append(cpu / dt)
                cpu_per_event[workers].append(cpu / res.n_events * 1e6)
                print(
                    f"  {workers} worker(s): {res.n_events} events in {dt:.1f} s = "
                    f"{res.n_events / dt:,.0f} events/s; task CPU {cpu:.1f} s = "
                    f"{cpu / res.n_events * 1e6:.0f} us/event, {cpu / dt:.2f} cores busy "
                    f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                    flush=True,
                )
                shutil.rmtree(out)
            finally:
                client.close()
                cluster.close()
    for f in files:
        f.unlink()
    best1, best2 = max(rates[1]), max(rates[2])
    i1, i2 = rates[1].index(best1), rates[2].index(best2)
    return {
        "events": n_events,
        "files": n_files,
        "step_size": step,
        "repeat": repeat,
        "events_per_s_1_worker": round(best1),
        "events_per_s_2_workers": round(best2),
        "ratio_2_over_1": round(best2 / best1, 2),
        "cpu_count": os.cpu_count(),
        "cores_busy_1_worker": round(cores_used[1][i1], 2),
        "cores_busy_2_workers": round(cores_used[2][i2], 2),
        "task_cpu_us_per_event_1_worker": round(cpu_per_event[1][i1]),
        "task_cpu_us_per_event_2_workers": round(cpu_per_event[2][i2]),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("memory", "throughput"))
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="where inputs are generated")
    ap.add_argument("--big-gb", type=float, default=2.1, help="size of the big input")
    ap.add_argument("--steps", default="25000,100000,400000", help="step sizes (memory)")
    ap.add_argument("--memory-kind", default="features", choices=("images", "features"))
    ap.add_argument("--events", type=int, default=400_000, help="events (throughput)")
    ap.add_argument("--files", type=int, default=8, help="input files (throughput)")
    ap.add_argument("--step", type=int, default=25_000, help="step size (throughput)")
    ap.add_argument("--repeat", type=int, default=2, help="repetitions, best one kept")
    args = ap.parse_args(argv)

    free = shutil.disk_usage(args.tmp).free
    need = int(1.5 * args.big_gb * 1e9) if args.only != "throughput" else 0
    if free < need:
        print(
            f"not enough disk in {args.tmp}: {free / 1e9:.1f} GB free, need {need / 1e9:.1f}",
            file=sys.stderr,
        )
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="poetml-bench-batch-", dir=args.tmp))
    results: dict[str, object] = {"command": " ".join(["python", *sys.argv])}
    try:
        if args.only in (None, "throughput"):
            results["throughput"] = bench_throughput(
                tmp, args.events, args.files, args.step, args.repeat
            )
            print(json.dumps(results["throughput"]), flush=True)
        if args.only in (None, "memory"):
            steps = [int(s) for s in args.steps.split(",")]
            results["memory"] = bench_memory(tmp, args.big_gb, steps, args.memory_kind)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
