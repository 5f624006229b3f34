"""Training loop and model directories.

:func:`fit` trains a compiled-here Keras model with early stopping on the validation loss
(best weights restored), ReduceLROnPlateau, fixed seeds (``tf.keras.utils.set_random_seed``
and, when ``deterministic``, TensorFlow's deterministic ops) and Keras' progress bar.  It
takes arrays, or :func:`batches` (a Keras ``Sequence``) for sparse images: those stay
sparse in memory and are densified one batch at a time (:func:`poetml.densify`), so a
CNN trains from a sparse file without ever holding the dense tensor of its split.

A *model directory* holds everything needed to use a trained model::

    model.h5              Keras HDF5 (QKeras layers; pruning wrappers stripped; load with
                          poetml.models.load_model, which supplies the custom objects and
                          refuses a file holding code: a Lambda layer, an unknown object).
                          A model.keras in its place is read too.  (QKeras 0.9 layers do not
                          load back from the .keras format, so poetml writes HDF5.)
    preprocessing.json    scaler, input fixed-point type, class names, input layout
    config.json           the model and training configuration, the variant
    history.json          loss/metrics per epoch
    metadata.json         poetml version, seconds taken, sparsity

It is written as ``.NAME.PID.tmp`` next to its final place and renamed when complete, so an
interrupted run never leaves a directory that :func:`is_complete` accepts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import check_signalled, temp_path, to_jsonable
from .datasets.scalers import Preprocessing
from .images import SparseImages, densify

__all__ = [
    "TrainingConfig",
    "batches",
    "check_model_dir_config",
    "fit",
    "is_complete",
    "load_model_dir",
    "model_dir_fingerprint",
    "save_model_dir",
]

MODEL_FILES = ("model.keras", "model.h5")  # read in this order; save_model_dir writes model.h5
_FILES = ("preprocessing.json", "config.json", "history.json", "metadata.json")
# configuration values that change how a run goes, not the model it trains
# (and the beam the run quotes its rates at: ``poetml firmware`` reads it back)
_RUNTIME_KEYS = (
    ("training", "verbose"),
    ("training", "threads"),
    ("dataset", "step_size"),
    ("beam",),
)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and stopping: Adam at ``learning_rate``, at most ``epochs`` epochs,
    early stopping after ``patience`` epochs without validation-loss improvement (best
    weights restored), learning rate times ``lr_factor`` after ``lr_patience`` flat epochs."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 5
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    seed: int = 42
    deterministic: bool = True
    #: 1: one progress bar per model (epochs, with loss and val_loss); 2: Keras' line per
    #: epoch; 0: silent
    verbose: int = 1
    threads: int = 0
    #: ``none``: every training event counts once in the loss (classes balanced by the
    #: dataset's ``balance``); ``cross_section``: each event's loss is multiplied by its
    #: weight [pb] (normalised to mean 1 over the split), so an autoencoder learns the
    #: Standard Model in the proportions of real collisions.  Sample weights, not weighted
    #: sampling: the weights span orders of magnitude, and resampling would repeat the
    #: heaviest events many times per epoch while dropping the light ones altogether.
    event_weights: str = "none"

    def __post_init__(self) -> None:
        import math

        from .exceptions import ConfigError

        if self.event_weights not in ("none", "cross_section"):
            raise ConfigError(
                f"must be 'none' or 'cross_section', got {self.event_weights!r}",
                key="event_weights",
            )

        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(
                f"learning_rate must be > 0, got {self.learning_rate}", key="learning_rate"
            )
        for key in ("patience", "lr_patience", "threads"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key=key)
        if not 0 < self.lr_factor < 1:
            raise ConfigError(f"must be in (0, 1), got {self.lr_factor}", key="lr_factor")
        if not self.min_lr >= 0:
            raise ConfigError(f"must be >= 0, got {self.min_lr}", key="min_lr")


def set_seeds(config: TrainingConfig) -> None:
    from .models import _backend

    tf = _backend.tf()
    tf.keras.utils.set_random_seed(config.seed)
    if config.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(config.threads)
        except RuntimeError:  # already initialised in this process
            pass
    if config.deterministic:
        # AttributeError: older TF without it; RuntimeError: already set in this process
        with contextlib.suppress(AttributeError, RuntimeError):
            tf.config.experimental.enable_op_determinism()


def batches(
    x: SparseImages | np.ndarray,
    y: np.ndarray | None,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    sample_weight: np.ndarray | None = None,
    n_threads: int | None = 1,
) -> Any:
    """A ``tf.keras.utils.Sequence`` of ``(x, y[, sample_weight])`` batches for
    ``model.fit`` / :func:`fit` / ``model.evaluate``.

    ``x`` is :class:`~poetml.images.SparseImages` (e.g. from
    :func:`poetml.datasets.sparse.read_sparse`, selected with ``.take(split.train)``): each
    batch is densified on the fly (C++ :func:`poetml.densify`), so dense memory is bounded
    by ``batch_size`` events.  A dense array works the same (batches are slices of it).
    ``transform`` is applied to each dense batch (e.g. :meth:`Preprocessing.apply
    <poetml.datasets.scalers.Preprocessing.apply>`, which is elementwise, so per batch
    equals whole array).  ``y`` None: each batch's target is its input after ``transform``
    (autoencoders; ``predict`` ignores targets).  Batch ``i`` holds events ``order[i * batch_size : (i + 1) *
    batch_size]``, ``order`` the identity, or with ``shuffle_seed`` a permutation from
    ``numpy.random.default_rng(shuffle_seed)`` drawn afresh after every epoch: the same
    seed gives the same batches, whichever the storage.  ``n_threads``: of each densify
    call (default 1: a batch is a few hundred microseconds of work, less than starting
    threads costs on a busy machine; None or 0: all cores).
    """
    from .models import _backend

    tf = _backend.tf()
    n = len(x)
    targets = None if y is None else np.asarray(y)
    if targets is not None and len(targets) != n:
        raise ValueError(f"batches: {n} events but {len(targets)} targets")
    if sample_weight is not None and len(sample_weight) != n:
        raise ValueError(f"batches: {n} events but {len(sample_weight)} sample weights")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    sequence_base: Any = tf.keras.utils.Sequence  # a class known only at run time

    class Batches(sequence_base):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
            self.order = self.rng.permutation(n) if self.rng is not None else np.arange(n)

        def __len__(self) -> int:
            return (n + batch_size - 1) // batch_size

        def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
            if not 0 <= i < len(self):
                raise IndexError(f"batch {i} out of range for {len(self)} batches")
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            if isinstance(x, SparseImages):
                xb = densify(x.take(idx), n_threads=n_threads)
            else:
                xb = np.asarray(x[idx], dtype=np.float32)
            if transform is not None:
                xb = transform(xb)
            yb = xb if targets is None else targets[idx]
            if sample_weight is None:
                return xb, yb
            return xb, yb, np.asarray(sample_weight)[idx]

        def on_epoch_end(self) -> None:
            if self.rng is not None:
                self.order = self.rng.permutation(n)

    return Batches()


def fit(
    model: Any,
    x_train: np.ndarray | Any,
    y_train: np.ndarray | None,
    x_val: np.ndarray | Any,
    y_val: np.ndarray | None,
    config: TrainingConfig,
    *,
    loss: Any,
    metrics: Sequence[Any] = (),
    class_weight: Mapping[int, float] | None = None,
    sample_weight: np.ndarray | None = None,
    val_sample_weight: np.ndarray | None = None,
    callbacks: Sequence[Any] = (),
    epochs: int | None = None,
    restore_best: bool = True,
) -> dict[str, list[float]]:
    """Compile ``model`` with Adam and ``loss`` and train it; returns the history.

    ``x_train`` / ``x_val`` are arrays with their targets ``y_train`` / ``y_val``, or
    Keras ``Sequence`` objects such as :func:`batches` (then ``y_*`` are None, the
    Sequence holds targets, sample weights, batch size and shuffling).
    ``restore_best=False`` trains exactly ``epochs`` epochs and keeps the last weights
    (pruning fine-tuning: earlier, less sparse weights must not come back)."""
    from .models import _backend

    tf = _backend.tf()
    set_seeds(config)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss=loss,
        metrics=list(metrics),
    )

    callback_base: Any = tf.keras.callbacks.Callback  # a class known only at run time

    class RestoreBest(callback_base):
        """Keep the weights of the epoch with the lowest val_loss; restore them at the end
        (Keras' EarlyStopping restores only when it stops early)."""

        best = np.inf
        weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            v = (logs or {}).get("val_loss")
            if v is not None and np.isfinite(v) and v < self.best:
                self.best, self.weights = float(v), self.model.get_weights()

        def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
            if self.weights is not None:
                self.model.set_weights(self.weights)

    stopping = (
        [
            tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
            RestoreBest(),
        ]
        if restore_best
        else []
    )
    cbs = [
        *stopping,
        tf.keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=config.lr_factor,
            patience=config.lr_patience,
            min_lr=config.min_lr,
            verbose=0,
        ),
        *callbacks,
    ]
    n_epochs = epochs or config.epochs
    if config.verbose == 1:
        cbs.append(_epoch_bar(callback_base, n_epochs, getattr(model, "name", "model")))
    sequence = y_train is None  # a keras Sequence: it batches and shuffles itself
    if sequence and sample_weight is not None:
        raise ValueError("fit: give sample weights to the Sequence (batches(sample_weight=))")
    hist = model.fit(
        x_train,
        None if sequence else y_train,
        validation_data=x_val
        if y_val is None
        else ((x_val, y_val) if val_sample_weight is None else (x_val, y_val, val_sample_weight)),
        epochs=n_epochs,
        batch_size=None if sequence else config.batch_size,
        class_weight=dict(class_weight) if class_weight else None,
        sample_weight=sample_weight,
        callbacks=cbs,
        verbose=0 if config.verbose == 1 else config.verbose,
        shuffle=not sequence,
    )
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def _epoch_bar(base: Any, epochs: int, name: str) -> Any:
    """A Keras callback drawing one tqdm bar over the epochs of one model, with the last
    loss and validation loss; closed when training ends (early stopping included)."""
    from tqdm.auto import tqdm

    class EpochBar(base):
        def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
            self.bar = tqdm(total=epochs, desc=f"training {name}", unit="epoch", leave=True)

        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            logs = logs or {}
            self.bar.set_postfix(
                {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss")},
                refresh=False,
            )
            self.bar.update(1)

        def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
            self.bar.close()

    return EpochBar()


def _json(obj: Any) -> str:
    return json.dumps(to_jsonable(dict(obj)), indent=2, default=str, allow_nan=False)


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a finished model directory (all files present)."""
    p = Path(path)
    return (
        p.is_dir()
        and any((p / f).is_file() for f in MODEL_FILES)
        and all((p / f).is_file() for f in _FILES)
    )


def save_model_dir(
    path: str | os.PathLike[str],
    model: Any,
    preprocessing: Preprocessing,
    *,
    config: Mapping[str, Any],
    history: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model directory atomically (see module docstring); replaces an old one."""
    from ._version import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with warnings.catch_warnings():
            # HDF5 is chosen, not legacy by accident: QKeras 0.9 models cannot be read back
            # from the .keras format (see poetml.models.loading); and QKeras quantizers are
            # stored as constraints by design, which Keras 2.15 warns about
            warnings.filterwarnings("ignore", message=".*saving your model as an HDF5 file")
            warnings.filterwarnings("ignore", message=r".*keras\.constraints\.serialize")
            model.save(tmp / "model.h5", include_optimizer=False, save_format="h5")
        (tmp / "preprocessing.json").write_text(preprocessing.to_json())
        # strict JSON (a NaN loss is null, not NaN): to_jsonable, then str for the rest
        (tmp / "config.json").write_text(_json(config))
        (tmp / "history.json").write_text(_json(history))
        meta = {"poetml_version": __version__, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        meta.update(metadata or {})
        (tmp / "metadata.json").write_text(_json(meta))
        check_signalled()  # a signal whose raise Python swallowed: keep the old directory
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@dataclass(frozen=True, eq=False)
class ModelDir:
    """A loaded model directory."""

    path: Path
    model: Any
    preprocessing: Preprocessing
    config: dict[str, Any]
    history: dict[str, Any]
    metadata: dict[str, Any]


def _read_json(path: Path) -> Any:
    from .exceptions import ReadError

    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReadError(f"cannot read {path}: {' '.join(str(exc).split())}") from exc


def model_dir_fingerprint(path: str | os.PathLike[str]) -> dict[str, str]:
    """What identifies a model directory's deployable network: SHA-256 of its
    ``preprocessing.json`` and of its model file (firmware records it, and
    ``poetml score --firmware`` checks it, so scores never pair a network with another
    model's preprocessing).  A missing file is a :class:`~poetml.exceptions.ReadError`."""
    import hashlib

    from .exceptions import ReadError

    p = Path(path)
    model_file = next((p / f for f in MODEL_FILES if (p / f).is_file()), None)
    out = {"path": str(p)}
    for key, f in (
        ("preprocessing_sha256", p / "preprocessing.json"),
        ("model_sha256", model_file),
    ):
        if f is None or not f.is_file():
            raise ReadError(f"{p}: not a poetml model directory (no {key.split('_')[0]} file)")
        out[key] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def load_model_dir(
    path: str | os.PathLike[str], *, trust_model: bool = False, with_model: bool = True
) -> ModelDir:
    """Load a directory written by :func:`save_model_dir`.

    The model file is checked before it is deserialised and refused when it holds code (a
    ``Lambda`` layer, an unknown custom object): see :func:`poetml.models.load_model`.
    ``trust_model=True`` skips the check and runs the code stored in the file.  A missing,
    truncated or malformed file is a :class:`~poetml.exceptions.ReadError` naming it.
    ``with_model=False`` reads only the JSON files (``model`` is None; no TensorFlow)."""
    from .exceptions import ReadError
    from .models import load_model

    p = Path(path)
    if not is_complete(p):
        if p.is_dir():
            missing = [f for f in _FILES if not (p / f).is_file()]
            if not any((p / f).is_file() for f in MODEL_FILES):
                missing.insert(0, " or ".join(MODEL_FILES))
        else:
            missing = ["(directory)"]
        raise ReadError(f"{p}: not a complete poetml model directory; missing {', '.join(missing)}")
    pre = p / "preprocessing.json"
    try:
        preprocessing = Preprocessing.from_json(pre.read_text())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"cannot read {pre}: {' '.join(str(exc).split())}") from exc
    jsons = {}
    for name in ("config.json", "history.json", "metadata.json"):
        jsons[name] = _read_json(p / name)
        if not isinstance(jsons[name], dict):
            raise ReadError(f"cannot read {p / name}: not a JSON object")
    model_file = next(p / f for f in MODEL_FILES if (p / f).is_file())
    return ModelDir(
        p,
        load_model(model_file, trust_model=trust_model) if with_model else None,
        preprocessing,
        jsons["config.json"],
        jsons["history.json"],
        jsons["metadata.json"],
    )


def _differences(recorded: Any, expected: Any, key: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(expected, dict):
        out: list[str] = []
        for k in expected:
            if k in recorded and tuple(f"{key}.{k}".strip(".").split(".")) not in _RUNTIME_KEYS:
                out += _differences(recorded[k], expected[k], f"{key}.{k}".strip("."))
        return out
    return [] if recorded == expected else [f"{key} is {recorded!r} there, {expected!r} here"]


def check_model_dir_config(
    path: str | os.PathLike[str],
    recorded: Mapping[str, Any],
    expected: Mapping[str, Any],
    source: str,
) -> None:
    """Raise :class:`~poetml.exceptions.ConfigError` when a model directory's recorded
    ``config.json`` (``recorded``) differs from the configuration being run (``expected``,
    the mapping :func:`save_model_dir` would record, from ``source``): a model trained for
    another task, inputs or architecture.  Only keys present in both are compared; values
    that do not change the model (verbosity, threads, chunk size) are ignored."""
    from .exceptions import ConfigError

    normal = json.loads(json.dumps(dict(expected), default=str))
    diffs = _differences(dict(recorded), normal)
    if diffs:
        more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
        raise ConfigError(
            f"model directory {path} was trained with another configuration than {source}: "
            f"{'; '.join(diffs[:3])}{more}; retrain it (poetml train) or use another output "
            "directory"
        )
