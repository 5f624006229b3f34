"""Magnitude pruning with tensorflow-model-optimization.

:func:`prune` wraps every Dense/Conv2D (and QKeras QDense/QConv2D) layer of a *copy* of a
model, except the layers named in ``exclude`` (the bottleneck ``latent`` by default), with
``prune_low_magnitude`` at a constant target sparsity; train it with :func:`callbacks`, then
:func:`strip` removes the wrappers before saving or hls4ml conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend

__all__ = ["callbacks", "prune", "sparsity", "strip"]

_PRUNABLE = ("Dense", "Conv2D", "QDense", "QConv2D")


def prune(
    model: Any, target: float, *, exclude: Sequence[str] = ("latent",), frequency: int = 50
) -> Any:
    """A pruning-wrapped copy of ``model`` (same weights) at sparsity ``target``."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target}")
    tf = _backend.tf()
    tfmot = _backend.tfmot()
    from . import custom_objects

    names = {layer.name for layer in model.layers}
    missing = [n for n in exclude if n not in names]
    if missing:
        raise ValueError(
            f"cannot exclude {missing} from pruning: model {model.name!r} has layers "
            f"{sorted(names)}"
        )
    with tf.keras.utils.custom_object_scope(custom_objects()):
        copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    schedule = tfmot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=frequency)

    def wrap(layer: Any) -> Any:
        if type(layer).__name__ in _PRUNABLE and layer.name not in exclude:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = tf.keras.models.clone_model(copy, clone_function=wrap)
    return pruned


def callbacks() -> list[Any]:
    """Callbacks a pruned model must be trained with."""
    return [_backend.tfmot().sparsity.keras.UpdatePruningStep()]


def strip(model: Any) -> Any:
    """The model without pruning wrappers (the zeroed weights stay zero)."""
    return _backend.tfmot().sparsity.keras.strip_pruning(model)


def sparsity(model: Any) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights of each Dense/Conv layer, plus ``total``."""
    out: dict[str, float] = {}
    zeros = total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            inner = getattr(layer, "layer", None)
            kernel = getattr(inner, "kernel", None)
        if kernel is None:
            continue
        k = np.asarray(kernel.numpy())
        out[layer.name] = float(np.mean(k == 0))
        zeros += int(np.sum(k == 0))
        total += k.size
    out["total"] = zeros / total if total else 0.0
    return out
