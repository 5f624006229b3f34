"""``poetml generate``: Pythia 8 events through the parametric detector into POET ntuples.

poetml generate dy --events 20000 --seed 1 -o dy.root
poetml generate ttbar --events 5000 --layout merged -o tt.root
poetml generate --list
poetml generate --default DIR
poetml generate --validate DIR
"""

from __future__ import annotations

import argparse
import json
import sys

from ..exceptions import ConfigError, PoetmlError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate Pythia 8 events through a CMS-like detector into POET ntuples",
        description="Generate 13 TeV pp events with Pythia 8, cluster jets with FastJet, "
        "simulate a parametric CMS-like detector and write POET ntuples (needs "
        "pip install 'poetml[generate]').",
    )
    p.add_argument("process", nargs="?", help="process name (see --list)")
    p.add_argument("--list", action="store_true", help="list the processes and exit")
    p.add_argument(
        "--default", metavar="DIR", help="write (or reuse) the labelled default dataset in DIR"
    )
    p.add_argument("-n", "--events", type=int, default=None, help="number of events")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("-o", "--output", help="output ROOT file")
    p.add_argument(
        "--layout",
        choices=("poet", "merged"),
        default="poet",
        help="poet: one Events tree per analyzer directory; merged: one events tree",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all available cores)"
    )
    p.add_argument(
        "--no-mpi",
        action="store_true",
        help="switch off multi-parton interactions (about 10x faster; for tests)",
    )
    p.add_argument(
        "--pileup",
        type=float,
        default=0.0,
        metavar="MU",
        help="overlay Poisson(MU) minimum-bias events per event, drawn from a premixed pool "
        "generated once and cached (~/.cache/poetml/pileup, or $POETML_CACHE/pileup)",
    )
    p.add_argument(
        "--pileup-pool",
        type=int,
        default=None,
        metavar="N",
        help="minimum-bias events in the pile-up pool (default 5000)",
    )
    p.add_argument(
        "--pthat-min",
        type=float,
        default=None,
        help="PhaseSpace:pTHatMin [GeV] for processes that take one (qcd, jpsi)",
    )
    p.add_argument(
        "--pthat-max",
        type=float,
        default=None,
        help="PhaseSpace:pTHatMax [GeV]: generate one pT-hat bin (bins combine by "
        "concatenation: the weights add up)",
    )
    p.add_argument(
        "--bias-pow",
        type=float,
        default=None,
        metavar="P",
        help="sample pT-hat with PhaseSpace:bias2Selection, (pT-hat/pT-hat-min)^P, and "
        "weight each event back (populates a falling spectrum's tail; try 4)",
    )
    p.add_argument(
        "--pythia",
        action="append",
        default=[],
        metavar="SETTING",
        help="extra Pythia readString setting (repeatable)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="with --default: multiply every process's event count",
    )
    p.add_argument(
        "--validate",
        metavar="DIR",
        help="generate validation samples in DIR (reused when present) and print every physics "
        "figure against its reference (real CMS data in ../shared/data, PDG, measured cross "
        "sections) with pass/fail; exit 1 if any fails",
    )
    p.add_argument(
        "--shared",
        metavar="DIR",
        default=None,
        help="with --validate: the folder of real CMS files (default ../shared/data)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _list() -> int:
    from ..generate.catalog import process_table

    print(process_table())
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..generate.checks import format_checks, run_checks

    checks = run_checks(
        args.validate, shared=args.shared, scale=args.scale, progress=not args.quiet
    )
    print(format_checks(checks))
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if args.validate:
        return _validate(args)
    from .. import generate as gen
    from ..generate.catalog import default_summary, run_summary

    try:
        if args.default:
            if args.process:
                raise ConfigError("give either a PROCESS or --default DIR, not both")
            manifest = gen.generate_default(
                args.default,
                scale=args.scale,
                mpi=not args.no_mpi,
                pileup=args.pileup,
                workers=args.workers,
                progress=not args.quiet,
            )
            print(json.dumps(default_summary(manifest), indent=1))
            return 0
        if not args.process:
            raise ConfigError(
                "a PROCESS is required (or --list / --default DIR); processes: "
                + ", ".join(gen.PROCESSES)
            )
        if args.events is None:
            raise ConfigError("--events N is required")
        if not args.output:
            raise ConfigError("-o/--output FILE is required")
        s = gen.generate(
            args.process,
            args.events,
            args.output,
            seed=args.seed,
            layout=args.layout,
            workers=args.workers,
            mpi=not args.no_mpi,
            pileup=args.pileup,
            pthat_min=args.pthat_min,
            pthat_max=args.pthat_max,
            bias_pow=args.bias_pow,
            extra_settings=tuple(args.pythia),
            progress=not args.quiet,
            **({} if args.pileup_pool is None else {"pileup_pool": args.pileup_pool}),
        )
    except (ValueError, PermissionError, RuntimeError) as exc:
        if isinstance(exc, PoetmlError):
            raise
        raise ConfigError(str(exc)) from exc
    print(run_summary(s), file=sys.stderr)
    return 0
