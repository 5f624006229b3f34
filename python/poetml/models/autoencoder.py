"""Autoencoders for anomaly detection: dense (feature vectors) and convolutional (images),
their QKeras twins, and the masked reconstruction loss.

Dense (the qcd_school_ml baseline for the 57 L1 features): Input -> [Dense -> (BatchNorm) ->
ReLU] for each ``hidden`` width -> Dense(``latent_dim``) named ``latent`` (linear) -> mirror
decoder -> Dense(n_features) linear, named ``output``.

Convolutional: [Conv2D(same) -> ReLU -> MaxPool 2] per filter -> Flatten -> Dense ``latent``
-> Dense -> Reshape -> [UpSampling2D 2 -> Conv2D -> ReLU] mirrored -> Conv2D(channels)
linear, named ``output``.  Image sides must be divisible by 2**len(filters).

Zero-padded slots: :class:`MaskedMSE` (``masked_mse_class()``) averages the squared error
only over the entries whose object is present, i.e. whose slot's pT in ``y_true`` is not 0
(``pt_index[j]`` gives the pT column of column ``j``; see :func:`slot_pt_index`).  An event
with no objects at all scores 0.  :func:`reconstruction_error` is the NumPy twin used as the
anomaly score.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ModelConfig, _backend

__all__ = [
    "build_conv_autoencoder",
    "build_dense_autoencoder",
    "masked_mse_class",
    "reconstruction_error",
    "slot_pt_index",
]


def slot_pt_index(feature_names: Sequence[str]) -> list[int]:
    """For each column, the index of the pT column of its object slot.

    ``muon_2_eta`` -> index of ``muon_2_pt``; ``met_phi`` -> ``met_pt``; a column with no
    ``_pt`` sibling (an event quantity such as ``ht``) points at itself, so it counts only
    when it is non-zero.
    """
    index = {name: i for i, name in enumerate(feature_names)}
    out = []
    for i, name in enumerate(feature_names):
        prefix, _, _field = name.rpartition("_")
        out.append(index.get(f"{prefix}_pt", i) if prefix else i)
    return out


def reconstruction_error(
    x: np.ndarray, x_hat: np.ndarray, pt_index: Sequence[int] | None = None
) -> np.ndarray:
    """Per-event mean squared error (masked like :class:`MaskedMSE` when ``pt_index``)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x_hat = np.asarray(x_hat, dtype=np.float64).reshape(len(x_hat), -1)
    se = (x - x_hat) ** 2
    if pt_index is None:
        return se.mean(axis=1)
    mask = (x[:, list(pt_index)] != 0).astype(np.float64)
    return (se * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)


@functools.cache
def masked_mse_class() -> type:
    """The Keras loss class ``MaskedMSE`` (defined on first use so TF loads lazily)."""
    tf = _backend.tf()

    loss_base: Any = tf.keras.losses.Loss  # a class known only at run time

    @tf.keras.utils.register_keras_serializable(package="poetml")
    class MaskedMSE(loss_base):
        """Mean squared error over present objects only (see module docstring)."""

        def __init__(
            self, pt_index: Sequence[int] | None = None, name: str = "masked_mse", **kwargs: Any
        ) -> None:
            super().__init__(name=name, **kwargs)
            self.pt_index = None if pt_index is None else [int(i) for i in pt_index]

        def call(self, y_true: Any, y_pred: Any) -> Any:
            y_true = tf.cast(y_true, y_pred.dtype)
            batch = tf.shape(y_true)[0]
            y_true = tf.reshape(y_true, (batch, -1))
            y_pred = tf.reshape(y_pred, (batch, -1))
            se = tf.square(y_true - y_pred)
            if self.pt_index is None:
                return tf.reduce_mean(se, axis=-1)
            mask = tf.cast(tf.not_equal(tf.gather(y_true, self.pt_index, axis=1), 0.0), se.dtype)
            return tf.reduce_sum(se * mask, axis=-1) / tf.maximum(tf.reduce_sum(mask, axis=-1), 1.0)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "pt_index": self.pt_index}

    return MaskedMSE


class _Layers:
    """Float or quantized layer factories with shared names."""

    def __init__(self, config: ModelConfig, quantized: bool) -> None:
        self.tf = _backend.tf()
        self.L = self.tf.keras.layers
        self.q = config.quantization
        self.quantized = quantized
        self.slope = 0.1 if config.activation == "leaky_relu" else 0.0
        self.batchnorm = config.batchnorm
        if quantized:
            from . import quantized as qz

            self.qz = qz
            self.qk = _backend.qkeras()

    def input_quant(self, x: Any) -> Any:
        if not self.quantized:
            return x
        return self.qk.QActivation(self.qz.input_quantizer(self.q), name="input_quant")(x)

    def dense(self, x: Any, n: int, name: str) -> Any:
        if self.quantized:
            return self.qk.QDense(n, name=name, **self.qz.layer_kwargs(self.q))(x)
        return self.L.Dense(n, name=name)(x)

    def conv(self, x: Any, f: int, k: int, name: str) -> Any:
        if self.quantized:
            return self.qk.QConv2D(f, k, padding="same", name=name, **self.qz.layer_kwargs(self.q))(
                x
            )
        return self.L.Conv2D(f, k, padding="same", name=name)(x)

    def act(self, x: Any, name: str, allow_bn: bool = True) -> Any:
        if self.batchnorm and allow_bn:
            x = self.L.BatchNormalization(name=f"{name}_bn")(x)
        if self.quantized:
            return self.qk.QActivation(self.qz.activation_quantizer(self.q, self.slope), name=name)(
                x
            )
        if self.slope:
            return self.L.LeakyReLU(self.slope, name=name)(x)
        return self.L.Activation("relu", name=name)(x)


def build_dense_autoencoder(
    input_shape: tuple[int, ...], config: ModelConfig, *, quantized: bool = False
) -> Any:
    if len(input_shape) != 1:
        raise ValueError(f"a dense autoencoder needs feature vectors (F,), got {input_shape}")
    f = _Layers(config, quantized)
    inp = f.tf.keras.Input(shape=tuple(input_shape), name="input")
    x = f.input_quant(inp)
    for i, n in enumerate(config.hidden):
        x = f.act(f.dense(x, n, f"enc_{i}"), f"enc_{i}_act")
    x = f.dense(x, config.latent_dim, "latent")
    for i, n in enumerate(reversed(config.hidden)):
        x = f.act(f.dense(x, n, f"dec_{i}"), f"dec_{i}_act")
    out = f.dense(x, int(input_shape[0]), "output")
    return f.tf.keras.Model(inp, out, name="qdense_ae" if quantized else "dense_ae")


def build_conv_autoencoder(
    input_shape: tuple[int, ...], config: ModelConfig, *, quantized: bool = False
) -> Any:
    if len(input_shape) != 3:
        raise ValueError(f"a conv autoencoder needs images (n_eta, n_phi, C), got {input_shape}")
    factor = 2 ** len(config.filters)
    h, w, c = (int(s) for s in input_shape)
    if h % factor or w % factor:
        raise ValueError(
            f"image shape {input_shape}: n_eta and n_phi must be divisible by {factor} "
            f"(2 ** number of filters {config.filters})"
        )
    f = _Layers(config, quantized)
    L = f.L
    inp = f.tf.keras.Input(shape=(h, w, c), name="input")
    x = f.input_quant(inp)
    for i, n in enumerate(config.filters):
        x = f.act(f.conv(x, n, config.kernel_size, f"enc_conv_{i}"), f"enc_conv_{i}_act", False)
        x = L.MaxPooling2D(2, name=f"enc_pool_{i}")(x)
    bh, bw, bc = h // factor, w // factor, config.filters[-1]
    x = L.Flatten(name="flatten")(x)
    x = f.dense(x, config.latent_dim, "latent")
    x = f.act(f.dense(x, bh * bw * bc, "dec_dense"), "dec_dense_act", False)
    x = L.Reshape((bh, bw, bc), name="reshape")(x)
    for i, n in enumerate(reversed(config.filters)):
        x = L.UpSampling2D(2, name=f"dec_up_{i}")(x)
        x = f.act(f.conv(x, n, config.kernel_size, f"dec_conv_{i}"), f"dec_conv_{i}_act", False)
    out = f.conv(x, c, config.kernel_size, "output")
    assert math.prod(out.shape[1:]) == h * w * c
    return f.tf.keras.Model(inp, out, name="qconv_ae" if quantized else "conv_ae")
