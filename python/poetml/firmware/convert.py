"""Keras/QKeras model -> hls4ml project (bit-exact precisions), and what hls4ml can map.

The network converted is the score model of :mod:`.score_model`, not always the trained one.

Precisions come from the QKeras quantizers (``config_from_keras_model(granularity="name")``);
every other type (accumulators, merge results, the score) is derived with hls4ml's bit-exact
precision propagation, so the C simulation equals the score model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..exceptions import FirmwareError, UnsupportedLayerError
from .config import FirmwareConfig

__all__ = [
    "FirmwareError",
    "UnsupportedLayerError",
    "check_supported",
    "choose_io_type",
    "convert",
    "hls_config",
    "is_autoencoder",
    "is_convolutional",
    "is_quantized",
    "load_qkeras_model",
]

# layer types hls4ml 1.3 drops on conversion (inference no-ops)
_SKIPPED = ("Dropout", "InputLayer")

ALTERNATIVES = (
    "deploy a network made only of layers hls4ml maps: for an autoencoder, the encoder-only "
    "anomaly score (squared latent norm, as the CMS AXOL1TL trigger does; firmware.score: latent), "
    "or a small student network of supported layers distilled from this model's scores "
    "(as the CMS CICADA trigger does)"
)


def load_qkeras_model(path: str | Path, *, trust_model: bool = False) -> Any:
    """Load a Keras/QKeras model file (``.keras`` or ``.h5``) without compiling it and
    without running code stored in it (see :func:`poetml.models.load_model`: a ``Lambda``
    layer or unknown custom object is refused unless ``trust_model``, which runs it)."""
    from ..models import load_model

    path = Path(path)
    if not path.exists():
        raise FirmwareError(f"model file {path} does not exist")
    return load_model(path, compile=False, trust_model=trust_model)


def _out_size(layer: Any) -> int:
    shape = layer.output.shape
    return int(np.prod([d for d in shape[1:] if d is not None]))


def is_autoencoder(model: Any) -> bool:
    """True when the model's (single) output has the shape of its (single) input."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    return tuple(model.inputs[0].shape[1:]) == tuple(model.outputs[0].shape[1:])


def is_quantized(model: Any) -> bool:
    """True when the model has any QKeras layer (QDense, QConv2D, QActivation ...): a float
    Keras model has none and cannot become bit-exact firmware."""
    return any("qkeras" in type(layer).__module__ for layer in _flat_layers(model))


def is_convolutional(model: Any) -> bool:
    """True when the model has any convolution or pooling layer (io_stream is used then)."""
    return any(
        "Conv" in type(layer).__name__ or "Pooling" in type(layer).__name__
        for layer in _flat_layers(model)
    )


def _flat_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in (
            "Functional",
            "Sequential",
            "Model",
        ):
            out.extend(_flat_layers(layer))
        else:
            out.append(layer)
    return out


def check_supported(model: Any) -> None:
    """Raise :class:`UnsupportedLayerError` naming the first layer hls4ml cannot map."""
    hls4ml = require("hls4ml", "firmware conversion")
    supported = set(hls4ml.converters.get_supported_keras_layers()) | set(_SKIPPED)
    for layer in _flat_layers(model):
        cls = type(layer).__name__
        if cls not in supported:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}) of model {model.name!r} cannot be mapped to "
                f"firmware by hls4ml {hls4ml.__version__}; {ALTERNATIVES}"
            )
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", None) or (
            act.__class__.__name__ if act is not None else None
        )
        if act_name in ("gelu", "swish", "silu", "mish"):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}) uses activation {act_name!r}, which hls4ml "
                f"{hls4ml.__version__} cannot map; {ALTERNATIVES}"
            )


_NOT_BIT_EXACT = ("UpSampling1D", "UpSampling2D", "UpSampling3D")


def _hls4ml_version() -> str:
    return str(require("hls4ml", "firmware conversion").__version__)


def _bit_exact_blocker(model: Any) -> Any | None:
    """The first layer whose hls4ml conversion has no bit-exact precision rule, or None."""
    for layer in _flat_layers(model):
        if type(layer).__name__ in _NOT_BIT_EXACT:
            return layer
    return None


def choose_io_type(model: Any, config: FirmwareConfig) -> str:
    """``io_stream`` for convolutional networks, ``io_parallel`` otherwise (unless configured)."""
    if config.io_type != "auto":
        return config.io_type
    return "io_stream" if is_convolutional(model) else "io_parallel"


def hls_config(model: Any, config: FirmwareConfig) -> dict[str, Any]:
    """The hls4ml configuration dict: per-layer precisions from the QKeras quantizers."""
    hls4ml = require("hls4ml", "firmware conversion")
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=config.backend)
    cfg["Model"]["Strategy"] = config.strategy
    cfg["Model"]["ReuseFactor"] = config.reuse_factor
    for layer_cfg in cfg["LayerName"].values():
        layer_cfg["Trace"] = True  # lets validation trace a disagreeing event layer by layer
        if "ReuseFactor" in layer_cfg:
            layer_cfg["ReuseFactor"] = config.reuse_factor
    return cfg


def convert(
    model: Any, output_dir: str | Path, config: FirmwareConfig, compile: bool = True
) -> Any:
    """Convert a Keras/QKeras model into an hls4ml project written to ``output_dir``.

    With ``compile`` also build hls4ml's own C-simulation library (for ``predict``/``trace``;
    the batched one of :mod:`.csim` is built separately).  Returns the hls4ml ``ModelGraph``."""
    hls4ml = require("hls4ml", "firmware conversion")
    check_supported(model)
    io_type = choose_io_type(model, config)
    output_dir = Path(output_dir)
    try:
        hls_model = hls4ml.converters.convert_from_keras_model(
            model,
            output_dir=str(output_dir),
            project_name=config.project_name,
            backend=config.backend,
            hls_config=hls_config(model, config),
            io_type=io_type,
            part=config.part,
            clock_period=config.clock_period,
            bit_exact=True,
        )
    except Exception as exc:
        if "Unsupported" in str(exc):
            raise UnsupportedLayerError(
                f"hls4ml cannot convert {model.name!r}: {exc}; {ALTERNATIVES}"
            ) from exc
        raise FirmwareError(f"hls4ml could not convert {model.name!r}: {exc}") from exc
    try:
        if compile:
            hls_model.compile()
        else:
            hls_model.write()
    except Exception as exc:
        raise FirmwareError(
            f"compiling the C simulation of {output_dir} failed: {exc}; see {output_dir}/build_lib.sh"
        ) from exc
    return hls_model
