"""``poetml inspect``, ``poetml images``, ``poetml features``: one machine, files in order.

::

    poetml inspect FILE [--json] [--all]
    poetml images   INPUT... -o OUT.h5 [--config FILE] [--step-size N] [--threads N] [--layout L]
    poetml features INPUT... -o OUT.h5 [--config FILE] [--step-size N] [--threads N] [--layout L]

``images``/``features`` read the inputs chunk by chunk (the next chunk is read in a
background thread while the C++ core works on the current one), write the HDF5 layout of
:mod:`poetml.datasets.hdf5` under a temporary name and rename it when everything succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

#: bytes of output per kernel call: a chunk of events is processed in slices this big
#: (1024 events of 32 x 32 x 4 images).  Buffers of this size are reused by malloc from one
#: call to the next; much bigger ones are fresh mmaps whose page faults cost several times
#: the kernel itself (see bench/bench_read.py).
_KERNEL_BYTES = 16 << 20


def _int32(text: str) -> int:
    """argparse type: an int that fits the int32 label column (never silently wrapped)."""
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{value} does not fit in int32 (the label column)")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="layout, trees, branches and entries of a ROOT file",
        description="Show what a ROOT file holds: the poetml layout it is read as (poet, "
        "poet-merged, nanoaod), the canonical collections found and the branches they come "
        "from, and every tree with its entries and branch types.",
    )
    p.add_argument("file", help="ROOT file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="list every branch (default: 40 per tree)")
    p.set_defaults(func=_inspect)

    for kind, what in (("images", "event images"), ("features", "feature vectors")):
        q = subparsers.add_parser(
            kind,
            help=f"ROOT ntuples -> {what} in one HDF5 file",
            description=f"Read ntuples (POET, POET merged or NanoAOD; detected), build {what} "
            f"with the C++ core and write them to an HDF5 file (dataset '{kind}', "
            "event_index, source, labels with --label; attributes: the spec as JSON, the "
            "inputs, the poetml version).  The file appears under its name only when "
            "complete.",
        )
        q.add_argument("inputs", nargs="+", help="ROOT files or (quoted) glob patterns")
        q.add_argument("-o", "--output", required=True, help="output HDF5 file")
        q.add_argument(
            "--config",
            help=f"YAML run configuration (sections 'reading', 'selection', '{kind}')",
        )
        q.add_argument("--step-size", type=int, help="events read per chunk "
                       "(default: the config's reading.step_size, 100000)")  # fmt: skip
        q.add_argument("--threads", type=int, help="threads of the C++ core (default: all cores)")
        q.add_argument("--layout", choices=("auto", "poet", "poet-merged", "nanoaod"),
                       help="input layout (default: the config's, auto)")  # fmt: skip
        q.add_argument("--label", type=_int32, help="int32 label stored for every event")
        q.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip",
                       help="HDF5 compression (default gzip: level 1 for images, level 4 with shuffle for features)")  # fmt: skip
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        q.set_defaults(func=_convert, kind=kind)


# --------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _inspect(args: argparse.Namespace) -> int:
    from ..reading import inspect

    info = inspect(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    out = [f"file:    {info['path']} ({_size(info['size_bytes'])})"]
    if info["layout"] is not None:
        entries = info["entries"] if info["entries"] is not None else "?"
        out.append(f"layout:  {info['layout']} ({entries} events)")
    else:
        out.append("layout:  unknown")
    if info["layout_error"]:
        out.append(f"         {info['layout_error']}")
    if info["collections"]:
        out.append("")
        out.append("collections (canonical field <- tree:branch):")
        for coll, fields in info["collections"].items():
            out.append(f"  {coll}")
            width = max(len(k) for k in fields)
            for fld, src in fields.items():
                out.append(f"    {fld:<{width}}  <- {src}")
    out.append("")
    out.append("trees:")
    for name, tree in info["trees"].items():
        branches = tree["branches"]
        out.append(
            f"  {name}  ({tree['kind']}, {tree['entries']} entries, {len(branches)} branches)"
        )
        shown = list(branches.items()) if args.all else list(branches.items())[:40]
        width = max((len(k) for k, _ in shown), default=0)
        for b, t in shown:
            out.append(f"    {b:<{width}}  {t}")
        if len(shown) < len(branches):
            out.append(f"    ... {len(branches) - len(shown)} more (--all lists them)")
    try:
        print("\n".join(out))
        sys.stdout.flush()
    except BrokenPipeError:  # `poetml inspect FILE | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# --------------------------------------------------------------------------------------
# images / features
# --------------------------------------------------------------------------------------


def _needed_collections(kind: str, spec: Any) -> list[str]:
    from .. import schema

    if kind == "images":
        wanted = [c for c in spec.channels if c in schema.COLLECTIONS]
    else:
        wanted = [c for c, _ in spec.slots if c in schema.COLLECTIONS]
        by_quantity = {"ht": "jet", "met": "met", "n_muon": "muon", "n_electron": "electron",
                       "n_jet": "jet", "n_bjet": "jet", "m_mumu": "muon", "m_jj": "jet"}  # fmt: skip
        wanted += [by_quantity[q] for q in spec.event_quantities if q in by_quantity]
    return list(dict.fromkeys(wanted))


def _kernel(
    kind: str, batch: Any, spec: Any, n_threads: int | None, buffers: dict[int, Any] | None = None
) -> tuple[Any, Any]:
    """Run the kernel on ``batch``.  With ``buffers`` (events -> output array), the output
    of a slice as long as an earlier one goes into that slice's array (the writer has
    copied it by then): no fresh pages to fault in; the two most recent lengths are kept."""
    import poetml

    out = None if buffers is None else buffers.pop(batch.n_events, None)
    if kind == "images":
        data, names = poetml.rasterize(batch, spec, n_threads=n_threads, out=out), None
    else:
        data, names = poetml.build_features(batch, spec, n_threads=n_threads, out=out)
        names = list(names)
    if buffers is not None:
        buffers[batch.n_events] = data
        while len(buffers) > 2:
            buffers.pop(next(iter(buffers)))
    return data, names


def _convert(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    from tqdm.auto import tqdm

    from .. import reading
    from .._atomic import check_output
    from ..config import ReadingConfig, load, to_mapping
    from ..datasets.hdf5 import ShardWriter
    from ..features import FeatureSpec
    from ..images import ImageSpec
    from ..jagged import Collection, EventBatch

    kind = args.kind
    if args.config:
        cfg = load(args.config)
        spec = cfg[kind]
        reading_cfg = cfg["reading"]
    else:
        spec = ImageSpec() if kind == "images" else FeatureSpec()
        reading_cfg = ReadingConfig()
    reading_cfg = dataclasses.replace(
        reading_cfg,
        **{
            k: v
            for k, v in (("step_size", args.step_size), ("layout", args.layout))
            if v is not None
        },
    )
    if reading_cfg.step_size < 1:
        print(f"poetml {kind}: error: --step-size must be positive", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"poetml {kind}: error: --threads must be positive", file=sys.stderr)
        return 2
    files = reading.expand_files(args.inputs)
    out = os.fspath(check_output(args.output, files))  # before anything is read
    source_id = {f: i for i, f in enumerate(files)}
    collections = _needed_collections(kind, spec)
    os.makedirs(os.path.dirname(out), exist_ok=True)

    total = sum(reading.num_entries(f, layout=reading_cfg.layout) for f in files)
    attrs = {
        "spec": to_mapping(spec),
        "reading": to_mapping(reading_cfg),
        "config_file": os.path.abspath(args.config) if args.config else "",
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "command", "kind")},
    }
    t0 = time.perf_counter()
    writer: ShardWriter | None = None
    bar = tqdm(total=total, unit="event", unit_scale=True, file=sys.stderr,
               disable=args.no_progress, desc=kind)  # fmt: skip
    warned: set[str] = set()
    buffers: dict[int, Any] = {}  # kernel outputs reused slice after slice
    batches = None
    try:
        batches = reading.prefetch(
            reading.iterate(
                files,
                reading_cfg.step_size,
                layout=reading_cfg.layout,
                collections=collections,
                missing_collections="empty",
            )
        )
        for batch in batches:
            if batch.source not in warned:
                warned.add(batch.source)
                have = reading.available_collections(batch.source, layout=reading_cfg.layout)
                lacking = [c for c in collections if c not in have]
                if lacking:
                    tqdm.write(
                        f"poetml {kind}: {batch.source} has no {', '.join(lacking)} "
                        "collection; treated as empty (no objects"
                        f"{', MET 0' if 'met' in lacking else ''})",
                        file=sys.stderr,
                    )
            item = _item_bytes(kind, spec)
            step = max(1, _KERNEL_BYTES // item)
            for lo in range(0, batch.n_events, step):
                sub = batch if (lo == 0 and step >= batch.n_events) else batch.slice(lo, lo + step)
                data, names = _kernel(kind, sub, spec, args.threads, buffers)
                if writer is None:
                    writer = _writer(
                        out, kind, data, names, spec, attrs, files, args.compression, args.threads
                    )
                writer.append(data, sub.event_index, source_id[batch.source], labels=args.label)
                bar.update(sub.n_events)
        if writer is None:  # no events at all: still write a valid, empty file
            empty = EventBatch(0, {c: Collection.empty(0) for c in collections if c != "met"},
                               {"pt": np.zeros(0), "phi": np.zeros(0)} if "met" in collections else {})  # fmt: skip
            data, names = _kernel(kind, empty, spec, args.threads)
            writer = _writer(
                out, kind, data, names, spec, attrs, files, args.compression, args.threads
            )
            writer.append(data, np.zeros(0, np.int64), 0, labels=args.label)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if batches is not None:
            batches.close()
        bar.close()
    dt = time.perf_counter() - t0
    size = os.path.getsize(out)
    n = writer.n_events
    print(
        f"poetml {kind}: wrote {n} events to {out} ({_size(size)}, "
        f"{size / max(n, 1):.0f} bytes/event) in {dt:.1f} s ({n / dt if dt else 0:.0f} events/s)",
        file=sys.stderr,
    )
    return 0


def _item_bytes(kind: str, spec: Any) -> int:
    if kind == "images":
        n_eta, n_phi, c = spec.shape
        return int(n_eta * n_phi * c * 4)
    return 4 * 64


def _writer(out: str, kind: str, data: Any, names: Any, spec: Any, attrs: dict[str, Any],
            files: list[str], compression: str, threads: int | None) -> Any:  # fmt: skip
    from ..datasets.hdf5 import ShardWriter

    return ShardWriter(
        out,
        kind,
        item_shape=tuple(data.shape[1:]),
        attrs=attrs,
        feature_names=names,
        channels=tuple(spec.channels) if kind == "images" else None,
        inputs=[os.path.abspath(f) if "://" not in f else f for f in files],
        compression=compression,
        threads=threads,
    )
