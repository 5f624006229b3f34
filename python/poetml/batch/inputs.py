"""Inputs of a batch: patterns -> files, entry ranges -> tasks, the fingerprint of a run.

:func:`spec_fingerprint` holds everything that decides the content of a batch output;
:func:`fingerprint_diff` says in words what changed between two runs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..exceptions import ConfigError, ReadError

__all__ = ["KINDS", "expand_inputs", "fingerprint_diff", "plan_ranges", "spec_fingerprint"]

#: What a batch can produce: the dataset name of its main array (images, features), or
#: ``scores``: per-event columns of a scorer (:class:`poetml.firmware.scoring.FirmwareScorer`).
KINDS = ("images", "features", "scores")


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def require_xrootd(path: str) -> None:
    from .._optional import require

    require("fsspec_xrootd", f"reading remote input {path}")


def expand_inputs(patterns: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Input patterns -> sorted, de-duplicated list of files.

    Local paths become absolute; glob patterns (``*``, ``?``, ``[``) are expanded and a
    pattern that matches nothing is an error; a directory is an error (give a pattern such
    as ``dir/*.root``).  ``root://`` URLs are kept as they are, after checking that the
    ``xrootd`` extra is installed (:class:`~poetml.exceptions.MissingDependencyError`
    otherwise).
    """
    out: dict[str, None] = {}
    for pattern in patterns:
        text = os.fspath(pattern)
        text = text.removeprefix("file://")
        if is_url(text):
            if text.startswith(("root://", "xroot://")):
                require_xrootd(text)
            out[text] = None
            continue
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise ReadError(f"input pattern {text!r} matches no file")
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise ReadError(f"input pattern {text!r} matches only directories: {matches[:5]}")
        else:
            if os.path.isdir(text):
                raise ReadError(
                    f"input {text!r} is a directory; give files or a pattern such "
                    f"as '{os.path.join(text, '*.root')}'"
                )
            if not os.path.exists(text):
                raise ReadError(f"input file {text!r} does not exist")
            files = [text]
        for f in files:
            out[os.path.abspath(f)] = None
    if not out:
        raise ReadError("no input files given")
    return sorted(out)


def plan_ranges(n_entries: int, step_size: int) -> list[tuple[int, int]]:
    """Entry ranges ``[start, stop)`` of at most ``step_size`` entries covering a file."""
    if step_size < 1:
        raise ConfigError(f"step_size must be a positive number of entries, got {step_size}")
    if n_entries < 0:
        raise ValueError(f"n_entries must be >= 0, got {n_entries}")
    return [(lo, min(lo + step_size, n_entries)) for lo in range(0, n_entries, step_size)]


def _spec_mapping(spec: Any) -> Any:
    from .._mapping import to_mapping

    return to_mapping(spec)


def scorer_identity(scorer: Any) -> dict[str, Any]:
    """What decides the scores of ``scorer`` (its ``identity``: for a firmware scorer the
    model directory's and the emulator export's SHA-256 and the input spec), as JSON data;
    something that is no scorer is a :class:`~poetml.exceptions.ConfigError`."""
    identity = getattr(scorer, "identity", None)
    if not isinstance(identity, Mapping) or not callable(getattr(scorer, "score", None)):
        raise ConfigError(
            "kind 'scores' needs a scorer with 'score' and 'identity' (e.g. "
            f"poetml.firmware.load_scorer(FWDIR, MODEL_DIR)), got {type(scorer).__name__}"
        )
    return dict(_spec_mapping(dict(identity)))


def spec_fingerprint(
    kind: str,
    spec: Any,
    inputs: Sequence[str],
    *,
    step_size: int,
    layout: str = "auto",
    label: int | None = None,
    image_layout: str = "sparse",
) -> dict[str, Any]:
    """Everything that decides the content of a batch output, as JSON-ready data
    (``image_layout``, sparse or dense, counts for images only; for ``scores`` the ``spec``
    is the scorer, recorded as its :func:`scorer_identity`).

    Two runs with equal fingerprints produce the same shards, so a re-run may reuse the
    shards of an earlier one.  ``hash`` is the SHA-256 of the canonical JSON of the rest.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if image_layout not in ("sparse", "dense"):
        raise ConfigError(f"image layout {image_layout!r} is not one of sparse, dense")
    body = {
        "kind": kind,
        "spec": scorer_identity(spec) if kind == "scores" else _spec_mapping(spec),
        "inputs": list(inputs),
        "step_size": int(step_size),
        "layout": layout,
        "label": label,
    }
    if kind == "images" and image_layout == "sparse":
        # only then: dense batches keep the fingerprint they had before sparse shards
        body["image_layout"] = "sparse"
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "hash": hashlib.sha256(text.encode()).hexdigest()}


def fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for key in ("kind", "step_size", "layout", "label"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    o_img, n_img = (fp.get("image_layout", "dense") for fp in (old, new))
    if o_img != n_img and "images" in (old.get("kind"), new.get("kind")):
        out.append(f"image_layout {o_img!r} -> {n_img!r}")
    if old.get("spec") != new.get("spec"):
        out.extend(f"spec {d}" for d in _dict_diff(old.get("spec"), new.get("spec")))
    if old.get("inputs") != new.get("inputs"):
        o, n = set(old.get("inputs") or ()), set(new.get("inputs") or ())
        added, removed = sorted(n - o), sorted(o - n)
        what = []
        if added:
            what.append(f"{len(added)} added (first: {added[0]})")
        if removed:
            what.append(f"{len(removed)} removed (first: {removed[0]})")
        out.append("inputs " + (", ".join(what) or "reordered"))
    return out


def _dict_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out.extend(_dict_diff(a.get(k), b.get(k), f"{prefix}{k}."))
        return out
    if a != b:
        return [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]
    return []
