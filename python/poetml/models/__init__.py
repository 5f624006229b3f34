"""Network builders: a compact CNN classifier for event images, dense and convolutional
autoencoders, their QKeras twins (made for hls4ml) and magnitude pruning.

Builders take shapes and a :class:`ModelConfig` and return an *uncompiled* Keras model; they
never read files.  TensorFlow, QKeras and tensorflow-model-optimization are imported only
when a builder is called (``import poetml.models`` stays light).

Every builder names its layers the same way in the float and the quantized twin (``conv_0``,
``dense_0``, ``latent``, ``output`` ...), so weights can be compared layer by layer and the
bottleneck can be excluded from pruning by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MODEL_TYPES",
    "ModelConfig",
    "PruningConfig",
    "QuantizationConfig",
    "build",
    "custom_objects",
    "load_model",
]

#: Model families: ``cnn`` classifies images; ``dense_ae`` and ``conv_ae`` are autoencoders
#: for feature vectors and images.
MODEL_TYPES = ("cnn", "dense_ae", "conv_ae")


@dataclass(frozen=True)
class QuantizationConfig:
    """Fixed-point widths of the QKeras twin (QKeras ``quantized_bits`` conventions:
    ``bits`` in total, ``integer`` bits left of the point *not counting* the sign bit, so
    ``quantized_bits(8, 0)`` is ``ap_fixed<8,1>``).

    ``input_bits``/``input_integer`` quantize the *scaled* inputs; the same quantization is
    applied to the data every variant (float too) is trained and evaluated on, so the
    firmware receives exactly what the networks saw.
    """

    bits: int = 8
    integer: int = 0
    activation_bits: int = 8
    activation_integer: int = 3
    input_bits: int = 12
    input_integer: int = 4

    def __post_init__(self) -> None:
        for name in ("bits", "activation_bits", "input_bits"):
            if not 2 <= getattr(self, name) <= 32:
                raise ValueError(f"{name} must be in 2..32, got {getattr(self, name)}")
        for name, total in (
            ("integer", self.bits),
            ("activation_integer", self.activation_bits),
            ("input_integer", self.input_bits),
        ):
            value = getattr(self, name)
            if not 0 <= value < total:
                raise ValueError(f"{name} must be in 0..{total - 1}, got {value}")


@dataclass(frozen=True)
class PruningConfig:
    """Magnitude pruning (tensorflow-model-optimization) to ``sparsity`` of the weights of
    every Dense/Conv layer except those named in ``exclude`` (the bottleneck ``latent`` by
    default), by fine-tuning a trained model for ``epochs`` epochs (all of them: no early
    stopping, the last, fully sparse weights are kept).  Masks are updated every
    ``frequency`` training steps."""

    sparsity: float = 0.5
    exclude: tuple[str, ...] = ("latent",)
    epochs: int = 10
    frequency: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the network (see :func:`build`).

    cnn
        ``filters`` convolution layers (``kernel_size``, ReLU, ``pool_size`` max-pooling
        after each), Flatten, ``dense`` hidden layers, softmax over the classes.
    dense_ae
        ``hidden`` encoder widths, a linear ``latent`` layer of ``latent_dim``, the mirror
        decoder, linear output.  The defaults are the qcd_school_ml baseline
        57 -> 32 -> 16 -> 3 -> 16 -> 32 -> 57.
    conv_ae
        ``filters`` convolutions (same padding, 2x2 pooling), Dense ``latent``, then the
        mirror (Dense, Reshape, UpSampling2D + Conv2D), linear output with the input's
        channels.
    """

    type: Literal["cnn", "dense_ae", "conv_ae"] = "cnn"
    filters: tuple[int, ...] = (8, 16)
    kernel_size: int = 3
    pool_size: int = 2
    dense: tuple[int, ...] = (32,)
    dropout: float = 0.0
    hidden: tuple[int, ...] = (32, 16)
    latent_dim: int = 3
    activation: Literal["relu", "leaky_relu"] = "relu"
    batchnorm: bool = False
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)

    def __post_init__(self) -> None:
        if self.type not in MODEL_TYPES:
            raise ValueError(f"model type {self.type!r} is not one of {', '.join(MODEL_TYPES)}")
        if any(f < 1 for f in (*self.filters, *self.dense, *self.hidden)) or self.latent_dim < 1:
            raise ValueError("layer widths (filters, dense, hidden, latent_dim) must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def is_autoencoder(self) -> bool:
        return self.type in ("dense_ae", "conv_ae")


def build(
    config: ModelConfig,
    input_shape: tuple[int, ...],
    n_classes: int | None = None,
    *,
    quantized: bool = False,
) -> Any:
    """Build the (uncompiled) model ``config`` describes; ``quantized`` gives the QKeras twin."""
    if config.type == "cnn":
        from .cnn import build_cnn

        if n_classes is None:
            raise ValueError("a cnn classifier needs n_classes")
        return build_cnn(input_shape, n_classes, config, quantized=quantized)
    from .autoencoder import build_conv_autoencoder, build_dense_autoencoder

    if config.type == "dense_ae":
        return build_dense_autoencoder(input_shape, config, quantized=quantized)
    return build_conv_autoencoder(input_shape, config, quantized=quantized)


def custom_objects() -> dict[str, Any]:
    """Everything needed to load poetml models: QKeras layers/quantizers and poetml losses."""
    from . import _backend
    from .autoencoder import masked_mse_class

    _backend.qkeras()
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    cls = masked_mse_class()
    objects["MaskedMSE"] = cls
    objects["poetml>MaskedMSE"] = cls
    return objects


def load_model(path: Any, compile: bool = False, *, trust_model: bool = False) -> Any:
    """Load a model saved by :mod:`poetml.training` (QKeras custom objects included) without
    running code stored in the file: a ``Lambda`` layer or an unknown custom object is refused
    (:class:`~poetml.exceptions.UntrustedModelError`); see :mod:`poetml.models.loading`.
    ``trust_model=True`` runs whatever code the file holds."""
    from .loading import load_model as _load

    return _load(path, compile, trust_model=trust_model)
