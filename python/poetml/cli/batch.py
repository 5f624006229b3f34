"""``poetml batch``: many ntuples -> sharded HDF5 datasets on Dask (see :mod:`poetml.batch`).

::

    poetml batch images  "ntuples/*.root" -o out/ [--config FILE]
                         [--workers 2 | --scheduler tcp://host:8786] [--step-size 100000]
    poetml batch features ...
    poetml batch score MODEL_DIR "ntuples/*.root" -o out/ --firmware FWDIR [same options]
    poetml batch status out/ [--json] [--all]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "batch",
        help="process many ntuples into sharded HDF5 datasets on Dask (resumable)",
        description="Process many ntuples on a dask.distributed cluster (a LocalCluster by "
        "default) into one HDF5 shard per (file, entry range), recorded in a manifest, and "
        "a virtual dataset OUT/dataset.h5 presenting all shards as one.  Re-running the "
        "same command resumes: finished tasks are skipped, failed or missing ones redone.",
    )
    sub = p.add_subparsers(dest="batch_command", metavar="SUBCOMMAND")
    for kind in ("images", "features", "score"):
        if kind == "score":
            q = sub.add_parser(
                kind,
                help="ROOT ntuples -> firmware-exact scores and trigger bit + OUT/dataset.h5",
                description="Score ntuples with the bit-exact emulator of a model's firmware "
                "(the output folder of 'poetml firmware'): per (file, entry range) task, the "
                "model directory's inputs (config.json spec, preprocessing.json), the network "
                "on the emulator, one shard with firmware_score (float64) and trigger (uint8 "
                "0/1), event_index and source; TensorFlow is not loaded.  The model "
                "directory's and the emulator export's SHA-256 are part of the output's "
                "fingerprint: another firmware or model into the same folder is refused "
                "unless --overwrite.  Exit status 0 when every task succeeded, 1 otherwise.",
            )
            q.add_argument("model_dir", help="model directory (poetml train/run)")
        else:
            q = sub.add_parser(
                kind,
                help=f"ROOT ntuples -> {kind} shards + OUT/dataset.h5",
                description=f"Read ntuples, build {kind} with the C++ core, write one shard "
                "per (file, entry range) task.  Exit status 0 when every task succeeded, 1 "
                "otherwise.",
            )
        q.add_argument("inputs", nargs="+", help="ROOT files, quoted glob patterns or root:// URLs")
        q.add_argument("-o", "--output", required=True, help="output folder")
        if kind == "score":
            q.add_argument(
                "--firmware",
                metavar="FWDIR",
                help="output folder of 'poetml firmware' for MODEL_DIR (or its "
                "emulator/emulator.npz); required: only firmware-exact scoring runs in batch",
            )
        q.add_argument(
            "--config",
            help="YAML run configuration (its 'reading' section is used)"
            if kind == "score"
            else f"YAML run configuration (its 'reading' and '{kind}' sections are used)",
        )
        where = q.add_mutually_exclusive_group()
        where.add_argument(
            "--scheduler",
            help="address of a running Dask scheduler "
            "(tcp://host:8786); the output folder must be visible to its workers",
        )
        where.add_argument(
            "--workers",
            type=int,
            help="worker processes of the LocalCluster (default: one per core)",
        )
        q.add_argument(
            "--threads-per-worker",
            type=int,
            default=1,
            help="threads of each LocalCluster worker (default 1)",
        )
        q.add_argument(
            "--n-threads",
            type=int,
            default=1,
            help="threads of each kernel call"
            + (" and of the emulator" if kind == "score" else "")
            + " (default 1: no oversubscription)",
        )
        q.add_argument(
            "--step-size",
            type=int,
            help="entries per task and shard (default: the config's reading.step_size, 100000)",
        )
        q.add_argument("--layout", help="input layout: auto, poet, poet-merged, nanoaod")
        if kind != "score":
            q.add_argument("--label", type=int, help="int32 label given to every event")
        q.add_argument(
            "--retries",
            type=int,
            default=2,
            help="retries of a task that fails or whose worker dies (default 2)",
        )
        q.add_argument("--memory-limit", help="memory limit per LocalCluster worker, e.g. 4GB")
        q.add_argument(
            "--compression",
            choices=("gzip", "lzf", "none"),
            default="gzip",
            help="shard compression (default gzip; lzf writes faster, bigger)",
        )
        if kind == "images":
            q.add_argument(
                "--image-layout",
                choices=("sparse", "dense"),
                default="sparse",
                help="shard layout of the images: sparse (default: per event its non-zero "
                "pixels) or dense (dataset 'images')",
            )
        q.add_argument(
            "--overwrite",
            action="store_true",
            help="discard an earlier output made with different settings",
        )
        q.add_argument(
            "--no-verify",
            action="store_true",
            help="on resume, trust finished shards by size without re-hashing them",
        )
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        q.set_defaults(func=_run, kind="scores" if kind == "score" else kind)

    s = sub.add_parser(
        "status",
        help="done / failed / pending tasks of an output folder",
        description="Summarise the manifest of an output folder.  Exit status "
        "0 when every task is done, 1 otherwise.",
    )
    s.add_argument("output", help="output folder of 'poetml batch images|features|score'")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--all", action="store_true", help="list every failed/pending task")
    s.set_defaults(func=_status)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    from .. import batch
    from ..config import ReadingConfig, load

    spec: Any = None
    reading = ReadingConfig()
    if args.config:
        cfg = load(args.config)
        spec = None if args.kind == "scores" else getattr(cfg, args.kind)
        reading = cfg.reading
    if args.kind == "scores":
        if not args.firmware:
            print(
                "poetml batch score: --firmware FWDIR is required: batch scoring runs the "
                "firmware's bit-exact emulator only (FWDIR: the output folder of 'poetml "
                "firmware' for this model directory); 'poetml score MODEL_DIR INPUTS -o "
                "OUT.root' scores with the Keras model",
                file=sys.stderr,
            )
            return 2
        from ..firmware.scoring import load_scorer

        spec = load_scorer(args.firmware, args.model_dir)
    result = batch.run(
        args.inputs,
        args.output,
        args.kind,
        spec,
        step_size=args.step_size or reading.step_size,
        layout=args.layout or reading.layout,
        label=getattr(args, "label", None),
        scheduler=args.scheduler,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        n_threads=args.n_threads,
        retries=args.retries,
        memory_limit=args.memory_limit,
        compression=args.compression,
        overwrite=args.overwrite,
        verify=not args.no_verify,
        progress=not args.no_progress,
        image_layout=getattr(args, "image_layout", "sparse"),
    )
    print(result.summary())
    if not result.ok:
        print(
            f"poetml batch {args.batch_command}: {result.n_failed} task(s) failed, "
            f"{len(result.failed_sources)} file(s) unreadable, {result.n_pending} pending; "
            f"re-run the same command to retry them; 'poetml batch status {args.output}' "
            "lists them",
            file=sys.stderr,
        )
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from .. import batch

    st = batch.status(args.output)
    if args.json:
        print(json.dumps(st.to_json(), indent=1))
    else:
        print(st.format(limit=None if args.all else 20))
    return 0 if st.complete else 1
