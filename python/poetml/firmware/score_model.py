"""Trained QKeras model -> the "score model" that goes into firmware.

The network that goes into firmware is not always the network that was trained:

* an autoencoder's firmware must output the anomaly score, not a reconstruction.  With
  ``score="reconstruction"`` (the default) the deployed network is the whole autoencoder
  followed by its reconstruction error: ``Subtract`` (quantized inputs minus reconstruction),
  a mask that zeroes the errors of absent objects (a fixed ``Dense`` picks each input's slot
  pT, a saturating 2-bit ``quantized_relu`` turns it into 0 or 1.5), a quantizer on the
  errors, ``Multiply`` (squares), a quantizer on the squares and a ``Dense`` of ones (sum),
  and beside it a ``Dense`` of ones over the mask (the count of present inputs).  The
  offline anomaly score averages the squared errors over the present objects; hls4ml has no
  division layer, so the network outputs sum and count, the score is their ratio, and the
  trigger tests ``sum > threshold x count`` (a sum alone ranks events differently: Z' AUC
  0.964 against 0.972, and at 1 kHz 58 % of Z' events instead of 74 %, on the 480k-event
  dataset of ``configs/anomaly_ae_trigger.yaml``).  With ``score="latent"`` the deployed
  network is the encoder followed by a fixed-point quantizer on the latent vector and the
  squared norm ``||z||^2``, the encoder-only score the CMS AXOL1TL trigger deploys with a
  variational autoencoder; on a plain autoencoder it separates far less (Z' AUC 0.60).
  Quantizers are sized on calibration (background) events and narrow enough that QKeras
  computes every square and sum exactly in float32; the firmware computes them exactly in
  fixed point, so the two agree bit for bit.
* a classifier's final softmax is removed (``score="output"``): hls4ml evaluates softmax with
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optional import require
from ..exceptions import FirmwareError, UnsupportedLayerError
from .config import ANOMALY_SCORES, FirmwareConfig
from .convert import (
    _bit_exact_blocker,
    _flat_layers,
    _hls4ml_version,
    _out_size,
    is_autoencoder,
)
from .trigger import trigger_fires, trigger_scores

__all__ = ["ScoreModel", "make_score_model"]


@dataclasses.dataclass(frozen=True)
class ScoreModel:
    """The Keras network to deploy and how it was derived from the trained model.

    ``model`` maps the quantized inputs to the trigger score(s); ``kind`` is
    ``reconstruction``, ``latent``, ``logits`` or ``output``; ``score_index`` the output
    element the trigger compares; with ``denominator_index`` the score is the ratio
    ``output[score_index] / output[denominator_index]`` (0 when the denominator is 0), which
    the firmware tests without dividing: ``output[score_index] > threshold x
    output[denominator_index]``; ``notes`` human-readable lines for the report.
    """

    model: Any
    kind: str
    score_index: int
    notes: tuple[str, ...] = ()
    denominator_index: int | None = None

    def scores(self, y: np.ndarray) -> np.ndarray:
        """The trigger score of each event from the network outputs ``y`` (n, n_out)."""
        return trigger_scores(y, self.score_index, self.denominator_index)

    def fires(self, y: np.ndarray, threshold: float) -> np.ndarray:
        """The trigger bit of each event, computed as the firmware does (no division)."""
        return trigger_fires(y, threshold, self.score_index, self.denominator_index)


def _has_input_quantizer(model: Any) -> bool:
    layers = [layer for layer in _flat_layers(model) if type(layer).__name__ != "InputLayer"]
    return (
        bool(layers)
        and type(layers[0]).__name__ == "QActivation"
        and ("quantized_bits" in str(layers[0].get_config().get("activation")))
    )


def _bottleneck(model: Any) -> Any:
    """The narrowest layer (last one of the first run of minimal width) of an autoencoder."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"][:-1]
    named = [
        layer for layer in layers if any(k in layer.name.lower() for k in ("latent", "bottleneck"))
    ]
    if named:
        return named[-1]
    sizes = [_out_size(layer) for layer in layers]
    if not sizes:
        raise FirmwareError(f"model {model.name!r} has no hidden layer to take a latent score from")
    smallest = min(sizes)
    first = sizes.index(smallest)
    last = first
    while last + 1 < len(sizes) and sizes[last + 1] == smallest:
        last += 1
    return layers[last]


def _integer_bits(max_abs: float) -> int:
    """Integer bits (sign excluded) of a quantized_bits that holds +-max_abs without saturating."""
    if not np.isfinite(max_abs):
        raise FirmwareError(f"latent values are not finite (max |z| = {max_abs})")
    if max_abs <= 0:
        return 0
    return max(0, math.floor(math.log2(max_abs)) + 1)


def _custom_objects() -> dict[str, Any]:
    try:  # poetml's own models: QKeras objects plus poetml's losses
        from ..models import custom_objects

        return custom_objects()
    except ImportError:
        qkeras_utils = require("qkeras.utils", "QKeras models")
        custom: dict[str, Any] = {}
        qkeras_utils._add_supported_quantized_objects(custom)
        return custom


def _without_reserved_names(model: Any) -> tuple[Any, str | None]:
    """hls4ml reserves the layer name ``input``: give a model whose input layer has it a
    clone with the input renamed (same layers, same weights; the original is untouched)."""
    if not any(layer.name == "input" for layer in model.layers):
        return model, None
    tf = require("tensorflow", "building the score model")
    if (
        len(model.inputs) != 1
        or type(model.layers[0]).__name__ != "InputLayer"
        or (model.layers[0].name != "input")
    ):
        raise FirmwareError(
            f"model {model.name!r} has a layer named 'input', a name hls4ml reserves; rename it"
        )
    with tf.keras.utils.custom_object_scope(_custom_objects()):
        new_in = tf.keras.Input(shape=model.inputs[0].shape[1:], name="model_input")
        clone = tf.keras.models.clone_model(model, input_tensors=new_in)
    clone.set_weights(model.get_weights())
    return clone, "input layer 'input' renamed 'model_input' (a name hls4ml reserves)"


def make_score_model(
    model: Any,
    config: FirmwareConfig,
    calibration: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> ScoreModel:
    """Build the network to deploy from a trained (QKeras) model.

    ``calibration``: input events (background) that size the fixed-point quantizers of an
    autoencoder's score; required for autoencoders.  ``feature_names``: the names of the
    input features (``muon_0_pt`` ...), so that a reconstruction score ignores the errors of
    absent objects as the training loss and the offline anomaly score do; without them
    every input counts.
    """
    tf = require("tensorflow", "building the score model")
    require("qkeras", "building the score model")
    notes: list[str] = []
    model, renamed = _without_reserved_names(model)
    if renamed:
        notes.append(renamed)
    if not _has_input_quantizer(model):
        notes.append(
            "the model has no input quantizer (QActivation(quantized_bits)) as its first layer: "
            "inputs take hls4ml's default input precision and may not match the dataset's"
        )
    if is_autoencoder(model):
        kind: str = config.score
        if kind == "output":
            raise FirmwareError(
                f"model {model.name!r} is an autoencoder: its firmware must output the anomaly "
                "score, not a reconstruction; use firmware.score: reconstruction (or auto, or "
                "latent)"
            )
        if calibration is None or len(calibration) == 0:
            raise FirmwareError(
                "an autoencoder's score needs calibration events to size its quantizers"
            )
        calibration = np.asarray(calibration, np.float32)
        blocking = _bit_exact_blocker(model)
        if kind == "auto":
            kind = "reconstruction" if blocking is None else "latent"
            if blocking is not None:
                notes.append(
                    f"layer {blocking.name!r} ({type(blocking).__name__}) of the decoder has no "
                    "bit-exact hls4ml conversion, so the encoder-only latent score is deployed "
                    "instead of the reconstruction error"
                )
        if kind == "reconstruction":
            if blocking is not None:
                raise UnsupportedLayerError(
                    f"layer {blocking.name!r} ({type(blocking).__name__}) of model "
                    f"{model.name!r} has no bit-exact hls4ml {_hls4ml_version()} conversion, and "
                    "a reconstruction score needs the whole decoder; deploy the encoder-only "
                    "score (firmware.score: latent) or a decoder without it"
                )
            return _reconstruction_score(model, config, calibration, feature_names, notes)
        return _latent_score(model, config, calibration, notes)
    if config.score in ANOMALY_SCORES:
        raise FirmwareError(
            f"firmware.score {config.score!r} is for autoencoders, and model {model.name!r} is "
            "not one (its output shape differs from its input's); use auto or output"
        )
    # classifier / generic network: strip a final softmax
    last = model.layers[-1]
    out = model.outputs[0]
    kind = "output"
    if type(last).__name__ in ("Activation", "Softmax", "QActivation") and "softmax" in str(
        last.get_config().get("activation", "softmax")
    ):
        out = last.input
        kind = "logits"
        notes.append(f"final softmax {last.name!r} removed: firmware outputs logits")
    elif getattr(getattr(last, "activation", None), "__name__", "") == "softmax":
        cfg = last.get_config()
        cfg["activation"] = "linear"
        clone = type(last).from_config(cfg)
        out = clone(last.input)
        clone.set_weights(last.get_weights())
        kind = "logits"
        notes.append(f"softmax activation of {last.name!r} removed: firmware outputs logits")
    deployed = tf.keras.Model(model.inputs, out, name=f"{model.name}_score")
    n_out = _out_size(deployed.layers[-1]) if deployed.layers else 1
    index = config.trigger_class % n_out if n_out > 1 else 0
    if n_out > 1:
        notes.append(f"trigger score: output {index} of {n_out}")
    return ScoreModel(deployed, kind, index, tuple(notes))


def _latent_score(
    model: Any, config: FirmwareConfig, calibration: np.ndarray, notes: list[str]
) -> ScoreModel:
    """Encoder + quantized latent + squared norm (see the module docstring)."""
    tf = require("tensorflow", "building the score model")
    qkeras = require("qkeras", "building the score model")
    bottleneck = _bottleneck(model)
    encoder = tf.keras.Model(model.inputs, bottleneck.output, name=f"{model.name}_encoder")
    z = encoder.predict(np.asarray(calibration, np.float32), batch_size=4096, verbose=0)
    z = z.reshape(len(z), -1)
    n_latent = z.shape[1]
    ibits = _integer_bits(float(np.max(np.abs(z))))
    bits = config.latent_bits
    if ibits > bits - 1:
        raise FirmwareError(
            f"latent values reach {np.max(np.abs(z)):.4g}, which needs {ibits} integer bits; "
            f"raise firmware.latent_bits above {bits}"
        )
    sum_bits = 2 * bits + math.ceil(math.log2(max(n_latent, 2)))
    if sum_bits > 24:
        raise FirmwareError(
            f"squared norm of {n_latent} latents of {bits} bits needs {sum_bits} bits, more "
            f"than float32 holds exactly (24); lower firmware.latent_bits"
        )
    x = bottleneck.output
    if len(x.shape) > 2:
        x = tf.keras.layers.Flatten(name="latent_flat")(x)
    zq = qkeras.QActivation(qkeras.quantized_bits(bits, ibits, alpha=1), name="latent_q")(x)
    sq = tf.keras.layers.Multiply(name="latent_sq")([zq, zq])
    score = tf.keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones", trainable=False, name="score"
    )(sq)
    deployed = tf.keras.Model(model.inputs, score, name=f"{model.name}_score")
    deployed.get_layer("score").set_weights([np.ones((n_latent, 1), np.float32)])
    notes.append(
        f"autoencoder deployed as encoder-only anomaly score ||z||^2 (AXOL1TL style): latent "
        f"layer {bottleneck.name!r} ({n_latent} values) quantized to quantized_bits({bits}, "
        f"{ibits}), squared and summed"
    )
    return ScoreModel(deployed, "latent", 0, tuple(notes))


def _reconstruction_score(
    model: Any,
    config: FirmwareConfig,
    calibration: np.ndarray,
    feature_names: Sequence[str] | None,
    notes: list[str],
) -> ScoreModel:
    """Autoencoder + reconstruction error as one fixed-point score (see the module docstring)."""
    tf = require("tensorflow", "building the score model")
    qkeras = require("qkeras", "building the score model")
    layers = tf.keras.layers
    if not _has_input_quantizer(model):
        raise FirmwareError(
            f"model {model.name!r} has no input quantizer (QActivation(quantized_bits) first): a "
            "reconstruction score compares the reconstruction with the inputs the firmware "
            "receives, so their fixed-point type must be part of the model"
        )
    first = next(layer for layer in _flat_layers(model) if type(layer).__name__ != "InputLayer")
    x_in, x_out = first.output, model.outputs[0]
    if len(x_in.shape) > 2:
        x_in = layers.Flatten(name="reco_in_flat")(x_in)
        x_out = layers.Flatten(name="reco_out_flat")(x_out)
    n = int(x_in.shape[1])
    diff = layers.Subtract(name="reco_diff")([x_in, x_out])
    probe = tf.keras.Model(model.inputs, [x_in, diff])
    x_cal, d_cal = probe.predict(calibration, batch_size=4096, verbose=0)
    d_cal = np.asarray(d_cal, np.float64).reshape(len(calibration), -1)
    mask_text = "every input counts (no feature names were given to mask absent objects)"
    if feature_names is not None:
        from ..models.autoencoder import slot_pt_index

        if len(feature_names) != n:
            raise FirmwareError(f"{len(feature_names)} feature names for a model with {n} inputs")
        pt_index = slot_pt_index(feature_names)
        # The mask of input j is [x of its slot's pT column != 0].  A saturating 2-bit ReLU of
        # 2^(F+1) x (F: the input's fraction bits, so a non-zero pT gives >= 2) is exactly 0
        # or 1.5, a value hls4ml maps exactly (a 1-bit ReLU becomes an ap_uint<1> that wraps).
        q = first.activation
        frac = int(q.bits) - int(q.integer) - 1
        select = np.zeros((n, n), np.float32)
        for j, p in enumerate(pt_index):
            select[p, j] = 2.0 ** (frac + 1)
        sel = layers.Dense(n, use_bias=False, trainable=False, name="reco_mask_select")(x_in)
        mask = qkeras.QActivation(qkeras.quantized_relu(2, 1), name="reco_mask")(sel)
        diff = layers.Multiply(name="reco_diff_masked")([diff, mask])
        count = layers.Dense(
            1, use_bias=False, kernel_initializer="ones", trainable=False, name="reco_count"
        )(mask)
        d_cal = d_cal * 1.5 * (np.asarray(x_cal).reshape(len(calibration), -1)[:, pt_index] != 0)
        mask_text = (
            "errors of absent objects (slot pT = 0) masked out, as in the training loss, by a "
            "mask of 1.5; a second output counts the present inputs (1.5 each), and the anomaly "
            "score is the ratio of the two, 1.5 x the offline score (the mean squared error "
            "over the present objects); the trigger compares sum > threshold x count"
        )
    e_bits = config.error_bits
    e_int = _integer_bits(float(np.max(np.abs(d_cal))))
    if e_int > e_bits - 1:
        raise FirmwareError(
            f"reconstruction errors reach {np.max(np.abs(d_cal)):.4g}, which needs {e_int} "
            f"integer bits; raise firmware.error_bits above {e_bits}"
        )
    dq = qkeras.QActivation(qkeras.quantized_bits(e_bits, e_int, alpha=1), name="reco_error_q")(
        diff
    )
    sq = layers.Multiply(name="reco_sq")([dq, dq])
    # squares rounded to s_bits so their sum over n inputs stays exact in float32 (24 bits)
    s_bits = min(16, 24 - math.ceil(math.log2(max(n, 2))))
    if s_bits < 6:
        raise FirmwareError(
            f"a reconstruction score over {n} inputs cannot be summed exactly in float32; "
            "deploy the encoder-only score (firmware.score: latent)"
        )
    s_int = _integer_bits(float(np.max(d_cal**2)))
    sqq = qkeras.QActivation(qkeras.quantized_bits(s_bits, s_int, alpha=1), name="reco_sq_q")(sq)
    total = layers.Dense(
        1, use_bias=False, kernel_initializer="ones", trainable=False, name="reco_sum"
    )(sqq)
    out = total if feature_names is None else layers.Concatenate(name="score")([total, count])
    deployed = tf.keras.Model(model.inputs, out, name=f"{model.name}_score")
    deployed.get_layer("reco_sum").set_weights([np.ones((n, 1), np.float32)])
    if feature_names is not None:
        deployed.get_layer("reco_mask_select").set_weights([select])
        deployed.get_layer("reco_count").set_weights([np.ones((n, 1), np.float32)])
    notes.append(
        f"autoencoder deployed with its reconstruction error as the score: the sum over its {n} "
        f"inputs of the squared errors, errors quantized to quantized_bits({e_bits}, {e_int}) "
        f"and squares to quantized_bits({s_bits}, {s_int}) (sized on {len(calibration)} "
        f"calibration events); {mask_text}"
    )
    return ScoreModel(
        deployed, "reconstruction", 0, tuple(notes), None if feature_names is None else 1
    )
