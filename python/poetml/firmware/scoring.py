"""Firmware-exact scores of events: a model directory's inputs through the emulator.

:func:`load_scorer` reads a ``poetml firmware`` output's emulator export
(``emulator/emulator.npz``), checks that it was made from the given model directory, and
returns a :class:`FirmwareScorer`: events (an :class:`~poetml.jagged.EventBatch`) -> the
model's inputs (the spec of its ``config.json`` through the C++ core, then its
preprocessing) -> the network on the bit-exact emulator -> ``firmware_score`` and
``trigger``.  ``poetml score --firmware`` (:func:`poetml.pipeline.scoring.score`) and
``poetml batch score`` (:mod:`poetml.batch`, on Dask workers) both use it, so the two give
the same numbers.  Nothing here loads TensorFlow or hls4ml.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import ConfigError, ReadError

if TYPE_CHECKING:
    from ..datasets.scalers import Preprocessing
    from ..features import FeatureSpec
    from ..images import ImageSpec
    from ..jagged import EventBatch
    from .emulate import EmulatorExport

__all__ = ["COLUMNS", "FirmwareScorer", "input_spec", "load_scorer", "model_inputs"]

#: what :meth:`FirmwareScorer.branches` gives per event, and its dtypes
COLUMNS = {"firmware_score": np.dtype(np.float64), "trigger": np.dtype(bool)}


def input_spec(config: Mapping[str, Any], model_dir: str | os.PathLike[str]) -> tuple[Any, str]:
    """The input spec (:class:`~poetml.images.ImageSpec` or
    :class:`~poetml.features.FeatureSpec`) and the model type named by a model directory's
    ``config.json`` (as ``poetml train``/``run`` write it); without them a
    :class:`~poetml.exceptions.ReadError` naming the file."""
    from .._mapping import from_mapping
    from ..features import FeatureSpec
    from ..images import ImageSpec

    try:
        cls = ImageSpec if config.get("spec_type") == "ImageSpec" else FeatureSpec
        return from_mapping(cls, config["spec"]), str(config["model"]["type"])
    except (KeyError, TypeError) as exc:
        raise ReadError(
            f"{Path(model_dir) / 'config.json'}: no {exc} entry; it does not describe the inputs "
            "of a poetml model (written by poetml train/run)"
        ) from exc


def model_inputs(
    batch: EventBatch,
    spec: ImageSpec | FeatureSpec,
    preprocessing: Preprocessing,
    *,
    n_threads: int | None = None,
    what: str = "inputs",
) -> np.ndarray:
    """The network inputs of ``batch``: images or features built per ``spec`` by the C++
    core, then the model's ``preprocessing`` (scaling and input quantization)."""
    from ..features import build_features
    from ..images import ImageSpec, rasterize

    if isinstance(spec, ImageSpec):
        x = rasterize(batch, spec, n_threads=n_threads)
    else:
        x, _ = build_features(batch, spec, n_threads=n_threads)
    return preprocessing.apply(x, what)


class FirmwareScorer:
    """A firmware's network (emulator) and trigger rule, as ``poetml firmware`` wrote them,
    with the inputs of the model directory it was made from (spec and preprocessing).

    Plain values (the :class:`~poetml.firmware.emulate.EmulatorExport`'s integer arrays,
    JSON-like ``meta``, the spec and preprocessing dataclasses), so it pickles and can be sent
    to Dask workers; the compiled network is rebuilt where it is used.  ``identity`` is
    JSON-ready data naming what decides the scores (the model directory's recorded SHA-256s,
    the export file's SHA-256, the input spec), for a batch run's fingerprint."""

    def __init__(
        self,
        export: EmulatorExport,
        meta: Mapping[str, Any],
        path: str | os.PathLike[str],
        *,
        spec: ImageSpec | FeatureSpec | None = None,
        preprocessing: Preprocessing | None = None,
        identity: Mapping[str, Any] | None = None,
    ):
        self.export = export
        self.meta = dict(meta)
        self.path = Path(path)
        self.spec = spec
        self.preprocessing = preprocessing
        self.identity = dict(identity or {})
        self.n_inputs = export.n_inputs
        self._network: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_network"] = None  # a C++ object: rebuilt from the export where unpickled
        return state

    @property
    def network(self) -> Any:
        """The compiled :class:`poetml._core.EmuNetwork` (built on first use)."""
        if self._network is None:
            self._network = self.export.network()
        return self._network

    def branches(self, xs: np.ndarray, *, n_threads: int = 0) -> dict[str, np.ndarray]:
        """``firmware_score`` (float64: the fixed-point value the trigger compares; for a
        reconstruction-error score the ratio sum/count) and ``trigger`` (bool: the bit of
        ``trigger.h``) of the network inputs ``xs`` (already preprocessed);
        ``n_threads`` of the emulator (0: all cores)."""
        from .emulate import emulate
        from .trigger import trigger_fires, trigger_scores

        x = np.asarray(xs, np.float32)  # the firmware's inputs as poetml firmware passes them
        if x.size and x.reshape(len(x), -1).shape[1] != self.n_inputs:
            raise ConfigError(
                f"{self.path}: the firmware network reads {self.n_inputs} values per event, the "
                f"model directory's inputs have {x.reshape(len(x), -1).shape[1]}"
            )
        y = emulate(self.network, x, n_threads=n_threads) if len(x) else np.zeros((0, 1))
        i, d = int(self.meta["score_index"]), self.meta.get("denominator_index")
        d = None if d is None else int(d)
        return {
            "firmware_score": trigger_scores(y, i, d),
            "trigger": trigger_fires(y, float(self.meta["threshold"]), i, d),
        }

    def score(
        self, batch: EventBatch, *, n_threads: int | None = 1, step: int | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`branches` of the events of ``batch``, from their inputs per the model
        directory (:func:`model_inputs`), ``step`` events at a time (default: about 16 MiB
        of inputs per step); ``n_threads`` for the input kernel and the emulator (None or 0:
        all cores)."""
        from ..datasets.convert import kernel_events

        if self.spec is None or self.preprocessing is None:
            raise ConfigError(f"{self.path}: this scorer has no model inputs (spec, preprocessing)")
        kind = "images" if type(self.spec).__name__ == "ImageSpec" else "features"
        step = max(1, step or kernel_events(kind, self.spec))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
        for lo in range(0, batch.n_events, step):
            sub = batch if (lo == 0 and step >= batch.n_events) else batch.slice(lo, lo + step)
            where = f"{batch.source} entries {batch.entry_start + lo}+"
            xs = model_inputs(sub, self.spec, self.preprocessing, n_threads=n_threads, what=where)
            for k, v in self.branches(xs, n_threads=n_threads or 0).items():
                parts[k].append(v)
        return {
            k: np.concatenate(v).astype(dt, copy=False) if v else np.zeros(0, dt)
            for (k, v), dt in zip(parts.items(), COLUMNS.values(), strict=True)
        }


def load_scorer(
    firmware: str | os.PathLike[str], model_dir: str | os.PathLike[str]
) -> FirmwareScorer:
    """The emulator export of a ``poetml firmware`` output (its folder or its
    ``emulator/emulator.npz``), checked against ``model_dir`` (a firmware recording another
    model directory's fingerprint is a :class:`~poetml.exceptions.ConfigError`), with that
    model directory's inputs (its ``config.json`` spec and ``preprocessing.json``; only the
    JSON files are read)."""
    from ..training import load_model_dir, model_dir_fingerprint
    from .emulate import load_export

    path = Path(firmware)
    if path.is_dir():
        path = path / "emulator" / "emulator.npz"
    if not path.is_file():
        raise ConfigError(
            f"{path}: no emulator export; 'poetml firmware' writes it (emulator/emulator.npz in "
            "its output directory) when the bit-exact emulator reproduces the network"
        )
    data = path.read_bytes()  # read once: what is loaded is what is fingerprinted
    export, meta = load_export(path, data)
    md = load_model_dir(model_dir, with_model=False)  # a complete directory, or one line
    spec, _ = input_spec(md.config, model_dir)
    here = model_dir_fingerprint(model_dir)
    recorded = meta.get("model_dir")
    keys = ("preprocessing_sha256", "model_sha256")
    if recorded:
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
    from .._mapping import to_mapping

    identity = {
        "model": {k: here[k] for k in keys},
        "firmware_sha256": hashlib.sha256(data).hexdigest(),
        "spec_type": type(spec).__name__,
        "spec": to_mapping(spec),
    }
    return FirmwareScorer(
        export, meta, path, spec=spec, preprocessing=md.preprocessing, identity=identity
    )
