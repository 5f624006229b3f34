"""Benchmark of reading + rasterizing a POET file, and of the full ``poetml images`` command.

A POET file of ``--events`` random events (default 200k; about 2 muons, 0.5 electrons and
4 jets per event, every branch of every analyzer, uproot's default ZLIB compression) is
written into a temporary folder by the bench itself (``tests/conftest.py`` helpers), then:

(a) baseline: ``uproot`` alone reads the branches poetml reads (same trees, same step
    size, awkward arrays, uproot's defaults), the file being in the page cache (one warm-up
    read first); and the same with the baskets decompressed on a pool of all threads
    (``decompression_executor``), as ``poetml.iterate`` does;
(b) ``poetml.iterate`` alone (uproot + conversion to flat float32 columns + offsets);
(c) ``poetml.iterate`` + ``poetml.rasterize`` (32 x 32 x 4 histogram images, all threads):
    one rasterize call per chunk, or per ``--slice`` events (16 MiB of output that malloc
    reuses, instead of a fresh mmap whose page faults cost more than the kernel), each
    serially and with the next chunk read in a background thread (``reading.prefetch``)
    while the C++ core works on the current one.  Target: (c) / (a) <= 1.3;
(d) HDF5 storage of the images: bytes per event, write and read time of poetml's writer
    (deflate level 1, no shuffle, chunks compressed on a thread pool and
    written directly) against h5py's own filters (gzip levels, lzf, with and without
    byte shuffle);
(e) the full ``poetml images FILE -o OUT.h5`` command in a subprocess (Python start-up,
    reading, rasterizing, compressed HDF5 write), sparse (the default) and
    ``--image-layout dense``: events/s and output bytes/event, and
    ``RATIO images_cli/uproot_read`` (sparse command vs (a), events/s; target >= 0.5) and
    ``RATIO images_cli/uproot_read_threaded`` (against uproot decompressing on all
    threads too); one untimed run first, poetml's bytecode cached as an installed
    package has it; and ``RATIO images_cli/uproot_read_script``, against the uproot read
    of (a) run as a script in its own interpreter (start-up and imports included on both
    sides);
(f) densifying sparse training batches (``poetml.training.batches``: a shuffled batch
    taken from the sparse split and densified) against the DTW CNN's training events/s
    (``configs/dtw_cnn.yaml``, float, ``model.fit`` on dense arrays in memory):
    ``RATIO densify/cnn_training`` (target >= 10);
(g) ``poetml batch images`` (sparse shards) on LocalClusters of 2 and 1 worker processes,
    already started: ``RATIO batch_2workers/1worker`` (target >= 1.8).

Every time is the best of ``--repeat`` runs.  Run from the repository root::

    python bench/bench_read.py                 # everything, 200k events
    python bench/bench_read.py --events 50000 --skip-storage
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument(
        "--step-size", type=int, default=50_000, help="events per chunk (default 50000)"
    )
    ap.add_argument("--threads", type=int, default=None, help="core threads (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--slice", type=int, default=1024, help="events per rasterize call in the sliced runs"
    )
    ap.add_argument("--skip-storage", action="store_true", help="skip (d)")
    ap.add_argument("--skip-cli", action="store_true", help="skip (e)")
    ap.add_argument("--skip-train", action="store_true", help="skip (f)")
    ap.add_argument("--skip-batch", action="store_true", help="skip (g)")
    ap.add_argument("--train-events", type=int, default=50_000, help="events of (f)")
    ap.add_argument("--batch-step", type=int, default=25_000, help="events per task in (g)")
    ap.add_argument("--tmp", default=None, help="folder for the temporary files")
    args = ap.parse_args()

    import uproot
    from conftest import make_poet_events, write_poet

    import poetml
    from poetml import reading
    from poetml.datasets import hdf5
    from poetml.images import ImageSpec

    spec = ImageSpec()
    threads = args.threads
    print(f"poetml bench_read: {args.events} events, step size {args.step_size}, "
          f"threads {threads or os.cpu_count()} (cpu_count {os.cpu_count()})")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="poetml-bench-read-") as tmp:
        tmp = Path(tmp)
        path = tmp / "poet.root"
        t0 = time.perf_counter()
        events = make_poet_events(args.events, seed=42)
        write_poet(path, events, chunk=50_000)
        del events
        size = path.stat().st_size
        print(f"wrote {path.name}: {size / 1e6:.1f} MB ({size / args.events:.0f} bytes/event) "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        # the branches poetml reads, per tree
        with uproot.open(path) as f:
            plan = reading._plan(f, str(path), "auto", None, None)
        branches = plan.trees
        n_branches = sum(len(v) for v in branches.values())
        print(f"branches read: {n_branches} in {len(branches)} trees")

        def uproot_read(executor=None) -> int:
            n = 0
            with uproot.open(path) as f:
                iters = [f[t].iterate(b, step_size=args.step_size, library="ak", how=dict,
                                      decompression_executor=executor)
                         for t, b in branches.items()]  # fmt: skip
                for chunks in zip(*iters, strict=True):
                    n += len(next(iter(chunks[0].values())))
            return n

        from concurrent.futures import ThreadPoolExecutor

        inflate = ThreadPoolExecutor(threads or os.cpu_count() or 1)

        def poetml_read() -> int:
            return sum(b.n_events for b in poetml.iterate(path, args.step_size))

        # out= buffers, one per chunk length, allocated and touched before any timing
        buffers: dict[int, np.ndarray] = {}

        def buffer(n: int) -> np.ndarray:
            if n not in buffers:
                buffers[n] = np.zeros((n, *spec.shape), np.float32)
                buffers[n].fill(0)
            return buffers[n]

        for n in {args.step_size, args.events % args.step_size} - {0}:
            buffer(n)

        def read_rasterize(prefetch: bool, slices: int | None, reuse: bool = False) -> float:
            total = 0.0
            batches = poetml.iterate(path, args.step_size)
            for b in reading.prefetch(batches) if prefetch else batches:
                step = slices or b.n_events
                for lo in range(0, b.n_events, step):
                    sub = b if step >= b.n_events else b.slice(lo, lo + step)
                    out = buffer(sub.n_events) if reuse else None
                    img = poetml.rasterize(sub, spec, n_threads=threads, out=out)
                    total += float(img[:, 0, 0, 0].sum())
            return total

        uproot_read()  # warm the page cache and imports
        assert uproot_read() == args.events
        whole = reading.read(path)
        part = whole.slice(0, args.step_size)
        n_part = part.n_events
        scale = args.events / n_part
        sums: dict[tuple[bool, int | None, bool], float] = {}

        def rasterize_alone(slices: int | None, reuse: bool = False) -> None:
            # the chunk rasterized again and again, as many events as the file; each output
            # is dropped before the next call, as in the read + rasterize loops
            step = slices or n_part
            for _ in range(round(scale)):
                for lo in range(0, n_part, step):
                    sub = part if step >= n_part else part.slice(lo, lo + step)
                    out = buffer(sub.n_events) if reuse else None
                    poetml.rasterize(sub, spec, n_threads=threads, out=out)

        def run_rr(prefetch: bool, slices: int | None, reuse: bool = False) -> None:
            sums[(prefetch, slices, reuse)] = read_rasterize(prefetch, slices, reuse)

        variants = {
            "uproot alone, same branches (baseline)": uproot_read,
            "uproot, baskets decompressed on all threads": lambda: uproot_read(inflate),
            "poetml.iterate (read + flatten; baskets on all threads)": poetml_read,
            f"rasterize alone, one call per {n_part}-event chunk": lambda: rasterize_alone(None),
            f"rasterize alone, {args.slice}-event slices": lambda: rasterize_alone(args.slice),
            "rasterize alone, per chunk into a reused out=": lambda: rasterize_alone(None, True),
            "iterate + rasterize per chunk, serial": lambda: run_rr(False, None),
            "iterate + rasterize per chunk, prefetch": lambda: run_rr(True, None),
            f"iterate + rasterize {args.slice}-ev slices, serial": lambda: run_rr(
                False, args.slice
            ),
            f"iterate + rasterize {args.slice}-ev slices, prefetch": lambda: run_rr(
                True, args.slice
            ),
            "iterate + rasterize per chunk, out=, serial": lambda: run_rr(False, None, True),
            "iterate + rasterize per chunk, out=, prefetch": lambda: run_rr(True, None, True),
        }
        # round robin, best of --repeat: the machine may be shared, so every variant gets
        # its chance at a quiet moment
        times = dict.fromkeys(variants, float("inf"))
        cpu = dict.fromkeys(variants, float("inf"))
        for _ in range(args.repeat):
            for name, fn in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times[name] = min(times[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], time.process_time() - c0)
        first = next(iter(sums.values()))
        assert all(np.isclose(v, first, rtol=1e-5) for v in sums.values()), sums
        del whole
        t_up = times["uproot alone, same branches (baseline)"]
        ev = args.events
        print()
        print(f"(a-c) time for the whole file, best of {args.repeat} (round robin)")
        rows = list(times.items())
        runs = {k: v for k, v in times.items() if k.startswith("iterate + rasterize")}
        c_up = cpu["uproot alone, same branches (baseline)"]
        print(f"  {'':<50} {'wall':>9} {'':>17} {'':>13}   {'CPU (all threads)':>17}")
        for name, t in rows:
            print(
                f"  {name:<50} {t:7.3f} s {ev / t / 1e3:8.1f} kevents/s {t / t_up:6.2f} x baseline"
                f"   {cpu[name]:7.3f} s {cpu[name] / c_up:5.2f} x"
            )
        print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        ratio = min(runs.values()) / t_up
        print(
            f"  best read + rasterize / read = {ratio:.2f} (target <= 1.3): {'PASS' if ratio <= 1.3 else 'FAIL'}"
        )

        if not args.skip_storage:
            import h5py

            n_store = min(ev, 20_000)
            images = poetml.rasterize(reading.read(path, 0, n_store), spec, n_threads=threads)
            nz = np.count_nonzero(images) / n_store
            print()
            print(f"(d) HDF5 storage of {n_store} images ({images[0].nbytes} bytes raw, "
                  f"{nz:.1f} non-zero pixels per event), written in 1024-event appends")  # fmt: skip
            print(f"  {'storage':<44}{'ev/chunk':>9}{'bytes/ev':>10}{'write s':>9}{'read s':>8}")

            def h5py_write(out, ce, **filters):
                with h5py.File(out, "w") as f:
                    d = f.create_dataset("images", shape=(0, *spec.shape), maxshape=(None, *spec.shape),
                                         dtype=np.float32, chunks=(ce, *spec.shape), **filters)  # fmt: skip
                    for lo in range(0, n_store, 1024):
                        hi = min(lo + 1024, n_store)
                        d.resize(hi, axis=0)
                        d[lo:hi] = images[lo:hi]

            def poetml_write(out, ce):
                with hdf5.ShardWriter(out, "images", item_shape=spec.shape, chunk_events=ce,
                                      threads=threads) as w:  # fmt: skip
                    for lo in range(0, n_store, 1024):
                        hi = min(lo + 1024, n_store)
                        w.append(images[lo:hi], np.arange(lo, hi), 0)

            options = [(f"poetml: gzip 1, threaded direct chunks, {threads or os.cpu_count()} thr",
                        poetml_write, {}, (16, 64, 256))]  # fmt: skip
            options += [("h5py: no compression", h5py_write, {}, (64,))]
            for sh in (False, True):
                tag = "+shuffle" if sh else ""
                options += [
                    (f"h5py: lzf{tag}", h5py_write, {"compression": "lzf", "shuffle": sh}, (64,))
                ]
                for lv in (1, 4):
                    options += [(f"h5py: gzip {lv}{tag}", h5py_write,
                                 {"compression": "gzip", "compression_opts": lv, "shuffle": sh}, (64,))]  # fmt: skip
            for label, fn, kw, chunks in options:
                for ce in chunks:
                    out = tmp / "store.h5"
                    t_w, _ = best(lambda out=out, ce=ce, fn=fn, kw=kw: fn(out, ce, **kw), 2)
                    with h5py.File(out) as f:
                        t_r, back = best(lambda f=f: f["images"][()], 1)
                    assert np.array_equal(back, images)
                    print(
                        f"  {label:<44}{ce:>9}{out.stat().st_size / n_store:>10.0f}{t_w:>9.2f}{t_r:>8.2f}"
                    )
                    out.unlink()
            del images

        t_up_best = t_up
        t_up_threaded = times["uproot, baskets decompressed on all threads"]
        if not args.skip_cli:
            exe = Path(sys.executable).with_name("poetml")
            print()
            print(f"(e) poetml images FILE -o OUT.h5 --step-size {args.step_size}: a subprocess, "
                  f"Python start-up included, best of {args.repeat} after one untimed run")  # fmt: skip
            # the command as an installed package runs it: pip compiles the bytecode at
            # install time, but an editable install (python/ on the path) with
            # PYTHONDONTWRITEBYTECODE set would compile poetml's modules on every start
            # (about 0.08 s); their bytecode goes to a cache in the temporary folder instead
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            cli_rate = {}
            for layout in ("sparse", "dense"):
                out = tmp / f"images-{layout}.h5"
                cmd = [str(exe), "images", str(path), "-o", str(out), "--step-size",
                       str(args.step_size), "--no-progress", "--image-layout", layout]  # fmt: skip
                cmd += ["--threads", str(threads)] if threads else []
                best_t, line = float("inf"), ""
                if layout == "sparse":  # untimed: bytecode cache, page cache
                    subprocess.run(cmd, capture_output=True, env=env, check=False)
                for _ in range(args.repeat if layout == "sparse" else 1):
                    t0 = time.perf_counter()
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                         check=False)  # fmt: skip
                    t_cli = time.perf_counter() - t0
                    if res.returncode != 0:
                        print(res.stderr)
                        return 1
                    if t_cli < best_t:
                        best_t, line = t_cli, res.stderr.strip().splitlines()[-1]
                osize = out.stat().st_size
                cli_rate[layout] = ev / best_t
                print(f"  {layout:<6} {ev / best_t / 1e3:8.1f} kevents/s ({best_t:.2f} s wall), "
                      f"output {osize / 1e6:.2f} MB = {osize / ev:.1f} bytes/event")  # fmt: skip
                print(f"         {line}")
                if layout == "sparse":
                    print(f"BYTES_PER_EVENT images_cli_sparse: {osize / ev:.1f}")
            from poetml.datasets import convert

            cfg = reading.ReadingConfig(step_size=args.step_size)
            t_conv, _ = best(lambda: convert.convert([str(path)], tmp / "inproc.h5", "images", spec,
                             reading=cfg, threads=threads, progress=False), args.repeat)  # fmt: skip
            up_rate = ev / t_up_best
            print(f"  sparse, in process (convert(), no interpreter start-up): "
                  f"{ev / t_conv / 1e3:.1f} kevents/s")  # fmt: skip
            print(f"  uproot read of the same branches: {up_rate / 1e3:.1f} kevents/s")
            print(f"RATIO images_convert_inprocess/uproot_read: {ev / t_conv / up_rate:.3f}")
            print(f"  uproot read, baskets decompressed on all threads: "
                  f"{ev / t_up_threaded / 1e3:.1f} kevents/s")  # fmt: skip
            print(f"RATIO images_cli/uproot_read: {cli_rate['sparse'] / up_rate:.3f}")
            # the command decompresses on all threads; against uproot doing the same
            print(f"RATIO images_cli/uproot_read_threaded: "
                  f"{cli_rate['sparse'] * t_up_threaded / ev:.3f}")  # fmt: skip
            print(f"RATIO images_cli_sparse/images_cli_dense: "
                  f"{cli_rate['sparse'] / cli_rate['dense']:.2f}")  # fmt: skip
            # like for like: the same uproot read as a script in its own interpreter (start-up
            # and ``import uproot`` included, as the command pays them)
            script = (
                "import sys, uproot\n"
                f"branches = {dict(branches)!r}\n"
                "n = 0\n"
                "with uproot.open(sys.argv[1]) as f:\n"
                "    its = [f[t].iterate(b, step_size=int(sys.argv[2]), library='ak', how=dict)\n"
                "           for t, b in branches.items()]\n"
                "    for chunks in zip(*its, strict=True):\n"
                "        n += len(next(iter(chunks[0].values())))\n"
                "assert n == int(sys.argv[3]), n\n"
            )
            cmd = [sys.executable, "-c", script, str(path), str(args.step_size), str(ev)]
            subprocess.run(cmd, env=env, check=True)  # untimed, as for the command
            t_script, _ = best(lambda: subprocess.run(cmd, env=env, check=True), args.repeat)
            print(f"  uproot read as a script in a subprocess (start-up and import included): "
                  f"{ev / t_script / 1e3:.1f} kevents/s ({t_script:.2f} s wall)")  # fmt: skip
            print(f"RATIO images_cli/uproot_read_script: {cli_rate['sparse'] * t_script / ev:.3f}")

        if not args.skip_train:
            densify_vs_training(path, spec, args, threads)

        if not args.skip_batch:
            batch_scaling(path, tmp, args)
    return 0


def densify_vs_training(path: Path, spec, args, threads) -> None:
    """(f) densify throughput (the training Sequence's path: take a shuffled batch of the
    sparse split, densify it) against the DTW CNN's training events/s on dense batches."""
    from poetml import config, models, reading, training
    from poetml.images import rasterize_sparse

    cfg = config.load(ROOT / "configs" / "dtw_cnn.yaml")
    n = min(args.events, args.train_events)
    batch = reading.read(path, 0, n)
    sparse = rasterize_sparse(batch, cfg.images, n_threads=threads)
    dense = sparse.dense()
    y = (np.arange(n) % 3).astype(np.int32)
    bs = cfg.training.batch_size
    rng = np.random.default_rng(1)

    def densify_epoch() -> int:
        order = rng.permutation(n)
        for lo in range(0, n, bs):
            sparse.take(order[lo : lo + bs]).dense(n_threads=1)
        return n

    t_d, _ = best(densify_epoch, args.repeat)
    seq = training.batches(sparse, y, batch_size=bs, shuffle_seed=1)

    def sequence_epoch() -> int:  # each batch dropped after use, as model.fit does
        for i in range(len(seq)):
            seq[i]
        return n

    t_s, _ = best(sequence_epoch, args.repeat)

    from poetml.models import _backend

    tf = _backend.tf()
    tf.keras.utils.set_random_seed(1)
    model = models.build(cfg.model, cfg.images.shape, 3)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    x = np.log1p(dense) / 4.0
    model.fit(x[: 20 * bs], y[: 20 * bs], batch_size=bs, epochs=1, verbose=0)  # graph built
    t_fit, _ = best(lambda: model.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=True), 1)
    print()
    print(f"(f) training input: {n} events, batch {bs}, the DTW CNN "
          f"({model.count_params()} parameters, float), {spec.shape} images")  # fmt: skip
    print(f"  take shuffled batch + densify, 1 thread:          {n / t_d / 1e3:8.1f} kevents/s")
    print(f"  training.batches Sequence (the same), whole epoch: {n / t_s / 1e3:8.1f} kevents/s")
    print(f"  CNN training (model.fit, dense in memory):        {n / t_fit / 1e3:8.1f} kevents/s")
    # the path training takes: the Sequence (shuffled take + densify per batch)
    print(f"RATIO densify/cnn_training: {t_fit / t_s:.1f}")


def batch_scaling(path: Path, tmp: Path, args) -> None:
    """(g) ``poetml batch images`` (sparse shards) with 2 worker processes against 1, on
    already started LocalClusters (the fixed start-up of a cluster excluded)."""
    from distributed import Client, LocalCluster

    from poetml import batch

    rates = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
            client.run(lambda: __import__("poetml.datasets.convert"))  # imports warmed
            t_best = float("inf")
            for r in range(args.repeat):
                out = tmp / f"batch-{workers}-{r}"
                t0 = time.perf_counter()
                res = batch.run([str(path)], out, "images", step_size=args.batch_step,
                                client=client, progress=False)  # fmt: skip
                t_best = min(t_best, time.perf_counter() - t0)
                assert res.ok, res.summary()
            rates[workers] = res.n_events / t_best
        print(f"  batch images, {workers} worker(s): {rates[workers] / 1e3:8.1f} kevents/s "
              f"({res.n_tasks} tasks of {args.batch_step} events)")  # fmt: skip
    print(f"RATIO batch_2workers/1worker: {rates[2] / rates[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
