"""The ``poetml`` command line.

The CLI only parses arguments, loads configuration and calls the stages.  Each command
group lives in its own module here and exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(func=...)``; ``func(args)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings
from collections.abc import Sequence

from .. import _atomic
from .._version import __version__
from ..exceptions import PoetmlError, Terminated

# command-group modules, in the order they appear in --help
GROUPS = ("core", "batch", "generate", "learn", "firmware")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poetml",
        description="CMS Open Data ntuples (POET, NanoAOD) to event images, feature vectors, "
        "trained networks and hls4ml trigger firmware.",
    )
    parser.add_argument("--version", action="version", version=f"poetml {__version__}")
    parser.add_argument(
        "--debug", action="store_true",
        help="show the Python traceback of an error (default: one line naming the file, "
        "branch, entry or value at fault)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        importlib.import_module(f".{group}", __name__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "poetml"

    def format_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        # one line a warning, like the error messages: a terminal user has no use for the
        # Python source line that raised it (formatting only: recording is untouched)
        return f"poetml {command}: warning: {message}\n"

    warnings.formatwarning = format_warning
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM (a batch system's kill, `kill PID`) unwinds like Ctrl-C: outputs being
    # written are deleted, nothing half-written stays under a final name
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    _atomic.note_signal(None)
    try:
        rc = int(args.func(args) or 0)
        _atomic.check_signalled()  # a signal whose raise Python swallowed still ends the run
        return rc
    except (PoetmlError, OSError, ValueError) as exc:
        if args.debug:
            raise
        # poetml's own errors name the file, branch, entry or value at fault; OS errors
        # (disk full, permissions) and value errors are one line too (--debug: traceback)
        print(f"poetml {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"poetml {args.command}: terminated; no partial output was kept", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"poetml {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        _atomic.note_signal(None)


def run() -> int:
    """The ``poetml`` console script: :func:`main`, then a quick exit.

    Once the command is done (outputs closed and renamed), the objects alive are frozen
    out of the garbage collector, so the interpreter's final collection skips them: that
    collection walked the many objects awkward and uproot create at import, about 0.07 s
    of every command (a tenth of ``poetml images`` on a small file).  Exit handlers still
    run and the standard streams are still flushed.  Not done in :func:`main`, which
    tests and scripts call in a process that goes on.
    """
    import gc

    rc = main()
    gc.freeze()
    return rc


def _terminate(signum: int, frame: object) -> None:
    _atomic.note_signal(signum)
    raise Terminated(f"signal {signum}")


def _interrupt(signum: int, frame: object) -> None:
    _atomic.note_signal(signum)
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
