"""Outputs appear complete or not at all, and one writer at a time.

Every file poetml writes goes to a temporary name in the same directory, unique to the
writing process (``.NAME.PID.tmp``), and is renamed onto its final name only when
complete; an exception, Ctrl-C or SIGTERM deletes the temporary file, so nothing
half-written ever stands under a final name.

While a process writes ``NAME`` it holds ``.NAME.lock`` (created with ``O_EXCL``, holding
the host and process id).  A second writer of the same output is refused with an error
naming the holder, even where HDF5 file locking is off (as on many shared filesystems).
A lock left by a process that died (same host, no such process) is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import PoetmlError, WriteError

__all__ = [
    "OutputLock",
    "atomic_path",
    "check_output",
    "temp_path",
    "to_jsonable",
    "write_error",
    "write_json",
    "write_text",
]


def temp_path(path: str | os.PathLike[str], suffix: str = "") -> Path:
    """The temporary name ``path`` is written under by this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def write_error(path: str | os.PathLike[str], exc: OSError) -> WriteError:
    """A one-line :class:`WriteError` for an OS error met while writing ``path``."""
    code = getattr(exc, "errno", None)
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
    if code == errno.ENOSPC:
        reason += "; nothing was kept"
    err = WriteError(f"cannot write {path}: {reason}")
    err.errno = code
    return err


def check_output(
    output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Refuse an output file that would destroy an input or cannot be written, before any
    work: ``output`` resolving to one of ``inputs`` (through symbolic or hard links), an
    existing directory, or a folder that is not writable.  Returns the absolute path."""
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(output))))
    real = os.path.realpath(out)
    for i in inputs:
        s = os.fspath(i)
        if "://" in s:
            continue
        same = os.path.realpath(os.path.expanduser(s)) == real
        if not same and out.exists() and os.path.exists(s):
            with contextlib.suppress(OSError):
                same = os.path.samefile(s, out)
        if same:
            raise WriteError(
                f"output {output} is the input {s}: writing it would destroy the input; "
                "choose another output name"
            )
    if out.is_dir():
        raise WriteError(f"cannot write {out}: it is an existing directory; give a file name")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise WriteError(f"cannot write {out}: {parent} is not a directory")
    try:  # a real write, not os.access: root, read-only mounts, NFS and ACLs all differ
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise write_error(out, exc) from None
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Hold ``.NAME.lock`` beside ``path`` until :meth:`release` (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = self.path.with_name(f".{self.path.name}.lock")
        self._held = False
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._stale():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.lock)
                    continue
                raise WriteError(
                    f"cannot write {self.path}: another process is writing it "
                    f"({self._holder()}; lock file {self.lock}); wait for it to finish, or "
                    "delete the lock file if that process is gone"
                ) from None
            except OSError as exc:
                raise write_error(self.path, exc) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me + "\n")
            except BaseException:  # a lock without its holder would block every writer
                os.unlink(self.lock)
                raise
            self._held = True
            return
        raise WriteError(f"cannot write {self.path}: cannot take the lock {self.lock}")

    def _holder(self) -> str:
        try:
            host, pid = self.lock.read_text().split()
        except (OSError, ValueError):
            return "unknown holder"
        return f"process {pid} on {host}"

    def _stale(self) -> bool:
        try:
            host, pid = self.lock.read_text().split()
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            return False  # being written right now, or not ours to judge
        return host == socket.gethostname() and not _alive(int(pid))

    def release(self) -> None:
        if self._held:
            self._held = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock)


#: the signal (SIGTERM or SIGINT) the command line's handler saw, if any.  The handler
#: raises too, but Python drops an exception raised while a weakref callback or ``__del__``
#: runs ("Exception ignored in ..."): every writer checks this before it renames its output,
#: so a signal is never lost to that and no output appears after one.
_signalled: int | None = None


def note_signal(signum: int | None) -> None:
    """Record (or with None, forget) a signal for :func:`check_signalled`."""
    global _signalled
    _signalled = signum


def check_signalled() -> None:
    """Raise :class:`~poetml.exceptions.Terminated` (SIGTERM) or KeyboardInterrupt (SIGINT)
    when the command line got one, even if its first raise was swallowed."""
    import signal

    from .exceptions import Terminated

    if _signalled is None:
        return
    if _signalled == signal.SIGINT:
        raise KeyboardInterrupt(f"signal {_signalled}")
    raise Terminated(f"signal {_signalled}")


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename a complete temporary output onto its final name, unless a signal came
    (:func:`check_signalled`: then the caller's cleanup deletes it)."""
    check_signalled()
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block ends
    normally, delete it when the block raises.  ``suffix`` is appended to the temporary name
    for writers that choose a format from the extension (e.g. ``".png"``).  Another
    process writing ``path`` at the same time is refused (:class:`OutputLock`)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    lock = OutputLock(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        commit(tmp, path)
    except OSError as exc:
        if isinstance(exc, PoetmlError):
            raise
        raise write_error(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
        lock.release()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars/arrays turned into Python ones, paths into strings and
    non-finite floats into ``None``, so :func:`json.dumps` with ``allow_nan=False`` accepts
    it (NaN is not JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (through :func:`to_jsonable`: NaN and infinities become ``null``) as
    indented, strict JSON, atomically; return the path.  Keys keep their order."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
