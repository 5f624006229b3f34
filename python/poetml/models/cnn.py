"""Compact CNN classifier for event images and its QKeras twin.

Float:  Input -> [Conv2D(f, k, same) -> ReLU -> MaxPool2D] per filter -> Flatten ->
[Dense -> ReLU (-> Dropout)] -> Dense(n_classes) -> softmax.

Quantized: the same graph with a ``QActivation(quantized_bits)`` input quantizer first,
``QConv2D``/``QDense`` with ``quantized_bits`` weights and biases and
``QActivation(quantized_relu)`` activations; the final softmax stays a float ``Activation``
(hls4ml implements it with a lookup table).  No BatchNorm after convolutions, only layers
hls4ml converts with ``io_stream``; layer names match between the twins.
"""

from __future__ import annotations

from typing import Any

from . import ModelConfig, _backend


def build_cnn(
    input_shape: tuple[int, ...], n_classes: int, config: ModelConfig, *, quantized: bool = False
) -> Any:
    if len(input_shape) != 3:
        raise ValueError(f"a cnn needs images (n_eta, n_phi, channels), got shape {input_shape}")
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    tf = _backend.tf()
    layers = tf.keras.layers
    q = config.quantization
    if quantized:
        from . import quantized as qz

        qk = _backend.qkeras()
    slope = 0.1 if config.activation == "leaky_relu" else 0.0

    def act(x: Any, name: str) -> Any:
        if quantized:
            return qk.QActivation(qz.activation_quantizer(q, slope), name=name)(x)
        if slope:
            return layers.LeakyReLU(slope, name=name)(x)
        return layers.Activation("relu", name=name)(x)

    inp = tf.keras.Input(shape=tuple(input_shape), name="input")
    x = inp
    if quantized:
        x = qk.QActivation(qz.input_quantizer(q), name="input_quant")(x)
    h, w = input_shape[0], input_shape[1]
    for i, f in enumerate(config.filters):
        if quantized:
            x = qk.QConv2D(
                f, config.kernel_size, padding="same", name=f"conv_{i}", **qz.layer_kwargs(q)
            )(x)
        else:
            x = layers.Conv2D(f, config.kernel_size, padding="same", name=f"conv_{i}")(x)
        x = act(x, f"conv_{i}_act")
        if h >= config.pool_size and w >= config.pool_size:
            x = layers.MaxPooling2D(config.pool_size, name=f"pool_{i}")(x)
            h, w = h // config.pool_size, w // config.pool_size
    x = layers.Flatten(name="flatten")(x)
    for i, n in enumerate(config.dense):
        if quantized:
            x = qk.QDense(n, name=f"dense_{i}", **qz.layer_kwargs(q))(x)
        else:
            x = layers.Dense(n, name=f"dense_{i}")(x)
        x = act(x, f"dense_{i}_act")
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    if quantized:
        x = qk.QDense(n_classes, name="output", **qz.layer_kwargs(q))(x)
    else:
        x = layers.Dense(n_classes, name="output")(x)
    out = layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inp, out, name="qcnn" if quantized else "cnn")
