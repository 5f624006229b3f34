"""Lazy, ordered imports of TensorFlow, QKeras and tensorflow-model-optimization.

tfmot 0.8 sets ``TF_USE_LEGACY_KERAS=1`` when imported; if ``tf.keras`` has not been
resolved yet it then becomes ``tf_keras`` while QKeras keeps using the ``keras`` 2.15
package, and pruning a QKeras layer fails with "can only prune ... keras.layers.Layer".
Resolving ``tf.keras`` first (here) keeps every library on the same Keras 2.15 classes.
"""

from __future__ import annotations

from types import ModuleType

from .._optional import require

__all__ = ["qkeras", "tf", "tfmot"]


def tf() -> ModuleType:
    """TensorFlow, with ``tf.keras`` resolved to the Keras 2 package."""
    mod = require("tensorflow", "training and running networks")
    _ = mod.keras.Model  # resolve the lazy tf.keras before tfmot can redirect it
    return mod


def qkeras() -> ModuleType:
    """QKeras (after :func:`tf`)."""
    tf()
    return require("qkeras", "quantized networks")


def tfmot() -> ModuleType:
    """tensorflow-model-optimization (after :func:`tf`)."""
    tf()
    return require("tensorflow_model_optimization", "pruning")
