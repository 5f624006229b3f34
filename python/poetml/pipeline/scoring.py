"""``poetml score``: per-event scores of a trained model as a friend TTree of its inputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path, check_output
from ..exceptions import ConfigError, ReadError
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
    in the C++ core (:mod:`poetml.firmware.emulate`), and the Keras model is not loaded:
    branches ``firmware_score`` (float64, the fixed-point value the trigger compares; for a
    reconstruction-error score the ratio sum/count) and ``trigger`` (the bit of
    ``trigger.h``: score above the threshold set at the firmware's rate).  A firmware made
    from another model directory (its recorded fingerprint differs) is refused."""
    import uproot

    from .._mapping import from_mapping
    from ..features import FeatureSpec
    from ..images import ImageSpec
    from ..reading import expand_files, iterate
    from ..training import load_model_dir

    files = expand_files([os.fspath(i) for i in inputs])
    check_output(output, files)  # before the model or any input is read
    fw = None if firmware is None else _load_firmware(firmware, model_dir)
    md = load_model_dir(model_dir, trust_model=trust_model, with_model=fw is None)
    conf = md.config
    spec: ImageSpec | FeatureSpec
    try:
        if conf.get("spec_type") == "ImageSpec":
            spec = from_mapping(ImageSpec, conf["spec"])
        else:
            spec = from_mapping(FeatureSpec, conf["spec"])
        autoencoder = conf["model"]["type"] != "cnn"
    except (KeyError, TypeError) as exc:
        raise ReadError(
            f"{Path(model_dir) / 'config.json'}: no {exc} entry; it does not describe the inputs "
            "of a poetml model (written by poetml train/run)"
        ) from exc
    output = Path(output)
    from .. import features as feat
    from .. import images as img

    with atomic_path(output) as tmp, uproot.recreate(tmp) as fout:
        created = False
        for fi, path in enumerate(files):
            for batch in iterate(
                path, step_size, layout=layout, progress=progress, missing_collections="empty"
            ):
                if isinstance(spec, ImageSpec):
                    x = img.rasterize(batch, spec)
                else:
                    x, _ = feat.build_features(batch, spec)
                xs = md.preprocessing.apply(x, f"{path} entries {batch.entry_start}+")
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


class _Firmware:
    """A firmware's network (emulator) and trigger rule, as ``poetml firmware`` wrote them."""

    def __init__(self, export: Any, meta: dict[str, Any], path: Path):
        from ..firmware.emulate import emulate

        self.network = export.network()
        self.meta = meta
        self.path = path
        self._emulate = emulate
        self.n_inputs = export.n_inputs

    def branches(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        from ..firmware.trigger import trigger_fires, trigger_scores

        x = np.asarray(xs, np.float32)  # the firmware's inputs as poetml firmware passes them
        if x.size and x.reshape(len(x), -1).shape[1] != self.n_inputs:
            raise ConfigError(
                f"{self.path}: the firmware network reads {self.n_inputs} values per event, the "
                f"model directory's inputs have {x.reshape(len(x), -1).shape[1]}"
            )
        y = self._emulate(self.network, x) if len(x) else np.zeros((0, 1))
        i, d = int(self.meta["score_index"]), self.meta.get("denominator_index")
        d = None if d is None else int(d)
        return {
            "firmware_score": trigger_scores(y, i, d),
            "trigger": trigger_fires(y, float(self.meta["threshold"]), i, d),
        }


def _load_firmware(
    firmware: str | os.PathLike[str], model_dir: str | os.PathLike[str]
) -> _Firmware:
    """The emulator export of a ``poetml firmware`` output, checked against ``model_dir``."""
    import warnings

    from ..firmware.emulate import load_export
    from ..training import model_dir_fingerprint

    path = Path(firmware)
    if path.is_dir():
        path = path / "emulator" / "emulator.npz"
    if not path.is_file():
        raise ConfigError(
            f"{path}: no emulator export; 'poetml firmware' writes it (emulator/emulator.npz in "
            "its output directory) when the bit-exact emulator reproduces the network"
        )
    export, meta = load_export(path)
    recorded = meta.get("model_dir")
    if recorded:
        here = model_dir_fingerprint(model_dir)
        keys = ("preprocessing_sha256", "model_sha256")
        if any(recorded.get(k) != here[k] for k in keys):
            raise ConfigError(
                f"{path} was made from the model directory {recorded.get('path')}, whose model "
                f"or preprocessing differs from {model_dir}: pass the firmware of this model"
            )
    else:
        warnings.warn(
            f"{path} does not record the model directory it was made from: its pairing with "
            f"{model_dir} (same network, same preprocessing) is not checked",
            stacklevel=3,
        )
    return _Firmware(export, meta, path)
