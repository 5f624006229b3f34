"""``poetml inspect``, ``poetml images``, ``poetml features``: one machine, files in order.

::

    poetml inspect FILE [--json] [--all]          (FILE: ROOT, or an HDF5 file poetml wrote)
    poetml images   INPUT... -o OUT.h5 [--config FILE] [--step-size N] [--threads N] [--layout L]
                    [--image-layout sparse|dense]
    poetml features INPUT... -o OUT.h5 [--config FILE] [--step-size N] [--threads N] [--layout L]

The commands parse their arguments, call :func:`poetml.reading.inspect` or
:func:`poetml.datasets.convert.convert` and print the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _int32(text: str) -> int:
    """argparse type: an int that fits the int32 label column (never silently wrapped)."""
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{value} does not fit in int32 (the label column)")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="layout, trees, branches and entries of a ROOT file (or a poetml HDF5 file)",
        description="Show what a ROOT file holds: the poetml layout it is read as (poet, "
        "poet-merged, nanoaod), the canonical collections found and the branches they come "
        "from, and every tree with its entries and branch types.  For an HDF5 file written "
        "by poetml (images sparse or dense, features, a batch's dataset.h5): kind, layout, "
        "events, shape, bytes per event, channels and datasets.",
    )
    p.add_argument("file", help="ROOT file, or HDF5 file written by poetml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="list every branch (default: 40 per tree)")
    p.set_defaults(func=_inspect)

    for kind, what in (("images", "event images"), ("features", "feature vectors")):
        q = subparsers.add_parser(
            kind,
            help=f"ROOT ntuples -> {what} in one HDF5 file",
            description=f"Read ntuples (POET, POET merged or NanoAOD; detected), build {what} "
            f"with the C++ core and write them to an HDF5 file ("
            + (
                "images sparse by default: per event its non-zero pixels in datasets "
                "image_offsets, pixel_index and pixel_value, the image shape in the attribute "
                "image_shape; --image-layout dense writes the dataset 'images'"
                if kind == "images"
                else "dataset 'features', feature_names"
            )
            + "; event_index, source, labels with --label; attributes: the spec as JSON, the "
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
        q.add_argument("--threads", type=int, help="threads of the C++ core, of decompressing the "
                       "input and of compressing the output (default: all cores)")  # fmt: skip
        q.add_argument("--layout", choices=("auto", "poet", "poet-merged", "nanoaod"),
                       help="input layout (default: the config's, auto)")  # fmt: skip
        q.add_argument("--label", type=_int32, help="int32 label stored for every event")
        q.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip",
                       help="HDF5 compression (default gzip: level 1 for images, level 4 with shuffle for features)")  # fmt: skip
        if kind == "images":
            q.add_argument("--image-layout", choices=("sparse", "dense"), default="sparse",
                           help="how images are stored: sparse (default: per event its "
                           "non-zero pixels, datasets image_offsets, pixel_index, "
                           "pixel_value) or dense (dataset 'images', (N, n_eta, n_phi, C))")  # fmt: skip
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


def _inspect_hdf5(args: argparse.Namespace) -> int:
    from ..datasets.info import describe

    info = describe(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    n = info["n_events"]
    out = [f"file:     {info['path']} ({_size(info['size_bytes'])})"]
    what = f"{info['kind']}, {info['layout']} layout, {n} events of {tuple(info['shape'])}"
    out.append(f"dataset:  poetml HDF5 ({what})")
    if info["bytes_per_event"] is not None:
        out.append(f"size:     {info['bytes_per_event']:.1f} bytes/event")
    if info["n_pixels"] is not None:
        out.append(
            f"pixels:   {info['n_pixels']} non-zero ({info['n_pixels'] / max(n, 1):.2f} per event)"
        )
    if info["channels"]:
        out.append(f"channels: {', '.join(info['channels'])}")
    if info["feature_names"]:
        names = info["feature_names"]
        out.append(f"features: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    out.append(f"inputs:   {len(info['inputs'])} file(s)")
    out.append("")
    out.append("datasets:")
    width = max((len(k) for k in info["datasets"]), default=0)
    for name, d in info["datasets"].items():
        virtual = "  (virtual)" if d["virtual"] else ""
        out.append(f"  {name:<{width}}  {tuple(d['shape'])} {d['dtype']}{virtual}")
    print("\n".join(out))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from ..datasets.info import is_hdf5
    from ..reading import inspect

    if is_hdf5(args.file):  # a poetml output file (images, sparse or dense, or features)
        return _inspect_hdf5(args)
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
    gen = info.get("generation")
    if gen:
        out.append("")
        out.append("generation (poetml generate):")
        for key in (
            "process",
            "events",
            "tried",
            "filter_efficiency",
            "sigma_pb",
            "sigma_err_pb",
            "branching_ratio",
            "sigma_weighted_pb",
            "sigma_reference_pb",
            "sigma_reference_source",
            "seed",
            "mpi",
            "pileup",
            "pthat_min",
            "pthat_max",
            "bias_pow",
            "error",
        ):
            if gen.get(key) is not None:
                out.append(f"  {key:<22} {gen[key]}")
        if "weights" in gen:
            out.append(f"  {'weights':<22} {gen['weights']}")
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


def _convert(args: argparse.Namespace) -> int:
    import dataclasses

    from ..datasets.convert import convert
    from ..reading import ReadingConfig

    kind = args.kind
    if args.config:  # the whole configuration layer only when a file is given
        from ..config import load

        cfg = load(args.config)
        spec = getattr(cfg, kind)
        reading_cfg = cfg.reading
    else:
        spec, reading_cfg = None, ReadingConfig()
    if args.step_size is not None and args.step_size < 1:
        print(f"poetml {kind}: error: --step-size must be positive", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"poetml {kind}: error: --threads must be positive", file=sys.stderr)
        return 2
    reading_cfg = dataclasses.replace(
        reading_cfg,
        **{
            k: v
            for k, v in (("step_size", args.step_size), ("layout", args.layout))
            if v is not None
        },
    )
    result = convert(
        args.inputs,
        args.output,
        kind,
        spec,
        reading=reading_cfg,
        threads=args.threads,
        label=args.label,
        compression=args.compression,
        progress=not args.no_progress,
        image_layout=getattr(args, "image_layout", "sparse"),
        attrs={
            "config_file": os.path.abspath(args.config) if args.config else "",
            "arguments": {
                k: v for k, v in vars(args).items() if k not in ("func", "command", "kind")
            },
        },
    )
    n, dt, size = result.n_events, result.seconds, result.nbytes
    print(
        f"poetml {kind}: wrote {n} events to {result.path} ({_size(size)}, "
        f"{size / max(n, 1):.0f} bytes/event) in {dt:.1f} s ({n / dt if dt else 0:.0f} events/s)",
        file=sys.stderr,
    )
    return 0
