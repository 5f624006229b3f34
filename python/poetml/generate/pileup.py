"""Premixed pile-up: a cached pool of minimum-bias events overlaid at random.

Generating ``mu`` = 50 fresh minimum-bias interactions for every hard event would make
pile-up cost about fifty times the hard process.  As CMS production does (premixing), the
minimum-bias events are generated once into a pool, cached on disk by their settings, and
every hard event receives ``Poisson(mu)`` of them drawn at random (with replacement), each
with its vertex displaced along z by a Gaussian of 35 mm (the CMS luminous region).

A pool holds the final-state particles of ``size`` Pythia ``SoftQCD:inelastic`` events
(the :data:`~poetml.generate.processes.PROCESSES` ``minbias`` process, MPI on) as flat
columns with event offsets, and each event's pT-hat, in one ``.npz`` file named by the
SHA-256 of everything that decides it.  The overlay returns, per hard event, the largest
pT-hat among its pile-up interactions (written as ``pileup_pthat_max``; the ``zero_bias``
stream checks with it that pile-up is soft).  Reuse is the approximation premixing
makes: with ``n`` hard events at mean ``mu`` a pool event appears about ``n * mu / size``
times; the default pool (5000 events) keeps each reuse rare within a hard event.

**The pool is soft.**  Only pool events with pT-hat below :data:`PILEUP_PTHAT_BELOW`
(30 GeV, the qcd process's generation threshold) are overlaid.  About 0.2 % of minimum-bias
interactions are harder; a pool of 5000 holds about ten of them, which a sample of 30 000
events at mu = 56 would reuse some 300 times each, so the pool cannot stand for the hard
tail of pile-up.  A crossing with a hard interaction is the hard processes' business: in
the ``zero_bias`` stream it is a qcd event (with soft pile-up) weighted by its cross
section, which counts it whichever of the crossing's interactions is the hard one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import commit, temp_path
from .processes import COMMON_SETTINGS, get_process

__all__ = [
    "DEFAULT_POOL_SIZE",
    "PILEUP_PTHAT_BELOW",
    "PileupPool",
    "default_cache_dir",
    "load_pool",
    "pool_settings",
    "read_pool",
]

#: minimum-bias events in a pile-up pool unless asked otherwise
DEFAULT_POOL_SIZE = 5000
#: bump when the pool file format or its content definition changes
_POOL_REVISION = 2  # 2: each pool event's pT-hat
#: pool events with pT-hat at or above this [GeV] are never overlaid (see above)
PILEUP_PTHAT_BELOW = 30.0
#: RMS of the luminous region along z [mm]
Z_SPREAD_MM = 35.0


def default_cache_dir() -> Path:
    """``$POETML_CACHE/pileup`` or ``~/.cache/poetml/pileup``."""
    root = os.environ.get("POETML_CACHE")
    return Path(root) / "pileup" if root else Path.home() / ".cache" / "poetml" / "pileup"


def pool_settings(seed: int) -> list[str]:
    """Pythia settings of the pool's minimum-bias events (MPI always on: minimum bias is
    mostly MPI)."""
    proc = get_process("minbias")
    return [
        *COMMON_SETTINGS,
        *proc.settings,
        "PartonLevel:MPI = on",
        "Random:setSeed = on",
        f"Random:seed = {int(seed)}",
    ]


@dataclass(frozen=True)
class PileupPool:
    """Final-state particles of ``n_events`` minimum-bias events: ``offsets`` (int64,
    ``n_events + 1``), ``id`` (int32), ``px``, ``py``, ``pz``, ``e`` (float32, GeV), and
    each event's ``pthat`` (float32, GeV; 0 for diffractive events)."""

    offsets: np.ndarray
    pthat: np.ndarray
    id: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    sigma_pb: float
    path: str

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    def overlay(self, counts: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Particles of ``counts[i]`` soft pool events (pT-hat below
        :data:`PILEUP_PTHAT_BELOW`) drawn at random for each hard event ``i``:
        flat columns ``event`` (hard-event index), ``id``, ``px``, ``py``, ``pz``, ``e``
        (float64) and ``vz`` (the drawn vertex z [mm], shared by one interaction's
        particles); and per hard event ``pthat_max``, the largest pT-hat [GeV] of its drawn
        pool events (0 with none)."""
        counts = np.asarray(counts, np.int64)
        soft = np.flatnonzero(self.pthat < PILEUP_PTHAT_BELOW)
        if len(soft) == 0:
            raise ValueError(f"{self.path}: no pool event below pT-hat {PILEUP_PTHAT_BELOW} GeV")
        picks = soft[rng.integers(0, len(soft), int(counts.sum()))]
        zshift = rng.normal(0.0, Z_SPREAD_MM, len(picks))
        starts = self.offsets[picks]
        sizes = self.offsets[picks + 1] - starts
        # flat index of every particle of every pick, without a Python loop
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        idx = np.repeat(starts, sizes) + within
        hard = np.repeat(np.arange(len(counts)), counts)
        out = {k: np.asarray(getattr(self, k)[idx], np.float64) for k in ("px", "py", "pz", "e")}
        out["id"] = self.id[idx].astype(np.int64)
        out["event"] = np.repeat(hard, sizes)
        out["vz"] = np.repeat(zshift, sizes)
        pmax = np.zeros(len(counts), np.float64)
        np.maximum.at(pmax, hard, self.pthat[picks].astype(np.float64))
        out["pthat_max"] = pmax
        return out


def _pool_key(size: int, seed: int) -> str:
    from .._version import __version__

    spec = {
        "revision": _POOL_REVISION,
        "size": int(size),
        "seed": int(seed),
        "settings": pool_settings(seed),
        "poetml_version": __version__,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def _generate_pool(size: int, seed: int) -> tuple[dict[str, np.ndarray], float]:
    import awkward as ak

    from . import _pthat, make_pythia, next_events

    pythia = make_pythia(pool_settings(seed))
    batch = next_events(pythia, size)
    prt = batch["prt"]
    prt = prt[prt.status > 0]
    counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    cols: dict[str, np.ndarray] = {
        k: np.asarray(ak.to_numpy(ak.flatten(getattr(prt.p, k))), np.float32)
        for k in ("px", "py", "pz", "e")
    }
    cols["id"] = np.asarray(ak.to_numpy(ak.flatten(prt.id)), np.int32)
    cols["offsets"] = offsets
    cols["pthat"] = _pthat(batch)
    return cols, float(pythia.infoPython().sigmaGen()) * 1e9


def load_pool(
    size: int = DEFAULT_POOL_SIZE,
    *,
    seed: int = 7,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PileupPool:
    """The pool of ``size`` minimum-bias events for ``seed``: read from ``cache_dir``
    (default :func:`default_cache_dir`) when there, else generated (one Pythia instance,
    a few seconds per thousand events) and written there atomically."""
    if isinstance(size, bool) or int(size) < 1:
        raise ValueError(f"pile-up pool size must be a positive integer, got {size!r}")
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"minbias-{_pool_key(size, seed)}.npz"
    if not path.exists():
        cols, sigma = _generate_pool(int(size), int(seed))
        tmp = temp_path(path)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, sigma_pb=np.float64(sigma), **cols)
            commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return read_pool(path)


def read_pool(path: str | os.PathLike[str]) -> PileupPool:
    """The pool stored in ``path`` (no code is run: plain arrays, ``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        return PileupPool(
            offsets=z["offsets"],
            pthat=z["pthat"],
            id=z["id"],
            px=z["px"],
            py=z["py"],
            pz=z["pz"],
            e=z["e"],
            sigma_pb=float(z["sigma_pb"]),
            path=str(path),
        )
