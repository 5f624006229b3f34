"""Input scaling fitted on the training split only, kept as an immutable JSON value.

Scaling is a per-column (features) or per-channel (images) *division*, never a shift, so
zero-padded slots and empty pixels stay exactly 0 after scaling (which the masked
autoencoder loss relies on), and the firmware only needs one multiply per input.

Features
    energy-like columns (names ending in ``_pt`` and the event quantities ``ht``, ``met``,
    ``m_mumu``, ``m_jj``) are divided by a scale shared by all slots of one object type and
    field (all ``jet_*_pt`` share one): the ``quantile`` (default 0.99) of the non-zero
    training values; with ``log1p`` they become ``log1p(x) / scale``.  Angular columns
    (``*_eta``, ``*_phi``) are left as they are (scale 1): eta is already O(1) and phi keeps
    its periodic range [-pi, pi) so -pi and +pi stay the same direction.  Counts
    (``n_jet`` ...) are divided by the quantile too.
Images
    each channel is divided by the ``quantile`` of its non-zero training pixels.

After scaling, :func:`poetml.models.quantized.quantize_fixed` rounds the inputs to the
fixed-point type the firmware receives (``Preprocessing`` records its bits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..exceptions import DatasetError
from ..images import SparseImages

__all__ = [
    "DatasetError",
    "Preprocessing",
    "Scaler",
    "check_finite",
    "check_sparse_finite",
    "fit_scaler",
]


_ENERGY_QUANTITIES = ("ht", "met", "m_mumu", "m_jj")


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise :class:`DatasetError` naming the first event and index holding NaN or inf."""
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if bad.any():
        flat = np.argwhere(bad)[0]
        n_bad = int(bad.reshape(len(x), -1).any(axis=1).sum())
        raise DatasetError(
            f"{what}: {n_bad} event(s) hold NaN or inf; first at event {int(flat[0])}, "
            f"index {tuple(int(i) for i in flat[1:])} (value {x[tuple(flat)]})"
        )


def check_sparse_finite(x: SparseImages, what: str) -> None:
    """:func:`check_finite` of sparse images (only stored pixels can be NaN or inf): raises
    :class:`DatasetError` naming the first event and pixel ``(ix, iy, c)``."""
    lo, hi = int(x.offsets[0]), int(x.offsets[-1])
    values = np.asarray(x.values[lo:hi])
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        events = np.searchsorted(x.offsets, lo + bad, side="right") - 1
        pixel = np.unravel_index(int(x.index[lo + bad[0]]), x.shape)
        raise DatasetError(
            f"{what}: {len(np.unique(events))} event(s) hold NaN or inf; first at event "
            f"{int(events[0])}, index {tuple(int(i) for i in pixel)} (value {values[bad[0]]})"
        )


def _group(name: str) -> tuple[str, str]:
    """(scaling group, role) of a feature column: role is energy, angle or count."""
    m = re.fullmatch(r"(.+?)(?:_\d+)?_(pt|eta|phi|[a-z]+)", name)
    if name in _ENERGY_QUANTITIES:
        return name, "energy"
    if name.startswith("n_"):
        return name, "count"
    if m:
        obj, fld = m.groups()
        if fld == "pt":
            return f"{obj}_pt", "energy"
        if fld in ("eta", "phi"):
            return f"{obj}_{fld}", "angle"
        return f"{obj}_{fld}", "count"
    return name, "count"


@dataclass(frozen=True)
class Scaler:
    """x_scaled = (log1p(x) if log1p[i] else x) / scale[i], per column or channel."""

    kind: str
    names: tuple[str, ...]
    scale: tuple[float, ...]
    log1p: tuple[bool, ...]
    quantile: float = 0.99

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        n = len(self.scale)
        axis_len = x.shape[-1] if x.ndim >= 2 else -1
        if axis_len != n:
            raise ValueError(
                f"scaler fitted on {n} {'channels' if self.kind == 'images' else 'columns'} "
                f"({', '.join(self.names)}), got data of shape {x.shape}"
            )
        out = np.array(x, dtype=np.float32, copy=True)
        logs = np.array(self.log1p, dtype=bool)
        if logs.any():
            out[..., logs] = np.log1p(np.maximum(out[..., logs], 0.0))
        out /= np.asarray(self.scale, dtype=np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scaler:
        return cls(
            kind=str(d["kind"]),
            names=tuple(d["names"]),
            scale=tuple(float(s) for s in d["scale"]),
            log1p=tuple(bool(b) for b in d["log1p"]),
            quantile=float(d.get("quantile", 0.99)),
        )


def _image_scale(values: np.ndarray, quantile: float) -> float:
    """The scale of one image channel: the ``quantile`` of its absolute non-zero pixel
    ``values`` (1 when it has none or that is 0).  The same whether ``values`` are every
    pixel of dense images or only the stored pixels of sparse ones: zeros are left out
    either way, and a quantile depends on the values, not their order."""
    nz = np.abs(values[values != 0])
    s = float(np.quantile(nz, quantile)) if len(nz) else 1.0
    return s if s > 0 else 1.0


def fit_scaler(
    x: np.ndarray | SparseImages,
    kind: str,
    names: Sequence[str],
    *,
    quantile: float = 0.99,
    log1p_energy: bool = False,
) -> Scaler:
    """Fit a :class:`Scaler` on training data ``x`` (features ``(N, F)`` or images
    ``(N, H, W, C)``, dense or :class:`~poetml.images.SparseImages`); ``names`` are the
    feature names or channel names.  Sparse images are never densified: their stored
    pixels are exactly the non-zero pixels the dense fit looks at, so both give the same
    scaler."""
    names = tuple(names)
    if isinstance(x, SparseImages):
        if kind != "images":
            raise ValueError(f"sparse images given for a scaler of {kind!r}")
        n_ch = x.shape[2]
        if n_ch != len(names):
            raise ValueError(f"{len(names)} names for images of {n_ch} channels")
        if x.n_events == 0:
            raise ValueError("cannot fit a scaler on an empty training set")
        lo, hi = int(x.offsets[0]), int(x.offsets[-1])
        values = np.asarray(x.values[lo:hi], dtype=np.float32)
        check_sparse_finite(x, "training inputs")
        channel = np.asarray(x.index[lo:hi]) % n_ch
        per_channel = tuple(_image_scale(values[channel == c], quantile) for c in range(n_ch))
        return Scaler("images", names, per_channel, (False,) * n_ch, quantile)
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != len(names):
        raise ValueError(f"{len(names)} names for data of shape {x.shape}")
    if len(x) == 0:
        raise ValueError("cannot fit a scaler on an empty training set")
    check_finite(x, "training inputs")
    if kind == "images":
        flat = x.reshape(-1, x.shape[-1])
        per_channel = tuple(_image_scale(flat[:, c], quantile) for c in range(flat.shape[1]))
        return Scaler("images", names, per_channel, (False,) * len(names), quantile)
    if kind != "features":
        raise ValueError(f"unknown data kind {kind!r}; expected images or features")
    groups: dict[str, list[int]] = {}
    roles: dict[str, str] = {}
    for i, name in enumerate(names):
        g, role = _group(name)
        groups.setdefault(g, []).append(i)
        roles[g] = role
    scale = [1.0] * len(names)
    logs = [False] * len(names)
    for g, cols in groups.items():
        if roles[g] == "angle":
            continue
        use_log = log1p_energy and roles[g] == "energy"
        values = x[:, cols].ravel()
        values = values[values != 0]
        if use_log:
            values = np.log1p(np.maximum(values, 0))
        s = float(np.quantile(np.abs(values), quantile)) if len(values) else 1.0
        for i in cols:
            scale[i] = s if s > 0 else 1.0
            logs[i] = use_log
    return Scaler("features", names, tuple(scale), tuple(logs), quantile)


@dataclass(frozen=True)
class Preprocessing:
    """Everything between stored arrays and the network input: the scaler, the fixed-point
    input quantization (``quantized_bits(input_bits, input_integer)`` =
    ``ap_fixed<input_bits, input_integer + 1>``), the class names and the input layout.
    Saved as ``preprocessing.json`` in every model directory."""

    scaler: Scaler
    input_bits: int
    input_integer: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    kind: str
    feature_names: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None

    @property
    def hls_input_type(self) -> str:
        return f"ap_fixed<{self.input_bits},{self.input_integer + 1}>"

    def apply(self, x: np.ndarray, what: str = "inputs") -> np.ndarray:
        """Scale and quantize raw inputs (checks shape and finiteness first)."""
        from .._fixed import quantize_fixed

        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise DatasetError(
                f"{what}: shape {x.shape[1:]} per event does not match the model input "
                f"{tuple(self.input_shape)}"
            )
        check_finite(x, what)
        return quantize_fixed(self.scaler.transform(x), self.input_bits, self.input_integer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scaler": self.scaler.to_dict(),
            "input_quantization": {
                "bits": self.input_bits,
                "integer": self.input_integer,
                "signed": True,
                "qkeras": f"quantized_bits({self.input_bits}, {self.input_integer}, "
                "keep_negative=True, alpha=1)",
                "hls_type": self.hls_input_type,
            },
            "class_names": list(self.class_names),
            "input_shape": list(self.input_shape),
            "kind": self.kind,
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "channels": None if self.channels is None else list(self.channels),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        q = d["input_quantization"]
        return cls(
            scaler=Scaler.from_dict(d["scaler"]),
            input_bits=int(q["bits"]),
            input_integer=int(q["integer"]),
            class_names=tuple(d["class_names"]),
            input_shape=tuple(int(s) for s in d["input_shape"]),
            kind=str(d["kind"]),
            feature_names=None if d.get("feature_names") is None else tuple(d["feature_names"]),
            channels=None if d.get("channels") is None else tuple(d["channels"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        return cls.from_dict(json.loads(text))
