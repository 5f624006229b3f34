"""``poetml score``: per-event scores of a trained model as a friend TTree of its inputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, check_output
from .evaluation import _predict, anomaly_scores

__all__ = ["score"]


def score(
    model_dir: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    tree: str = "scores",
    step_size: int = 20_000,
    layout: str = "auto",
    progress: bool = True,
    trust_model: bool = False,
    firmware: str | os.PathLike[str] | None = None,
) -> Path:
    """Write per-event scores of ``model_dir`` for ``inputs`` as TTree ``tree`` in
    ``output``: one entry per input entry, in order (all inputs one after the other, as a
    TChain of them), so it can be a friend tree.  Branches: ``score_<class>`` (classifier
    probabilities) and ``predicted`` (class index), or ``anomaly_score``; ``entry`` (entry
    in its own file) and ``file_index``.  The model file is refused when it holds code (a
    ``Lambda`` layer, an unknown custom object) unless ``trust_model`` (which runs it).

    ``firmware``: the output directory of ``poetml firmware`` for this model (or its
    ``emulator/emulator.npz``).  The scores are then the firmware's, bit for bit, from the emulator
    in the C++ core (:mod:`poetml.firmware.emulate`, through
    :mod:`poetml.firmware.scoring`, as ``poetml batch score`` does), and the Keras model is not loaded:
    branches ``firmware_score`` (float64, the fixed-point value the trigger compares; for a
    reconstruction-error score the ratio sum/count) and ``trigger`` (the bit of
    ``trigger.h``: score above the threshold set at the firmware's rate).  A firmware made
    from another model directory (its recorded fingerprint differs) is refused."""
    import uproot

    from ..firmware.scoring import input_spec, load_scorer, model_inputs
    from ..reading import expand_files, iterate
    from ..training import load_model_dir

    files = expand_files([os.fspath(i) for i in inputs])
    check_output(output, files)  # before the model or any input is read
    fw = None if firmware is None else load_scorer(firmware, model_dir)
    md = load_model_dir(model_dir, trust_model=trust_model, with_model=fw is None)
    spec, model_type = input_spec(md.config, model_dir)
    autoencoder = model_type != "cnn"
    output = Path(output)
    with atomic_path(output) as tmp, uproot.recreate(tmp) as fout:
        created = False
        for fi, path in enumerate(files):
            for batch in iterate(
                path, step_size, layout=layout, progress=progress, missing_collections="empty"
            ):
                xs = model_inputs(
                    batch, spec, md.preprocessing, what=f"{path} entries {batch.entry_start}+"
                )
                n = len(xs)
                branches: dict[str, np.ndarray] = {
                    "entry": batch.entry_start + np.arange(n, dtype=np.int64),
                    "file_index": np.full(n, fi, dtype=np.int32),
                }
                if fw is not None:
                    branches.update(fw.branches(xs))
                elif autoencoder:
                    branches["anomaly_score"] = anomaly_scores(
                        md.model, xs, md.preprocessing
                    ).astype(np.float32)
                else:
                    p = (
                        _predict(md.model, xs, 1024)
                        if n
                        else np.zeros((0, len(md.preprocessing.class_names)), np.float32)
                    )
                    for ci, c in enumerate(md.preprocessing.class_names):
                        branches[f"score_{c}"] = p[:, ci].astype(np.float32)
                    branches["predicted"] = (
                        np.argmax(p, axis=1).astype(np.int32) if n else np.zeros(0, np.int32)
                    )
                if not created:
                    fout.mktree(tree, {k: v.dtype for k, v in branches.items()})
                    created = True
                if n:
                    fout[tree].extend(branches)
    return output
